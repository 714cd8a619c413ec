"""Export a spinevcf checkpoint to the Triton/ONNX Runtime model repository.

Writes ``<out>/<model>/1/model.onnx`` (a single file, float32, dynamic batch and
spatial axes) and ``<out>/<model>/spinevcf.json`` (the checkpoint's ``config``
plus ``model``, ``schema_version`` and ``provenance``; see docs/triton.md), and
copies the canonical ``config.pbtxt`` from this repository's ``model_repository/``
when the output folder has none. With ``verify=True`` (default) the ONNX file
is checked against PyTorch with ONNX Runtime on random inputs of two spatial
sizes (tolerances: :data:`export.check_parity.FP32_TOLERANCES`); the files are
only put in place when parity holds.

CLI::

    python -m export.export_onnx runs/localizer/best.pt runs/detector/best.pt --out model_repository
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from export.check_parity import (
    DEFAULT_DIVISIBLE_BY,
    FP32_TOLERANCES,
    OutputComparison,
    compare_outputs,
    format_report,
    parity_inputs,
)
from spinevcf import __version__ as spinevcf_version
from spinevcf.errors import ModelError, ParityError, SpineVCFError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.inference.onnx_backend import (
    MODEL_CONFIG_FILENAME,
    MODEL_VERSION,
    ONNX_FILENAME,
    OnnxRuntimeBackend,
)
from spinevcf.inference.triton_config import CONFIG_FILENAME, input_specs, output_specs, read_model_config
from spinevcf.networks import load_checkpoint

__all__ = [
    "export_checkpoint",
    "ExportResult",
    "CANONICAL_REPOSITORY",
    "DEFAULT_OPSET",
    "SCHEMA_VERSION",
    "EXPECTED_CONFIG_KEYS",
    "main",
]

log = logging.getLogger(__name__)

#: This repository's model_repository/ (source of the canonical config.pbtxt files).
CANONICAL_REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
#: ONNX opset (onnxruntime and TensorRT 8.6+ support it).
DEFAULT_OPSET = 17
#: Version of the spinevcf.json layout written here.
SCHEMA_VERSION = 1
#: Keys the pipeline reads from spinevcf.json (docs/architecture.md); a missing one is warned about.
EXPECTED_CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    LOCALIZER_MODEL: ("spacing_mm", "hu_window", "hu_scale", "divisible_by"),
    DETECTOR_MODEL: ("hu_window", "hu_scale", "divisible_by", "keypoint_scale_px"),
}
#: Names of the variable spatial axes, by number of spatial dims.
_AXIS_NAMES = {3: ("depth", "height", "width"), 2: ("height", "width")}
_PARITY_SEED = 0


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote.

    Attributes:
        model: model-repository name.
        onnx_path: the ONNX file.
        config_path: the spinevcf.json file.
        onnx_sha256: hex digest of the ONNX file.
        parity: per-output comparisons (empty when not verified).
    """

    model: str
    onnx_path: Path
    config_path: Path
    onnx_sha256: str
    parity: tuple[OutputComparison, ...]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _timestamp(exported_at: str | None) -> str:
    """``exported_at`` as given, else SOURCE_DATE_EPOCH (reproducible builds), else now (UTC)."""
    if exported_at is not None:
        return exported_at
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.replace(microsecond=0).isoformat()


def _dynamic_axes(tcfg: Any, stride: int) -> dict[str, dict[int, str]]:
    """Dynamic axes for torch.onnx.export: the batch axis and every ``-1`` dim of the config."""
    axes: dict[str, dict[int, str]] = {}
    for kind, specs in (("input", input_specs(tcfg)), ("output", output_specs(tcfg))):
        for spec in specs:
            offset = 1 if spec.batched else 0
            variable = [i for i, d in enumerate(spec.dims) if d < 0]
            names = _AXIS_NAMES.get(len(variable), tuple(f"dim{i}" for i in variable))
            if kind == "output" and stride != 1:
                names = tuple(f"{n}_div{stride}" for n in names)
            entry = {0: "batch"} if spec.batched else {}
            entry.update({i + offset: n for i, n in zip(variable, names, strict=True)})
            axes[spec.name] = entry
    return axes


def _ensure_triton_config(model: str, model_dir: Path) -> Path:
    target = model_dir / CONFIG_FILENAME
    if not target.is_file():
        source = CANONICAL_REPOSITORY / model / CONFIG_FILENAME
        if not source.is_file():
            raise ModelError(f"model {model}: no {CONFIG_FILENAME} in {model_dir} nor in {CANONICAL_REPOSITORY}")
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def _check_names(model: str, net: torch.nn.Module, tcfg: Any) -> None:
    if tcfg.name and tcfg.name != model:
        raise ModelError(f"model {model}: {CONFIG_FILENAME} names model {tcfg.name!r}")
    for kind, declared, in_net in (
        ("inputs", [t.name for t in tcfg.input], list(getattr(net, "input_names", ()))),
        ("outputs", [t.name for t in tcfg.output], list(getattr(net, "output_names", ()))),
    ):
        if declared != in_net:
            raise ModelError(f"model {model}: network {kind} {in_net} differ from {CONFIG_FILENAME} {kind} {declared}")


def _torch_outputs(net: torch.nn.Module, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = net(*[torch.from_numpy(sample[n]) for n in net.input_names])
    out = out if isinstance(out, tuple) else (out,)
    return {n: t.numpy() for n, t in zip(net.output_names, out, strict=True)}


def export_checkpoint(
    checkpoint_path: str | Path,
    out_repository: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    exported_at: str | None = None,
) -> ExportResult:
    """Export one checkpoint into ``out_repository``.

    Args:
        checkpoint_path: a spinevcf checkpoint (:func:`spinevcf.networks.load_checkpoint`).
        out_repository: model repository to write into (created if needed).
        opset: ONNX opset.
        verify: check ONNX Runtime against PyTorch on two input sizes before
            putting the files in place.
        exported_at: ISO timestamp recorded in spinevcf.json (default: SOURCE_DATE_EPOCH or now).

    Returns:
        The paths, the ONNX sha256 and the parity table.

    Raises:
        ModelError: bad checkpoint, or its tensors differ from config.pbtxt.
        ParityError: ONNX Runtime outputs exceed the tolerances; nothing is written
            except config.pbtxt.
    """
    ckpt_path = Path(checkpoint_path)
    net, ckpt = load_checkpoint(ckpt_path)
    model = str(ckpt["model"])
    config = dict(ckpt["config"])
    for reserved in ("model", "schema_version", "provenance"):
        if reserved in config and not (reserved == "model" and config[reserved] == model):
            raise ModelError(f"checkpoint {ckpt_path.name}: config must not set {reserved!r} (written by the exporter)")
    missing = [k for k in EXPECTED_CONFIG_KEYS.get(model, ()) if k not in config]
    if missing:
        log.warning("checkpoint %s: config lacks %s (read by the pipeline)", ckpt_path.name, missing)

    model_dir = Path(out_repository) / model
    tcfg = read_model_config(_ensure_triton_config(model, model_dir))
    _check_names(model, net, tcfg)
    version_dir = model_dir / MODEL_VERSION
    version_dir.mkdir(parents=True, exist_ok=True)

    # Trace on the first parity sample's shape (a representative, non-square size).
    divisible_by = int(config.get("divisible_by", DEFAULT_DIVISIBLE_BY.get(model, 32)))
    samples = parity_inputs(
        input_specs(tcfg), divisible_by=divisible_by, max_batch_size=max(tcfg.max_batch_size, 1), seed=_PARITY_SEED
    )
    example = tuple(torch.from_numpy(samples[0][n]) for n in net.input_names)

    with tempfile.TemporaryDirectory(dir=version_dir, prefix=".export-") as tmp:
        tmp_onnx = Path(tmp) / ONNX_FILENAME
        with warnings.catch_warnings():
            # The TorchScript exporter warns that it is deprecated in favour of dynamo=True,
            # which would write external .onnx.data files (see shared/platform-notes.md).
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            torch.onnx.export(
                net,
                example,
                str(tmp_onnx),
                input_names=list(net.input_names),
                output_names=list(net.output_names),
                dynamic_axes=_dynamic_axes(tcfg, int(getattr(net, "stride", 1))),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        proto = onnx.load(str(tmp_onnx))
        onnx.checker.check_model(proto, full_check=True)
        onnx.helper.set_model_props(
            proto, {"spinevcf_model": model, "spinevcf_version": spinevcf_version, "torch_version": torch.__version__}
        )
        proto.producer_name = "spinevcf.export"
        onnx.save(proto, str(tmp_onnx))
        if any(p.name != ONNX_FILENAME for p in Path(tmp).iterdir()):
            raise ModelError(f"model {model}: the export wrote external data files; expected a single ONNX file")

        parity: list[OutputComparison] = []
        if verify:
            staged = Path(tmp) / "repo"
            (staged / model / MODEL_VERSION).mkdir(parents=True)
            shutil.copyfile(tmp_onnx, staged / model / MODEL_VERSION / ONNX_FILENAME)
            backend = OnnxRuntimeBackend(staged, providers=["CPUExecutionProvider"])
            try:
                for k, sample in enumerate(samples):
                    ref = _torch_outputs(net, sample)
                    parity += compare_outputs("onnxruntime", model, k, ref, backend.infer(model, sample), FP32_TOLERANCES)
            finally:
                backend.close()
            if not all(r.passed for r in parity):
                raise ParityError(
                    f"model {model}: ONNX Runtime differs from PyTorch beyond tolerance; nothing written\n"
                    + format_report(parity)
                )

        onnx_path = version_dir / ONNX_FILENAME
        digest = _sha256(tmp_onnx)
        os.replace(tmp_onnx, onnx_path)

    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        **{k: v for k, v in config.items() if k != "model"},
        "provenance": {
            "checkpoint": ckpt.get("provenance", {}),
            "checkpoint_file": ckpt_path.name,
            "checkpoint_sha256": _sha256(ckpt_path),
            "onnx_sha256": digest,
            "onnx_opset": opset,
            "exported_at": _timestamp(exported_at),
            "exporter": {"spinevcf": spinevcf_version, "torch": torch.__version__, "onnx": onnx.__version__},
            "parity": {
                f"{r.output}[{r.sample}]": {"max_abs": r.max_abs, "max_rel": r.max_rel, "passed": r.passed}
                for r in parity
            },
        },
    }
    config_path = model_dir / MODEL_CONFIG_FILENAME
    tmp_json = config_path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp_json, config_path)
    log.info("exported %s -> %s (sha256 %s)", ckpt_path.name, onnx_path, digest[:12])
    return ExportResult(model, onnx_path, config_path, digest, tuple(parity))


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``python -m export.export_onnx``."""
    p = argparse.ArgumentParser(prog="python -m export.export_onnx", description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT")
    p.add_argument("--out", type=Path, default=Path("model_repository"), help="model repository (default: %(default)s)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the PyTorch/ONNX Runtime parity check")
    p.add_argument("--exported-at", help="timestamp for spinevcf.json (default: SOURCE_DATE_EPOCH or now)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for ckpt in args.checkpoints:
        try:
            res = export_checkpoint(ckpt, args.out, opset=args.opset, verify=args.verify, exported_at=args.exported_at)
        except SpineVCFError as exc:
            print(f"export_onnx: error: {exc}", file=sys.stderr)
            return exc.exit_code
        size_kib = res.onnx_path.stat().st_size / 1024
        print(f"{res.model}: {res.onnx_path} ({size_kib:.0f} KiB, sha256 {res.onnx_sha256})")
        if res.parity:
            print(format_report(res.parity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
