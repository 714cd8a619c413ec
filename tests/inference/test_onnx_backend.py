"""OnnxRuntimeBackend and load_model_config on exported random-weight models (and the committed repository)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from export.check_parity import FP32_TOLERANCES, compare_outputs
from spinevcf.errors import ModelError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL, InferenceBackend
from spinevcf.inference.factory import make_backend
from spinevcf.inference.onnx_backend import OnnxRuntimeBackend, load_model_config, onnx_model_path
from spinevcf.networks import load_checkpoint

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"
INPUTS = {
    LOCALIZER_MODEL: [(1, 1, 32, 48, 64), (1, 1, 64, 32, 32)],
    DETECTOR_MODEL: [(2, 2, 128, 64), (1, 2, 96, 160)],
}
OUTPUT_CHANNELS = {
    LOCALIZER_MODEL: {"column_prob": 1},
    DETECTOR_MODEL: {
        "heatmap": 1,
        "offset": 2,
        "keypoints": 12,
        "level_logits": 24,
        "kp_heatmap": 6,
        "kp_offset": 12,
    },
}
STRIDE = {LOCALIZER_MODEL: 1, DETECTOR_MODEL: 4}


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("model", [LOCALIZER_MODEL, DETECTOR_MODEL])
def test_outputs_match_torch(random_repository, model: str) -> None:
    net, _ = load_checkpoint(random_repository.checkpoints[model])
    backend = OnnxRuntimeBackend(random_repository.path, intra_op_threads=1)
    assert isinstance(backend, InferenceBackend)
    for k, shape in enumerate(INPUTS[model]):
        x = _image(shape, seed=k)
        out = backend.infer(model, {"image": x})
        assert list(out) == list(net.output_names)
        with torch.no_grad():
            ref = net(torch.from_numpy(x))
        ref = ref if isinstance(ref, tuple) else (ref,)
        ref_np = {n: t.numpy() for n, t in zip(net.output_names, ref, strict=True)}
        rows = compare_outputs("onnxruntime", model, k, ref_np, out, FP32_TOLERANCES)
        assert all(r.passed for r in rows), rows
        for name, channels in OUTPUT_CHANNELS[model].items():
            spatial = tuple(s // STRIDE[model] for s in shape[2:])
            assert out[name].shape == (shape[0], channels, *spatial)
    backend.close()


def test_sessions_are_lazy(random_repository) -> None:
    backend = OnnxRuntimeBackend(random_repository.path)
    assert backend._sessions == {}
    backend.infer(DETECTOR_MODEL, {"image": _image((1, 2, 64, 64))})
    assert list(backend._sessions) == [DETECTOR_MODEL]


def test_missing_repository_and_model_folder(random_repository, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model repository not found"):
        OnnxRuntimeBackend(tmp_path / "nowhere")
    backend = OnnxRuntimeBackend(random_repository.path)
    with pytest.raises(ModelError, match="model no_such_model: ONNX file not found"):
        backend.infer("no_such_model", {"image": _image((1, 2, 64, 64))})


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_onnx_file(random_repository, tmp_path: Path, damage: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(random_repository.path / DETECTOR_MODEL, repo / DETECTOR_MODEL)
    path = onnx_model_path(repo, DETECTOR_MODEL)
    data = path.read_bytes()
    path.write_bytes(b"not an onnx file" if damage == "garbage" else data[: len(data) // 3])
    with pytest.raises(ModelError, match=rf"model {DETECTOR_MODEL}: cannot load"):
        OnnxRuntimeBackend(repo).infer(DETECTOR_MODEL, {"image": _image((1, 2, 64, 64))})


def test_input_validation(random_repository) -> None:
    backend = OnnxRuntimeBackend(random_repository.path)
    with pytest.raises(ValueError, match=r"inputs must be exactly \['image'\]"):
        backend.infer(DETECTOR_MODEL, {"img": _image((1, 2, 64, 64))})
    with pytest.raises(TypeError, match="must have dtype float32, got float64"):
        backend.infer(DETECTOR_MODEL, {"image": np.zeros((1, 2, 64, 64))})
    with pytest.raises(ValueError, match=r"must have shape \[\?, 2, \?, \?\].*got \[1, 3, 64, 64\]"):
        backend.infer(DETECTOR_MODEL, {"image": _image((1, 3, 64, 64))})
    with pytest.raises(ValueError, match=r"got \[2, 64, 64\]"):
        backend.infer(DETECTOR_MODEL, {"image": _image((2, 64, 64))})
    with pytest.raises(TypeError, match="must be a numpy array"):
        backend.infer(DETECTOR_MODEL, {"image": [[0.0]]})  # type: ignore[dict-item]


def test_load_model_config(random_repository, tmp_path: Path) -> None:
    cfg = load_model_config(random_repository.path, DETECTOR_MODEL)
    assert cfg["model"] == DETECTOR_MODEL and cfg["divisible_by"] == 32 and "provenance" in cfg
    assert OnnxRuntimeBackend(random_repository.path).model_config(LOCALIZER_MODEL)["spacing_mm"] == 4.0
    with pytest.raises(ModelError, match=r"model x: spinevcf.json not found"):
        load_model_config(tmp_path, "x")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "spinevcf.json").write_text("{broken")
    with pytest.raises(ModelError, match="is not valid JSON"):
        load_model_config(tmp_path, "x")
    (tmp_path / "x" / "spinevcf.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="must hold a JSON object"):
        load_model_config(tmp_path, "x")
    (tmp_path / "x" / "spinevcf.json").write_text(json.dumps({"model": "y"}))
    with pytest.raises(ModelError, match="describes model 'y'"):
        load_model_config(tmp_path, "x")


def test_make_backend_default_is_onnxruntime(random_repository) -> None:
    backend = make_backend(random_repository.path)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.providers[-1] == "CPUExecutionProvider"


@pytest.mark.parametrize("model", [LOCALIZER_MODEL, DETECTOR_MODEL])
def test_committed_repository_runs(model: str) -> None:
    """The committed model_repository (trained models), when its ONNX files exist."""
    if not onnx_model_path(COMMITTED, model).is_file():
        pytest.skip(f"{onnx_model_path(COMMITTED, model)} not exported yet")
    cfg = load_model_config(COMMITTED, model)
    m = int(cfg["divisible_by"])
    shape = (1, 1, 4 * m, 3 * m, 3 * m) if model == LOCALIZER_MODEL else (1, 2, 8 * m, 4 * m)
    out = OnnxRuntimeBackend(COMMITTED).infer(model, {"image": _image(shape)})
    assert set(out) == set(OUTPUT_CHANNELS[model])
    for name, arr in out.items():
        assert arr.shape[:2] == (1, OUTPUT_CHANNELS[model][name]) and np.isfinite(arr).all()
