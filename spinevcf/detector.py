"""Pre- and post-processing of the 2D vertebra detector (``vertebra_detector_2d``).

Output semantics (docs/architecture.md), at stride ``R`` (4):

* ``heatmap`` ``[1, 1, h, w]``: sigmoid probability of a vertebral-body centre;
* ``offset`` ``[1, 2, h, w]``: ``(dy, dx)``; centre in input pixels is
  ``((y + dy) * R, (x + dx) * R)`` for the peak cell ``(y, x)``;
* ``keypoints`` ``[1, 12, h, w]``: channels ``2k, 2k+1`` = ``(dy, dx)`` from the centre to
  keypoint ``k`` in input pixels divided by ``keypoint_scale_px``;
* ``level_logits`` ``[1, 24, h, w]``: logits over :data:`spinevcf.schema.LEVELS`;
* ``kp_heatmap`` ``[1, 6, h, w]``: sigmoid probability of keypoint ``k`` (one map per type);
* ``kp_offset`` ``[1, 12, h, w]``: ``(dy, dx)`` of keypoint ``k`` in channels ``2k, 2k+1``;
  keypoint ``k`` in input pixels is ``((y + dy) * R, (x + dx) * R)`` for its peak cell.

Decoding: a cell is a peak when it equals the maximum of its ``nms_kernel`` x
``nms_kernel`` neighbourhood and reaches ``peak_threshold``; the ``max_detections``
strongest are kept; of two peaks closer than ``min_row_distance_px`` in rows only the
stronger survives (vertebrae are stacked along the rows of a CPR); results are sorted
cranio-caudally (by row). Each keypoint regressed from the centre is then refined: the
strongest ``kp_heatmap`` cell of its type within ``keypoint_search_cells`` of it, if it
reaches ``keypoint_peak_threshold``, gives the keypoint (with its ``kp_offset``); without
such a peak (or without the two outputs) the regressed point stays. The regression from
the centre carries the body's shape prior; the keypoint maps see the endplate where it is,
which matters for the deformed bodies this product is about. :func:`assign_levels` then
labels the detections.

Example:
    >>> cfg = DetectorConfig(keypoint_scale_px=32.0)
    >>> out = {"heatmap": np.zeros((1, 1, 8, 8), np.float32),
    ...        "offset": np.zeros((1, 2, 8, 8), np.float32),
    ...        "keypoints": np.zeros((1, 12, 8, 8), np.float32),
    ...        "level_logits": np.zeros((1, 24, 8, 8), np.float32)}
    >>> out["heatmap"][0, 0, 3, 2] = 0.9
    >>> [d.center_px.tolist() for d in decode_detections(out, cfg)]
    [[12.0, 8.0]]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.geometry.cpr import CPRImage
from spinevcf.params import build_parameters, read_parameter_file
from spinevcf.schema import KEYPOINT_NAMES, LEVELS

__all__ = [
    "DetectorConfig",
    "Detection",
    "preprocess_cpr",
    "decode_detections",
    "assign_levels",
    "refine_keypoints",
    "OUTPUT_NAMES",
    "REQUIRED_KEYS",
    "GAP_RATIO",
    "MIN_LOG_PROB",
]

log = logging.getLogger(__name__)

#: Output tensor names of the detector.
OUTPUT_NAMES: tuple[str, ...] = ("heatmap", "offset", "keypoints", "level_logits", "kp_heatmap", "kp_offset")
#: Keys the model folder's spinevcf.json must provide.
REQUIRED_KEYS: tuple[str, ...] = ("keypoint_scale_px", "hu_window", "hu_scale")
#: A row gap larger than this times the local median gap may hide one missed vertebra.
GAP_RATIO: float = 1.6
#: Floor of the log level probabilities in :func:`assign_levels` (avoids -inf).
MIN_LOG_PROB: float = float(np.log(1e-6))
_N_KEYPOINTS = len(KEYPOINT_NAMES)
_GAP_WINDOW = 3  # neighbouring gaps on each side used for the local median


@dataclass(frozen=True)
class DetectorConfig:
    """Pre- and post-processing parameters of the vertebra detector.

    Attributes:
        stride: output stride ``R`` (4 by contract).
        keypoint_scale_px: divisor of the keypoint offsets (input pixels).
        peak_threshold: minimum heatmap value of a detection.
        max_detections: top-k peaks kept before duplicate suppression.
        nms_kernel: size of the max-pool neighbourhood of the peak test.
        divisible_by: H and W of the input are multiples of this.
        hu_window: HU clipping window.
        hu_scale: divisor after clipping.
        min_row_distance_px: peaks closer than this in rows (input pixels) are duplicates.
        keypoint_peak_threshold: minimum ``kp_heatmap`` value of a keypoint refinement.
        keypoint_search_cells: radius (heatmap cells) around a regressed keypoint in which
            its refinement is searched.

    Example:
        >>> DetectorConfig(keypoint_scale_px=32.0).stride
        4
    """

    stride: int = 4
    keypoint_scale_px: float = 32.0
    peak_threshold: float = 0.3
    max_detections: int = 40
    nms_kernel: int = 3
    divisible_by: int = 32
    hu_window: tuple[float, float] = (-1000.0, 2000.0)
    hu_scale: float = 1000.0
    min_row_distance_px: float = 8.0
    pixel_mm: float = 1.0
    u_range_mm: tuple[float, float] = (-64.0, 64.0)
    thin_slab_mm: float = 1.5
    wide_slab_mm: float = 40.0
    wide_step_mm: float = 2.0
    calibration: tuple[float, float] = (0.20, 0.02)
    keypoint_peak_threshold: float = 0.1
    keypoint_search_cells: float = 1.0

    def cpr_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`spinevcf.geometry.cpr.make_cpr` the model was trained with."""
        return {
            "pixel_mm": float(self.pixel_mm),
            "u_range_mm": (float(self.u_range_mm[0]), float(self.u_range_mm[1])),
            "thin_slab_mm": float(self.thin_slab_mm),
            "wide_slab_mm": float(self.wide_slab_mm),
            "wide_step_mm": float(self.wide_step_mm),
            "pad_to": int(self.divisible_by),
            "fill_hu": float(self.hu_window[0]),
        }

    def __post_init__(self) -> None:
        if int(self.stride) < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not self.keypoint_scale_px > 0:
            raise ValueError(f"keypoint_scale_px must be positive, got {self.keypoint_scale_px}")
        if not 0.0 <= self.peak_threshold <= 1.0:
            raise ValueError(f"peak_threshold must be in [0, 1], got {self.peak_threshold}")
        if int(self.max_detections) < 1:
            raise ValueError(f"max_detections must be >= 1, got {self.max_detections}")
        if int(self.nms_kernel) < 1 or int(self.nms_kernel) % 2 == 0:
            raise ValueError(f"nms_kernel must be odd and >= 1, got {self.nms_kernel}")
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {self.hu_window}")
        if not self.hu_scale > 0:
            raise ValueError(f"hu_scale must be positive, got {self.hu_scale}")
        if not 0.0 <= self.keypoint_peak_threshold <= 1.0:
            raise ValueError(f"keypoint_peak_threshold must be in [0, 1], got {self.keypoint_peak_threshold}")
        if not self.keypoint_search_cells >= 0:
            raise ValueError(f"keypoint_search_cells must be >= 0, got {self.keypoint_search_cells}")

    @classmethod
    def from_json(cls, path: str | Path) -> DetectorConfig:
        """Read ``model_repository/vertebra_detector_2d/spinevcf.json``.

        :data:`REQUIRED_KEYS` are required; other fields of this class override their
        defaults when present; unknown keys are ignored.

        Raises:
            ModelError: missing file, bad JSON, missing key or invalid value.
        """
        return cls.from_dict(read_parameter_file(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "detector parameters") -> DetectorConfig:
        """Build from a parsed ``spinevcf.json`` mapping (see :meth:`from_json`)."""
        return build_parameters(
            cls,
            data,
            required=REQUIRED_KEYS,
            source=source,
            what="detector",
            tuple_keys=("hu_window", "u_range_mm", "calibration"),
            aliases={"min_peak_distance_px": "min_row_distance_px"},
        )


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected vertebral body in CPR pixel coordinates.

    Attributes:
        score: heatmap value at the peak.
        center_px: (row, col) centre in input pixels.
        keypoints_px: (6, 2) (row, col) keypoints in :data:`KEYPOINT_NAMES` order.
        level_probs: (24,) softmax over :data:`LEVELS` at the peak cell.
        label: assigned level name, ``None`` before :func:`assign_levels`.
        level_confidence: probability (0-1) that ``label`` is right given the detector's
            count and the anatomical anchors in view (:mod:`spinevcf.levels`); ``None``
            before the levels are named.
        shifted_keypoints_px: the body's keypoints as read on each shifted CPR of
            :data:`spinevcf.stability.SHIFTS_PX`, moved back (``None`` where not found);
            empty when the stability check did not run.
    """

    score: float
    center_px: npt.NDArray[np.float64]
    keypoints_px: npt.NDArray[np.float64]
    level_probs: npt.NDArray[np.float64]
    label: str | None = None
    cell: tuple[int, int] = field(default=(-1, -1))
    level_confidence: float | None = None
    shifted_keypoints_px: tuple[npt.NDArray[np.float64] | None, ...] = ()

    def __post_init__(self) -> None:
        if np.shape(self.center_px) != (2,):
            raise ValueError(f"center_px must be (2,), got {np.shape(self.center_px)}")
        if np.shape(self.keypoints_px) != (_N_KEYPOINTS, 2):
            raise ValueError(f"keypoints_px must be ({_N_KEYPOINTS}, 2), got {np.shape(self.keypoints_px)}")
        if np.shape(self.level_probs) != (len(LEVELS),):
            raise ValueError(f"level_probs must be ({len(LEVELS)},), got {np.shape(self.level_probs)}")
        if self.label is not None and self.label not in LEVELS:
            raise ValueError(f"label must be one of C1..L5 or None, got {self.label!r}")


def preprocess_cpr(cpr: CPRImage, cfg: DetectorConfig) -> npt.NDArray[np.float32]:
    """Detector input ``[1, 2, H, W]`` float32 from a CPR: clipped, scaled, padded.

    Padding (only needed if the CPR was not made with ``pad_to`` a multiple of
    ``cfg.divisible_by``) is appended at the bottom/right with the window's low value,
    so pixel coordinates are unchanged.
    """
    img = np.asarray(cpr.image, dtype=np.float32)
    if img.ndim != 3 or img.shape[0] != 2:
        raise ValueError(f"CPR image must be (2, H, W), got {img.shape}")
    lo, hi = cfg.hu_window
    out = np.clip(img, lo, hi) * np.float32(1.0 / cfg.hu_scale)
    m = int(cfg.divisible_by)
    pad = ((0, 0), (0, (-out.shape[1]) % m), (0, (-out.shape[2]) % m))
    if any(a for _, a in pad):
        out = np.pad(out, pad, mode="constant", constant_values=lo / cfg.hu_scale)
    return np.ascontiguousarray(out[None], dtype=np.float32)


def _head(outputs: dict[str, npt.NDArray[Any]], name: str, channels: int) -> npt.NDArray[np.float64]:
    if name not in outputs:
        raise ValueError(f"detector outputs lack {name!r} (have {sorted(outputs)})")
    a = np.asarray(outputs[name], dtype=np.float64)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[0] != 1 or a.shape[1] != channels:
        raise ValueError(f"output {name!r} must be [1, {channels}, h, w], got {np.shape(outputs[name])}")
    return a[0]


def _softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(z - z.max())
    return e / e.sum()


def decode_detections(outputs: dict[str, npt.NDArray[Any]], cfg: DetectorConfig) -> list[Detection]:
    """Detections from the detector outputs of one image (batch size 1).

    Args:
        outputs: ``heatmap``, ``offset``, ``keypoints``, ``level_logits`` as in the contract
            (a missing batch axis is accepted).
        cfg: decoding parameters.

    Returns:
        Detections sorted by centre row (cranial first), labels ``None``.

    Raises:
        ValueError: a missing output or a wrong shape.
    """
    heat = _head(outputs, "heatmap", 1)[0]
    off = _head(outputs, "offset", 2)
    kps = _head(outputs, "keypoints", 2 * _N_KEYPOINTS)
    logits = _head(outputs, "level_logits", len(LEVELS))
    for name, a in (("offset", off), ("keypoints", kps), ("level_logits", logits)):
        if a.shape[1:] != heat.shape:
            raise ValueError(f"output {name!r} has spatial shape {a.shape[1:]}, heatmap {heat.shape}")

    pooled = ndimage.maximum_filter(heat, size=int(cfg.nms_kernel), mode="constant", cval=-np.inf)
    peak = (heat >= pooled) & (heat >= cfg.peak_threshold)
    ys, xs = np.nonzero(peak)
    order = np.argsort(-heat[ys, xs], kind="stable")[: int(cfg.max_detections)]
    ys, xs = ys[order], xs[order]

    stride = float(cfg.stride)
    kept: list[Detection] = []
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        center = np.array([(y + off[0, y, x]) * stride, (x + off[1, y, x]) * stride])
        if any(abs(center[0] - d.center_px[0]) < cfg.min_row_distance_px for d in kept):
            continue  # a weaker duplicate of a stronger peak
        rel = kps[:, y, x].reshape(_N_KEYPOINTS, 2) * cfg.keypoint_scale_px
        kept.append(
            Detection(
                score=float(heat[y, x]),
                center_px=center,
                keypoints_px=center[None, :] + rel,
                level_probs=_softmax(logits[:, y, x]),
                cell=(int(y), int(x)),
            )
        )
    kept.sort(key=lambda d: float(d.center_px[0]))
    if "kp_heatmap" in outputs and "kp_offset" in outputs:
        kp_heat = _head(outputs, "kp_heatmap", _N_KEYPOINTS)
        kp_off = _head(outputs, "kp_offset", 2 * _N_KEYPOINTS)
        for name, a in (("kp_heatmap", kp_heat), ("kp_offset", kp_off)):
            if a.shape[1:] != heat.shape:
                raise ValueError(f"output {name!r} has spatial shape {a.shape[1:]}, heatmap {heat.shape}")
        kept = [
            replace(d, keypoints_px=refine_keypoints(d.keypoints_px, kp_heat, kp_off, cfg)) for d in kept
        ]
    log.debug("decoded %d detection(s) from %d peak(s)", len(kept), len(ys))
    return kept


def refine_keypoints(
    keypoints_px: npt.NDArray[np.float64],
    kp_heat: npt.NDArray[np.float64],
    kp_off: npt.NDArray[np.float64],
    cfg: DetectorConfig,
) -> npt.NDArray[np.float64]:
    """Move each regressed keypoint to the peak of its own keypoint map nearby.

    Args:
        keypoints_px: (6, 2) keypoints regressed from the centre (input pixels).
        kp_heat: (6, h, w) keypoint maps.
        kp_off: (12, h, w) keypoint sub-cell offsets.
        cfg: ``stride``, ``keypoint_search_cells``, ``keypoint_peak_threshold``.

    Returns:
        (6, 2) keypoints; a keypoint without a peak of at least the threshold within the
        search radius keeps its regressed position.

    Example:
        >>> cfg = DetectorConfig(stride=4)
        >>> heat = np.zeros((6, 8, 8)); heat[0, 3, 2] = 0.9
        >>> off = np.zeros((12, 8, 8)); off[0:2, 3, 2] = 0.5
        >>> refine_keypoints(np.full((6, 2), 12.0), heat, off, cfg)[0].tolist()
        [14.0, 10.0]
    """
    stride = float(cfg.stride)
    radius = float(cfg.keypoint_search_cells)
    r = int(np.ceil(radius))
    _, h, w = kp_heat.shape
    out = np.array(keypoints_px, dtype=np.float64, copy=True)
    for k in range(out.shape[0]):
        p = out[k] / stride
        cy, cx = int(np.floor(p[0])), int(np.floor(p[1]))
        y0, y1 = max(0, cy - r), min(h, cy + r + 2)
        x0, x1 = max(0, cx - r), min(w, cx + r + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        win = kp_heat[k, y0:y1, x0:x1]
        yy, xx = np.mgrid[y0:y1, x0:x1]
        # Distance from the regressed point to each cell's sub-cell position.
        py = yy + kp_off[2 * k, y0:y1, x0:x1]
        px = xx + kp_off[2 * k + 1, y0:y1, x0:x1]
        near = np.hypot(py - p[0], px - p[1]) <= radius
        score = np.where(near & (win >= cfg.keypoint_peak_threshold), win, -1.0)
        j = int(np.argmax(score))
        if score.flat[j] < 0:
            continue
        out[k] = (py.flat[j] * stride, px.flat[j] * stride)
    return out


def _large_gaps(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Per consecutive pair: is the row gap larger than GAP_RATIO times the local median gap?"""
    gaps = np.diff(rows)
    n = len(gaps)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    for i in range(n):
        lo, hi = max(0, i - _GAP_WINDOW), min(n, i + _GAP_WINDOW + 1)
        others = np.r_[gaps[lo:i], gaps[i + 1 : hi]]
        out[i] = gaps[i] > GAP_RATIO * float(np.median(others))
    return out


def assign_levels(detections: list[Detection]) -> list[Detection]:
    """Label detections with strictly increasing, duplicate-free levels.

    Detections are ordered by row. The labels ``L_i`` (indices into :data:`LEVELS`)
    maximise ``sum_i log p_i(L_i)`` (``p_i`` = the detection's ``level_probs``, floored at
    :data:`MIN_LOG_PROB`) subject to ``L_{i+1} - L_i = 1``, or ``L_{i+1} - L_i in {1, 2}``
    where the row gap between the two is larger than :data:`GAP_RATIO` times the median of
    the neighbouring gaps (one missed vertebra). Solved exactly by dynamic programming over
    (detection, level); ties prefer the smaller label jump and then the smaller start.

    With more detections than levels, the contiguous run of ``len(LEVELS)`` detections with
    the highest total score is labelled and the others get ``None`` (logged as a warning).

    Args:
        detections: output of :func:`decode_detections` (any order).

    Returns:
        New :class:`Detection` objects, sorted by row, with ``label`` set.

    Example:
        >>> p1 = np.full(24, 0.01); p1[10] = 0.8  # says T4
        >>> p2 = np.full(24, 0.01); p2[10] = 0.6; p2[11] = 0.3  # says T4, maybe T5
        >>> d = [Detection(1.0, np.array([r, 30.0]), np.zeros((6, 2)), p) for r, p in ((40.0, p1), (60.0, p2))]
        >>> [x.label for x in assign_levels(d)]  # no duplicate: T4 then T5
        ['T4', 'T5']
    """
    dets = sorted(detections, key=lambda d: float(d.center_px[0]))
    n, k = len(dets), len(LEVELS)
    if n == 0:
        return []
    if n > k:
        scores = np.array([d.score for d in dets])
        best = int(np.argmax(np.convolve(scores, np.ones(k), mode="valid")))
        log.warning("%d detections for %d levels: labelling rows %d-%d only", n, k, best, best + k - 1)
        sub = assign_levels(dets[best : best + k])
        return (
            [replace(d, label=None) for d in dets[:best]]
            + sub
            + [replace(d, label=None) for d in dets[best + k :]]
        )

    logp = np.log(np.maximum(np.stack([d.level_probs for d in dets]), np.exp(MIN_LOG_PROB)))
    rows = np.array([float(d.center_px[0]) for d in dets])
    large = _large_gaps(rows)
    score = np.full((n, k), -np.inf)
    back = np.full((n, k), -1, dtype=int)
    score[0] = logp[0]
    for i in range(1, n):
        jumps = (1, 2) if large[i - 1] else (1,)
        for lab in range(k):
            for j in jumps:  # smaller jump first: wins ties
                prev = lab - j
                if prev >= 0 and score[i - 1, prev] + logp[i, lab] > score[i, lab]:
                    score[i, lab] = score[i - 1, prev] + logp[i, lab]
                    back[i, lab] = prev
    lab = int(np.argmax(score[-1]))
    if not np.isfinite(score[-1, lab]):  # cannot happen for n <= k, kept as a guard
        raise RuntimeError("no feasible level assignment")
    labels = [lab]
    for i in range(n - 1, 0, -1):
        lab = int(back[i, lab])
        labels.append(lab)
    labels.reverse()
    return [replace(d, label=LEVELS[lab]) for d, lab in zip(dets, labels, strict=True)]
