"""export.build_trt: profiles, trtexec command lines, tensorrt_plan configs, and the TensorRT-absent error."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import types
from pathlib import Path

import pytest

import export.build_trt as bt
from spinevcf.errors import ModelError, TensorRTUnavailableError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.inference.triton_config import parse_model_config, read_model_config
from spinevcf.stability import SHIFTS_PX

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make TensorRT absent even on a machine that has it."""
    real = importlib.util.find_spec
    monkeypatch.setattr(bt.importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else real(name, *a))
    monkeypatch.setattr(bt.shutil, "which", lambda cmd: None)


def test_profiles_follow_the_configs() -> None:
    loc = bt.make_profile(read_model_config(COMMITTED / LOCALIZER_MODEL), divisible_by=16)
    assert loc.shapes == {"image": ((1, 1, 32, 32, 32), (1, 1, 144, 128, 128), (1, 1, 256, 192, 192))}
    det = bt.make_profile(read_model_config(COMMITTED / DETECTOR_MODEL), divisible_by=32)
    assert det.shapes == {"image": ((1, 2, 64, 64), (1, 2, 640, 128), (8, 2, 1024, 256))}
    assert det.trtexec_shapes("max") == "image:8x2x1024x256"


def test_profile_validation() -> None:
    det = read_model_config(COMMITTED / DETECTOR_MODEL)
    with pytest.raises(ValueError, match="multiples of 32"):
        bt.make_profile(det, divisible_by=32, spatial_ranges={"image": bt.SpatialRange(min=(48, 64), max=(256, 256))})
    with pytest.raises(ValueError, match="min <= opt <= max"):
        bt.make_profile(det, divisible_by=32, spatial_ranges={"image": bt.SpatialRange(min=(64, 64), max=(256, 96))})
    with pytest.raises(ValueError, match="2 variable dims, min gives 3"):
        bt.make_profile(det, divisible_by=32, spatial_ranges={"image": bt.SpatialRange(min=(64, 64, 64), max=(1024, 256))})
    with pytest.raises(ValueError, match="opt_batch 9"):
        bt.make_profile(det, divisible_by=32, opt_batch=9)
    with pytest.raises(ValueError, match="no spatial range for input 'image'"):
        bt.make_profile(det, divisible_by=32, spatial_ranges={})


def test_trtexec_command_line() -> None:
    prof = bt.make_profile(read_model_config(COMMITTED / DETECTOR_MODEL), divisible_by=32)
    cmd = bt.trtexec_command(Path("in.onnx"), Path("out.plan"), prof, workspace_mib=1024, trtexec="/x/trtexec")
    assert cmd == [
        "/x/trtexec",
        "--onnx=in.onnx",
        "--saveEngine=out.plan",
        "--minShapes=image:1x2x64x64",
        "--optShapes=image:1x2x640x128",
        "--maxShapes=image:8x2x1024x256",
        "--memPoolSize=workspace:1024M",
        "--skipInference",
        "--fp16",
    ]
    assert "--fp16" not in bt.trtexec_command(Path("a"), Path("b"), prof, fp16=False)


@pytest.mark.parametrize("model", [LOCALIZER_MODEL, DETECTOR_MODEL])
def test_tensorrt_config_round_trip(model: str) -> None:
    onnx_cfg = read_model_config(COMMITTED / model)
    prof = bt.make_profile(onnx_cfg, divisible_by=32 if model == DETECTOR_MODEL else 16)
    text = bt.format_model_config(bt.tensorrt_config(onnx_cfg, prof), header="generated")
    back = parse_model_config(text)
    assert text.startswith("# generated\n")
    assert back.platform == "tensorrt_plan" and back.default_model_filename == "model.plan"
    assert back.name == model and back.max_batch_size == onnx_cfg.max_batch_size
    assert list(back.input) == list(onnx_cfg.input) and list(back.output) == list(onnx_cfg.output)
    assert back.HasField("dynamic_batching") == onnx_cfg.HasField("dynamic_batching")
    assert list(back.model_warmup) == list(onnx_cfg.model_warmup)
    assert [g.kind for g in back.instance_group] == [back.instance_group[0].KIND_GPU]


def test_warmup_outside_profile_is_refused() -> None:
    det = read_model_config(COMMITTED / DETECTOR_MODEL)
    prof = bt.make_profile(det, divisible_by=32, spatial_ranges={"image": bt.SpatialRange(min=(64, 64), max=(512, 128), opt=(256, 128))})
    with pytest.raises(ValueError, match="outside the profile"):
        bt.tensorrt_config(det, prof)


def test_clear_error_without_tensorrt(no_tensorrt: None, tmp_path: Path) -> None:
    with pytest.raises(TensorRTUnavailableError, match=r"TensorRT is not available here: .*trtexec.*--dry-run"):
        bt.find_tensorrt()
    out = tmp_path / "trt"
    with pytest.raises(TensorRTUnavailableError):
        bt.build_repository(COMMITTED, out)
    assert not out.exists(), "nothing may be written when TensorRT is absent"
    assert bt.main(["--repository", str(COMMITTED), "--out", str(out)]) == TensorRTUnavailableError.exit_code


def test_dry_run_writes_configs(no_tensorrt: None, exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bt.main(["--repository", str(exported.path), "--out", str(tmp_path / "trt"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(dry run) trtexec --onnx=" in out
    for model in (LOCALIZER_MODEL, DETECTOR_MODEL):
        cfg = read_model_config(tmp_path / "trt" / model)
        assert cfg.platform == "tensorrt_plan"
        assert (tmp_path / "trt" / model / "spinevcf.json").is_file()
        assert not (tmp_path / "trt" / model / "1" / "model.plan").exists()


def test_build_with_trtexec(exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trtexec path runs the command line built above (a stand-in trtexec records it and writes the plan)."""
    monkeypatch.setattr(bt.importlib.util, "find_spec", lambda name, *a: None)
    fake = tmp_path / "bin" / "trtexec"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{tmp_path}/calls.txt"\n'
        'for a in "$@"; do case "$a" in --saveEngine=*) printf plan > "${a#--saveEngine=}";; esac; done\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    done = bt.build_repository(exported.path, tmp_path / "trt", [DETECTOR_MODEL], workspace_mib=512)
    assert (tmp_path / "trt" / DETECTOR_MODEL / "1" / "model.plan").read_text() == "plan"
    call = (tmp_path / "calls.txt").read_text().split()
    assert call == done[0][1][1:]
    # Tuned for the batch the application sends: the CPR and its shifted copies.
    opt = next(a for a in call if a.startswith("--optShapes="))
    assert opt.startswith(f"--optShapes=image:{1 + len(SHIFTS_PX)}x2x")


def test_build_with_failing_trtexec(exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bt.importlib.util, "find_spec", lambda name, *a: None)
    fake = tmp_path / "trtexec"
    fake.write_text("#!/bin/sh\necho 'Error: unsupported op' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(ModelError, match=r"(?s)trtexec failed with status 3.*unsupported op"):
        bt.build_repository(exported.path, tmp_path / "trt", [DETECTOR_MODEL], trtexec=str(fake))


def test_build_with_python_api(exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tensorrt Python API path, against a recording stand-in of the module."""
    calls: dict[str, object] = {"shapes": {}}

    class _Profile:
        def set_shape(self, name, lo, opt, hi):
            calls["shapes"][name] = (tuple(lo), tuple(opt), tuple(hi))

    class _Config:
        def set_memory_pool_limit(self, pool, size):
            calls["workspace"] = size

        def set_flag(self, flag):
            calls["flag"] = flag

        def add_optimization_profile(self, p):
            calls["profile_added"] = True

    class _Parser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            calls["onnx"] = path
            return True

    class _Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["flags"] = flags
            return object()

        def create_builder_config(self):
            return _Config()

        def create_optimization_profile(self):
            return _Profile()

        def build_serialized_network(self, network, config):
            return b"engine"

    fake = types.SimpleNamespace(
        __version__="10.9.0",
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        Builder=_Builder,
        OnnxParser=_Parser,
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="ws"),
        BuilderFlag=types.SimpleNamespace(FP16="fp16"),
    )
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(bt.importlib.util, "find_spec", lambda name, *a: object() if name == "tensorrt" else None)
    bt.build_repository(exported.path, tmp_path / "trt", [LOCALIZER_MODEL], workspace_mib=64)
    assert (tmp_path / "trt" / LOCALIZER_MODEL / "1" / "model.plan").read_bytes() == b"engine"
    assert calls["shapes"] == {"image": ((1, 1, 32, 32, 32), (1, 1, 144, 128, 128), (1, 1, 256, 192, 192))}
    assert calls["workspace"] == 64 << 20 and calls["flag"] == "fp16" and calls["flags"] == 0
