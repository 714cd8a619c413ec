"""``python -m app`` with a model-free stand-in pipeline (tests only).

Runs the real application (argument parsing, Holoscan graph, loader, output writer,
exit codes) but replaces :class:`spinevcf.pipeline.Pipeline` by
:class:`FakePipeline`, so the process-level contract (one-line errors, exit codes,
no traceback, no partial outputs) is checked before trained models exist.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from spinevcf.geometry.cpr import CPRImage, make_cpr  # noqa: E402
from spinevcf.geometry.curve import SpineCurve  # noqa: E402
from spinevcf.pipeline import Pipeline, PipelineResult  # noqa: E402
from spinevcf.schema import StudyRecord  # noqa: E402
from spinevcf.volume import Volume  # noqa: E402

__all__ = ["FAKE_SPINE_ENV", "FakePipeline", "main"]

#: Environment variable: "1" makes the fake pipeline produce a CPR (all outputs written).
FAKE_SPINE_ENV = "SPINEVCF_FAKE_SPINE"


class FakePipeline:
    """A pipeline without models: no vertebra is ever detected.

    Args:
        spine: ``False`` (default): no spine curve, so no CPR; ``True``: a straight
            curve through the middle of the volume, a real CPR (so the annotated
            picture and the secondary capture are written too) and no detection.
    """

    model_version = "fake-pipeline"

    def __init__(self, *args: Any, spine: bool = False, **kwargs: Any) -> None:
        self.spine = spine
        self.closed = False
        self.calls: list[str] = []

    def localize(self, volume: Volume) -> SpineCurve | None:
        """A straight curve down the middle (``spine=True``), else ``None``."""
        self.calls.append("localize")
        if not self.spine:
            return None
        n0, n1, n2 = volume.shape
        ends = volume.index_to_lps([[0, n1 / 2, n2 / 2], [n0 - 1, n1 / 2, n2 / 2]])
        return SpineCurve.from_nodes(np.linspace(ends[0], ends[1], 5))

    def reformat(self, volume: Volume, curve: SpineCurve) -> CPRImage:
        """The real CPR."""
        self.calls.append("reformat")
        return make_cpr(volume, curve)

    def detect(self, cpr: CPRImage) -> list[Any]:
        """Nothing found."""
        self.calls.append("detect")
        return []

    def grade(self, volume: Volume, cpr: Any, detections: list[Any]) -> StudyRecord:
        """The real :meth:`Pipeline.grade` for an empty column."""
        self.calls.append("grade")
        return Pipeline.grade(self, volume, cpr, detections)  # type: ignore[arg-type]

    def run(self, volume: Volume) -> PipelineResult:
        """All stages, as :meth:`Pipeline.run`."""
        curve = self.localize(volume)
        cpr = None if curve is None else self.reformat(volume, curve)
        dets = [] if cpr is None else self.detect(cpr)
        return PipelineResult(record=self.grade(volume, cpr, dets), cpr=cpr, timings_s={})

    def close(self) -> None:
        """Nothing to release."""
        self.closed = True


def main() -> int:
    """Patch the application's pipeline and run ``app.__main__.main``."""
    import app.app as app_module
    from app.__main__ import main as app_main

    spine = os.environ.get(FAKE_SPINE_ENV) == "1"
    app_module.Pipeline = functools.partial(FakePipeline, spine=spine)  # type: ignore[misc,assignment]
    return app_main()


if __name__ == "__main__":
    sys.exit(main())
