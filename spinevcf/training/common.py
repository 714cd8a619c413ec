"""Shared training utilities: seeding, configs, checkpoints with provenance."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

__all__ = ["seed_everything", "load_config", "git_commit", "save_checkpoint", "prepare_data", "make_optimizer"]

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU) for reproducible training."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML training config."""
    with open(path) as fh:
        cfg = yaml.safe_load(fh)
    if not isinstance(cfg, dict):
        raise ValueError(f"config {path} must be a mapping")
    return cfg


def git_commit(repo: Path | None = None) -> str:
    """The current git commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def save_checkpoint(
    path: Path,
    *,
    model_name: str,
    arch: dict[str, Any],
    net: torch.nn.Module,
    config: dict[str, Any],
    train_config: dict[str, Any],
    config_path: str,
    metrics: dict[str, Any],
) -> None:
    """Save a checkpoint whose ``provenance`` says which command and commit made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "model": model_name,
        "arch": arch,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "config": config,
        "provenance": {
            "command": " ".join(["spinevcf", *sys.argv[1:]]) if sys.argv else "",
            "config_path": config_path,
            "train_config": train_config,
            "git_commit": git_commit(),
            "torch": torch.__version__,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "metrics": metrics,
        },
    }
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    log.info("saved checkpoint %s", path)


def prepare_data(kind: str, cfg: dict[str, Any], workers: int) -> tuple[Path, list[int | str], list[int | str]]:
    """Seed everything, set the torch threads and build the data cache of ``kind``.

    Returns:
        ``(cache folder, training keys, validation keys)``: synthetic seeds, and
        ``"verse/<tag>/<case>"`` keys when the config has ``verse_root``.
    """
    from spinevcf.training.data import build_cache, cache_dir, item_keys

    seed_everything(int(cfg["seed"]))
    torch.set_num_threads(int(cfg.get("threads", 2)))
    cache = cache_dir(cfg)
    train_seeds, val_seeds = item_keys(cfg)
    build_cache(kind, cache, train_seeds + val_seeds, cfg, workers=workers)
    return cache, train_seeds, val_seeds


def make_optimizer(
    net: torch.nn.Module, cfg: dict[str, Any]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, int]:
    """AdamW with a one-cycle learning rate over ``cfg["iterations"]`` steps; returns the step count too."""
    opt = torch.optim.AdamW(net.parameters(), lr=float(cfg["lr"]), weight_decay=1e-4)
    iters = int(cfg["iterations"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(cfg["lr"]), total_steps=iters, pct_start=0.1)
    return opt, sched, iters
