"""export.export_onnx: files, spinevcf.json schema, parity and failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import export.export_onnx as eo
from export.random_checkpoint import PLACEHOLDER_CONFIGS, write_random_checkpoint
from spinevcf.errors import ModelError, ParityError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL

#: Fixed export timestamp: no wall clock in tests.
EXPORTED_AT = "2025-01-01T00:00:00+00:00"

MODELS = [LOCALIZER_MODEL, DETECTOR_MODEL]


@pytest.mark.parametrize("model", MODELS)
def test_export_writes_the_model_folder(exported, model: str) -> None:
    folder = exported.path / model
    assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt", "spinevcf.json"]
    assert [p.name for p in (folder / "1").iterdir()] == ["model.onnx"], "single-file ONNX, nothing else"
    onnx_bytes = (folder / "1" / "model.onnx").read_bytes()
    proto = onnx.load_from_string(onnx_bytes)
    assert proto.opset_import[0].version == eo.DEFAULT_OPSET
    assert {p.key: p.value for p in proto.metadata_props}["spinevcf_model"] == model
    assert (folder / "config.pbtxt").read_text() == (eo.CANONICAL_REPOSITORY / model / "config.pbtxt").read_text()

    meta = json.loads((folder / "spinevcf.json").read_text())
    assert meta["schema_version"] == eo.SCHEMA_VERSION and meta["model"] == model
    for key, value in PLACEHOLDER_CONFIGS[model].items():
        assert meta[key] == value
    prov = meta["provenance"]
    assert prov["onnx_sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert prov["checkpoint_sha256"] == hashlib.sha256(exported.checkpoints[model].read_bytes()).hexdigest()
    assert prov["onnx_opset"] == eo.DEFAULT_OPSET and prov["exported_at"] == exported.exported_at
    assert prov["checkpoint"]["random_init"] is True
    assert prov["exporter"]["torch"] == torch.__version__
    assert prov["parity"] and all(v["passed"] for v in prov["parity"].values())


def test_parity_covers_two_sizes(tmp_path: Path) -> None:
    ckpt = write_random_checkpoint(DETECTOR_MODEL, tmp_path / "d.pt", seed=5)
    res = eo.export_checkpoint(ckpt, tmp_path / "repo", exported_at=EXPORTED_AT)
    shapes = {r.shape[2:] for r in res.parity if r.output == "heatmap"}
    assert len(shapes) == 2
    assert {r.output for r in res.parity} == {
        "heatmap",
        "offset",
        "keypoints",
        "level_logits",
        "kp_heatmap",
        "kp_offset",
    }
    assert all(r.passed and r.max_abs < 1e-4 for r in res.parity)


def test_parity_failure_is_loud_and_writes_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = write_random_checkpoint(LOCALIZER_MODEL, tmp_path / "l.pt", seed=6)
    real = eo._torch_outputs

    def drifted(net, sample):  # a reference 1e-2 away from what the ONNX file computes
        return {k: v + np.float32(1e-2) for k, v in real(net, sample).items()}

    monkeypatch.setattr(eo, "_torch_outputs", drifted)
    with pytest.raises(ParityError, match=r"(?s)ONNX Runtime differs from PyTorch.*column_prob.*FAIL"):
        eo.export_checkpoint(ckpt, tmp_path / "repo")
    assert not (tmp_path / "repo" / LOCALIZER_MODEL / "1" / "model.onnx").exists()
    assert not (tmp_path / "repo" / LOCALIZER_MODEL / "spinevcf.json").exists()


def test_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="checkpoint not found"):
        eo.export_checkpoint(tmp_path / "missing.pt", tmp_path / "repo")
    ckpt = write_random_checkpoint(DETECTOR_MODEL, tmp_path / "d.pt")
    data = torch.load(ckpt, weights_only=False)
    data["config"]["provenance"] = "mine"
    torch.save(data, ckpt)
    with pytest.raises(ModelError, match="must not set 'provenance'"):
        eo.export_checkpoint(ckpt, tmp_path / "repo", verify=False)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_random_checkpoint(LOCALIZER_MODEL, tmp_path / "l.pt", seed=7)
    assert eo.main([str(ckpt), "--out", str(tmp_path / "repo"), "--exported-at", EXPORTED_AT]) == 0
    out = capsys.readouterr().out
    assert "spine_localizer_3d:" in out and "PASS" in out and "FAIL" not in out
    assert eo.main([str(tmp_path / "nope.pt"), "--out", str(tmp_path / "repo")]) == ModelError.exit_code
