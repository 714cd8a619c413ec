"""One model-free stand-in for :class:`spinevcf.pipeline.Pipeline` (tests only).

Used by the application tests (in-process and subprocesses) and the reliability tests. It
runs the real code wherever no model is involved: the real CPR along a straight vertical
curve and the real :meth:`Pipeline.grade` of an empty column; it never detects a vertebra.

``python -m tests.fake_pipeline ARGS`` runs the real application (argument parsing,
Holoscan graph, loader, output writer, exit codes) with this stand-in, so the process-level
contract (one-line errors, exit codes, no traceback, no partial outputs) is checked without
models; ``SPINEVCF_FAKE_SPINE=1`` (:data:`FAKE_SPINE_ENV`) makes it produce a CPR.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import numpy as np

from spinevcf.geometry.cpr import CPRImage, make_cpr
from spinevcf.geometry.curve import SpineCurve
from spinevcf.localizer import LocalizerConfig
from spinevcf.pipeline import Pipeline, PipelineResult
from spinevcf.schema import StudyRecord
from spinevcf.volume import Volume

__all__ = ["FakePipeline", "COLUMN_ROW_FRACTION", "FAKE_SPINE_ENV", "main"]

#: Environment variable of :func:`main`: "1" makes the stand-in produce a CPR (all outputs written).
FAKE_SPINE_ENV = "SPINEVCF_FAKE_SPINE"

#: Row (fraction of the rows) of the straight curve: where the bone column of the
#: application tests' water-cylinder volumes lies (tests/app/_app_studies.make_volume).
COLUMN_ROW_FRACTION = 0.62


class FakePipeline:
    """A pipeline without models: no vertebra is ever detected.

    Args:
        spine: ``False``: no spine curve, so no CPR (status ``no_spine``, SR and
            results.json only); ``True``: a straight curve down the volume at
            :data:`COLUMN_ROW_FRACTION` of its rows and mid columns, a real CPR (so the
            annotated picture and the secondary capture are written too) and no detection.
    """

    model_version = "fake-pipeline"
    #: Read by the application for the loader's decode-time block sums (as of a real pipeline).
    localizer_config = LocalizerConfig()

    def __init__(self, *args: Any, spine: bool, **kwargs: Any) -> None:
        self.spine = spine
        self.closed = False
        self.calls: list[str] = []

    def localize(self, volume: Volume) -> SpineCurve | None:
        """The straight curve (``spine=True``), else ``None``."""
        self.calls.append("localize")
        if not self.spine:
            return None
        n0, n1, n2 = volume.shape
        row = COLUMN_ROW_FRACTION * (n1 - 1)
        ends = volume.index_to_lps([[0, row, (n2 - 1) / 2], [n0 - 1, row, (n2 - 1) / 2]])
        return SpineCurve.from_nodes(np.linspace(ends[0], ends[1], 5))

    def reformat(self, volume: Volume, curve: SpineCurve) -> CPRImage:
        """The real CPR."""
        self.calls.append("reformat")
        return make_cpr(volume, curve)

    def detect(self, cpr: CPRImage, volume: Volume) -> list[Any]:
        """Nothing found."""
        self.calls.append("detect")
        return []

    def grade(self, volume: Volume, cpr: CPRImage | None, detections: list[Any]) -> StudyRecord:
        """The real :meth:`Pipeline.grade` for an empty column."""
        self.calls.append("grade")
        return Pipeline.grade(self, volume, cpr, detections)  # type: ignore[arg-type]

    def run(self, volume: Volume) -> PipelineResult:
        """All stages, as :meth:`Pipeline.run`."""
        curve = self.localize(volume)
        cpr = None if curve is None else self.reformat(volume, curve)
        dets = [] if cpr is None else self.detect(cpr, volume)
        return PipelineResult(record=self.grade(volume, cpr, dets), cpr=cpr, timings_s={})

    def close(self) -> None:
        """Nothing to release."""
        self.closed = True


def main() -> int:
    """Run ``app.__main__.main`` with the application's pipeline replaced by the stand-in."""
    import app.app as app_module
    from app.__main__ import main as app_main

    spine = os.environ.get(FAKE_SPINE_ENV) == "1"
    app_module.Pipeline = functools.partial(FakePipeline, spine=spine)  # type: ignore[misc,assignment]
    return app_main()


if __name__ == "__main__":
    sys.exit(main())
