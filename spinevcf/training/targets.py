"""Training targets of the 2D detector: the exact inverse of :func:`spinevcf.detector.decode_detections`.

See docs/architecture.md for the output semantics at stride ``R``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DetectorTargets",
    "encode_detector_targets",
    "HEATMAP_SIGMA_FRACTION",
    "MIN_HEATMAP_SIGMA",
    "KEYPOINT_SIGMA",
]

#: Gaussian sigma of a centre peak, as a fraction of the body height (in heatmap cells).
HEATMAP_SIGMA_FRACTION = 1.0 / 6.0
#: Smallest sigma of a centre peak, in heatmap cells.
MIN_HEATMAP_SIGMA = 0.8
#: Gaussian sigma of a keypoint peak, in heatmap cells (4 mm at stride 4 and 1 mm pixels:
#: points of one type on neighbouring bodies are at least 15 mm apart).
KEYPOINT_SIGMA = 1.0


@dataclass
class DetectorTargets:
    """Dense targets at stride ``R`` for one CPR crop.

    Attributes:
        heatmap: (1, h, w) Gaussian peaks at vertebral-body centres.
        ignore: (1, h, w) 1 where the heatmap loss is ignored (vertebrae cut by an edge).
        offset: (2, h, w) sub-cell centre offsets, valid at ``mask`` cells.
        keypoints: (12, h, w) keypoint offsets from the centre / keypoint_scale_px.
        level: (h, w) int64 level class index, -1 where undefined.
        mask: (h, w) 1 at the centre cell of each annotated vertebra.
        kp_heatmap: (6, h, w) Gaussian peaks at the keypoints, one map per keypoint type.
        kp_offset: (12, h, w) sub-cell offsets ``(dy, dx)`` of keypoint ``k`` in channels
            ``2k, 2k + 1``, valid where ``kp_mask[k]`` is 1.
        kp_mask: (6, h, w) 1 at the cell of each keypoint of each annotated vertebra.
    """

    heatmap: npt.NDArray[np.float32]
    ignore: npt.NDArray[np.float32]
    offset: npt.NDArray[np.float32]
    keypoints: npt.NDArray[np.float32]
    level: npt.NDArray[np.int64]
    mask: npt.NDArray[np.float32]
    kp_heatmap: npt.NDArray[np.float32]
    kp_offset: npt.NDArray[np.float32]
    kp_mask: npt.NDArray[np.float32]


def _gaussian(h: int, w: int, cy: float, cx: float, sigma: float) -> npt.NDArray[np.float32]:
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def encode_detector_targets(
    image_hw: tuple[int, int],
    keypoints_px: list[npt.NDArray[np.float64]],
    levels: list[int],
    ignore_centers_px: list[npt.NDArray[np.float64]] | None = None,
    *,
    stride: int = 4,
    keypoint_scale_px: float = 16.0,
) -> DetectorTargets:
    """Encode annotated vertebrae of one CPR crop.

    Args:
        image_hw: (H, W) of the input image; H and W are multiples of ``stride``.
        keypoints_px: per vertebra a (6, 2) array of (row, col) keypoints in input pixels.
        levels: per vertebra its class index in :data:`spinevcf.schema.LEVELS`.
        ignore_centers_px: centres (row, col) of vertebrae that must be neither positive
            nor negative (cut by the crop or the field of view).
        stride: output stride ``R``.
        keypoint_scale_px: divisor of the keypoint offsets.

    Returns:
        The dense targets.
    """
    big_h, big_w = image_hw
    if big_h % stride or big_w % stride:
        raise ValueError(f"image_hw {image_hw} must be multiples of stride {stride}")
    h, w = big_h // stride, big_w // stride
    heat = np.zeros((1, h, w), np.float32)
    ignore = np.zeros((1, h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    kps = np.zeros((12, h, w), np.float32)
    level = np.full((h, w), -1, np.int64)
    mask = np.zeros((h, w), np.float32)
    n_kp = len(keypoints_px[0]) if keypoints_px else 6
    kp_heat = np.zeros((n_kp, h, w), np.float32)
    kp_off = np.zeros((2 * n_kp, h, w), np.float32)
    kp_mask = np.zeros((n_kp, h, w), np.float32)
    for kp, lev in zip(keypoints_px, levels, strict=True):
        kp = np.asarray(kp, np.float64)
        center = kp.mean(axis=0)
        c = center / stride
        cell = np.floor(c).astype(int)
        if not (0 <= cell[0] < h and 0 <= cell[1] < w):
            continue
        height_cells = float(np.mean(np.linalg.norm(kp[3:] - kp[:3], axis=1))) / stride
        sigma = max(MIN_HEATMAP_SIGMA, HEATMAP_SIGMA_FRACTION * height_cells)
        heat[0] = np.maximum(heat[0], _gaussian(h, w, c[0], c[1], sigma))
        y, x = int(cell[0]), int(cell[1])
        offset[:, y, x] = (c - cell).astype(np.float32)
        kps[:, y, x] = ((kp - center) / keypoint_scale_px).astype(np.float32).reshape(-1)
        level[y, x] = int(lev)
        mask[y, x] = 1.0
        # Sharpen the peak: the centre cell is exactly 1.
        heat[0, y, x] = 1.0
        for k, point in enumerate(kp / stride):
            kc = np.floor(point).astype(int)
            if not (0 <= kc[0] < h and 0 <= kc[1] < w):
                continue
            ky, kx = int(kc[0]), int(kc[1])
            kp_heat[k] = np.maximum(kp_heat[k], _gaussian(h, w, point[0], point[1], KEYPOINT_SIGMA))
            kp_heat[k, ky, kx] = 1.0
            kp_off[2 * k : 2 * k + 2, ky, kx] = (point - kc).astype(np.float32)
            kp_mask[k, ky, kx] = 1.0
    for ctr in ignore_centers_px or []:
        c = np.asarray(ctr, np.float64) / stride
        g = _gaussian(h, w, c[0], c[1], 2.5)
        ignore[0] = np.maximum(ignore[0], (g > 0.05).astype(np.float32))
    ignore[0][heat[0] >= 0.99] = 0.0
    return DetectorTargets(heat, ignore, offset, kps, level, mask, kp_heat, kp_off, kp_mask)
