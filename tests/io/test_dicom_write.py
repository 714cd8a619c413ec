"""Tests of spinevcf.io.dicom_write: attributes, validity (dciodvfy) and argument checks."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from spinevcf.io import write_ct_series
from spinevcf.io.dicom_write import patient_position_from_orientation
from spinevcf.volume import Volume
from tests.dicom_tools import dciodvfy_output, require_tool


def test_attributes_and_geometry(tmp_path, h) -> None:
    aff = h.make_affine(row_cos=(-1, 0, 0), col_cos=(0, 1, 0), tilt_deg=10.0)
    vol = h.make_volume(aff)
    paths = write_ct_series(
        vol, tmp_path, patient={"PatientID": "X-1"}, convolution_kernel="B70f", rng_seed=5
    )
    assert len(paths) == h.SHAPE[0]
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        assert p.name == f"{ds.SOPInstanceUID}.dcm"
        assert pydicom.uid.UID(ds.SOPInstanceUID).is_valid
        np.testing.assert_allclose(
            [float(v) for v in ds.ImagePositionPatient], aff[:3, :3] @ [k, 0, 0] + aff[:3, 3], atol=1e-5
        )
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert ds.Modality == "CT" and ds.PatientPosition == "FFS" and ds.PatientID == "X-1"
        assert ds.ConvolutionKernel == "B70f"
        assert ds.InstanceNumber == k + 1
        np.testing.assert_array_equal(
            ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept), vol.array[k]
        )
    ds = pydicom.dcmread(paths[0])
    np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [-1, 0, 0, 0, 1, 0])
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], h.SPACING[1:])
    assert float(ds.SliceThickness) == pytest.approx(h.SPACING[0])  # plane distance, not the sheared step
    assert ds.PatientName == "SYNTHETIC^SPINE"


def test_deterministic_uids_with_seed(tmp_path, h) -> None:
    a = write_ct_series(h.make_volume(), tmp_path / "a", rng_seed=11)
    b = write_ct_series(h.make_volume(), tmp_path / "b", rng_seed=11)
    c = write_ct_series(h.make_volume(), tmp_path / "c", rng_seed=12)
    assert [p.name for p in a] == [p.name for p in b]
    assert a[0].name != c[0].name


def test_descending_and_shuffled_instance_numbers(tmp_path, h) -> None:
    n = h.SHAPE[0]
    desc = write_ct_series(h.make_volume(), tmp_path / "d", slice_order="descending")
    assert [pydicom.dcmread(p).InstanceNumber for p in desc] == list(range(n, 0, -1))
    shuf = write_ct_series(h.make_volume(), tmp_path / "s", shuffle_files=True, rng_seed=3)
    nums = [pydicom.dcmread(p).InstanceNumber for p in shuf]
    assert sorted(nums) == list(range(1, n + 1)) and nums != list(range(1, n + 1))


@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [
        ((1, 0, 0), (0, 1, 0), "HFS"),
        ((-1, 0, 0), (0, 1, 0), "FFS"),
        ((-1, 0, 0), (0, -1, 0), "HFP"),
        ((1, 0, 0), (0, -1, 0), "FFP"),
    ],
)
def test_patient_position(row, col, expected) -> None:
    assert patient_position_from_orientation(row, col) == expected


def test_rejects_bad_arguments(tmp_path, h) -> None:
    vol = h.make_volume()
    with pytest.raises(ValueError, match="do not fit"):
        write_ct_series(vol, tmp_path, pixel_representation=0, rescale_intercept=0.0)
    with pytest.raises(ValueError, match="slice_order"):
        write_ct_series(vol, tmp_path, slice_order="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one per slice"):
        write_ct_series(vol, tmp_path, rescale_intercept=[0.0, 1.0])
    with pytest.raises(ValueError, match="not a DICOM keyword"):
        write_ct_series(vol, tmp_path, patient={"Name": "x"})
    skew = vol.affine.copy()
    skew[:3, 2] = [0.8, 0.1, 0.0]
    with pytest.raises(ValueError, match="not orthogonal"):
        write_ct_series(Volume(vol.array, skew), tmp_path)
    with pytest.raises(ValueError, match="JPEG 2000"):
        write_ct_series(vol, tmp_path, transfer_syntax=pydicom.uid.JPEG2000Lossless)


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian, RLELossless], ids=lambda u: u.name)
def test_dciodvfy_reports_no_errors(tmp_path, h, syntax) -> None:
    require_tool("dciodvfy")
    paths = write_ct_series(
        h.make_volume(h.make_affine(tilt_deg=5.0)),
        tmp_path,
        transfer_syntax=syntax,
        convolution_kernel="STANDARD",
    )
    for p in (paths[0], paths[-1]):
        out = dciodvfy_output(p)
        assert "CTImage" in out, out
        errors = [line for line in out.splitlines() if line.startswith("Error")]
        assert not errors, out
