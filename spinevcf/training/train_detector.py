"""Training of the 2D vertebra detector on CPRs (``spinevcf train detector``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from spinevcf.inference.base import DETECTOR_MODEL
from spinevcf.networks import build_model
from spinevcf.training.common import make_optimizer, prepare_data, save_checkpoint
from spinevcf.training.data import DetectorItem, load_detector_items
from spinevcf.training.losses import centernet_focal_loss, keypoint_offset_l1, masked_l1
from spinevcf.training.targets import encode_detector_targets

__all__ = ["train_detector", "make_detector_batch", "level_distillation_loss", "load_teacher"]

log = logging.getLogger(__name__)


def _normalise(hu: np.ndarray, mc: dict[str, Any]) -> np.ndarray:
    lo, hi = mc["hu_window"]
    return (np.clip(hu.astype(np.float32), lo, hi) / float(mc["hu_scale"])).astype(np.float32)


def _augment_geometry(it: DetectorItem, cfg: dict[str, Any], rng: np.random.Generator) -> DetectorItem:
    """Isotropic zoom about the curve (column ``-u0``), so that vertebral size is no level cue.

    Rows and columns are scaled by the same factor; the curve's column stays in place and
    the keypoints move with the image (pixel centres at integer coordinates).
    """
    if "aug_zoom" not in cfg:  # no random draw: configs without it train exactly as before
        return it
    lo, hi = cfg["aug_zoom"]
    z = float(rng.uniform(lo, hi))
    if abs(z - 1.0) < 1e-3:
        return it
    c0 = -float(cfg["model_config"]["u_range_mm"][0]) / float(cfg["model_config"].get("pixel_mm", 1.0))
    _, h, w = it.image.shape
    new_h = int(np.floor(h * z))
    rr = (np.arange(new_h, dtype=np.float64) + 0.5) / z - 0.5
    cc = (np.arange(w, dtype=np.float64) - c0) / z + c0
    grid = np.stack(np.meshgrid(rr, cc, indexing="ij"))
    fill = float(cfg["model_config"]["hu_window"][0])
    img = np.stack(
        [
            ndimage.map_coordinates(ch, grid, order=1, mode="constant", cval=fill, output=np.float32)
            for ch in it.image
        ]
    )

    def move(p: np.ndarray) -> np.ndarray:
        q = np.asarray(p, dtype=np.float64).copy()
        q[..., 0] = (q[..., 0] + 0.5) * z - 0.5
        q[..., 1] = (q[..., 1] - c0) * z + c0
        return q

    return DetectorItem(
        img, [move(k) for k in it.keypoints_px], list(it.levels), [move(c) for c in it.ignore_centers_px]
    )


def _augment_intensity(hu: np.ndarray, cfg: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Scanner variation on a HU crop: calibration (scale, shift), kernel blur, noise.

    Only when the config has the ``aug_*`` keys (no random draw otherwise).
    """
    if not any(k in cfg for k in ("aug_hu_scale", "aug_hu_shift", "aug_blur_px", "aug_noise_hu")):
        return hu
    a = rng.uniform(*cfg.get("aug_hu_scale", (1.0, 1.0)))
    b = rng.uniform(*cfg.get("aug_hu_shift", (0.0, 0.0)))
    out = hu * np.float32(a) + np.float32(b)
    blur = rng.uniform(*cfg.get("aug_blur_px", (0.0, 0.0)))
    if blur > 0.2:
        out = ndimage.gaussian_filter(out, sigma=(0, blur, blur))
    noise = rng.uniform(*cfg.get("aug_noise_hu", (0.0, 0.0)))
    if noise > 0:
        out = out + rng.normal(0.0, noise, out.shape).astype(np.float32)
    return out.astype(np.float32)


def make_detector_batch(
    items: list[DetectorItem], cfg: dict[str, Any], rng: np.random.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Random row crops of CPRs with their encoded targets."""
    mc = cfg["model_config"]
    crop_h = int(cfg["crop_rows"])
    stride = int(mc["stride"])
    xs, tg = [], []
    for it0 in items:
        it = _augment_geometry(it0, cfg, rng)
        img = it.image
        _, h, w = img.shape
        if h > crop_h:
            r0 = int(rng.integers(0, h - crop_h + 1))
        else:
            r0 = 0
        crop = np.full((img.shape[0], crop_h, w), mc["hu_window"][0], np.float32)
        n = min(crop_h, h - r0)
        crop[:, :n] = img[:, r0 : r0 + n]
        kps, levs, ign = [], [], []
        for kp, lev in zip(it.keypoints_px, it.levels, strict=True):
            k = kp - np.array([r0, 0.0])
            inside = (k[:, 0] >= 1) & (k[:, 0] <= n - 2) & (k[:, 1] >= 0) & (k[:, 1] <= w - 1)
            if inside.all():
                kps.append(k)
                levs.append(lev)
            elif 0 <= k.mean(0)[0] < crop_h:
                ign.append(k.mean(0))
        for c in it.ignore_centers_px:
            ign.append(np.asarray(c) - np.array([r0, 0.0]))
        x = _normalise(_augment_intensity(crop, cfg, rng), mc)
        x = x * rng.uniform(0.92, 1.08) + rng.uniform(-0.04, 0.04)
        xs.append(x)
        tg.append(
            encode_detector_targets(
                (crop_h, w), kps, levs, ign, stride=stride, keypoint_scale_px=float(mc["keypoint_scale_px"])
            )
        )
    batch = {
        "heatmap": torch.from_numpy(np.stack([t.heatmap for t in tg])),
        "ignore": torch.from_numpy(np.stack([t.ignore for t in tg])),
        "offset": torch.from_numpy(np.stack([t.offset for t in tg])),
        "keypoints": torch.from_numpy(np.stack([t.keypoints for t in tg])),
        "level": torch.from_numpy(np.stack([t.level for t in tg])),
        "mask": torch.from_numpy(np.stack([t.mask for t in tg])),
        "kp_heatmap": torch.from_numpy(np.stack([t.kp_heatmap for t in tg])),
        "kp_offset": torch.from_numpy(np.stack([t.kp_offset for t in tg])),
        "kp_mask": torch.from_numpy(np.stack([t.kp_mask for t in tg])),
    }
    return torch.from_numpy(np.stack(xs)), batch


def detector_loss(
    out: tuple[torch.Tensor, ...], b: dict[str, torch.Tensor], w: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Weighted sum of the six head losses (keypoint maps weigh 1 unless configured)."""
    heat, off, kp, lev, kp_heat, kp_off = out
    l_heat = centernet_focal_loss(heat, b["heatmap"], b["ignore"])
    l_off = masked_l1(off, b["offset"], b["mask"])
    l_kp = masked_l1(kp, b["keypoints"], b["mask"])
    l_lev = F.cross_entropy(lev, b["level"], ignore_index=-1) if (b["level"] >= 0).any() else lev.sum() * 0
    l_kp_heat = centernet_focal_loss(kp_heat, b["kp_heatmap"], b["ignore"].expand_as(kp_heat))
    l_kp_off = keypoint_offset_l1(kp_off, b["kp_offset"], b["kp_mask"])
    total = (
        w["heatmap"] * l_heat
        + w["offset"] * l_off
        + w["keypoints"] * l_kp
        + w["level"] * l_lev
        + w.get("kp_heatmap", 1.0) * l_kp_heat
        + w.get("kp_offset", 1.0) * l_kp_off
    )
    return {
        "total": total,
        "heatmap": l_heat,
        "offset": l_off,
        "keypoints": l_kp,
        "level": l_lev,
        "kp_heatmap": l_kp_heat,
        "kp_offset": l_kp_off,
    }


def level_distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, heatmap: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """KL divergence of the student's level distribution from the teacher's, near body centres.

    Config ``distill`` (:func:`train_detector`): a fine-tune that must not move the level
    names keeps its level logits close to those of a reference detector (the committed one)
    on the same inputs. The cells weigh by the target heatmap (the Gaussian around each
    body centre, the cells whose logits the decoder reads), so background cells, whose level
    logits are never read, do not constrain the fine-tune.

    Args:
        student_logits: (B, L, h, w) level logits being trained.
        teacher_logits: (B, L, h, w) the reference detector's level logits (no gradient).
        heatmap: (B, 1, h, w) target centre heatmap, 0-1.
        temperature: softening of both distributions; the loss is scaled by its square.

    Returns:
        The heatmap-weighted mean KL(teacher || student) per cell (0 with no body in the batch).
    """
    t = float(temperature)
    log_s = F.log_softmax(student_logits / t, dim=1)
    log_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(dim=1, keepdim=True)
    w = heatmap.detach()
    return (kl * w).sum() / w.sum().clamp(min=1.0) * t * t


def _state_dict(path: str | Path, arch: dict[str, Any], name: str) -> dict[str, torch.Tensor]:
    """The weights of the checkpoint at ``path``, which must have the architecture ``arch``.

    Raises:
        ValueError: ``name`` (how the config refers to the checkpoint) has another architecture.
    """
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("arch") != arch:
        raise ValueError(f"{name} has a different architecture than the config")
    return state["state_dict"]


def load_teacher(path: str | Path, arch: dict[str, Any]) -> torch.nn.Module:
    """The frozen reference detector of config ``distill`` (evaluation mode, no gradients).

    Raises:
        ValueError: the checkpoint's architecture differs from ``arch``.
    """
    net = build_model(DETECTOR_MODEL, **arch)
    net.load_state_dict(_state_dict(path, arch, f"distill checkpoint {path}"))
    net.eval()
    net.requires_grad_(False)
    return net


def freeze_except(net: torch.nn.Module, trainable: list[str] | None) -> None:
    """Train only the named top-level parts of ``net`` (config ``trainable``; ``None``: all).

    The other parts keep their weights (no gradient) and their batch-norm statistics
    (evaluation mode), so a fine-tune of, e.g., the keypoint heads leaves the detector's
    centres, counts and level logits exactly as they were. Call it after every ``net.train()``.

    Raises:
        ValueError: a name is not a part of ``net``.
    """
    if trainable is None:
        return
    parts = dict(net.named_children())
    unknown = sorted(set(trainable) - set(parts))
    if unknown:
        raise ValueError(f"trainable names unknown parts {unknown}; the network has {sorted(parts)}")
    for name, part in parts.items():
        keep = name in trainable
        part.requires_grad_(keep)
        if not keep:
            part.eval()


def train_detector(cfg: dict[str, Any], config_path: str, out: Path, *, workers: int = 2) -> Path:
    """Train the detector as configured; return the checkpoint path."""
    cache, train_seeds, val_seeds = prepare_data("detector", cfg, workers)
    train = load_detector_items(cache, train_seeds)
    val = load_detector_items(cache, val_seeds)
    log.info("detector data: %d training CPRs, %d validation CPRs", len(train), len(val))
    net = build_model(DETECTOR_MODEL, **cfg["arch"])
    if cfg.get("init_checkpoint"):
        # Fine-tuning: start from a committed checkpoint of the same architecture.
        net.load_state_dict(_state_dict(cfg["init_checkpoint"], cfg["arch"], "init_checkpoint"))
        log.info("initialised from %s", cfg["init_checkpoint"])
    opt, sched, iters = make_optimizer(net, cfg)
    rng = np.random.default_rng(int(cfg["seed"]))
    bs = int(cfg["batch_size"])
    weights = {k: float(v) for k, v in cfg["loss_weights"].items()}
    distill = cfg.get("distill")
    teacher = load_teacher(distill["checkpoint"], cfg["arch"]) if distill else None
    if teacher is not None:
        log.info("level logits distilled from %s (weight %s)", distill["checkpoint"], distill["weight"])
    t0 = time.time()
    net.train()
    freeze_except(net, cfg.get("trainable"))
    for it in range(1, iters + 1):
        idx = rng.integers(0, len(train), bs)
        x, b = make_detector_batch([train[i] for i in idx], cfg, rng)
        pred = net(x)
        losses = detector_loss(pred, b, weights)
        if teacher is not None:
            with torch.no_grad():
                t_logits = teacher(x)[3]
            l_dis = level_distillation_loss(
                pred[3], t_logits, b["heatmap"], temperature=float(distill.get("temperature", 1.0))
            )
            losses["distill"] = l_dis
            losses["total"] = losses["total"] + float(distill["weight"]) * l_dis
        opt.zero_grad()
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        if it % 25 == 0 or it == iters:
            log.info(
                "detector it %d/%d %s (%.0fs)",
                it,
                iters,
                " ".join(f"{k} {v.item():.4f}" for k, v in losses.items()),
                time.time() - t0,
            )
    metrics = validate_detector(net, val, cfg)
    log.info("detector validation: %s", metrics)
    ckpt = out / "vertebra_detector_2d.pt"
    save_checkpoint(
        ckpt,
        model_name=DETECTOR_MODEL,
        arch=cfg["arch"],
        net=net,
        config=cfg["model_config"],
        train_config=cfg,
        config_path=config_path,
        metrics=metrics,
    )
    return ckpt


@torch.no_grad()
def validate_detector(
    net: torch.nn.Module, items: list[DetectorItem], cfg: dict[str, Any]
) -> dict[str, float]:
    """Detection recall/precision, centre and keypoint error (px) and level accuracy on whole CPRs."""
    from spinevcf.detector import DetectorConfig, assign_levels, decode_detections
    from spinevcf.schema import LEVEL_INDEX

    net.eval()
    dcfg = DetectorConfig.from_dict(cfg["model_config"])
    tp = fp = fn = 0
    cerr, kerr, lev_ok = [], [], []
    for it in items:
        x = _normalise(it.image, cfg["model_config"])[None]
        outputs = net(torch.from_numpy(x))
        names = getattr(net, "output_names", ())
        dets = assign_levels(
            decode_detections({n: o.numpy() for n, o in zip(names, outputs, strict=True)}, dcfg)
        )
        centers = np.array([k.mean(0) for k in it.keypoints_px]) if it.keypoints_px else np.zeros((0, 2))
        ign = np.asarray(it.ignore_centers_px).reshape(-1, 2)
        used = set()
        for d in dets:
            dist = np.linalg.norm(centers - np.asarray(d.center_px), axis=1) if len(centers) else np.zeros(0)
            j = int(np.argmin(dist)) if len(dist) else -1
            if j >= 0 and dist[j] < 10 and j not in used:
                used.add(j)
                tp += 1
                cerr.append(dist[j])
                kerr.append(
                    float(np.linalg.norm(np.asarray(d.keypoints_px) - it.keypoints_px[j], axis=1).mean())
                )
                lev_ok.append(d.label is not None and LEVEL_INDEX[d.label] == it.levels[j])
            elif len(ign) and np.min(np.linalg.norm(ign - np.asarray(d.center_px), axis=1)) < 15:
                continue
            else:
                fp += 1
        fn += len(centers) - len(used)
    net.train()
    freeze_except(net, cfg.get("trainable"))
    return {
        "val_precision": tp / max(1, tp + fp),
        "val_recall": tp / max(1, tp + fn),
        "val_center_error_px": float(np.mean(cerr)) if cerr else float("nan"),
        "val_keypoint_error_px": float(np.mean(kerr)) if kerr else float("nan"),
        "val_level_accuracy": float(np.mean(lev_ok)) if lev_ok else float("nan"),
        "val_cprs": len(items),
    }
