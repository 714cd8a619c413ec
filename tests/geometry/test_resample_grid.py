"""Tests of spinevcf.geometry.resample: localizer grid geometry, anti-aliasing, padding."""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.geometry import resample
from spinevcf.geometry.resample import block_mean, grid_affine_for, pad_to_multiple, resample_to_grid
from spinevcf.volume import Volume


def dicom_like_volume(shape: tuple[int, int, int] = (60, 80, 70), spacing=(2.0, 0.8, 0.8)) -> Volume:
    """Slices along -z (head first, top slice first), rows along +y, columns along +x."""
    affine = np.eye(4)
    affine[:3, :3] = np.c_[[0.0, 0.0, -spacing[0]], [0.0, spacing[1], 0.0], [spacing[2], 0.0, 0.0]]
    affine[:3, 3] = [-20.0, -30.0, 55.0]
    return Volume(np.full(shape, -1000, dtype=np.int16), affine)


def test_grid_axes_and_bounding_box() -> None:
    vol = dicom_like_volume()
    aff, shape = grid_affine_for(vol, 4.0)
    np.testing.assert_allclose(aff[:3, :3], np.c_[[0, 0, -4.0], [0, 4.0, 0], [4.0, 0, 0]])
    # First voxel: right (min x), anterior (min y), superior (max z) corner.
    np.testing.assert_allclose(aff[:3, 3], [-20.0, -30.0, 55.0])
    last = aff[:3, :3] @ (np.array(shape) - 1) + aff[:3, 3]
    lo = vol.index_to_lps([np.array(vol.shape) - 1]).ravel()
    assert last[0] >= lo[0] and last[1] >= lo[1] and last[2] <= lo[2]
    assert last[0] - lo[0] < 4.0 and last[1] - lo[1] < 4.0 and lo[2] - last[2] < 4.0


@pytest.mark.parametrize("antialias", [False, True])
def test_marker_lands_where_expected(antialias: bool) -> None:
    vol = dicom_like_volume()
    marker_idx = np.array([30, 40, 35])
    vol.array[
        marker_idx[0] - 1 : marker_idx[0] + 2,
        marker_idx[1] - 3 : marker_idx[1] + 4,
        marker_idx[2] - 3 : marker_idx[2] + 4,
    ] = 1000  # a ~6 mm cube
    arr, aff = resample_to_grid(vol, 4.0, antialias=antialias)
    w = np.clip(arr + 1000.0, 0.0, None)
    centroid_idx = np.array([(w * g).sum() for g in np.indices(w.shape)]) / w.sum()
    centroid_lps = aff[:3, :3] @ centroid_idx + aff[:3, 3]
    expected = vol.index_to_lps([marker_idx]).ravel()
    np.testing.assert_allclose(centroid_lps, expected, atol=1.0)


def test_exact_values_when_grid_matches_voxels() -> None:
    affine = np.eye(4)
    affine[:3, :3] = np.c_[[0.0, 0.0, 2.0], [0.0, 2.0, 0.0], [-2.0, 0.0, 0.0]]  # z up, x to the right
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    vol = Volume(arr, affine)
    out, aff = resample_to_grid(vol, 2.0, antialias=True)
    # Grid axis0 = -z (flip of axis 0), axis1 = +y (axis 1), axis2 = +x (flip of axis 2).
    np.testing.assert_array_equal(out, arr[::-1, :, ::-1].astype(np.float32))


def test_antialias_averages_noise() -> None:
    vol = dicom_like_volume((40, 100, 100), (1.0, 0.5, 0.5))
    vol.array[...] = np.where(np.indices(vol.shape).sum(0) % 2 == 0, 500, -500).astype(np.int16)
    smooth, _ = resample_to_grid(vol, 4.0, antialias=True)
    sharp, _ = resample_to_grid(vol, 4.0, antialias=False)
    inner = (slice(1, -2),) * 3
    assert np.abs(smooth[inner]).max() < 1.0  # checkerboard averages to 0
    assert np.abs(sharp[inner]).max() > 100.0


def test_block_mean() -> None:
    a = np.arange(2 * 4 * 6, dtype=np.int16).reshape(2, 4, 6)
    out = block_mean(a, (1, 2, 3))
    assert out.shape == (2, 2, 2)
    assert out[0, 0, 0] == pytest.approx(np.mean(a[0, :2, :3]))


def test_pad_to_multiple() -> None:
    a = np.ones((5, 8, 9), np.float32)
    padded, pad = pad_to_multiple(a, 4, value=-1.0)
    assert padded.shape == (8, 8, 12)
    assert pad == ((0, 3), (0, 0), (0, 3))
    assert padded[5:].max() == -1.0 and padded[:5, :, :9].min() == 1.0
    same, pad0 = pad_to_multiple(np.ones((4, 4)), 4)
    assert same.shape == (4, 4) and pad0 == ((0, 0), (0, 0))
    with pytest.raises(ValueError):
        pad_to_multiple(a, 0)


@pytest.mark.parametrize("seed", range(12))
def test_separable_sampling_equals_map_coordinates(seed: int) -> None:
    """Axis-aligned scans (any axis order and direction) take the separable path; it must
    give what map_coordinates gives (the path every tilted or oblique scan takes)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(x) for x in rng.integers(5, 30, 3))
    arr = rng.integers(-1000, 1500, shape).astype(np.int16)
    spacing = rng.uniform(0.5, 3.0, 3)
    perm, sign = rng.permutation(3), rng.choice([-1.0, 1.0], 3)
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for i in range(3):
        affine[perm[i], i] = sign[i] * spacing[i]
    affine[:3, 3] = rng.uniform(-50, 50, 3)
    volume = Volume(arr, affine)
    grid_mm = float(rng.uniform(1.0, 5.0))

    out, grid_affine = resample.resample_to_grid(volume, grid_mm)

    to_index = np.linalg.inv(affine) @ grid_affine
    assert resample._axis_permutation(to_index) is not None
    f = np.array(
        [min(max(1, int(np.floor(grid_mm / s + 1e-6))), n) for s, n in zip(spacing, shape, strict=True)]
    )
    src = resample.block_mean(arr, tuple(int(x) for x in f)) if (f > 1).any() else arr
    ref = resample._resample_general(src, to_index, out.shape, shape, f.astype(float), 1, resample.AIR_HU)
    np.testing.assert_allclose(out, ref, atol=2e-3)


def test_tilted_scan_takes_the_general_path() -> None:
    shear = np.eye(4)
    shear[1, 0] = np.tan(np.radians(15.0))  # gantry tilt: rows move with the slice index
    assert resample._axis_permutation(np.linalg.inv(shear)) is None


@pytest.mark.parametrize("seed", range(16))
def test_slab_path_is_identical_to_block_mean_then_sampling(seed: int) -> None:
    """The fused slab path (fewer slices than rows and columns) gives exactly what the block
    mean of the whole volume followed by the separable sampling gives (issue 15: the
    localizer input must not change), for int16 and float32 volumes, any slab count."""
    rng = np.random.default_rng(100 + seed)
    rows = int(rng.integers(20, 60))
    shape = (int(rng.integers(3, rows)), rows, rows + int(rng.integers(0, 9)))
    dtype = np.int16 if seed % 2 else np.float32
    arr = rng.integers(-1024, 3071, shape).astype(dtype)
    spacing = rng.uniform(0.4, 3.0, 3)
    sign = rng.choice([-1.0, 1.0], 3)
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    affine[2, 0], affine[1, 1], affine[0, 2] = sign * spacing  # slices along z, rows y, columns x
    affine[:3, 3] = rng.uniform(-50, 50, 3)
    volume = Volume(arr, affine)
    grid_mm = float(rng.uniform(1.0, 5.0))

    out, grid_affine = resample.resample_to_grid(volume, grid_mm)

    to_index = np.linalg.inv(affine) @ grid_affine
    perm = resample._axis_permutation(to_index)
    assert perm is not None and resample._axis_order(shape)[-1] == 0  # the slab path ran
    f = tuple(min(max(1, int(np.floor(grid_mm / s + 1e-6))), n) for s, n in zip(spacing, shape, strict=True))
    src = resample.block_mean(arr, f) if max(f) > 1 else arr
    ref = resample._resample_separable(
        src, to_index, perm, out.shape, shape, np.asarray(f, dtype=np.float64), resample.AIR_HU
    )
    assert out.dtype == ref.dtype == np.float32
    np.testing.assert_array_equal(out, ref)
