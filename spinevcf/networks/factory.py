"""Rebuild a network from a spinevcf checkpoint.

A checkpoint is a ``torch.save``'d dict with keys ``model`` (the model-repository
name), ``arch`` (constructor keyword arguments), ``state_dict``, ``config`` (the
``spinevcf.json`` preprocessing/decoding parameters written beside the ONNX file)
and ``provenance`` (command, git commit, seed, training config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from spinevcf.errors import ModelError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.networks.detector import VertebraDetector2D
from spinevcf.networks.localizer import SpineLocalizer3D

__all__ = ["build_model", "load_checkpoint", "MODEL_CLASSES"]

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    LOCALIZER_MODEL: SpineLocalizer3D,
    DETECTOR_MODEL: VertebraDetector2D,
}


def build_model(name: str, **arch: Any) -> nn.Module:
    """Instantiate the network registered under ``name`` with ``arch`` keyword arguments."""
    if name not in MODEL_CLASSES:
        raise ModelError(f"unknown model {name!r}; expected one of {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[name](**arch)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint; return the network in eval mode and the checkpoint dict."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"checkpoint not found: {p}")
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    for key in ("model", "arch", "state_dict", "config"):
        if key not in ckpt:
            raise ModelError(f"checkpoint {p.name} lacks {key!r}")
    net = build_model(ckpt["model"], **ckpt["arch"])
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net, ckpt
