"""Resampling of a CT onto the localizer grid (docs/architecture.md, ``spine_localizer_3d``).

The grid is LPS-aligned and isotropic: axis 0 = z from superior to inferior, axis 1 =
y from anterior to posterior, axis 2 = x from right to left. Its first voxel centre is
the (right, anterior, superior) corner of the bounding box of the volume's voxel
centres, and it extends until it covers the box.

Speed: the volume is first block-averaged by integer factors along its own axes (the
anti-aliasing filter, and a cheap one), then trilinearly sampled: as three 1D linear
interpolations when the scan's axes are parallel to the LPS axes (any order and direction:
the usual case), with :func:`scipy.ndimage.map_coordinates` otherwise (gantry tilt,
oblique acquisitions); both give the same values. Block averaging by ``f`` moves the centre of
block ``j`` to original index ``j f + (f - 1) / 2``, which the sampling accounts for;
remaining partial blocks at the far ends are dropped and their grid points take the
nearest block (points outside the original volume get ``fill_hu``). ``spinevcf bench``
reports the time (``localize`` minus the localizer model).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.decimate import BlockSums, antialias_factors, usable_block_sums
from spinevcf.volume import Volume

__all__ = ["resample_to_grid", "grid_affine_for", "pad_to_multiple", "block_mean", "AIR_HU"]

log = logging.getLogger(__name__)

#: HU given to grid points outside the scanned volume.
AIR_HU: float = -1000.0

_EDGE_TOL = 1e-6
#: Slices per slab in :func:`block_mean`.
_BLOCK_SLAB_SLICES = 16


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
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"block_mean needs a 3D array, got {arr.ndim}D")
    keep = []
    for axis, f in enumerate(factors):
        f = int(f)
        if f < 1:
            raise ValueError(f"block factors must be >= 1, got {tuple(factors)}")
        n = (arr.shape[axis] // f) * f
        if n == 0:
            raise ValueError(f"axis {axis} of size {arr.shape[axis]} is smaller than the block {f}")
        keep.append(n)
    f0 = int(factors[0])
    out = np.empty((keep[0] // f0, keep[1] // int(factors[1]), keep[2] // int(factors[2])), np.float32)
    # Slabs of a few slices at a time, so that the intermediate sums stay in the CPU caches
    # (one pass over a 300 MB volume instead of several).
    step = f0 * max(1, _BLOCK_SLAB_SLICES // f0)
    for a in range(0, keep[0], step):
        b = min(keep[0], a + step)
        out[a // f0 : b // f0] = _block_sum(arr[a:b, : keep[1], : keep[2]], factors)
    out *= np.float32(1.0 / float(np.prod([int(f) for f in factors])))
    return out


def _block_mean_from_sums(block_sums: BlockSums, factors: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """:func:`block_mean` of the volume whose in-plane block sums are ``block_sums`` (same values)."""
    f0 = int(factors[0])
    keep0 = (block_sums.sums.shape[0] // f0) * f0
    if keep0 == 0:
        raise ValueError(f"axis 0 of size {block_sums.sums.shape[0]} is smaller than the block {f0}")
    out = _block_sum(block_sums.sums[:keep0], (f0, 1, 1))
    out *= np.float32(1.0 / float(np.prod([int(k) for k in factors])))
    return out


def _block_sum(arr: npt.NDArray[np.generic], factors: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """Sum over blocks of ``factors`` of an array whose shape is a multiple of them.

    Sums the ``f`` strided sub-lattices of each axis (contiguous inner loops): about twice
    as fast as reshape + sum over the small axes.
    """
    out: npt.NDArray[np.generic] = arr
    converted = False
    for axis, f in enumerate(factors):
        f = int(f)
        if f == 1:
            continue
        sl = [slice(None)] * 3
        acc: npt.NDArray[np.float32] | None = None
        for k in range(f):
            sl[axis] = slice(k, None, f)
            part = out[tuple(sl)]
            if acc is None:
                acc = part.astype(np.float32, copy=True)
            else:
                acc += part
        assert acc is not None
        out, converted = acc, True
    return out if converted else out.astype(np.float32)


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
    factors: tuple[int, int, int] = (1, 1, 1)
    if antialias:
        factors = antialias_factors(volume.spacing, volume.shape, spacing_mm)
    f = np.asarray(factors, dtype=np.float64)
    averaged = any(k > 1 for k in factors)
    # In-plane block sums made while the volume was decoded (spinevcf.decimate): the same
    # values as summing the full volume here, without reading it again.
    sums = usable_block_sums(volume.block_sums, volume.shape, factors) if averaged else None

    # Grid index -> original index (affine, since both maps are affine).
    to_index = np.linalg.inv(volume.affine) @ grid_affine
    perm = _axis_permutation(to_index) if order == 1 else None
    if perm is not None and _axis_order(volume.shape)[-1] == 0:
        out = _resample_separable_slabs(volume.array, factors, to_index, perm, shape, fill_hu, sums)
    else:
        if sums is not None:
            src = _block_mean_from_sums(sums, factors)
        else:
            src = block_mean(volume.array, factors) if averaged else volume.array
        if perm is not None:
            out = _resample_separable(src, to_index, perm, shape, volume.shape, f, fill_hu)
        else:
            out = _resample_general(src, to_index, shape, volume.shape, f, order, fill_hu)
    log.debug("resampled %s -> %s at %.2f mm (block factors %s)", volume.shape, shape, spacing_mm, factors)
    return out, grid_affine


def _axis_permutation(to_index: npt.NDArray[np.float64]) -> list[int] | None:
    """Grid axis that drives each source axis, when the map is a scaled permutation.

    That is the case for every scan without gantry tilt or oblique orientation (the source
    axes are parallel to the LPS axes, in any order and direction); ``None`` otherwise.
    """
    m = to_index[:3, :3]
    tol = 1e-9 * max(1.0, float(np.abs(m).max()))
    perm: list[int] = []
    for row in m:
        nz = np.flatnonzero(np.abs(row) > tol)
        if len(nz) != 1:
            return None
        perm.append(int(nz[0]))
    return perm if sorted(perm) == [0, 1, 2] else None


def _lerp_axis(
    a: npt.NDArray[np.generic], axis: int, coords: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """Linear interpolation of ``a`` along ``axis`` at ``coords``, edge values beyond the ends."""
    n = a.shape[axis]
    c = np.clip(coords, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    w = (c - i0).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = len(coords)
    w = w.reshape(shape)
    lo = np.take(a, i0, axis=axis).astype(np.float32, copy=False)
    hi = np.take(a, i1, axis=axis).astype(np.float32, copy=False)
    hi -= lo
    hi *= w
    hi += lo
    return hi


def _resample_separable(
    src: npt.NDArray[np.generic],
    to_index: npt.NDArray[np.float64],
    perm: list[int],
    shape: tuple[int, int, int],
    source_shape: tuple[int, ...],
    f: npt.NDArray[np.float64],
    fill_hu: float,
) -> npt.NDArray[np.float32]:
    """Trilinear sampling as three 1D interpolations (axis-aligned scans).

    Equal to :func:`scipy.ndimage.map_coordinates` with ``order=1, mode="nearest"``
    (to float32 rounding) at a fraction of its cost: the coordinates of source axis ``s``
    depend on grid axis ``perm[s]`` alone.
    """
    out: npt.NDArray[np.generic] = src
    coords, outside = _separable_coordinates(to_index, perm, shape, source_shape, f)
    for s in _axis_order(source_shape):
        out = _lerp_axis(out, s, coords[s])
    return _to_grid_order(out, perm, outside, fill_hu)


def _axis_order(source_shape: tuple[int, ...]) -> list[int]:
    """Source axes in the order they are interpolated: the longest (shrinking most) first."""
    return sorted(range(3), key=lambda a: -source_shape[a])


def _separable_coordinates(
    to_index: npt.NDArray[np.float64],
    perm: list[int],
    shape: tuple[int, int, int],
    source_shape: tuple[int, ...],
    f: npt.NDArray[np.float64],
) -> tuple[dict[int, npt.NDArray[np.float64]], list[tuple[int, npt.NDArray[np.bool_]]]]:
    """Per source axis: sampling coordinates on the block-averaged axis; outside masks per grid axis."""
    coords: dict[int, npt.NDArray[np.float64]] = {}
    outside = []
    for s in _axis_order(source_shape):
        g = perm[s]
        idx = to_index[s, g] * np.arange(shape[g], dtype=np.float64) + to_index[s, 3]
        outside.append((g, (idx < -0.5 - _EDGE_TOL) | (idx > source_shape[s] - 0.5 + _EDGE_TOL)))
        coords[s] = (idx - (f[s] - 1.0) / 2.0) / f[s]
    return coords, outside


def _resample_separable_slabs(
    array: npt.NDArray[np.generic],
    factors: tuple[int, ...],
    to_index: npt.NDArray[np.float64],
    perm: list[int],
    shape: tuple[int, int, int],
    fill_hu: float,
    block_sums: BlockSums | None = None,
) -> npt.NDArray[np.float32]:
    """:func:`block_mean` + :func:`_resample_separable` fused, slab by slab along axis 0.

    When the slice axis (source axis 0) is interpolated last (fewer slices than rows and
    columns: the usual case), each slab of a few slices is block-averaged and interpolated
    in-plane while it is in the CPU caches, instead of writing the whole block mean out and
    reading it back for each in-plane interpolation. Every output value goes through the
    same float32 operations in the same order as the unfused path, so the result is
    identical (``tests/geometry/test_resample_grid.py``). With ``block_sums`` (made while
    decoding, :mod:`spinevcf.decimate`) only the slice axis is still summed here: the
    in-plane sums are exact integers, hence the same values (``tests/test_decimate.py``).
    """
    source_shape = array.shape
    f = np.asarray(factors, dtype=np.float64)
    coords, outside = _separable_coordinates(to_index, perm, shape, source_shape, f)
    inplane = _axis_order(source_shape)[:2]
    fi = [int(x) for x in factors]
    keep = [(n // k) * k for n, k in zip(source_shape, fi, strict=True)]
    if min(keep) == 0:
        raise ValueError(f"volume of shape {source_shape} is smaller than the block {tuple(fi)}")
    averaged = any(k > 1 for k in fi)
    scale = np.float32(1.0 / float(np.prod(fi)))
    mid_shape = [keep[0] // fi[0], keep[1] // fi[1], keep[2] // fi[2]]
    for s in inplane:
        mid_shape[s] = len(coords[s])
    mid = np.empty(mid_shape, np.float32)
    step = fi[0] * max(1, _BLOCK_SLAB_SLICES // fi[0])
    for a in range(0, keep[0], step):
        b = min(keep[0], a + step)
        slab: npt.NDArray[np.generic] = array[a:b, : keep[1], : keep[2]]
        if block_sums is not None:
            summed = _block_sum(block_sums.sums[a:b], (fi[0], 1, 1))
            summed *= scale
            slab = summed
        elif averaged:
            summed = _block_sum(slab, factors)
            summed *= scale
            slab = summed
        for s in inplane:
            slab = _lerp_axis(slab, s, coords[s])
        mid[a // fi[0] : b // fi[0]] = slab
    return _to_grid_order(_lerp_axis(mid, 0, coords[0]), perm, outside, fill_hu)


def _to_grid_order(
    out: npt.NDArray[np.generic],
    perm: list[int],
    outside: list[tuple[int, npt.NDArray[np.bool_]]],
    fill_hu: float,
) -> npt.NDArray[np.float32]:
    """Source axis s holds grid axis perm[s]: put the grid axes in order, fill the outside."""
    out = np.ascontiguousarray(np.transpose(out, [perm.index(g) for g in range(3)]), dtype=np.float32)
    for g, mask in outside:
        if mask.any():
            sl = [slice(None)] * 3
            sl[g] = mask
            out[tuple(sl)] = np.float32(fill_hu)
    return out


def _resample_general(
    src: npt.NDArray[np.generic],
    to_index: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    source_shape: tuple[int, ...],
    f: npt.NDArray[np.float64],
    order: int,
    fill_hu: float,
) -> npt.NDArray[np.float32]:
    """Sampling with :func:`scipy.ndimage.map_coordinates` (any affine, e.g. gantry tilt)."""
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
    n = np.asarray(source_shape, dtype=np.float64)
    outside = np.zeros(shape, dtype=bool)
    for a in range(3):
        outside |= (coords[a] < -0.5 - _EDGE_TOL) | (coords[a] > n[a] - 0.5 + _EDGE_TOL)
        coords[a] = (coords[a] - (f[a] - 1.0) / 2.0) / f[a]
    out = ndimage.map_coordinates(
        src, coords, order=order, mode="nearest", output=np.float32, prefilter=order > 1
    )
    out[outside] = np.float32(fill_hu)
    return out


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
