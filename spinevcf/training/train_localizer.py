"""Training of the 3D spine localizer (``spinevcf train localizer``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spinevcf.inference.base import LOCALIZER_MODEL
from spinevcf.networks import build_model
from spinevcf.training.common import make_optimizer, prepare_data, save_checkpoint
from spinevcf.training.data import load_localizer_item
from spinevcf.training.losses import dice_bce_loss

__all__ = ["train_localizer", "random_crop_3d"]

log = logging.getLogger(__name__)


def random_crop_3d(
    image: np.ndarray, target: np.ndarray, size: tuple[int, int, int], rng: np.random.Generator, fill: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (or pad with ``fill``) a (D, H, W) pair to ``size``, biased towards the column."""
    out_i = np.full(size, fill, np.float32)
    out_t = np.zeros(size, np.float32)
    starts_src, starts_dst, lens = [], [], []
    fg = np.argwhere(target > 0)
    for ax in range(3):
        n, s = image.shape[ax], size[ax]
        if n >= s:
            if len(fg) and rng.random() < 0.8:
                c = int(fg[rng.integers(len(fg)), ax])
                lo = int(np.clip(c - rng.integers(s // 4, 3 * s // 4 + 1), 0, n - s))
            else:
                lo = int(rng.integers(0, n - s + 1))
            starts_src.append(lo)
            starts_dst.append(0)
            lens.append(s)
        else:
            off = int(rng.integers(0, s - n + 1))
            starts_src.append(0)
            starts_dst.append(off)
            lens.append(n)
    src = tuple(slice(a, a + n) for a, n in zip(starts_src, lens, strict=True))
    dst = tuple(slice(a, a + n) for a, n in zip(starts_dst, lens, strict=True))
    out_i[dst] = image[src]
    out_t[dst] = target[src]
    return out_i, out_t


def _batch(items: list[tuple[np.ndarray, np.ndarray]], cfg: dict[str, Any], rng: np.random.Generator):
    size = tuple(cfg["crop"])
    fill = float(cfg["model_config"]["hu_window"][0]) / float(cfg["model_config"]["hu_scale"])
    xs, ys = [], []
    for image, target in items:
        x, y = random_crop_3d(image, target, size, rng, fill)  # type: ignore[arg-type]
        # Intensity augmentation: scale/shift in normalised units, as scanners differ.
        x = x * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
        if rng.random() < 0.5:  # left-right mirror: the column is symmetric enough
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        xs.append(x[None])
        ys.append(y[None])
    return torch.from_numpy(np.ascontiguousarray(np.stack(xs))), torch.from_numpy(np.ascontiguousarray(np.stack(ys)))


def train_localizer(cfg: dict[str, Any], config_path: str, out: Path, *, workers: int = 2) -> Path:
    """Train the localizer as configured; return the checkpoint path."""
    cache, train_seeds, val_seeds = prepare_data("localizer", cfg, workers)
    train = [load_localizer_item(cache, s) for s in train_seeds]
    val = [load_localizer_item(cache, s) for s in val_seeds]
    net = build_model(LOCALIZER_MODEL, **cfg["arch"])
    opt, sched, iters = make_optimizer(net, cfg)
    rng = np.random.default_rng(int(cfg["seed"]))
    bs = int(cfg["batch_size"])
    t0 = time.time()
    net.train()
    for it in range(1, iters + 1):
        idx = rng.integers(0, len(train), bs)
        x, y = _batch([train[i] for i in idx], cfg, rng)
        loss = dice_bce_loss(net.forward_logits(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 25 == 0 or it == iters:
            log.info("localizer it %d/%d loss %.4f (%.0fs)", it, iters, loss.item(), time.time() - t0)
    metrics = _validate(net, val, cfg)
    log.info("localizer validation: %s", metrics)
    ckpt = out / "spine_localizer_3d.pt"
    save_checkpoint(
        ckpt,
        model_name=LOCALIZER_MODEL,
        arch=cfg["arch"],
        net=net,
        config=cfg["model_config"],
        train_config=cfg,
        config_path=config_path,
        metrics=metrics,
    )
    return ckpt


@torch.no_grad()
def _validate(net: torch.nn.Module, items: list[tuple[np.ndarray, np.ndarray]], cfg: dict[str, Any]) -> dict[str, float]:
    """Dice of the column map on whole validation volumes."""
    net.eval()
    m = int(cfg["model_config"]["divisible_by"])
    fill = float(cfg["model_config"]["hu_window"][0]) / float(cfg["model_config"]["hu_scale"])
    dices = []
    for image, target in items:
        shp = [int(np.ceil(s / m) * m) for s in image.shape]
        x = np.full(shp, fill, np.float32)
        x[: image.shape[0], : image.shape[1], : image.shape[2]] = image
        p = net(torch.from_numpy(x)[None, None])[0, 0].numpy()[: image.shape[0], : image.shape[1], : image.shape[2]]
        pb, tb = p > 0.5, target > 0
        dices.append(2 * np.logical_and(pb, tb).sum() / max(1, pb.sum() + tb.sum()))
    net.train()
    return {"val_dice": float(np.mean(dices)), "val_cases": len(items)}
