"""Numerical parity of a model across runtimes: PyTorch, ONNX Runtime, Triton, TensorRT.

Each model of the repository is run on seeded random inputs of two different
spatial sizes by every runtime available; every output is compared with the
reference (PyTorch when a checkpoint is given, else ONNX Runtime) and a table of
max abs/rel errors with PASS/FAIL against the tolerances below is printed.

Tolerances (``np.allclose`` rule: ``|x - ref| <= atol + rtol * |ref|``):

* ONNX Runtime and Triton (float32): :data:`FP32_TOLERANCES`, 1e-4 on
  probabilities, 1e-3 on unbounded regression outputs and logits.
* Triton vs ONNX Runtime (the same ONNX graph): :data:`SAME_GRAPH_TOLERANCE` (1e-5).
* TensorRT plans built with FP16: :data:`FP16_TOLERANCES`.

CLI::

    python -m export.check_parity --repository model_repository \\
        [--checkpoint runs/localizer/best.pt --checkpoint runs/detector/best.pt] \\
        [--triton-url 127.0.0.1:8001 --protocol grpc] [--trt-repository build/model_repository_trt]

Exits 0 when every comparison passes, 1 when one fails, 2 on a usage/model error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinevcf.errors import SpineVCFError, TensorRTUnavailableError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.inference.triton_config import TensorSpec

__all__ = [
    "Tolerance",
    "FP32_TOLERANCES",
    "FP16_TOLERANCES",
    "SAME_GRAPH_TOLERANCE",
    "DEFAULT_DIVISIBLE_BY",
    "SPATIAL_MULTIPLES",
    "OutputComparison",
    "compare_outputs",
    "parity_inputs",
    "format_report",
    "main",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    """``np.allclose``-style tolerance: pass when ``|x - ref| <= atol + rtol * |ref|``."""

    rtol: float
    atol: float


_PROB = Tolerance(rtol=1e-4, atol=1e-4)
_RAW = Tolerance(rtol=1e-3, atol=1e-3)

#: Float32 runtimes vs PyTorch, per output name (probabilities are in [0, 1];
#: offsets, keypoint offsets and logits are unbounded and get a looser bound).
FP32_TOLERANCES: dict[str, Tolerance] = {
    "column_prob": _PROB,
    "heatmap": _PROB,
    "offset": _RAW,
    "keypoints": _RAW,
    "level_logits": _RAW,
    "kp_heatmap": _PROB,
    "kp_offset": _RAW,
}
#: TensorRT FP16 plans vs the reference.
FP16_TOLERANCES: dict[str, Tolerance] = {
    "column_prob": Tolerance(rtol=1e-2, atol=1e-2),
    "heatmap": Tolerance(rtol=1e-2, atol=1e-2),
    "offset": Tolerance(rtol=5e-2, atol=5e-2),
    "keypoints": Tolerance(rtol=5e-2, atol=5e-2),
    "level_logits": Tolerance(rtol=5e-2, atol=5e-2),
    "kp_heatmap": Tolerance(rtol=1e-2, atol=1e-2),
    "kp_offset": Tolerance(rtol=5e-2, atol=5e-2),
}
#: Two runtimes executing the same ONNX graph in float32 (Triton's python backend vs ONNX Runtime).
SAME_GRAPH_TOLERANCE = Tolerance(rtol=1e-5, atol=1e-5)
#: Used for an output name missing from a tolerance table.
_DEFAULT_FP32 = _RAW

#: Spatial sizes must be multiples of this (``divisible_by`` in spinevcf.json overrides it).
DEFAULT_DIVISIBLE_BY: dict[str, int] = {LOCALIZER_MODEL: 16, DETECTOR_MODEL: 32}
#: Two spatial sizes per rank, in units of ``divisible_by`` (anisotropic on purpose).
SPATIAL_MULTIPLES: dict[int, tuple[tuple[int, ...], ...]] = {
    3: ((4, 6, 5), (6, 4, 4)),
    2: ((4, 2), (3, 5)),
}
#: Batch sizes of the two samples (capped by max_batch_size).
SAMPLE_BATCHES = (2, 1)


@dataclass(frozen=True)
class OutputComparison:
    """One output of one sample compared with the reference."""

    runtime: str
    model: str
    sample: int
    output: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    tolerance: Tolerance
    passed: bool


def compare_outputs(
    runtime: str,
    model: str,
    sample: int,
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tolerances: Mapping[str, Tolerance] | Tolerance,
) -> list[OutputComparison]:
    """Compare every reference output with ``candidate``.

    A missing output, a shape mismatch or a non-finite value fails. ``max_rel``
    is taken over elements whose reference magnitude exceeds ``atol`` (relative
    errors of near-zero values say nothing).
    """
    rows = []
    for name, ref in reference.items():
        tol = tolerances if isinstance(tolerances, Tolerance) else tolerances.get(name, _DEFAULT_FP32)
        got = candidate.get(name)
        if got is None or got.shape != ref.shape:
            shape = tuple(got.shape) if got is not None else ()
            rows.append(OutputComparison(runtime, model, sample, name, shape, np.inf, np.inf, tol, False))
            continue
        ref64 = ref.astype(np.float64)
        diff = np.abs(got.astype(np.float64) - ref64)
        finite = bool(np.isfinite(diff).all())
        max_abs = float(diff.max()) if diff.size else 0.0
        big = np.abs(ref64) > tol.atol
        max_rel = float((diff[big] / np.abs(ref64[big])).max()) if big.any() else 0.0
        passed = finite and bool(np.all(diff <= tol.atol + tol.rtol * np.abs(ref64)))
        rows.append(OutputComparison(runtime, model, sample, name, tuple(ref.shape), max_abs, max_rel, tol, passed))
    return rows


def parity_inputs(
    inputs: Sequence[TensorSpec],
    *,
    divisible_by: int,
    max_batch_size: int,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Two seeded random input sets of different spatial sizes.

    Args:
        inputs: the model's inputs (from its config.pbtxt).
        divisible_by: spatial sizes are multiples of this.
        max_batch_size: caps the batch sizes of :data:`SAMPLE_BATCHES`.
        seed: random seed.

    Returns:
        Two ``{input name: float32 array}`` dicts, normal(0, 1) values.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for k, batch in enumerate(SAMPLE_BATCHES):
        sample = {}
        for spec in inputs:
            variable = [i for i, d in enumerate(spec.dims) if d < 0]
            multiples = SPATIAL_MULTIPLES.get(len(variable))
            if multiples is None:
                raise ValueError(f"no parity sizes for {len(variable)} variable dims of input {spec.name!r}")
            dims = list(spec.dims)
            for i, m in zip(variable, multiples[k], strict=True):
                dims[i] = m * divisible_by
            shape = ([max(1, min(batch, max_batch_size))] if spec.batched else []) + dims
            sample[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        samples.append(sample)
    return samples


def format_report(rows: Sequence[OutputComparison]) -> str:
    """A fixed-width table: runtime, model, sample, output, shape, errors, tolerance, verdict."""
    head = f"{'runtime':<14} {'model':<22} {'s':>1} {'output':<13} {'shape':<22} {'max_abs':>10} {'max_rel':>10} {'atol/rtol':>15}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        tol = f"{r.tolerance.atol:.0e}/{r.tolerance.rtol:.0e}"
        lines.append(
            f"{r.runtime:<14} {r.model:<22} {r.sample:>1} {r.output:<13} {str(list(r.shape)):<22} "
            f"{r.max_abs:>10.2e} {r.max_rel:>10.2e} {tol:>15}  {'PASS' if r.passed else 'FAIL'}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI


def _torch_runner(checkpoint: Path) -> tuple[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]]:
    import torch

    from spinevcf.networks import load_checkpoint

    net, ckpt = load_checkpoint(checkpoint)

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = net(*[torch.from_numpy(inputs[n]) for n in net.input_names])
        out = out if isinstance(out, tuple) else (out,)
        return {n: t.numpy() for n, t in zip(net.output_names, out, strict=True)}

    return str(ckpt["model"]), run


def _run_parity(args: argparse.Namespace) -> list[OutputComparison]:
    from spinevcf.inference.onnx_backend import OnnxRuntimeBackend, load_model_config
    from spinevcf.inference.triton_config import input_specs, read_model_config

    repo = Path(args.repository)
    torch_runners = dict(_torch_runner(Path(c)) for c in args.checkpoint)
    models = args.model or sorted(p.parent.name for p in repo.glob("*/config.pbtxt"))
    ort_backend = OnnxRuntimeBackend(repo)
    triton = None
    if args.triton_url:
        from spinevcf.inference.triton_backend import TritonBackend

        triton = TritonBackend(args.triton_url, protocol=args.protocol, models=models)
    trt = None
    if args.trt_repository:
        from export.build_trt import TensorRTRunner

        try:
            trt = TensorRTRunner(Path(args.trt_repository))
        except TensorRTUnavailableError as exc:
            print(f"TensorRT: not available here ({exc})")
    else:
        print("TensorRT: not checked (no --trt-repository)")

    rows: list[OutputComparison] = []
    for model in models:
        tcfg = read_model_config(repo / model)
        try:
            divisible_by = int(load_model_config(repo, model).get("divisible_by", DEFAULT_DIVISIBLE_BY.get(model, 32)))
        except SpineVCFError as exc:
            log.warning("%s; using the default divisible_by", exc)
            divisible_by = DEFAULT_DIVISIBLE_BY.get(model, 32)
        samples = parity_inputs(
            input_specs(tcfg), divisible_by=divisible_by, max_batch_size=max(tcfg.max_batch_size, 1), seed=args.seed
        )
        for k, sample in enumerate(samples):
            ort_out = ort_backend.infer(model, sample)
            if model in torch_runners:
                ref = torch_runners[model](sample)
                rows += compare_outputs("onnxruntime", model, k, ref, ort_out, FP32_TOLERANCES)
            else:
                ref = ort_out
            if triton is not None:
                tri_out = triton.infer(model, sample)
                rows += compare_outputs("triton", model, k, ort_out, tri_out, SAME_GRAPH_TOLERANCE)
            if trt is not None:
                rows += compare_outputs("tensorrt-fp16", model, k, ref, trt.infer(model, sample), FP16_TOLERANCES)
    return rows


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``python -m export.check_parity``."""
    p = argparse.ArgumentParser(prog="python -m export.check_parity", description=__doc__.split("\n")[0])
    p.add_argument("--repository", default="model_repository", help="ONNX model repository")
    p.add_argument("--checkpoint", action="append", default=[], help="PyTorch checkpoint (reference); repeatable")
    p.add_argument("--model", action="append", help="model to check (default: every model of the repository)")
    p.add_argument("--triton-url", help="HOST:PORT of a Triton server serving the same models")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--trt-repository", help="TensorRT repository written by export.build_trt")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 (all PASS), 1 (a FAIL) or the error's exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.checkpoint:
        print("reference: ONNX Runtime (no --checkpoint given, PyTorch not compared)")
    try:
        rows = _run_parity(args)
    except SpineVCFError as exc:
        print(f"check_parity: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not rows:
        print("nothing compared: give --checkpoint, --triton-url or --trt-repository")
        return 1
    print(format_report(rows))
    failed = [r for r in rows if not r.passed]
    print(f"parity {'FAIL' if failed else 'PASS'}: {len(rows)} comparisons, {len(failed)} beyond tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
