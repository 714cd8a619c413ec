"""Checkpoints of randomly initialised networks, to exercise export and serving without trained weights.

The files have the documented checkpoint format (:mod:`spinevcf.networks.factory`)
and placeholder ``config`` values; their provenance says ``"random_init": true``.
Batch-norm statistics and affine parameters are randomised too, so that parity
checks see non-trivial activations. Never ship such a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.networks import build_model

__all__ = ["PLACEHOLDER_CONFIGS", "write_random_checkpoint", "export_random_repository"]

#: Placeholder spinevcf.json values (the trained checkpoints carry the real ones).
PLACEHOLDER_CONFIGS: dict[str, dict[str, Any]] = {
    LOCALIZER_MODEL: {"spacing_mm": 4.0, "hu_window": [-1000.0, 2000.0], "hu_scale": 1000.0, "divisible_by": 16},
    DETECTOR_MODEL: {
        "pixel_mm": 1.0,
        "hu_window": [-1000.0, 2000.0],
        "hu_scale": 1000.0,
        "divisible_by": 32,
        "stride": 4,
        "keypoint_scale_px": 16.0,
    },
}


def _randomise_norms(net: nn.Module, gen: torch.Generator) -> None:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                if m.affine:
                    m.weight.copy_(0.75 + 0.5 * torch.rand(n, generator=gen))
                    m.bias.copy_(0.1 * torch.randn(n, generator=gen))


def write_random_checkpoint(
    model_name: str, path: str | Path, *, seed: int = 0, arch: dict[str, Any] | None = None
) -> Path:
    """Write a checkpoint of ``model_name`` with random weights to ``path``.

    Args:
        model_name: a model-repository name (``spine_localizer_3d``, ``vertebra_detector_2d``).
        path: output ``.pt`` file.
        seed: seed of the initialisation.
        arch: constructor keyword arguments (defaults of the network class when ``None``).

    Returns:
        ``path``.
    """
    torch.manual_seed(seed)
    arch = dict(arch or {})
    net = build_model(model_name, **arch).eval()
    _randomise_norms(net, torch.Generator().manual_seed(seed))
    ckpt = {
        "model": model_name,
        "arch": arch,
        "state_dict": net.state_dict(),
        "config": dict(PLACEHOLDER_CONFIGS.get(model_name, {})),
        "provenance": {"random_init": True, "seed": seed, "command": "export.random_checkpoint"},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    return out


def export_random_repository(
    out_repository: str | Path, checkpoint_dir: str | Path, *, seed: int = 0, exported_at: str = "1970-01-01T00:00:00+00:00"
) -> dict[str, Path]:
    """Write random checkpoints of both models and export them into ``out_repository`` (with parity checks).

    Returns:
        Per model name, the checkpoint it was exported from.
    """
    from export.export_onnx import export_checkpoint

    ckpts = {}
    for k, name in enumerate((LOCALIZER_MODEL, DETECTOR_MODEL)):
        ckpt = write_random_checkpoint(name, Path(checkpoint_dir) / f"{name}.pt", seed=seed + k)
        export_checkpoint(ckpt, out_repository, exported_at=exported_at)
        ckpts[name] = ckpt
    return ckpts
