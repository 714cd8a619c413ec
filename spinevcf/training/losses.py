"""Losses of the two networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["centernet_focal_loss", "masked_l1", "keypoint_offset_l1", "dice_bce_loss"]


def centernet_focal_loss(
    pred: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None, alpha: float = 2.0, beta: float = 4.0
) -> torch.Tensor:
    """Penalty-reduced pixel-wise focal loss of CenterNet on sigmoid heatmaps.

    Args:
        pred: predicted probabilities (B, 1, h, w).
        target: Gaussian target peaks (B, 1, h, w), exactly 1 at centres.
        ignore: cells excluded from the loss (B, 1, h, w), 1 = ignore.
        alpha: focusing exponent.
        beta: exponent of the penalty reduction around peaks.
    """
    p = pred.clamp(1e-4, 1 - 1e-4)
    pos = target.ge(0.999).float()
    neg = 1.0 - pos
    keep = 1.0 - ignore if ignore is not None else torch.ones_like(pred)
    pos_loss = -torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = -torch.log(1 - p) * p**alpha * (1 - target) ** beta * neg * keep
    n = pos.sum().clamp(min=1.0)
    return (pos_loss.sum() + neg_loss.sum()) / n


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 averaged over the cells where ``mask`` (B, h, w) is 1, over all channels."""
    m = mask.unsqueeze(1).expand_as(pred)
    n = mask.sum().clamp(min=1.0) * pred.shape[1]
    return (F.smooth_l1_loss(pred, target, reduction="none", beta=0.05) * m).sum() / n


def keypoint_offset_l1(pred: torch.Tensor, target: torch.Tensor, kp_mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 of the (B, 2K, h, w) keypoint offsets where ``kp_mask`` (B, K, h, w) is 1."""
    m = kp_mask.repeat_interleave(2, dim=1)
    n = m.sum().clamp(min=1.0)
    return (F.smooth_l1_loss(pred, target, reduction="none", beta=0.05) * m).sum() / n


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice, for the localizer's column map."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3, 4))
    denom = p.sum(dim=(1, 2, 3, 4)) + target.sum(dim=(1, 2, 3, 4))
    dice = 1.0 - (2 * inter + 1.0) / (denom + 1.0)
    return bce + dice.mean()
