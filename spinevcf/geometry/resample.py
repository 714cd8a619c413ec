"""Resampling of a CT onto the localizer grid (docs/architecture.md, ``spine_localizer_3d``).

The grid is LPS-aligned and isotropic: axis 0 = z from superior to inferior, axis 1 =
y from anterior to posterior, axis 2 = x from right to left. Its first voxel centre is
the (right, anterior, superior) corner of the bounding box of the volume's voxel
centres, and it extends until it covers the box.

Speed: the volume is first block-averaged by integer factors along its own axes (the
anti-aliasing filter, and a cheap one), then trilinearly sampled with
:func:`scipy.ndimage.map_coordinates`. Block averaging by ``f`` moves the centre of
block ``j`` to original index ``j f + (f - 1) / 2``, which the sampling accounts for;
remaining partial blocks at the far ends are dropped and their grid points take the
nearest block (points outside the original volume get ``fill_hu``). Measured on one
core: a 300 x 512 x 512 int16 CT (0.7 x 0.7 x 1.25 mm) to 4 mm in about 0.15 s.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.volume import Volume

__all__ = ["resample_to_grid", "grid_affine_for", "pad_to_multiple", "block_mean", "AIR_HU"]

log = logging.getLogger(__name__)

#: HU given to grid points outside the scanned volume.
AIR_HU: float = -1000.0

_EDGE_TOL = 1e-6


def _grid_directions() -> npt.NDArray[np.float64]:
    """Unit LPS directions (columns) of the grid axes: -z, +y, +x."""
    d = np.zeros((3, 3))
    d[2, 0] = -1.0  # axis 0 -> -z (inferior)
    d[1, 1] = 1.0  # axis 1 -> +y (posterior)
    d[0, 2] = 1.0  # axis 2 -> +x (left)
    return d


def grid_affine_for(
    volume: Volume, spacing_mm: float
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """Affine and shape of the localizer grid covering ``volume``.

    Args:
        volume: the CT.
        spacing_mm: isotropic grid spacing.

    Returns:
        ``(affine, shape)``: the 4x4 grid-index-to-LPS matrix and the grid shape (D, H, W).

    Example:
        >>> v = Volume(np.zeros((3, 5, 5), np.int16), np.diag([2.0, 1.0, 1.0, 1.0]))
        >>> aff, shape = grid_affine_for(v, 2.0)
        >>> shape, aff[:3, 3].tolist()
        ((3, 3, 3), [0.0, 0.0, 4.0])
    """
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    n = np.array(volume.shape, dtype=np.float64) - 1.0
    corners = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
    lps = volume.index_to_lps(corners)
    lo, hi = lps.min(axis=0), lps.max(axis=0)
    extent = hi - lo  # x, y, z
    counts = np.ceil(extent / spacing_mm - _EDGE_TOL).astype(int) + 1
    affine = np.eye(4)
    affine[:3, :3] = _grid_directions() * spacing_mm
    affine[:3, 3] = [lo[0], lo[1], hi[2]]
    shape = (int(counts[2]), int(counts[1]), int(counts[0]))
    return affine, shape


def block_mean(array: npt.NDArray[np.generic], factors: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """Mean over non-overlapping blocks of ``factors`` voxels; partial blocks are dropped.

    Args:
        array: 3D array.
        factors: integer block size per axis (1 = unchanged).

    Returns:
        float32 array of shape ``array.shape // factors``.

    Example:
        >>> block_mean(np.arange(8).reshape(2, 2, 2), (1, 1, 2))[..., 0].tolist()
        [[0.5, 2.5], [4.5, 6.5]]
    """
    out: npt.NDArray = array
    for axis, f in enumerate(factors):
        if f <= 1:
            continue
        n = (out.shape[axis] // f) * f
        if n == 0:
            raise ValueError(f"axis {axis} of size {out.shape[axis]} is smaller than the block {f}")
        sl = [slice(None)] * 3
        sl[axis] = slice(0, n)
        part = out[tuple(sl)]
        shape = list(part.shape)
        shape[axis : axis + 1] = [n // f, f]
        out = part.reshape(shape).sum(axis=axis + 1, dtype=np.float32)
        out *= np.float32(1.0 / f)
    return np.asarray(out, dtype=np.float32)


def resample_to_grid(
    volume: Volume,
    spacing_mm: float,
    *,
    order: int = 1,
    antialias: bool = True,
    fill_hu: float = AIR_HU,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Resample ``volume`` onto the LPS-aligned localizer grid.

    Args:
        volume: the CT in HU.
        spacing_mm: isotropic output spacing (e.g. 4.0).
        order: spline order of the sampling (0 nearest, 1 trilinear).
        antialias: block-average by ``floor(spacing_mm / voxel size)`` along each
            axis before sampling (no effect when upsampling).
        fill_hu: value of grid points outside the volume.

    Returns:
        ``(array, affine)``: float32 (D, H, W) array and its 4x4 index-to-LPS affine.

    Example:
        >>> v = Volume(np.arange(27, dtype=np.int16).reshape(3, 3, 3), np.eye(4))
        >>> arr, aff = resample_to_grid(v, 1.0)
        >>> float(arr[0, 0, 0]) == float(v.array[0, 0, 2])  # grid starts at min x, min y, max z
        True
    """
    if order not in (0, 1, 3):
        raise ValueError(f"order must be 0, 1 or 3, got {order}")
    grid_affine, shape = grid_affine_for(volume, spacing_mm)
    factors = (1, 1, 1)
    if antialias:
        factors = tuple(max(1, int(np.floor(spacing_mm / sp + _EDGE_TOL))) for sp in volume.spacing)
        factors = tuple(min(f, n) for f, n in zip(factors, volume.shape, strict=True))
    src = block_mean(volume.array, factors) if any(f > 1 for f in factors) else volume.array
    f = np.asarray(factors, dtype=np.float64)

    # Grid index -> original index (affine, since both maps are affine).
    to_index = np.linalg.inv(volume.affine) @ grid_affine
    axes = [np.arange(n, dtype=np.float64) for n in shape]
    coords = np.empty((3, *shape), dtype=np.float64)
    for a in range(3):
        m = to_index[a]
        coords[a] = (
            m[0] * axes[0][:, None, None]
            + m[1] * axes[1][None, :, None]
            + m[2] * axes[2][None, None, :]
            + m[3]
        )
    n = np.asarray(volume.shape, dtype=np.float64)
    outside = np.zeros(shape, dtype=bool)
    for a in range(3):
        outside |= (coords[a] < -0.5 - _EDGE_TOL) | (coords[a] > n[a] - 0.5 + _EDGE_TOL)
        coords[a] = (coords[a] - (f[a] - 1.0) / 2.0) / f[a]
    out = ndimage.map_coordinates(
        src, coords, order=order, mode="nearest", output=np.float32, prefilter=order > 1
    )
    out[outside] = np.float32(fill_hu)
    log.debug("resampled %s -> %s at %.2f mm (block factors %s)", volume.shape, shape, spacing_mm, factors)
    return out, grid_affine


def pad_to_multiple(
    array: npt.NDArray[np.generic], m: int, value: float = 0.0
) -> tuple[npt.NDArray[np.generic], tuple[tuple[int, int], ...]]:
    """Pad every axis at its end so its size is a multiple of ``m``.

    Padding only at the end keeps index 0 (and hence any affine) unchanged.

    Args:
        array: array of any dimension.
        m: the divisor (>= 1).
        value: constant pad value.

    Returns:
        ``(padded, padding)`` with ``padding`` as ``np.pad`` widths ``((0, after), ...)``.

    Example:
        >>> a, pad = pad_to_multiple(np.zeros((5, 8)), 4)
        >>> a.shape, pad
        ((8, 8), ((0, 3), (0, 0)))
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    pad = tuple((0, (-n) % m) for n in array.shape)
    if all(after == 0 for _, after in pad):
        return array, pad
    return np.pad(array, pad, mode="constant", constant_values=value), pad
