"""Helpers of the reliability tests: model availability and the application subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from spinevcf.volume import Volume

REPO = Path(__file__).resolve().parents[2]
#: Wall-clock limit (s) of one ``python -m app`` subprocess.
APP_TIMEOUT_S = 300
#: The model files the application-level runs need.
MODEL_FILES = tuple(
    REPO / "model_repository" / name / "1" / "model.onnx" for name in ("spine_localizer_3d", "vertebra_detector_2d")
)


def models_available() -> bool:
    """Whether the trained ONNX models are committed."""
    return all(p.is_file() for p in MODEL_FILES)


def require_models() -> None:
    """Skip (locally) or fail (CI set) when the trained models are missing."""
    if models_available():
        return
    missing = ", ".join(str(p.relative_to(REPO)) for p in MODEL_FILES if not p.is_file())
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the trained models are missing: {missing}")
    pytest.skip(f"trained models not committed yet ({missing}); application-level run needs them")


@dataclass(frozen=True)
class AppRun:
    """Outcome of one ``python -m app`` subprocess."""

    returncode: int
    stdout: str
    stderr: str


def run_app_subprocess(
    input_dir: Path, output_dir: Path, *extra: str, fake: bool = False, timeout: float = APP_TIMEOUT_S
) -> AppRun:
    """Run the application in a subprocess with a timeout.

    Args:
        input_dir: ``-i``.
        output_dir: ``-o``.
        *extra: more arguments (``--triton-url ...``).
        fake: run ``python -m tests.fake_pipeline`` (the app with a model-free stand-in
            pipeline) instead of ``python -m app`` with the committed models.
        timeout: seconds before the run counts as a hang (the test fails).
    """
    if fake:
        cmd = [sys.executable, "-m", "tests.fake_pipeline"]
    else:
        cmd = [sys.executable, "-m", "app", "-m", str(REPO / "model_repository")]
    cmd += ["-i", str(input_dir), "-o", str(output_dir), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOSCAN_", "TRITON_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the application hung: no exit within {timeout:.0f} s")
    return AppRun(proc.returncode, proc.stdout, proc.stderr)


def assert_sane_volume(vol: Volume) -> None:
    """A loaded volume: 3D, finite values, finite non-singular affine with a 0 0 0 1 last row."""
    assert isinstance(vol, Volume)
    assert vol.array.ndim == 3 and min(vol.array.shape) >= 1
    assert np.issubdtype(vol.array.dtype, np.integer) or bool(np.isfinite(vol.array).all())
    assert np.isfinite(vol.affine).all()
    assert np.allclose(vol.affine[3], [0, 0, 0, 1])
    assert abs(np.linalg.det(vol.affine[:3, :3])) > 1e-6


def patient_strings() -> tuple[str, ...]:
    """The distinctive patient identifiers of the corpus and their parts (for leak checks)."""
    from corpus import PATIENT

    name = PATIENT["PatientName"]
    return (name, *name.split("^"), PATIENT["PatientID"])
