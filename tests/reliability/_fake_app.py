"""``python -m app`` with a model-free stand-in pipeline (tests only).

Runs the real application (argument parsing, Holoscan graph, loader, output writer,
exit codes) but replaces :class:`spinevcf.pipeline.Pipeline` by
:class:`FakePipeline`, so the process-level contract (one-line errors, exit codes,
no traceback, no partial outputs) is checked before trained models exist.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from spinevcf.pipeline import Pipeline  # noqa: E402
from spinevcf.schema import StudyRecord  # noqa: E402
from spinevcf.volume import Volume  # noqa: E402

__all__ = ["FakePipeline", "main"]


class FakePipeline:
    """Finds no spine in any volume (the real grading code writes the "no spine" record)."""

    model_version = "fake-pipeline"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False
        self.calls: list[str] = []

    def localize(self, volume: Volume) -> None:
        """No spine."""
        self.calls.append("localize")
        return None

    def reformat(self, volume: Volume, curve: Any) -> Any:  # pragma: no cover - never called
        raise AssertionError("reformat without a curve")

    def detect(self, cpr: Any) -> list[Any]:  # pragma: no cover - never called
        raise AssertionError("detect without a CPR")

    def grade(self, volume: Volume, cpr: Any, detections: list[Any]) -> StudyRecord:
        """The real :meth:`Pipeline.grade` for an empty column."""
        self.calls.append("grade")
        return Pipeline.grade(self, volume, cpr, detections)  # type: ignore[arg-type]

    def close(self) -> None:
        """Nothing to release."""
        self.closed = True


def main() -> int:
    """Patch the application's pipeline and run ``app.__main__.main``."""
    import app.app as app_module
    from app.__main__ import main as app_main

    app_module.Pipeline = FakePipeline  # type: ignore[misc,assignment]
    return app_main()


if __name__ == "__main__":
    sys.exit(main())
