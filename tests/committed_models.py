"""The committed ONNX models, for the tests that run them (golden, assessability, levels, Triton)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spinevcf.pipeline import default_model_repository

#: Model folders the committed repository must hold.
MODELS = ("spine_localizer_3d", "vertebra_detector_2d")


def require_committed_models() -> Path:
    """The committed model repository; the test fails in CI and is skipped elsewhere without it."""
    repo = default_model_repository()
    if not all((repo / m / "1" / "model.onnx").is_file() for m in MODELS):
        if os.environ.get("CI"):
            pytest.fail("model_repository lacks the committed ONNX models")
        pytest.skip("model_repository lacks the committed ONNX models")
    return repo
