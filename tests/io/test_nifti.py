"""Tests of spinevcf.io.nifti: the (z, y, x) array and its affine agree with SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from spinevcf.errors import InputError, VolumeTooLargeError
from spinevcf.io import load_nifti, load_volume, write_ct_series


def _oblique_image(h) -> tuple[sitk.Image, tuple[int, int, int]]:
    arr = np.full((7, 9, 11), -1000, dtype=np.int16)  # (z, y, x)
    arr[5, 2, 8] = 1234
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.9, 2.5))
    img.SetOrigin((10.0, -20.0, 35.5))
    img.SetDirection(tuple(h.rotation(20.0, -15.0).ravel()))
    return img, (8, 2, 5)  # ITK index (x, y, z) of the marker


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_marker_maps_to_itk_physical_point(tmp_path, h, suffix) -> None:
    img, itk_index = _oblique_image(h)
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(img, str(path))
    ref = sitk.ReadImage(str(path))  # NIfTI stores float32 geometry: compare with what was stored
    vol = load_nifti(path)
    assert vol.shape == (7, 9, 11)
    assert vol.array.dtype == np.int16
    idx = np.argwhere(vol.array == 1234)
    np.testing.assert_array_equal(idx[0], itk_index[::-1])
    want = ref.TransformIndexToPhysicalPoint(itk_index)
    np.testing.assert_allclose(vol.index_to_lps(idx)[0], want, atol=1e-4)
    # a fractional point too
    cont = (3.25, 1.5, 4.75)
    np.testing.assert_allclose(
        vol.index_to_lps([cont[::-1]])[0], ref.TransformContinuousIndexToPhysicalPoint(cont), atol=1e-4
    )
    np.testing.assert_allclose(vol.spacing, np.asarray(ref.GetSpacing())[::-1], rtol=1e-6)


def test_float_image_stays_float(tmp_path) -> None:
    img = sitk.GetImageFromArray(np.linspace(-1, 1, 60, dtype=np.float32).reshape(3, 4, 5))
    sitk.WriteImage(img, str(tmp_path / "f.nii"))
    vol = load_nifti(tmp_path / "f.nii")
    assert vol.array.dtype == np.float32
    assert vol.array[2, 3, 4] == pytest.approx(1.0)


def test_integral_float_image_becomes_int16(tmp_path) -> None:
    arr = np.array([-2048.0, -1000.0, 0.0, 3071.0] * 15, dtype=np.float32).reshape(3, 4, 5)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "i.nii.gz"))
    vol = load_nifti(tmp_path / "i.nii.gz")
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, arr)


def test_load_volume_dispatch(tmp_path, h) -> None:
    img, _ = _oblique_image(h)
    sitk.WriteImage(img, str(tmp_path / "a.nii.gz"))
    assert load_volume(tmp_path / "a.nii.gz").shape == (7, 9, 11)
    write_ct_series(h.make_volume(), tmp_path / "dcm", rng_seed=1)
    assert load_volume(tmp_path / "dcm").shape == h.SHAPE
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputError, match="cannot tell"):
        load_volume(tmp_path / "x.txt")
    with pytest.raises(InputError, match="does not exist"):
        load_volume(tmp_path / "nope.nii")
    with pytest.raises(VolumeTooLargeError, match="max_bytes=100"):
        load_volume(tmp_path / "a.nii.gz", max_bytes=100)
