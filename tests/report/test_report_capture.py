"""Annotated CPR picture, PNG and Secondary Capture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from spinevcf.report.capture import (
    GRADE_COLORS,
    NOT_ASSESSABLE_COLOR,
    build_secondary_capture,
    render_annotated_cpr,
    save_png,
)
from spinevcf.schema import StudyRecord
from tests.dicom_tools import dciodvfy_errors

SCALE = 2


def synthetic_cpr(record: StudyRecord, shape: tuple[int, int] = (160, 96)) -> np.ndarray:
    """Air background, a bright canal line and one bony rectangle per vertebral body."""
    img = np.full(shape, -900.0, dtype=np.float32)
    img[:, 58:62] = 700.0
    for v in record.vertebrae:
        p = np.asarray(v.cpr_keypoints_px)
        r0, r1 = int(p[:3, 0].min()), int(p[3:, 0].max())
        c0, c1 = int(p[:, 1].min()), int(p[:, 1].max())
        img[r0:r1, c0:c1] = 300.0
        img[r0 : r0 + 2, c0:c1] = 900.0
        img[r1 - 2 : r1, c0:c1] = 900.0
    return img


def _header_rows(rgb_with: np.ndarray, rgb_without: np.ndarray) -> int:
    """Height of the header band above the enlarged CPR (the CPR is taller than the label stack here)."""
    assert rgb_with.shape[0] == rgb_without.shape[0]
    return rgb_with.shape[0] - 160 * SCALE


def test_render_draws_keypoints_and_grade_colours(record: StudyRecord, tmp_path: Path) -> None:
    img = synthetic_cpr(record)
    empty = StudyRecord(record.study_instance_uid, record.series_instance_uid, vertebrae=[])
    rgb = render_annotated_cpr(img, record, scale=SCALE)
    base = render_annotated_cpr(img, empty, scale=SCALE)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[1] > img.shape[1] * SCALE  # label panel beside the image
    header = _header_rows(rgb, base)
    for v in record.vertebrae:
        for r, c in v.cpr_keypoints_px:
            y = int(round((r + 0.5) * SCALE - 0.5)) + header
            x = int(round((c + 0.5) * SCALE - 0.5))
            assert not np.array_equal(rgb[y, x], base[y, x]), f"{v.label} keypoint not drawn"
    # The T12 (grade 2) middle height line is orange halfway between its keypoints.
    t12 = next(v for v in record.vertebrae if v.label == "T12")
    (r0, c0), (r1, _) = t12.cpr_keypoints_px[1], t12.cpr_keypoints_px[4]
    y = int(round(((r0 + r1) / 2 + 0.5) * SCALE - 0.5)) + header
    x = int(round((c0 + 0.5) * SCALE - 0.5))
    assert tuple(rgb[y, x]) == GRADE_COLORS[2]
    path = save_png(rgb, tmp_path / "p.png")
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)
    # The label panel is wide enough for its longest line: the right margin below the
    # header stays background (no text cut at the edge).
    margin = rgb[header:, -6:]
    assert (margin == margin[0, 0]).all()


def test_render_without_vertebrae_and_bad_input(record: StudyRecord) -> None:
    empty = StudyRecord(record.study_instance_uid, record.series_instance_uid, vertebrae=[])
    rgb = render_annotated_cpr(np.zeros((64, 32)), empty)
    assert rgb.shape[0] > 64 * 2
    with pytest.raises(ValueError, match="2D"):
        render_annotated_cpr(np.zeros((2, 64, 32)), empty)
    with pytest.raises(ValueError, match="scale"):
        render_annotated_cpr(np.zeros((64, 32)), empty, scale=0)


def test_secondary_capture_validates_and_reads_back(
    record: StudyRecord, ct_header: Dataset, tmp_path: Path
) -> None:
    rgb = render_annotated_cpr(synthetic_cpr(record), record)
    sc = build_secondary_capture(rgb, ct_header, series_number=9902)
    path = tmp_path / "sc.dcm"
    sc.save_as(path, enforce_file_format=True)
    errors, _ = dciodvfy_errors(path)
    assert errors == []
    ds = pydicom.dcmread(path)
    assert (ds.Rows, ds.Columns) == rgb.shape[:2]
    assert ds.PhotometricInterpretation == "RGB" and ds.ConversionType == "WSD"
    assert ds.StudyInstanceUID == ct_header.StudyInstanceUID
    assert ds.SeriesInstanceUID != ct_header.SeriesInstanceUID
    assert ds.PatientID == ct_header.PatientID
    assert np.array_equal(ds.pixel_array, rgb)


def test_save_png_rejects_wrong_array(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        save_png(np.zeros((4, 4, 3), np.float32), tmp_path / "x.png")


def test_render_panel_fits_the_longest_label(record: StudyRecord) -> None:
    """A moderate biconcave deformity with its probability is the longest first line."""
    import dataclasses

    img = synthetic_cpr(record)
    long = [
        dataclasses.replace(v, genant_grade=2, deformity="biconcave", fracture_probability=0.97)
        for v in record.vertebrae
    ]
    rgb = render_annotated_cpr(img, dataclasses.replace(record, vertebrae=long), scale=1)
    margin = rgb[60:, -6:]
    assert (margin == margin[0, 0]).all()


def test_not_assessable_body_is_grey_without_keypoints(record_with_cut: StudyRecord) -> None:
    """A cut body is outlined in grey with no height line and no keypoint dot; labels say why."""
    img = synthetic_cpr(record_with_cut)
    assessed_only = StudyRecord(
        record_with_cut.study_instance_uid,
        record_with_cut.series_instance_uid,
        vertebrae=[v for v in record_with_cut.vertebrae if v.assessed],
    )
    rgb = render_annotated_cpr(img, record_with_cut, scale=SCALE)
    base = render_annotated_cpr(img, assessed_only, scale=SCALE)
    header = rgb.shape[0] - img.shape[0] * SCALE
    cut = next(v for v in record_with_cut.vertebrae if not v.assessed)
    pts = np.asarray(cut.cpr_keypoints_px)
    # Middle of the anterior edge (between the anterior keypoints): the grey outline.
    r = (pts[0, 0] + pts[3, 0]) / 2
    y = int(round((r + 0.5) * SCALE - 0.5)) + header
    x = int(round((pts[0, 1] + 0.5) * SCALE - 0.5))
    assert tuple(rgb[y, x]) == NOT_ASSESSABLE_COLOR
    # No coloured height line in the middle of the body, and no keypoint dot at its keypoints.
    ym = int(round(((pts[1, 0] + pts[4, 0]) / 2 + 0.5) * SCALE - 0.5)) + header
    xm = int(round((pts[1, 1] + 0.5) * SCALE - 0.5))
    assert tuple(rgb[ym, xm]) not in GRADE_COLORS.values()
    for rr, cc in pts:
        yy = int(round((rr + 0.5) * SCALE - 0.5)) + header
        xx = int(round((cc + 0.5) * SCALE - 0.5))
        assert tuple(rgb[yy, xx]) in (NOT_ASSESSABLE_COLOR, tuple(base[yy, xx]))
    # The label panel names it in grey.
    panel = rgb[header:, img.shape[1] * SCALE + 4 :]
    assert (panel == np.asarray(NOT_ASSESSABLE_COLOR, np.uint8)).all(axis=-1).any()
