"""``python -m app`` with a model-free stand-in pipeline (tests only).

Runs the real application (argument parsing, Holoscan graph, loader, output writer,
exit codes) but replaces :class:`spinevcf.pipeline.Pipeline` by
:class:`tests.fake_pipeline.FakePipeline`, so the process-level contract (one-line errors, exit codes,
no traceback, no partial outputs) is checked before trained models exist.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fake_pipeline import FakePipeline  # noqa: E402

__all__ = ["FAKE_SPINE_ENV", "main"]

#: Environment variable: "1" makes the fake pipeline produce a CPR (all outputs written).
FAKE_SPINE_ENV = "SPINEVCF_FAKE_SPINE"


def main() -> int:
    """Patch the application's pipeline and run ``app.__main__.main``."""
    import app.app as app_module
    from app.__main__ import main as app_main

    spine = os.environ.get(FAKE_SPINE_ENV) == "1"
    app_module.Pipeline = functools.partial(FakePipeline, spine=spine)  # type: ignore[misc,assignment]
    return app_main()


if __name__ == "__main__":
    sys.exit(main())
