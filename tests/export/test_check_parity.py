"""export.check_parity: comparisons, sample inputs and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from export.check_parity import (
    SAME_GRAPH_TOLERANCE,
    Tolerance,
    compare_outputs,
    format_report,
    main,
    parity_inputs,
)
from export.random_checkpoint import write_random_checkpoint
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.inference.triton_config import TensorSpec

F32 = np.dtype(np.float32)


def test_compare_outputs_pass_fail_and_mismatch() -> None:
    ref = {"a": np.array([1.0, 2.0], np.float32), "b": np.zeros(2, np.float32), "c": np.ones(2, np.float32)}
    got = {"a": ref["a"] + 5e-5, "b": np.array([0.0, np.nan], np.float32), "c": np.ones(3, np.float32)}
    rows = compare_outputs("rt", "m", 0, ref, got, Tolerance(rtol=1e-4, atol=1e-4))
    verdict = {r.output: r.passed for r in rows}
    assert verdict == {"a": True, "b": False, "c": False}
    assert rows[0].max_abs == pytest.approx(5e-5, rel=1e-2)
    rows = compare_outputs("rt", "m", 0, {"a": ref["a"]}, {}, SAME_GRAPH_TOLERANCE)
    assert not rows[0].passed
    text = format_report(rows)
    assert "FAIL" in text and "rt" in text


def test_parity_inputs_two_sizes() -> None:
    spec = TensorSpec("image", F32, (2, -1, -1), True)
    a, b = parity_inputs([spec], divisible_by=32, max_batch_size=8)
    assert a["image"].shape == (2, 2, 128, 64) and b["image"].shape == (1, 2, 96, 160)
    assert a["image"].dtype == np.float32
    spec3 = TensorSpec("image", F32, (1, -1, -1, -1), True)
    a, b = parity_inputs([spec3], divisible_by=16, max_batch_size=1)
    assert a["image"].shape == (1, 1, 64, 96, 80) and b["image"].shape == (1, 1, 96, 64, 64)


def test_cli_torch_vs_onnxruntime(exported, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--repository", str(exported.path), "--trt-repository", str(exported.path / "no_trt")]
    for model in (LOCALIZER_MODEL, DETECTOR_MODEL):
        args += ["--checkpoint", str(exported.checkpoints[model])]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "TensorRT: not available here" in out
    verdicts = [line.split()[-1] for line in out.splitlines() if line.startswith("onnxruntime ")]
    assert verdicts == ["PASS"] * (2 * (1 + 6))
    assert "parity PASS: 14 comparisons, 0 beyond tolerance" in out


def test_cli_reports_failure(exported, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """Weights other than the exported ones (another seed) must FAIL and exit 1."""
    other = write_random_checkpoint(DETECTOR_MODEL, tmp_path / "other.pt", seed=99)
    args = ["--repository", str(exported.path), "--model", DETECTOR_MODEL, "--checkpoint", str(other)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "parity FAIL" in out
