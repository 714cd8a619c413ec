"""spinevcf.geometry.sampling: threaded point sampling gives one call's values, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from spinevcf.geometry import sampling


@pytest.fixture(autouse=True)
def _restore_threads():
    yield
    sampling.set_threads(None)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_same_values_as_one_call(threads: int, order: int, dtype: type) -> None:
    rng = np.random.default_rng(threads * 10 + order)
    src = rng.integers(-1024, 3000, (30, 40, 50)).astype(dtype)
    # Points inside, on and beyond the edges (constant mode), in a 4D layout as the rib search uses.
    coords = rng.uniform(-3.0, 52.0, (3, 7, 61, 9, 11))
    sampling.set_threads(threads)
    out_dtype = np.float32 if order == 1 else dtype
    want = ndimage.map_coordinates(src, coords, order=order, mode="constant", cval=-1000.0, output=out_dtype)
    got = sampling.map_coordinates(src, coords, order=order, mode="constant", cval=-1000.0, output=out_dtype)
    assert got.shape == want.shape == coords.shape[1:]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_large_calls_are_split_and_small_ones_are_not(monkeypatch) -> None:
    calls: list[int] = []
    real = ndimage.map_coordinates

    def counting(src, coords, **kw):
        calls.append(int(np.prod(np.shape(coords)[1:])))
        return real(src, coords, **kw)

    monkeypatch.setattr(sampling.ndimage, "map_coordinates", counting)
    src = np.zeros((4, 4, 4), np.float32)
    sampling.set_threads(2)
    sampling.map_coordinates(src, np.zeros((3, 2 * sampling.MIN_POINTS_PER_THREAD)), order=1)
    assert calls == [sampling.MIN_POINTS_PER_THREAD] * 2
    calls.clear()
    sampling.map_coordinates(src, np.zeros((3, 100)), order=1)
    assert calls == [100]


def test_settings_and_refusals() -> None:
    sampling.set_threads(3)
    assert sampling.threads() == 3
    sampling.set_threads(None)
    assert 1 <= sampling.threads() <= sampling.MAX_DEFAULT_THREADS
    with pytest.raises(ValueError, match="threads"):
        sampling.set_threads(0)
    with pytest.raises(ValueError, match="order"):
        sampling.map_coordinates(np.zeros((2, 2, 2)), np.zeros((3, 1)), order=3)
    with pytest.raises(ValueError, match="coords"):
        sampling.map_coordinates(np.zeros((2, 2, 2)), np.zeros((2, 1)), order=1)
