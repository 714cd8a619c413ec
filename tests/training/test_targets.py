"""Training targets are the exact inverse of the detector decoding (docs/architecture.md)."""

from __future__ import annotations

import numpy as np
import torch

from spinevcf.detector import DetectorConfig, assign_levels, decode_detections
from spinevcf.schema import LEVEL_INDEX
from spinevcf.training.losses import centernet_focal_loss, dice_bce_loss, keypoint_offset_l1, masked_l1
from spinevcf.training.targets import encode_detector_targets


def _vertebra(row: float, col: float, height: float) -> np.ndarray:
    dx = np.array([-12.0, 0.0, 12.0])
    top = np.stack([np.full(3, row - height / 2), col + dx], axis=1)
    bot = np.stack([np.full(3, row + height / 2), col + dx], axis=1)
    return np.concatenate([top, bot])


def test_encode_then_decode_recovers_keypoints_and_levels() -> None:
    kps = [_vertebra(40.3, 60.7, 20.0), _vertebra(71.9, 58.2, 22.0), _vertebra(104.6, 57.1, 24.0)]
    levels = [LEVEL_INDEX["T11"], LEVEL_INDEX["T12"], LEVEL_INDEX["L1"]]
    t = encode_detector_targets((160, 128), kps, levels, keypoint_scale_px=16.0)
    logits = np.full((24, 40, 32), -10.0, np.float32)
    for y, x in zip(*np.nonzero(t.mask), strict=True):
        logits[t.level[y, x], y, x] = 10.0
    outputs = {
        "heatmap": t.heatmap[None],
        "offset": t.offset[None],
        "keypoints": t.keypoints[None],
        "level_logits": logits[None],
        "kp_heatmap": t.kp_heatmap[None],
        "kp_offset": t.kp_offset[None],
    }
    cfg = DetectorConfig(keypoint_scale_px=16.0, peak_threshold=0.5)
    dets = assign_levels(decode_detections(outputs, cfg))
    assert [d.label for d in dets] == ["T11", "T12", "L1"]
    for d, kp in zip(dets, kps, strict=True):
        np.testing.assert_allclose(d.keypoints_px, kp, atol=1e-4)
        np.testing.assert_allclose(d.center_px, kp.mean(axis=0), atol=1e-4)


def test_ignore_region_excludes_cut_vertebra_but_not_positives() -> None:
    kps = [_vertebra(60.0, 64.0, 20.0)]
    t = encode_detector_targets((128, 128), kps, [10], [np.array([5.0, 64.0])])
    assert t.ignore[0, 1, 16] == 1.0  # around the cut vertebra
    assert t.ignore[0, 15, 16] == 0.0  # the positive centre stays counted
    assert t.heatmap[0, 15, 16] == 1.0


def test_losses_are_small_for_perfect_predictions_and_large_otherwise() -> None:
    kps = [_vertebra(60.0, 64.0, 20.0)]
    t = encode_detector_targets((128, 128), kps, [10])
    target = torch.from_numpy(t.heatmap[None])
    good = centernet_focal_loss(target.clamp(1e-4, 1 - 1e-4), target)
    bad = centernet_focal_loss(torch.full_like(target, 0.5), target)
    assert float(good) < 0.1 * float(bad)
    mask = torch.from_numpy(t.mask[None])
    off = torch.from_numpy(t.offset[None])
    assert float(masked_l1(off, off, mask)) == 0.0
    assert float(masked_l1(off + 1.0, off, mask)) > 0.5
    y = torch.zeros(1, 1, 4, 4, 4)
    y[..., 1:3, 1:3, 1:3] = 1
    assert float(dice_bce_loss(y * 20 - 10, y)) < float(dice_bce_loss(-y * 20 + 10, y))


def test_keypoint_maps_encode_each_point_once_in_its_own_channel() -> None:
    kps = [_vertebra(40.3, 60.7, 20.0), _vertebra(71.9, 58.2, 22.0)]
    t = encode_detector_targets((160, 128), kps, [10, 11], keypoint_scale_px=16.0)
    assert t.kp_heatmap.shape == (6, 40, 32) and t.kp_offset.shape == (12, 40, 32)
    assert t.kp_mask.sum() == 12  # 6 points x 2 vertebrae
    for vertebra in kps:
        for k, point in enumerate(vertebra / 4.0):
            cell = np.floor(point).astype(int)
            assert t.kp_mask[k, cell[0], cell[1]] == 1.0
            assert t.kp_heatmap[k, cell[0], cell[1]] == 1.0
            np.testing.assert_allclose(t.kp_offset[2 * k : 2 * k + 2, cell[0], cell[1]], point - cell, atol=1e-6)
    # A keypoint loss is zero for perfect offsets and grows with the error.
    off = torch.from_numpy(t.kp_offset[None])
    m = torch.from_numpy(t.kp_mask[None])
    assert float(keypoint_offset_l1(off, off, m)) == 0.0
    assert float(keypoint_offset_l1(off + 0.5, off, m)) > 0.4
