"""The Secondary Capture written with pydicom alone is the one highdicom's ``SCImage`` builds.

Same comparison as ``test_sr_encode.py``: UIDs given, creation times fixed, the writing library
named alike; the saved files must be identical, pixel data included.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from spinevcf.report.capture import build_secondary_capture, render_annotated_cpr
from spinevcf.schema import StudyRecord
from tests.report import highdicom_reference as reference
from tests.report.test_report_capture import synthetic_cpr

_UIDS = {
    "series_instance_uid": "1.2.826.0.1.3680043.10.4.1",
    "sop_instance_uid": "1.2.826.0.1.3680043.10.4.2",
}


def _assert_same_capture(rgb: np.ndarray, header: Dataset, **kw: object) -> bytes:
    ours = build_secondary_capture(rgb, header, **_UIDS, **kw)  # type: ignore[arg-type]
    theirs = reference.reference_secondary_capture(rgb, header, **_UIDS, **kw)  # type: ignore[arg-type]
    return reference.assert_same_file(ours, theirs)


def test_rendered_picture_same_file(record_with_cut: StudyRecord, ct_header: Dataset) -> None:
    rgb = render_annotated_cpr(synthetic_cpr(record_with_cut), record_with_cut)
    data = _assert_same_capture(rgb, ct_header)
    back = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    assert np.array_equal(back.pixel_array, rgb)


def test_odd_sized_picture_other_charset_and_missing_fields(ct_header: Dataset) -> None:
    """An odd byte count (padded), UTF-8 names, absent type 2 attributes, other numbers."""
    rgb = np.random.default_rng(3).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    ct_header.SpecificCharacterSet = "ISO_IR 192"
    ct_header.PatientName = "M\u00fcller^J\u00fcrgen"
    del ct_header.AccessionNumber, ct_header.PatientSex, ct_header.StudyTime
    _assert_same_capture(rgb, ct_header, series_number=12, instance_number=3, manufacturer="ACME")


def test_no_character_set(ct_header: Dataset) -> None:
    del ct_header.SpecificCharacterSet
    _assert_same_capture(np.zeros((4, 6, 3), np.uint8), ct_header)


def test_the_comparison_sees_one_pixel(ct_header: Dataset) -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    other = rgb.copy()
    other[2, 3, 1] = 1
    ours = build_secondary_capture(rgb, ct_header, **_UIDS)
    theirs = reference.reference_secondary_capture(other, ct_header, **_UIDS)
    with pytest.raises(AssertionError, match="PixelData"):
        reference.assert_same_file(ours, theirs)
