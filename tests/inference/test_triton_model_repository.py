"""config.pbtxt of model_repository/: parses, matches the networks, the contract and the ONNX files."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import onnx
import pytest

from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.inference.onnx_backend import load_model_config, onnx_model_path
from spinevcf.inference.triton_config import input_specs, output_specs, parse_model_config, read_model_config
from spinevcf.networks.factory import MODEL_CLASSES

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "model_repository"
MODELS = [LOCALIZER_MODEL, DETECTOR_MODEL]
#: docs/architecture.md: per model, tensor -> dims without batch (-1 = variable).
CONTRACT = {
    LOCALIZER_MODEL: {"image": (1, -1, -1, -1), "column_prob": (1, -1, -1, -1)},
    DETECTOR_MODEL: {
        "image": (2, -1, -1),
        "heatmap": (1, -1, -1),
        "offset": (2, -1, -1),
        "keypoints": (12, -1, -1),
        "level_logits": (24, -1, -1),
        "kp_heatmap": (6, -1, -1),
        "kp_offset": (12, -1, -1),
    },
}
#: Spatial multiples the warm-up shapes must respect (configs/*.yaml divisible_by).
DIVISIBLE_BY = {LOCALIZER_MODEL: 16, DETECTOR_MODEL: 32}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "triton" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model", MODELS)
def test_committed_config_matches_contract_and_network(model: str) -> None:
    cfg = read_model_config(COMMITTED / model)
    assert cfg.name == model and cfg.platform == "onnxruntime_onnx"
    net = MODEL_CLASSES[model]
    assert [t.name for t in cfg.input] == list(net.input_names)
    assert [t.name for t in cfg.output] == list(net.output_names)
    specs = {s.name: s for s in input_specs(cfg) + output_specs(cfg)}
    assert {n: s.dims for n, s in specs.items()} == CONTRACT[model]
    assert all(s.dtype.name == "float32" and s.batched for s in specs.values())
    assert len(cfg.model_warmup) == 1
    warm = cfg.model_warmup[0].inputs["image"]
    assert warm.zero_data and len(warm.dims) == len(specs["image"].dims)
    assert all(d % DIVISIBLE_BY[model] == 0 for d in list(warm.dims)[1:])
    assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_AUTO


def test_batching_choices() -> None:
    loc = read_model_config(COMMITTED / LOCALIZER_MODEL)
    det = read_model_config(COMMITTED / DETECTOR_MODEL)
    assert loc.max_batch_size == 1 and not loc.HasField("dynamic_batching")
    assert det.max_batch_size == 8 and det.HasField("dynamic_batching")


def _check_onnx_against_config(repo: Path, model: str) -> None:
    cfg = read_model_config(repo / model)
    graph = onnx.load(str(onnx_model_path(repo, model))).graph
    for declared, actual in ((input_specs(cfg), graph.input), (output_specs(cfg), graph.output)):
        assert [s.name for s in declared] == [v.name for v in actual]
        for spec, value in zip(declared, actual, strict=True):
            dims = value.type.tensor_type.shape.dim
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            assert len(dims) == spec.rank
            for want, dim in zip(spec.full_shape, dims, strict=True):
                if want >= 0:
                    assert dim.HasField("dim_value") and dim.dim_value == want
                else:
                    assert dim.HasField("dim_param"), f"{spec.name}: variable dim exported as fixed"


@pytest.mark.parametrize("model", MODELS)
def test_exported_onnx_matches_config(random_repository, model: str) -> None:
    _check_onnx_against_config(random_repository.path, model)


@pytest.mark.parametrize("model", MODELS)
def test_committed_onnx_matches_config(model: str) -> None:
    path = onnx_model_path(COMMITTED, model)
    if not path.is_file():
        pytest.skip(f"{path} not exported yet")
    _check_onnx_against_config(COMMITTED, model)
    meta = load_model_config(COMMITTED, model)
    assert meta["provenance"]["onnx_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_size < 20 * 2**20, "committed ONNX files must stay small"


@pytest.mark.parametrize("model", MODELS)
def test_python_backend_twin_keeps_tensors(model: str) -> None:
    make_python_repo = _load_script("make_python_repo")
    onnx_cfg = read_model_config(COMMITTED / model)
    twin = make_python_repo.python_backend_config(onnx_cfg, warmup=False)
    text = make_python_repo.format_model_config(twin)
    back = parse_model_config(text)
    assert back.backend == "python" and not back.platform
    assert back.name == onnx_cfg.name and back.max_batch_size == onnx_cfg.max_batch_size
    assert list(back.input) == list(onnx_cfg.input) and list(back.output) == list(onnx_cfg.output)
    assert back.HasField("dynamic_batching") == onnx_cfg.HasField("dynamic_batching")
    assert len(back.model_warmup) == 0
    assert back.instance_group[0].kind == back.instance_group[0].KIND_CPU


def test_python_repository_layout(random_repository, tmp_path: Path) -> None:
    make_python_repo = _load_script("make_python_repo")
    names = make_python_repo.make_python_repository(random_repository.path, tmp_path, ["/opt/site"])
    assert names == sorted(MODELS)
    for model in MODELS:
        model_py = (tmp_path / model / "1" / "model.py").read_text()
        assert "EXTRA_SITE_PACKAGES: list[str] = ['/opt/site']" in model_py
        assert (tmp_path / model / "1" / "model.onnx").read_bytes() == onnx_model_path(random_repository.path, model).read_bytes()
        assert json.loads((tmp_path / model / "spinevcf.json").read_text())["model"] == model
