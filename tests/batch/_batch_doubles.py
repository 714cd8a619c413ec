"""Model-free doubles for the batch tests: a slow, crashable, flaky stand-in pipeline.

:class:`ScriptedPipeline` is :class:`tests.fake_pipeline.FakePipeline` (real loader,
real CPR, real writers, no detection) whose behaviour the test scripts through
environment variables, so it works in forked workers and in a subprocess run alike:

* :data:`DELAY_ENV`: seconds each study sleeps in ``run`` (time to kill something mid-batch);
* :data:`BUSY_ENV`: a folder; while a study runs, the file ``<pid>`` exists there;
* :data:`DOWN_ENV`: a flag file; while it exists the "Triton server" is away: the
  constructor fails its liveness check and ``run`` fails with gRPC UNAVAILABLE, as
  :class:`spinevcf.inference.triton_backend.TritonBackend` does;
* volumes with :data:`CRASH_SLICES` slices kill their worker (SIGKILL, as the OOM killer
  does); volumes with :data:`BAD_REQUEST_SLICES` slices get a permanent Triton error
  (INVALID_ARGUMENT).

``python -m tests.batch._batch_doubles ARGS`` is ``spinevcf ARGS`` with this stand-in.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tritonclient.utils import InferenceServerException

from spinevcf.errors import InferenceServerError
from spinevcf.io import write_ct_series
from spinevcf.pipeline import PipelineResult
from spinevcf.volume import Volume
from tests.app._app_studies import make_volume
from tests.fake_pipeline import FakePipeline

__all__ = ["ScriptedPipeline", "DELAY_ENV", "BUSY_ENV", "DOWN_ENV", "CRASH_SLICES", "BAD_REQUEST_SLICES",
           "NORMAL_SLICES", "write_small_study", "main"]

DELAY_ENV = "SPINEVCF_TEST_DELAY_S"
BUSY_ENV = "SPINEVCF_TEST_BUSY_DIR"
DOWN_ENV = "SPINEVCF_TEST_TRITON_DOWN"
#: Slice counts of the test studies: normal, crashing the worker, a permanent server error.
NORMAL_SLICES = 24
CRASH_SLICES = 21
BAD_REQUEST_SLICES = 22
#: In-plane size of the test studies (small: a study takes a fraction of a second).
SIZE = 96


def write_small_study(folder: Path, seed: int, slices: int = NORMAL_SLICES) -> Path:
    """A small CT study (water cylinder with a bone column) with UIDs from ``seed``."""
    write_ct_series(make_volume(spine=True, shape=(slices, SIZE, SIZE)), folder, rng_seed=seed)
    return folder


def _down() -> bool:
    flag = os.environ.get(DOWN_ENV)
    return bool(flag) and Path(flag).exists()


def _unavailable(what: str) -> InferenceServerError:
    cause = InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE")
    err = InferenceServerError(f"Triton server at fake:8001 is not reachable (grpc) during {what}")
    err.__cause__ = cause
    return err


class ScriptedPipeline(FakePipeline):
    """:class:`FakePipeline` (with a spine) scripted by the environment (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _down():
            raise InferenceServerError("Triton server at fake:8001 is not live")
        super().__init__(spine=True)

    def run(self, volume: Volume) -> PipelineResult:
        """Sleep, crash, fail or run, as scripted."""
        busy_dir = os.environ.get(BUSY_ENV)
        busy = Path(busy_dir) / str(os.getpid()) if busy_dir else None
        if busy is not None:
            busy.write_text("busy")
        try:
            time.sleep(float(os.environ.get(DELAY_ENV, "0")))
            if volume.shape[0] == CRASH_SLICES:
                os.kill(os.getpid(), signal.SIGKILL)
            if volume.shape[0] == BAD_REQUEST_SLICES:
                cause = InferenceServerException("unexpected shape for input 'image'", status="StatusCode.INVALID_ARGUMENT")
                raise InferenceServerError("Triton inference at fake:8001 failed: unexpected shape") from cause
            if _down():
                raise _unavailable("inference")
            return super().run(volume)
        finally:
            if busy is not None:
                busy.unlink(missing_ok=True)


def main() -> int:
    """``spinevcf`` with :class:`ScriptedPipeline` as the pipeline."""
    import spinevcf.pipeline as pipeline_module
    from spinevcf import cli

    pipeline_module.Pipeline = ScriptedPipeline  # type: ignore[misc,assignment]
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
