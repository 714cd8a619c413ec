"""State shared by the operators of one application run: stage timings and the first error.

Holoscan passes data between operators as messages; what is not data -- how long
each stage took and whether an *expected* error (:class:`~spinevcf.errors.SpineVCFError`)
stopped the run -- lives in one :class:`RunState` that the application creates in
``compose()`` and hands to every operator, like the shared pipeline.

An operator that meets an expected error records it here and emits nothing, so
the operators downstream never run and no output is written; the application
re-raises the error after the graph has stopped. This keeps Holoscan from
printing an operator traceback for bad input (unexpected exceptions still
propagate as usual).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from spinevcf.errors import SpineVCFError

__all__ = ["RunState"]

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Timings, outputs and the first expected error of one application run.

    Attributes:
        timings_s: wall time in seconds per stage name, in execution order.
        error: the first :class:`SpineVCFError` an operator met, or ``None``.
        outputs: the files the output writer produced, by kind.
    """

    timings_s: dict[str, float] = field(default_factory=dict)
    error: SpineVCFError | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as stage ``name`` and log its duration (no patient data).

        Args:
            name: stage name, the key in ``results.json`` ``timings_s``.
        """
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.timings_s[name] = elapsed
            log.info("stage %s: %.3f s", name, elapsed)

    def fail(self, stage: str, exc: SpineVCFError) -> None:
        """Record an expected error; only the first one is kept.

        Args:
            stage: the stage that failed (for the log).
            exc: the error; its message never contains patient identifiers.
        """
        with self._lock:
            if self.error is None:
                self.error = exc
        log.debug("stage %s stopped the run: %s", stage, exc)

    @property
    def failed(self) -> bool:
        """Whether an expected error stopped the run."""
        return self.error is not None
