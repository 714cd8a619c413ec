"""Shared helpers for the I/O tests: small volumes with marker voxels and affines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from spinevcf.io import write_ct_series
from spinevcf.volume import Volume

#: Small test volume (slices, rows, columns).
SHAPE = (12, 24, 20)
BACKGROUND_HU = -1000
#: Two marker voxels (index, HU): distinct so a flip or transpose is caught.
MARKERS: tuple[tuple[tuple[int, int, int], int], ...] = (((4, 7, 13), 1500), ((9, 18, 3), 700))
SPACING = (2.5, 0.7, 0.8)  # slice step, row step, column step (mm)
ORIGIN = (-12.5, -30.25, 41.0)


def rotation(ax_deg: float, ay_deg: float) -> np.ndarray:
    """Rotation about x by ``ax_deg`` then about y by ``ay_deg``."""
    a, b = np.radians(ax_deg), np.radians(ay_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return ry @ rx


def make_affine(
    row_cos: tuple[float, float, float] = (1, 0, 0),
    col_cos: tuple[float, float, float] = (0, 1, 0),
    slice_sign: float = 1.0,
    tilt_deg: float = 0.0,
    rot: np.ndarray | None = None,
) -> np.ndarray:
    """Affine with given in-plane cosines; slices along +/- normal, sheared by ``tilt_deg`` along columns."""
    r, c = np.asarray(row_cos, float), np.asarray(col_cos, float)
    n = np.cross(r, c)
    step = slice_sign * SPACING[0] * n + SPACING[0] * np.tan(np.radians(tilt_deg)) * c
    m = np.stack([step, c * SPACING[1], r * SPACING[2]], axis=1)
    if rot is not None:
        m = rot @ m
    aff = np.eye(4)
    aff[:3, :3] = m
    aff[:3, 3] = ORIGIN
    return aff


def make_volume(affine: np.ndarray | None = None, shape: tuple[int, int, int] = SHAPE) -> Volume:
    """Background volume with the :data:`MARKERS` set."""
    arr = np.full(shape, BACKGROUND_HU, dtype=np.int16)
    for idx, hu in MARKERS:
        if all(i < n for i, n in zip(idx, shape, strict=True)):
            arr[idx] = hu
    return Volume(arr, make_affine() if affine is None else affine)


def marker_points(vol: Volume) -> dict[int, np.ndarray]:
    """LPS position of each marker value present in ``vol`` (value -> point)."""
    out = {}
    for _, hu in MARKERS:
        idx = np.argwhere(vol.array == hu)
        assert len(idx) == 1, f"marker {hu} found {len(idx)} times"
        out[hu] = vol.index_to_lps(idx)[0]
    return out


@pytest.fixture
def series_dir(tmp_path: Path) -> Callable[..., tuple[Path, list[Path], Volume]]:
    """Factory: write a series of :func:`make_volume` into a fresh folder."""
    counter = iter(range(1000))

    def _make(affine: np.ndarray | None = None, shape: tuple[int, int, int] = SHAPE, **kwargs: object):
        vol = make_volume(affine, shape)
        folder = tmp_path / f"series{next(counter)}"
        kwargs.setdefault("rng_seed", 7)
        paths = write_ct_series(vol, folder, **kwargs)  # type: ignore[arg-type]
        return folder, paths, vol

    return _make


@pytest.fixture
def h() -> SimpleNamespace:
    """The helpers of this module (conftest modules cannot be imported by name)."""
    return SimpleNamespace(
        SHAPE=SHAPE,
        MARKERS=MARKERS,
        SPACING=SPACING,
        BACKGROUND_HU=BACKGROUND_HU,
        rotation=rotation,
        make_affine=make_affine,
        make_volume=make_volume,
        marker_points=marker_points,
    )
