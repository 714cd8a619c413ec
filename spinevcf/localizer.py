"""Pre- and post-processing of the 3D spine localizer (``spine_localizer_3d``).

The network itself runs in an inference backend; this module prepares its input on the
localizer grid (:func:`spinevcf.geometry.resample.resample_to_grid`) and turns its
``column_prob`` output into a :class:`~spinevcf.geometry.curve.SpineCurve`:

1. threshold the probability and keep the largest 26-connected component (by
   probability mass), so spurious blobs elsewhere do not bend the curve;
2. per axial plane of the grid (axis 0), the probability-weighted centroid of the kept
   voxels (sub-voxel accurate) and its mass;
3. :meth:`SpineCurve.fit` through the centroids weighted by mass.

Example:
    >>> cfg = LocalizerConfig(spacing_mm=4.0)
    >>> prob = np.zeros((8, 8, 8), np.float32)
    >>> curve_from_probability(prob, np.eye(4), cfg) is None  # no spine in view
    True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.geometry.curve import SpineCurve
from spinevcf.geometry.resample import AIR_HU, pad_to_multiple, resample_to_grid
from spinevcf.params import build_parameters, read_parameter_file
from spinevcf.volume import Volume

__all__ = ["LocalizerConfig", "preprocess", "curve_from_probability", "column_centroids", "REQUIRED_KEYS"]

log = logging.getLogger(__name__)

#: Keys the model folder's spinevcf.json must provide.
REQUIRED_KEYS: tuple[str, ...] = ("spacing_mm", "hu_window", "hu_scale", "divisible_by")


@dataclass(frozen=True)
class LocalizerConfig:
    """Pre- and post-processing parameters of the spine localizer.

    Attributes:
        spacing_mm: isotropic grid spacing of the network input.
        hu_window: HU clipping window ``(low, high)``.
        hu_scale: divisor applied after clipping.
        divisible_by: D, H, W of the input are padded to multiples of this.
        probability_threshold: voxels at or above belong to the column.
        min_column_voxels: fewer kept voxels than this means no spine in view.
        min_column_planes: fewer axial planes with a centroid than this means no spine.
        min_plane_mass: a plane needs at least this probability mass to give a centroid.
        smoothing_mm: smoothing bandwidth of the curve fit.
        extend_mm: linear extension of the curve at both ends (half an end vertebra).

    Example:
        >>> LocalizerConfig().spacing_mm
        4.0
    """

    spacing_mm: float = 4.0
    hu_window: tuple[float, float] = (-1000.0, 2000.0)
    hu_scale: float = 1000.0
    divisible_by: int = 16
    probability_threshold: float = 0.5
    min_column_voxels: int = 20
    min_column_planes: int = 5
    min_plane_mass: float = 0.5
    smoothing_mm: float = 8.0
    extend_mm: float = 10.0

    def __post_init__(self) -> None:
        if not self.spacing_mm > 0:
            raise ValueError(f"spacing_mm must be positive, got {self.spacing_mm}")
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {self.hu_window}")
        if not self.hu_scale > 0:
            raise ValueError(f"hu_scale must be positive, got {self.hu_scale}")
        if int(self.divisible_by) < 1:
            raise ValueError(f"divisible_by must be >= 1, got {self.divisible_by}")
        if not 0.0 < self.probability_threshold < 1.0:
            raise ValueError(f"probability_threshold must be in (0, 1), got {self.probability_threshold}")

    @classmethod
    def from_json(cls, path: str | Path) -> LocalizerConfig:
        """Read ``model_repository/spine_localizer_3d/spinevcf.json``.

        The keys of :data:`REQUIRED_KEYS` are required; any other field of this class
        present in the file overrides its default; unknown keys are ignored.

        Raises:
            ModelError: the file is missing, not JSON, lacks a key or has a bad value.
        """
        return cls.from_dict(read_parameter_file(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "localizer parameters") -> LocalizerConfig:
        """Build from a parsed ``spinevcf.json`` mapping (see :meth:`from_json`)."""
        return build_parameters(cls, data, required=REQUIRED_KEYS, source=source, what="localizer")


def preprocess(
    volume: Volume, cfg: LocalizerConfig
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Network input for ``volume``: resampled, windowed, scaled and padded.

    Args:
        volume: the CT in HU.
        cfg: localizer parameters.

    Returns:
        ``(image, grid_affine)``: float32 ``[1, 1, D, H, W]`` (D, H, W multiples of
        ``cfg.divisible_by``, padded at the ends with air) and the 4x4 grid affine
        (valid for the padded array too, since padding is only appended).
    """
    arr, affine = resample_to_grid(volume, cfg.spacing_mm, order=1, antialias=True, fill_hu=AIR_HU)
    lo, hi = cfg.hu_window
    np.clip(arr, lo, hi, out=arr)
    arr *= np.float32(1.0 / cfg.hu_scale)
    pad_value = float(np.clip(AIR_HU, lo, hi)) / cfg.hu_scale
    arr, _ = pad_to_multiple(arr, int(cfg.divisible_by), pad_value)
    return np.ascontiguousarray(arr[None, None], dtype=np.float32), affine


def _squeeze3(prob: npt.ArrayLike) -> npt.NDArray[np.float32]:
    p = np.asarray(prob, dtype=np.float32)
    while p.ndim > 3 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 3:
        raise ValueError(f"prob must be (D, H, W), got shape {np.shape(prob)}")
    return p


def _bounding_box(mask: npt.NDArray[np.bool_]) -> tuple[slice, slice, slice]:
    """The smallest box holding every true voxel of a non-empty 3D mask."""
    spans = []
    for axis in range(3):
        a = mask.any(axis=tuple(i for i in range(3) if i != axis))
        spans.append(slice(int(np.argmax(a)), len(a) - int(np.argmax(a[::-1]))))
    return spans[0], spans[1], spans[2]


def _largest_component(p: npt.NDArray[np.float32], threshold: float) -> npt.NDArray[np.bool_]:
    """Mask of the 26-connected component above ``threshold`` with the largest mass."""
    mask = p >= threshold
    if not mask.any():
        return mask
    # Labelled inside the bounding box of the voxels above the threshold (the column is a thin
    # tube in a mostly empty grid): the same components, at a fraction of the cost.
    box = _bounding_box(mask)
    labels, n = ndimage.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
    if n > 1:
        masses = ndimage.sum_labels(p[box], labels, index=np.arange(1, n + 1))
        keep = int(np.argmax(masses)) + 1
        log.debug("column: kept component %d of %d (mass %.1f of %.1f)", keep, n, masses.max(), masses.sum())
        mask = np.zeros_like(mask)
        mask[box] = labels == keep
    return mask


def column_centroids(
    prob: npt.ArrayLike,
    grid_affine: npt.ArrayLike,
    cfg: LocalizerConfig,
    main_component: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-axial-plane probability-weighted centroids of the column (steps 1-2).

    Args:
        prob: (D, H, W) probabilities on the localizer grid (a leading ``[1, 1]`` is accepted).
        grid_affine: 4x4 grid-index-to-LPS affine.
        cfg: localizer parameters.
        main_component: the largest 3D component above the threshold, when the caller
            has it already (computed here otherwise).

    Returns:
        ``(points_lps (K, 3), mass (K,))``, one row per plane with enough mass; empty
        arrays when nothing passes the threshold.
    """
    p = _squeeze3(prob)
    aff = np.asarray(grid_affine, dtype=np.float64)
    if aff.shape != (4, 4):
        raise ValueError(f"grid_affine must be 4x4, got {aff.shape}")
    empty = np.zeros((0, 3)), np.zeros(0)
    mask = main_component if main_component is not None else _largest_component(p, cfg.probability_threshold)
    if not mask.any():
        return empty
    rows = _track_column(p, cfg, float(np.mean(np.linalg.norm(aff[:3, :3], axis=0))), mask)
    if not rows:
        return empty
    idx = np.array([[z, cj, ck] for z, cj, ck, _ in rows], dtype=np.float64)
    mass = np.array([m for *_, m in rows], dtype=np.float64)
    pts = idx @ aff[:3, :3].T + aff[:3, 3]
    return pts, mass


#: Largest in-plane move (mm) of the column centre from one localizer plane to the next.
MAX_STEP_MM_PER_PLANE = 6.0
#: Planes the tracker may skip (no blob near the track) before it stops.
MAX_TRACK_GAP_PLANES = 4


def _plane_blobs(
    p: npt.NDArray[np.float32], threshold: float, min_mass: float
) -> list[list[tuple[float, float, float]]]:
    """Per axial plane of ``p``, the (row, col, mass) of each 2D blob (8-connected within the
    plane) above ``threshold`` with at least ``min_mass``, in the raster order of the blobs'
    first voxels.

    One labelling of the whole grid with a structure that connects voxels only within a
    plane gives every plane's blobs at once.
    """
    out: list[list[tuple[float, float, float]]] = [[] for _ in range(p.shape[0])]
    mask = p >= threshold
    if not mask.any():
        return out
    box = _bounding_box(mask)
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = True
    labels, n = ndimage.label(mask[box], structure=in_plane)
    flat = np.flatnonzero(labels)
    lab = labels.ravel()[flat]
    w = p[box].ravel()[flat].astype(np.float64)
    z, j, k = (i + b.start for i, b in zip(np.unravel_index(flat, labels.shape), box, strict=True))
    mass = np.bincount(lab, weights=w, minlength=n + 1)
    row = np.bincount(lab, weights=w * j, minlength=n + 1)
    col = np.bincount(lab, weights=w * k, minlength=n + 1)
    plane = np.zeros(n + 1, dtype=np.int64)
    plane[lab] = z
    for i in range(1, n + 1):
        if mass[i] >= min_mass:
            out[int(plane[i])].append((float(row[i] / mass[i]), float(col[i] / mass[i]), float(mass[i])))
    return out


def _track_column(
    p: npt.NDArray[np.float32], cfg: LocalizerConfig, spacing: float, main: npt.NDArray[np.bool_]
) -> list[tuple[float, float, float, float]]:
    """Follow the column plane by plane from its most certain plane, up and down.

    In each axial plane the blob whose centroid is nearest to the track (within
    :data:`MAX_STEP_MM_PER_PLANE` per plane travelled) continues it; other blobs (posterior
    elements or organs mistaken for the column) are ignored. This keeps a column that the
    network broke at a collapsed vertebra, and drops look-alikes beside it.

    Args:
        p: (D, H, W) probabilities.
        cfg: localizer parameters.
        spacing: grid spacing (mm).
        main: the largest 3D component above the threshold (:func:`_largest_component`).

    Returns:
        ``(plane, row, col, mass)`` per tracked plane, sorted by plane.
    """
    blobs = _plane_blobs(p, cfg.probability_threshold, cfg.min_plane_mass)
    seeds = [(b[2], z, i) for z, bl in enumerate(blobs) for i, b in enumerate(bl)]
    if not seeds:
        return []
    # Start in the plane of the heaviest blob that belongs to the largest 3D component.
    seeds = [
        t for t in seeds if main[t[1], int(round(blobs[t[1]][t[2]][0])), int(round(blobs[t[1]][t[2]][1]))]
    ] or seeds
    _, z0, i0 = max(seeds)
    track = {z0: blobs[z0][i0]}
    max_step = MAX_STEP_MM_PER_PLANE / spacing
    for direction in (-1, 1):
        last_z, last = z0, blobs[z0][i0]
        z = z0 + direction
        while 0 <= z < p.shape[0] and abs(z - last_z) <= MAX_TRACK_GAP_PLANES + 1:
            best, best_d = None, np.inf
            for b in blobs[z]:
                d = float(np.hypot(b[0] - last[0], b[1] - last[1]))
                if d <= max_step * abs(z - last_z) and d < best_d:
                    best, best_d = b, d
            if best is not None:
                track[z] = best
                last_z, last = z, best
            z += direction
    return [(float(z), *track[z]) for z in sorted(track)]


def curve_from_probability(
    prob: npt.ArrayLike, grid_affine: npt.ArrayLike, cfg: LocalizerConfig
) -> SpineCurve | None:
    """Fit the spine curve to the localizer output.

    Args:
        prob: (D, H, W) (or ``[1, 1, D, H, W]``) column probability on the localizer grid,
            possibly padded at the ends.
        grid_affine: 4x4 grid-index-to-LPS affine from :func:`preprocess`.
        cfg: localizer parameters.

    Returns:
        The curve (``s`` increasing caudally), or ``None`` when too little column is
        found (fewer than ``cfg.min_column_voxels`` voxels or ``cfg.min_column_planes``
        planes): no spine in view.
    """
    p = _squeeze3(prob)
    main = _largest_component(p, cfg.probability_threshold)
    pts, mass = column_centroids(p, grid_affine, cfg, main)
    n_voxels = int(main.sum())
    if len(pts) < cfg.min_column_planes or n_voxels < cfg.min_column_voxels:
        log.info("no spine column found (%d planes, %d voxels above threshold)", len(pts), n_voxels)
        return None
    curve = SpineCurve.fit(pts, mass, smoothing_mm=cfg.smoothing_mm, extend_mm=cfg.extend_mm)
    log.debug("spine curve: %s from %d planes", curve, len(pts))
    return curve
