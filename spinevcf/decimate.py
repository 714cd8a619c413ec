"""In-plane block sums of a CT, computed slice by slice while it is decoded (issue 15).

The localizer's input is a block mean of the CT followed by trilinear sampling
(:func:`spinevcf.geometry.resample.resample_to_grid`). Averaging the blocks after the whole
volume has been built reads the 150 MB (300 slices) volume a second time; summing each
slice's in-plane blocks right after the slice is decoded, while it is still in the CPU
caches, leaves only a 16x smaller array for the resampling.

Exactness: every block sum of int16 values is an integer of magnitude at most
``n * 2**15`` for a block of ``n`` voxels, and float32 holds every integer up to ``2**24``
exactly. For blocks of at most :data:`MAX_EXACT_BLOCK_VOXELS` voxels each partial sum is
therefore exact, whatever the order of the additions, so sums made here and finished along
the slice axis later are equal, bit for bit, to the sums the resampling makes from the full
volume (``tests/test_decimate.py``). Larger blocks, and float32 volumes, are not summed
here: the resampling then takes its usual path.

Example:
    >>> plan = plan_block_sums((4, 8, 8), (1.0, 1.0, 1.0), 2.0, np.int16)
    >>> plan.factors, plan.sums.shape
    ((2, 2, 2), (4, 4, 4))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "BlockSums",
    "MAX_EXACT_BLOCK_VOXELS",
    "antialias_factors",
    "plan_block_sums",
    "sum_slice_blocks",
    "usable_block_sums",
]

#: Largest block (voxels) whose float32 sums of int16 values are exact: 2**24 / 2**15.
MAX_EXACT_BLOCK_VOXELS = 512
_EDGE_TOL = 1e-6


@dataclass(frozen=True)
class BlockSums:
    """In-plane block sums of every slice of a volume.

    Attributes:
        factors: the anti-aliasing block size per axis of the volume (slices, rows,
            columns) that the sums were planned for; the sums cover axes 1 and 2 only.
        sums: float32 ``(slices, rows // factors[1], columns // factors[2])``: the sum of
            each in-plane block (the partial blocks at the far ends are dropped, as in
            :func:`spinevcf.geometry.resample.block_mean`).
    """

    factors: tuple[int, int, int]
    sums: npt.NDArray[np.float32]


def antialias_factors(
    spacing: Sequence[float], shape: Sequence[int], spacing_mm: float
) -> tuple[int, int, int]:
    """Block size per axis that anti-aliases resampling to ``spacing_mm``.

    ``floor(spacing_mm / voxel size)`` along each axis, at least 1 and at most the axis
    length (the rule of :func:`spinevcf.geometry.resample.resample_to_grid`).

    Example:
        >>> antialias_factors((2.5, 0.8, 0.8), (300, 512, 512), 4.0)
        (1, 5, 5)
    """
    factors = [max(1, int(np.floor(spacing_mm / float(sp) + _EDGE_TOL))) for sp in spacing]
    f0, f1, f2 = (min(f, int(n)) for f, n in zip(factors, shape, strict=True))
    return f0, f1, f2


def _exact(factors: Sequence[int]) -> bool:
    return int(np.prod([int(f) for f in factors])) <= MAX_EXACT_BLOCK_VOXELS


def plan_block_sums(
    shape: Sequence[int], spacing: Sequence[float], spacing_mm: float, dtype: npt.DTypeLike
) -> BlockSums | None:
    """An empty :class:`BlockSums` for a volume about to be decoded, or ``None``.

    ``None`` when summing while decoding cannot give the resampling's exact values or
    saves nothing: a volume that is not int16, blocks larger than
    :data:`MAX_EXACT_BLOCK_VOXELS` voxels, or no in-plane averaging at all.

    Args:
        shape: (slices, rows, columns) of the volume.
        spacing: voxel size in mm along those axes.
        spacing_mm: spacing of the grid the volume will be resampled to.
        dtype: dtype of the decoded volume.
    """
    if np.dtype(dtype) != np.int16 or not spacing_mm > 0:
        return None
    factors = antialias_factors(spacing, shape, spacing_mm)
    if not _exact(factors) or (factors[1] == 1 and factors[2] == 1):
        return None
    rows, cols = int(shape[1]) // factors[1], int(shape[2]) // factors[2]
    return BlockSums(factors, np.empty((int(shape[0]), rows, cols), np.float32))


def sum_slice_blocks(
    plane: npt.NDArray[np.int16], factors: Sequence[int], out: npt.NDArray[np.float32]
) -> None:
    """Write the in-plane block sums of one int16 slice into ``out`` (float32, exact).

    Rows first (contiguous runs), then the strided columns of the 4x smaller result.
    """
    f1, f2 = int(factors[1]), int(factors[2])
    rows, cols = out.shape
    p = plane[: rows * f1, : cols * f2]
    if f1 > 1:
        acc = np.add(p[0::f1], p[1::f1], dtype=np.float32)
        for k in range(2, f1):
            acc += p[k::f1]
    else:
        acc = p.astype(np.float32)
    if f2 > 1:
        np.add(acc[:, 0::f2], acc[:, 1::f2], out=out)
        for k in range(2, f2):
            out += acc[:, k::f2]
    else:
        out[...] = acc


def usable_block_sums(
    block_sums: BlockSums | None, shape: Sequence[int], factors: Sequence[int]
) -> BlockSums | None:
    """``block_sums`` when it serves a block mean by ``factors`` of a volume of ``shape`` exactly."""
    if block_sums is None:
        return None
    f = tuple(int(x) for x in factors)
    if block_sums.factors[1:] != f[1:] or not _exact(f):
        return None
    expected = (int(shape[0]), int(shape[1]) // f[1], int(shape[2]) // f[2])
    if block_sums.sums.shape != expected:
        return None
    return block_sums
