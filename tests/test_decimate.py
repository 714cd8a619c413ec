"""Tests of spinevcf.decimate: in-plane block sums made while decoding (issue 15).

The localizer model was trained on the preprocessing as it is, so the input made from the
decode-time sums must be *exactly* (``assert_array_equal``, not to round-off) the input made
from the full volume, on every path of the resampling: the fused slab path (fewer slices
than rows), the block mean + separable path (more slices than rows) and the general
``map_coordinates`` path (gantry tilt), in any orientation, with the partial blocks at the
axis ends dropped as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.decimate import (
    MAX_EXACT_BLOCK_VOXELS,
    BlockSums,
    antialias_factors,
    plan_block_sums,
    sum_slice_blocks,
    usable_block_sums,
)
from spinevcf.geometry import resample
from spinevcf.io.dicom import load_study
from spinevcf.io.dicom_write import write_ct_series
from spinevcf.localizer import LocalizerConfig, preprocess
from spinevcf.volume import Volume

CFG = LocalizerConfig()


def _sums_of(arr: np.ndarray, spacing: np.ndarray, grid_mm: float) -> BlockSums | None:
    """What the loader makes: planned from the header geometry, filled slice by slice."""
    plan = plan_block_sums(arr.shape, spacing, grid_mm, arr.dtype)
    if plan is not None:
        for i in range(arr.shape[0]):
            sum_slice_blocks(arr[i], plan.factors, plan.sums[i])
    return plan


def _random_affine(rng: np.random.Generator, spacing: np.ndarray, tilt_deg: float = 0.0) -> np.ndarray:
    """Axes along the LPS axes in a random order and direction; optional gantry tilt."""
    perm, sign = rng.permutation(3), rng.choice([-1.0, 1.0], 3)
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for i in range(3):
        affine[perm[i], i] = sign[i] * spacing[i]
    if tilt_deg:
        affine[:3, 0] += np.tan(np.radians(tilt_deg)) * spacing[0] * affine[:3, 1] / spacing[1]
    affine[:3, 3] = rng.uniform(-50, 50, 3)
    return affine


@pytest.mark.parametrize("seed", range(30))
def test_localizer_input_identical_with_decode_time_sums(seed: int) -> None:
    """Random shapes, spacings, orientations and values over the whole int16 range."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(12, 60))
    n_slices = int(rng.integers(3, 2 * rows))  # both sides of rows: slab and non-slab paths
    shape = (n_slices, rows, rows + int(rng.integers(0, 9)))
    arr = rng.integers(-32768, 32768, shape, dtype=np.int64).astype(np.int16)
    if seed % 3 == 0:
        arr = rng.integers(-1024, 3071, shape).astype(np.int16)  # CT-like values
    spacing = np.array([rng.uniform(0.5, 4.5), *([rng.uniform(0.3, 2.0)] * 2)])
    tilt = 12.0 if seed % 5 == 4 else 0.0
    affine = _random_affine(rng, spacing, tilt)
    grid_mm = CFG.spacing_mm if seed % 2 == 0 else float(rng.uniform(1.5, 6.0))
    sums = _sums_of(arr, np.linalg.norm(affine[:3, :3], axis=0), grid_mm)
    factors = antialias_factors(np.linalg.norm(affine[:3, :3], axis=0), shape, grid_mm)
    # Blocks too large to sum exactly, or no in-plane block: nothing is made at decode time
    # and the resampling takes its usual path (still compared below).
    assert (sums is None) == (int(np.prod(factors)) > MAX_EXACT_BLOCK_VOXELS or factors[1:] == (1, 1))

    plain = Volume(arr, affine)
    fast = Volume(arr, affine, block_sums=sums)
    want, want_aff = resample.resample_to_grid(plain, grid_mm)
    got, got_aff = resample.resample_to_grid(fast, grid_mm)
    np.testing.assert_array_equal(got_aff, want_aff)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    if grid_mm == CFG.spacing_mm:
        np.testing.assert_array_equal(preprocess(fast, CFG)[0], preprocess(plain, CFG)[0])


@pytest.mark.parametrize(("n_slices", "tilt"), [(6, 0.0), (40, 0.0), (8, 15.0)])
def test_the_sums_are_what_the_resampling_reads(n_slices: int, tilt: float) -> None:
    """With the sums present the voxels are not read again: a volume whose array was zeroed
    after the sums were made still gives the input of the real voxels (each path)."""
    rng = np.random.default_rng(n_slices)
    shape = (n_slices, 24, 28)
    arr = rng.integers(-1024, 3071, shape).astype(np.int16)
    spacing = np.array([2.5, 0.7, 0.7])
    affine = _random_affine(rng, spacing, tilt)
    sums = _sums_of(arr, spacing, CFG.spacing_mm)
    assert sums is not None and sums.factors == (1, 5, 5)
    want = preprocess(Volume(arr, affine), CFG)[0]
    got = preprocess(Volume(np.zeros_like(arr), affine, block_sums=sums), CFG)[0]
    np.testing.assert_array_equal(got, want)


def test_exact_at_the_largest_block() -> None:
    """8 x 8 x 8 blocks of the extreme int16 values: the sums reach 2**24 and stay exact."""
    shape = (16, 17, 19)  # partial blocks at the row and column ends are dropped
    arr = np.full(shape, -32768, np.int16)
    arr[8:] = 32767
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    sums = _sums_of(arr, np.full(3, 0.5), 4.0)
    assert sums is not None and int(np.prod(sums.factors)) == MAX_EXACT_BLOCK_VOXELS
    want, _ = resample.resample_to_grid(Volume(arr, affine), 4.0)
    got, _ = resample.resample_to_grid(Volume(arr, affine, block_sums=sums), 4.0)
    np.testing.assert_array_equal(got, want)
    exact = arr[:, :16, :16].astype(np.int64).reshape(16, 2, 8, 2, 8).sum(axis=(2, 4))
    np.testing.assert_array_equal(sums.sums.astype(np.int64), exact)


def test_no_sums_where_they_would_not_be_exact_or_useful() -> None:
    shape = (10, 64, 64)
    assert plan_block_sums(shape, (2.5, 0.8, 0.8), 4.0, np.float32) is None  # float32 volume
    assert plan_block_sums(shape, (1.0, 0.25, 0.25), 4.0, np.int16) is None  # 4 x 16 x 16 > 512
    assert plan_block_sums(shape, (1.0, 4.0, 4.0), 4.0, np.int16) is None  # no in-plane block
    plan = plan_block_sums(shape, (2.5, 0.8, 0.8), 4.0, np.int16)
    assert plan is not None and plan.factors == (1, 5, 5) and plan.sums.shape == (10, 12, 12)
    # Sums planned for another grid spacing (other factors) are not used.
    assert usable_block_sums(plan, shape, (1, 5, 5)) is plan
    assert usable_block_sums(plan, shape, (1, 4, 4)) is None
    assert usable_block_sums(plan, (11, 64, 64), (1, 5, 5)) is None
    assert usable_block_sums(None, shape, (1, 5, 5)) is None


def test_sum_slice_blocks_values() -> None:
    plane = np.arange(30, dtype=np.int16).reshape(5, 6)
    out = np.empty((2, 3), np.float32)
    sum_slice_blocks(plane, (1, 2, 2), out)
    want = plane[:4].reshape(2, 2, 3, 2).sum(axis=(1, 3))
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize(
    ("slice_mm", "pixel_mm", "order", "intercept"),
    [(2.5, 0.78, "ascending", -1024.0), (1.0, 0.7, "descending", -1024.0), (3.0, 0.9, "ascending", 0.0)],
)
def test_loaded_study_gives_the_same_localizer_input(
    tmp_path, slice_mm: float, pixel_mm: float, order: str, intercept: float
) -> None:
    """Through the DICOM loader: same voxels, sums made, the same localizer input."""
    rng = np.random.default_rng(int(slice_mm * 10))
    arr = rng.integers(-1000, 2500, (24, 40, 40)).astype(np.int16)
    affine = np.eye(4)
    affine[:3, :3] = np.c_[[0.0, 0.0, -slice_mm], [0.0, pixel_mm, 0.0], [pixel_mm, 0.0, 0.0]]
    affine[:3, 3] = [-15.0, -10.0, 40.0]
    write_ct_series(Volume(arr, affine), tmp_path / "ct", slice_order=order, rescale_intercept=intercept)

    plain = load_study(tmp_path / "ct")
    fast = load_study(tmp_path / "ct", block_sums_mm=CFG.spacing_mm)
    assert plain.block_sums is None and fast.block_sums is not None
    np.testing.assert_array_equal(fast.array, plain.array)
    np.testing.assert_array_equal(preprocess(fast, CFG)[0], preprocess(plain, CFG)[0])
