"""Build TensorRT plans from the ONNX model repository and a ``tensorrt_plan`` repository for Triton.

Plans are tied to the GPU model and the TensorRT version: build them ON THE
TARGET (e.g. inside ``nvcr.io/nvidia/tritonserver:<ver>-py3``, which ships
``/usr/src/tensorrt/bin/trtexec``) and never commit them (``*.plan`` is git-ignored).

For each model, :func:`make_profile` derives one optimization profile
(min/opt/max shape of every input) from the model's ``config.pbtxt``:
the batch axis spans ``1..max_batch_size``, fixed dims are copied, and the
variable spatial dims use :data:`DEFAULT_SPATIAL_RANGES` (opt = the config's
warm-up shape). The output repository gets ``<model>/config.pbtxt`` (platform
``tensorrt_plan``, the same tensor names, dims, batching and warm-up),
``<model>/1/model.plan`` and a copy of ``<model>/spinevcf.json``.

The engine is built with the ``tensorrt`` Python API when it is importable,
else with ``trtexec``; with neither, :class:`~spinevcf.errors.TensorRTUnavailableError`
is raised before anything is written (``--dry-run`` writes the configs and
prints the trtexec commands without TensorRT).

CLI::

    python -m export.build_trt --repository model_repository --out build/model_repository_trt [--dry-run]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from export.check_parity import DEFAULT_DIVISIBLE_BY
from spinevcf.errors import ModelError, SpineVCFError, TensorRTUnavailableError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.inference.onnx_backend import (
    MODEL_CONFIG_FILENAME,
    MODEL_VERSION,
    load_model_config,
    onnx_model_path,
)
from spinevcf.inference.triton_config import (
    CONFIG_FILENAME,
    ModelConfig,
    format_model_config,
    input_specs,
    read_model_config,
)
from spinevcf.stability import SHIFTS_PX

__all__ = [
    "SpatialRange",
    "OptimizationProfile",
    "DEFAULT_SPATIAL_RANGES",
    "DEFAULT_OPT_BATCH",
    "DEFAULT_WORKSPACE_MIB",
    "PLAN_FILENAME",
    "make_profile",
    "trtexec_command",
    "tensorrt_config",
    "find_tensorrt",
    "build_plan",
    "build_repository",
    "TensorRTRunner",
    "main",
]

log = logging.getLogger(__name__)

#: Plan file name in the version folder (Triton's default for tensorrt_plan).
PLAN_FILENAME = "model.plan"
#: Builder workspace limit (MiB).
DEFAULT_WORKSPACE_MIB = 4096
#: Where ``trtexec`` lives in NVIDIA's TensorRT / Triton containers when it is not on PATH.
CONTAINER_TRTEXEC = Path("/usr/src/tensorrt/bin/trtexec")

Method = Literal["python", "trtexec"]


@dataclass(frozen=True)
class SpatialRange:
    """min/opt/max of the variable spatial dims of one input (in config order).

    ``opt`` ``None`` means: take the config's warm-up shape.
    """

    min: tuple[int, ...]
    max: tuple[int, ...]
    opt: tuple[int, ...] | None = None


#: Spatial ranges the plans accept. Localizer (4 mm grid): 128..1024 mm long,
#: 128..768 mm across. Detector (1 mm CPR): 64..1024 mm long, 64..256 mm wide.
DEFAULT_SPATIAL_RANGES: dict[str, dict[str, SpatialRange]] = {
    LOCALIZER_MODEL: {"image": SpatialRange(min=(32, 32, 32), max=(256, 192, 192))},
    DETECTOR_MODEL: {"image": SpatialRange(min=(64, 64), max=(1024, 256))},
}

#: Batch size each plan is tuned for: one volume for the localizer; for the detector the CPR
#: and its shifted copies of the stability check (spinevcf.stability), which the application
#: sends as one batch.
DEFAULT_OPT_BATCH: dict[str, int] = {LOCALIZER_MODEL: 1, DETECTOR_MODEL: 1 + len(SHIFTS_PX)}


@dataclass(frozen=True)
class OptimizationProfile:
    """One TensorRT optimization profile: per input, full (batched) min/opt/max shapes."""

    model: str
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

    def trtexec_shapes(self, which: Literal["min", "opt", "max"]) -> str:
        """``name:AxBxC,...`` as trtexec's ``--minShapes/--optShapes/--maxShapes`` expect."""
        k = ("min", "opt", "max").index(which)
        return ",".join(f"{name}:{'x'.join(str(d) for d in s[k])}" for name, s in self.shapes.items())


def _warmup_dims(tcfg: ModelConfig, input_name: str) -> tuple[int, ...] | None:
    for w in tcfg.model_warmup:
        if input_name in w.inputs:
            return tuple(int(d) for d in w.inputs[input_name].dims)
    return None


def make_profile(
    tcfg: ModelConfig,
    *,
    divisible_by: int,
    spatial_ranges: Mapping[str, SpatialRange] | None = None,
    opt_batch: int = 1,
) -> OptimizationProfile:
    """The optimization profile of a model from its ``config.pbtxt``.

    Args:
        tcfg: the model's (ONNX) Triton config.
        divisible_by: every spatial size must be a multiple of it.
        spatial_ranges: per input; default :data:`DEFAULT_SPATIAL_RANGES` of the model.
        opt_batch: batch size TensorRT tunes for (:data:`DEFAULT_OPT_BATCH` in :func:`build_repository`).

    Raises:
        ValueError: a range is inconsistent (min > opt > max, not a multiple of
            ``divisible_by``, wrong number of dims, opt_batch > max_batch_size) or missing.
    """
    ranges = dict(spatial_ranges if spatial_ranges is not None else DEFAULT_SPATIAL_RANGES.get(tcfg.name, {}))
    batched = tcfg.max_batch_size > 0
    if batched and not 1 <= opt_batch <= tcfg.max_batch_size:
        raise ValueError(f"{tcfg.name}: opt_batch {opt_batch} is outside 1..max_batch_size={tcfg.max_batch_size}")
    shapes = {}
    for spec in input_specs(tcfg):
        variable = [i for i, d in enumerate(spec.dims) if d < 0]
        if spec.name not in ranges:
            if variable:
                raise ValueError(f"{tcfg.name}: no spatial range for input {spec.name!r} with variable dims")
            rng = SpatialRange(min=(), max=())
        else:
            rng = ranges[spec.name]
        opt = rng.opt
        if opt is None:
            warm = _warmup_dims(tcfg, spec.name)
            opt = tuple(warm[i] for i in variable) if warm is not None else rng.min
        for label, dims in (("min", rng.min), ("opt", opt), ("max", rng.max)):
            if len(dims) != len(variable):
                raise ValueError(
                    f"{tcfg.name}: input {spec.name!r} has {len(variable)} variable dims, {label} gives {len(dims)}"
                )
            bad = [d for d in dims if d <= 0 or d % divisible_by]
            if bad:
                raise ValueError(
                    f"{tcfg.name}: input {spec.name!r} {label} sizes {list(dims)} must be positive multiples of {divisible_by}"
                )
        for a, b, c in zip(rng.min, opt, rng.max, strict=True):
            if not a <= b <= c:
                raise ValueError(
                    f"{tcfg.name}: input {spec.name!r} needs min <= opt <= max, got {list(rng.min)}, {list(opt)}, {list(rng.max)}"
                )

        def full(spatial: Sequence[int], batch: int, dims: tuple[int, ...] = spec.dims) -> tuple[int, ...]:
            it = iter(spatial)
            body = tuple(next(it) if d < 0 else d for d in dims)
            return ((batch,) if batched else ()) + body

        max_batch = tcfg.max_batch_size if batched else 1
        shapes[spec.name] = (full(rng.min, 1), full(opt, opt_batch), full(rng.max, max_batch))
    return OptimizationProfile(model=tcfg.name, shapes=shapes)


def trtexec_command(
    onnx_path: Path,
    plan_path: Path,
    profile: OptimizationProfile,
    *,
    fp16: bool = True,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    trtexec: str = "trtexec",
) -> list[str]:
    """The ``trtexec`` command line that builds ``plan_path`` from ``onnx_path`` (build only, no timing run)."""
    cmd = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={plan_path}",
        f"--minShapes={profile.trtexec_shapes('min')}",
        f"--optShapes={profile.trtexec_shapes('opt')}",
        f"--maxShapes={profile.trtexec_shapes('max')}",
        f"--memPoolSize=workspace:{workspace_mib}M",
        "--skipInference",
    ]
    if fp16:
        cmd.append("--fp16")
    return cmd


def tensorrt_config(tcfg: ModelConfig, profile: OptimizationProfile) -> ModelConfig:
    """The ``tensorrt_plan`` twin of an ONNX config: same tensors, batching and warm-up, GPU instances.

    Raises:
        ValueError: a warm-up shape lies outside the profile.
    """
    out = ModelConfig()
    out.CopyFrom(tcfg)
    out.ClearField("platform")
    out.ClearField("backend")
    out.platform = "tensorrt_plan"
    out.default_model_filename = PLAN_FILENAME
    del out.instance_group[:]
    group = out.instance_group.add()
    group.count = 1
    group.kind = group.KIND_GPU
    for w in out.model_warmup:
        for name, inp in w.inputs.items():
            if name not in profile.shapes:
                raise ValueError(f"{tcfg.name}: warm-up {w.name!r} feeds unknown input {name!r}")
            lo, _, hi = profile.shapes[name]
            body = tuple(int(d) for d in inp.dims)
            off = len(lo) - len(body)
            if not all(lo[off + i] <= d <= hi[off + i] for i, d in enumerate(body)):
                raise ValueError(
                    f"{tcfg.name}: warm-up {w.name!r} shape {list(body)} is outside the profile {list(lo)}..{list(hi)}"
                )
    return out


def find_tensorrt(trtexec: str | None = None) -> tuple[Method, str]:
    """Which TensorRT builder is available here.

    Returns:
        ``("python", version)`` when ``import tensorrt`` works, else ``("trtexec", path)``.

    Raises:
        TensorRTUnavailableError: neither is available.
    """
    if importlib.util.find_spec("tensorrt") is not None:
        trt = importlib.import_module("tensorrt")
        return "python", str(getattr(trt, "__version__", "unknown"))
    candidates = [trtexec] if trtexec else ["trtexec", str(CONTAINER_TRTEXEC)]
    for c in candidates:
        found = shutil.which(c)
        if found:
            return "trtexec", found
    raise TensorRTUnavailableError(
        "TensorRT is not available here: the `tensorrt` Python package is not importable and "
        f"no `trtexec` was found ({', '.join(candidates)}). Build plans on the target GPU machine, e.g. inside "
        "nvcr.io/nvidia/tritonserver:<ver>-py3 (trtexec at /usr/src/tensorrt/bin/trtexec); "
        "see docs/triton.md. Use --dry-run to write the configs and print the commands."
    )


def _build_with_python(onnx_path: Path, plan_path: Path, profile: OptimizationProfile, fp16: bool, workspace_mib: int) -> None:
    trt = importlib.import_module("tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(str(trt.__version__).split(".")[0])
    # TensorRT >= 10 networks are always explicit-batch; older versions need the flag.
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{profile.model}: TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if fp16:
        if not builder.platform_has_fast_fp16:
            log.warning("%s: this GPU has no fast FP16; building FP16 anyway", profile.model)
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.shapes.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{profile.model}: TensorRT failed to build an engine from {onnx_path}")
    plan_path.write_bytes(bytes(serialized))


def build_plan(
    onnx_path: Path,
    plan_path: Path,
    profile: OptimizationProfile,
    *,
    fp16: bool = True,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    trtexec: str | None = None,
) -> Method:
    """Build one plan with whichever TensorRT builder is available; return the method used.

    Raises:
        TensorRTUnavailableError: no TensorRT here.
        ModelError: the build failed.
    """
    method, where = find_tensorrt(trtexec)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    if method == "python":
        log.info("%s: building %s with tensorrt %s", profile.model, plan_path, where)
        _build_with_python(onnx_path, plan_path, profile, fp16, workspace_mib)
    else:
        cmd = trtexec_command(onnx_path, plan_path, profile, fp16=fp16, workspace_mib=workspace_mib, trtexec=where)
        log.info("%s: %s", profile.model, shlex.join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not plan_path.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise ModelError(f"{profile.model}: trtexec failed with status {proc.returncode}:\n{tail}")
    return method


def build_repository(
    onnx_repository: Path,
    out_repository: Path,
    models: Sequence[str] | None = None,
    *,
    fp16: bool = True,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    dry_run: bool = False,
    trtexec: str | None = None,
) -> list[tuple[str, list[str]]]:
    """Write the ``tensorrt_plan`` repository and (unless ``dry_run``) build its plans.

    Returns:
        Per model: (name, the equivalent trtexec command line).

    Raises:
        TensorRTUnavailableError: no TensorRT and not ``dry_run`` (checked before writing anything).
        ModelError: a model lacks its ONNX file or config.
    """
    if not dry_run:
        find_tensorrt(trtexec)
    names = list(models) if models else sorted(p.parent.name for p in Path(onnx_repository).glob(f"*/{CONFIG_FILENAME}"))
    if not names:
        raise ModelError(f"no models (*/{CONFIG_FILENAME}) in {onnx_repository}")
    done = []
    for name in names:
        src_dir = Path(onnx_repository) / name
        tcfg = read_model_config(src_dir)
        onnx_path = onnx_model_path(onnx_repository, name)
        if not onnx_path.is_file() and not dry_run:
            raise ModelError(f"model {name}: ONNX file not found at {onnx_path} (run export.export_onnx first)")
        divisible_by = DEFAULT_DIVISIBLE_BY.get(name, 32)
        if (src_dir / MODEL_CONFIG_FILENAME).is_file():
            divisible_by = int(load_model_config(onnx_repository, name).get("divisible_by", divisible_by))
        profile = make_profile(tcfg, divisible_by=divisible_by, opt_batch=DEFAULT_OPT_BATCH.get(name, 1))
        dst_dir = Path(out_repository) / name
        (dst_dir / MODEL_VERSION).mkdir(parents=True, exist_ok=True)
        header = (
            f"{name}: TensorRT plan generated by export/build_trt.py from {CONFIG_FILENAME} of the ONNX repository.\n"
            "Build the plan on the target GPU; do not commit it. Profile (min/opt/max):\n"
            + "\n".join(f"  {k}: {list(lo)} / {list(op)} / {list(hi)}" for k, (lo, op, hi) in profile.shapes.items())
        )
        (dst_dir / CONFIG_FILENAME).write_text(format_model_config(tensorrt_config(tcfg, profile), header=header))
        if (src_dir / MODEL_CONFIG_FILENAME).is_file():
            shutil.copyfile(src_dir / MODEL_CONFIG_FILENAME, dst_dir / MODEL_CONFIG_FILENAME)
        plan_path = dst_dir / MODEL_VERSION / PLAN_FILENAME
        cmd = trtexec_command(onnx_path, plan_path, profile, fp16=fp16, workspace_mib=workspace_mib)
        if not dry_run:
            build_plan(onnx_path, plan_path, profile, fp16=fp16, workspace_mib=workspace_mib, trtexec=trtexec)
        done.append((name, cmd))
    return done


class TensorRTRunner:
    """Runs the plans of a ``tensorrt_plan`` repository (for parity checks; needs tensorrt and CUDA torch).

    Raises:
        TensorRTUnavailableError: tensorrt or a CUDA device is missing.
    """

    def __init__(self, trt_repository: Path) -> None:
        if importlib.util.find_spec("tensorrt") is None:
            raise TensorRTUnavailableError("the `tensorrt` Python package is not importable")
        import torch

        if not torch.cuda.is_available():
            raise TensorRTUnavailableError("no CUDA device for TensorRT")
        self._trt = importlib.import_module("tensorrt")
        self._torch = torch
        self.repository = Path(trt_repository)
        self._engines: dict[str, Any] = {}
        self._logger = self._trt.Logger(self._trt.Logger.WARNING)

    def _engine(self, model: str) -> Any:
        if model not in self._engines:
            plan = self.repository / model / MODEL_VERSION / PLAN_FILENAME
            if not plan.is_file():
                raise ModelError(f"model {model}: TensorRT plan not found at {plan}")
            engine = self._trt.Runtime(self._logger).deserialize_cuda_engine(plan.read_bytes())
            if engine is None:
                raise ModelError(f"model {model}: cannot deserialize {plan} (built for another GPU or TensorRT?)")
            self._engines[model] = engine
        return self._engines[model]

    def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs``; return all outputs as float32 numpy arrays."""
        trt, torch = self._trt, self._torch
        engine = self._engine(model)
        context = engine.create_execution_context()
        keep = []
        for name, arr in inputs.items():
            t = torch.from_numpy(np.ascontiguousarray(arr)).cuda()
            keep.append(t)
            context.set_input_shape(name, tuple(arr.shape))
            context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                t = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device="cuda")
                context.set_tensor_address(name, t.data_ptr())
                outputs[name] = t
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise ModelError(f"model {model}: TensorRT execution failed")
        stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outputs.items()}


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``python -m export.build_trt``."""
    p = argparse.ArgumentParser(prog="python -m export.build_trt", description=__doc__.split("\n")[0])
    p.add_argument("--repository", type=Path, default=Path("model_repository"), help="ONNX repository")
    p.add_argument("--out", type=Path, default=Path("build/model_repository_trt"), help="TensorRT repository to write")
    p.add_argument("--model", action="append", help="model to build (default: all)")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="build FP32 plans")
    p.add_argument("--workspace-mib", type=int, default=DEFAULT_WORKSPACE_MIB)
    p.add_argument("--trtexec", help="path of trtexec (default: PATH, then the container location)")
    p.add_argument("--dry-run", action="store_true", help="write the configs and print the commands only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        done = build_repository(
            args.repository,
            args.out,
            args.model,
            fp16=args.fp16,
            workspace_mib=args.workspace_mib,
            dry_run=args.dry_run,
            trtexec=args.trtexec,
        )
    except SpineVCFError as exc:
        print(f"build_trt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:
        print(f"build_trt: error: {exc}", file=sys.stderr)
        return 2
    for name, cmd in done:
        print(f"{name}: {'(dry run) ' if args.dry_run else ''}{shlex.join(cmd)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
