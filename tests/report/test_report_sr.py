"""TID 1500 SR: validity (dciodvfy, dsrdump) and a field-by-field round trip."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from spinevcf._version import __version__
from spinevcf.assess import NOT_ASSESSABLE_REASONS
from spinevcf.report import codes as C
from spinevcf.report.capture import REASON_SHORT, _label_lines
from spinevcf.report.sr import build_sr, read_sr_measurements, read_sr_patient_findings
from spinevcf.schema import StudyRecord
from tests.dicom_tools import dciodvfy_errors, dsrdump

# The only dciodvfy warning accepted: it does not know private coding schemes.
PRIVATE_SCHEME_WARNING = "Unrecognized defined term <99SPINEVCF>"


def _save(sr: Dataset, path: Path) -> Path:
    sr.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def sr_path(tmp_path: Path, record: StudyRecord, ct_header: Dataset, series_uids: list[str]) -> Path:
    sr = build_sr(record, ct_header, referenced_sop_instance_uids=series_uids)
    return _save(sr, tmp_path / "sr.dcm")


def test_sr_passes_dciodvfy(sr_path: Path) -> None:
    errors, warnings = dciodvfy_errors(sr_path)
    assert errors == []
    assert [w for w in warnings if PRIVATE_SCHEME_WARNING not in w] == []


def test_sr_dsrdump_shows_report_and_levels(sr_path: Path) -> None:
    text = dsrdump(sr_path)
    assert "Imaging Measurement Report" in text
    for label in ("T11 vertebral body", "T12 vertebral body", "L1 vertebral body"):
        assert label in text
    assert '(23215003,SCT,"T12 vertebra")' in text
    assert '(6736007,SCT,"Moderate")' in text
    assert "Anterior superior endplate point" in text


def test_sr_round_trip_matches_record(sr_path: Path, record: StudyRecord) -> None:
    back = read_sr_measurements(sr_path)
    assert list(back) == [v.label for v in record.vertebrae]
    for v in record.vertebrae:
        got = back[v.label]
        assert got["tracking_identifier"] == f"{v.label} vertebral body"
        assert set(got["heights_mm"]) == set(v.heights_mm)
        for key, value in v.heights_mm.items():
            assert got["heights_mm"][key] == pytest.approx(value, abs=1e-3)
        assert v.height_reductions_pct is not None
        assert set(got["height_reductions_pct"]) == set(v.height_reductions_pct)
        for key, value in v.height_reductions_pct.items():
            assert got["height_reductions_pct"][key] == pytest.approx(value, abs=1e-3)
        np.testing.assert_allclose(got["keypoints_lps_mm"], v.keypoints_lps_mm, atol=1e-3)
        assert got["genant_grade"] == v.genant_grade
        assert got["deformity"] == v.deformity
        assert got["fracture_probability"] == pytest.approx(v.fracture_probability, abs=1e-6)
        assert got["severity"] == {0: None, 1: "Mild", 2: "Moderate", 3: "Severe"}[v.genant_grade]
    patient = read_sr_patient_findings(sr_path)
    assert patient == {
        "patient_fractured": True,
        "patient_fracture_probability": pytest.approx(record.patient_fracture_probability),
        "vertebral_body_detected": True,
        "number_of_vertebrae_evaluated": 3,
        "number_of_vertebrae_not_assessable": 0,
        "number_of_fractured_vertebrae": 1,
    }


def test_sr_header_evidence_and_codes(sr_path: Path, ct_header: Dataset, series_uids: list[str]) -> None:
    ds = pydicom.dcmread(sr_path)
    assert ds.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber", "StudyDate"):
        assert getattr(ds, keyword) == getattr(ct_header, keyword)
    assert ds.SeriesInstanceUID != ct_header.SeriesInstanceUID
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == ct_header.SeriesInstanceUID
    assert sorted(i.ReferencedSOPInstanceUID for i in evidence.ReferencedSOPSequence) == sorted(series_uids)
    assert ds.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == C.PRIVATE_SCHEME_DESIGNATOR
    # Every group names the algorithm (TID 4019 at group level, for all its measurements);
    # every SCOORD3D is in the CT's frame of reference.
    sr = hd.sr.srread(sr_path)
    groups = sr.content.get_image_measurement_groups()
    assert groups
    for group in groups:
        names = [item.ConceptNameCodeSequence[0].CodeMeaning for item in group[0].ContentSequence]
        assert "Algorithm Name" in names and "Algorithm Version" in names
        version = [
            i.TextValue
            for i in group[0].ContentSequence
            if i.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Version"
        ]
        assert version == [__version__]
        for m in group.get_measurements():
            for coord in m.referenced_coordinates:
                assert coord.ReferencedFrameOfReferenceUID == ct_header.FrameOfReferenceUID


def test_empty_study_sr_is_valid_and_says_so(
    tmp_path: Path, empty_record: StudyRecord, ct_header: Dataset
) -> None:
    path = _save(build_sr(empty_record, ct_header), tmp_path / "empty.dcm")
    errors, _ = dciodvfy_errors(path)
    assert errors == []
    assert "Vertebral body detected" in dsrdump(path)
    assert read_sr_measurements(path) == {}
    patient = read_sr_patient_findings(path)
    assert patient["vertebral_body_detected"] is False
    assert patient["number_of_vertebrae_evaluated"] == 0
    assert patient["patient_fractured"] is False


def test_level_table_is_complete_and_unique() -> None:
    values = [c.value for c in C.LEVEL_CODES.values()]
    assert len(C.LEVEL_CODES) == 24 and len(set(values)) == 24
    assert C.LEVEL_CODES["T12"].value == "23215003" and C.LEVEL_CODES["L1"].value == "66794005"
    private = C.private_code_table()
    assert len({c.value for c in private}) == len(private)
    assert all(c.scheme_designator == "99SPINEVCF" for c in private)


def test_rejects_mismatching_study(record: StudyRecord, ct_header: Dataset) -> None:
    record.study_instance_uid = "1.2.3.4"
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        build_sr(record, ct_header)


def test_rejects_malformed_referenced_uid(record: StudyRecord, ct_header: Dataset) -> None:
    with pytest.raises(ValueError, match="referenced_sop_instance_uids"):
        build_sr(record, ct_header, referenced_sop_instance_uids=["1.2.3", "../etc"])


def test_source_without_frame_of_reference_is_refused(record: StudyRecord, ct_header: Dataset) -> None:
    del ct_header.FrameOfReferenceUID
    with pytest.raises(ValueError, match="FrameOfReferenceUID"):
        build_sr(record, ct_header)


@pytest.fixture
def cut_sr_path(
    tmp_path: Path, record_with_cut: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> Path:
    sr = build_sr(record_with_cut, ct_header, referenced_sop_instance_uids=series_uids)
    return _save(sr, tmp_path / "cut.dcm")


def test_not_assessable_body_has_status_reason_and_no_grade(
    cut_sr_path: Path, record_with_cut: StudyRecord
) -> None:
    back = read_sr_measurements(cut_sr_path)
    assert list(back) == [v.label for v in record_with_cut.vertebrae]
    cut = back["L2"]
    assert cut["assessment"] == "not_assessable"
    assert cut["assessment_reason"] == "cut_by_scan_range"
    assert cut["genant_grade"] is None and cut["heights_mm"] == {} and cut["fracture_probability"] is None
    assert cut["level_status"] == "uncertain"
    assert cut["level_confidence"] == pytest.approx(0.55)
    assert back["T12"]["assessment"] == "assessed" and back["T12"]["genant_grade"] == 2
    assert back["T12"]["level_status"] == "confident"
    assert back["T12"]["level_confidence"] == pytest.approx(0.98)
    patient = read_sr_patient_findings(cut_sr_path)
    assert patient["number_of_vertebrae_evaluated"] == 3
    assert patient["number_of_vertebrae_not_assessable"] == 1
    assert patient["number_of_fractured_vertebrae"] == 1
    # The cut body's group holds no Genant grade, no height and no probability.
    groups = hd.sr.srread(cut_sr_path).content.get_image_measurement_groups()
    l2 = next(g for g in groups if g.tracking_identifier == "L2 vertebral body")
    # (highdicom matches names against pydicom codes: spinevcf's Code is converted first)
    assert l2.get_qualitative_evaluations(name=C.GENANT_GRADE.as_pydicom()) == []
    assert l2.get_measurements(name=C.HEIGHT.as_pydicom()) == []
    assert l2.get_measurements(name=C.VERTEBRAL_FRACTURE_PROBABILITY.as_pydicom()) == []
    (status,) = l2.get_qualitative_evaluations(name=C.ASSESSMENT_STATUS.as_pydicom())
    assert status.value == C.NOT_EVALUATED.as_pydicom()
    t12 = next(g for g in groups if g.tracking_identifier == "T12 vertebral body")
    assert len(t12.get_measurements(name=C.HEIGHT.as_pydicom())) == 3


def test_sr_with_not_assessable_body_passes_dciodvfy(cut_sr_path: Path) -> None:
    errors, warnings = dciodvfy_errors(cut_sr_path)
    assert errors == []
    assert [w for w in warnings if PRIVATE_SCHEME_WARNING not in w] == []
    text = dsrdump(cut_sr_path)
    assert "Not Evaluated" in text and "Cut by the scanned range" in text


@pytest.mark.parametrize("reason", sorted(NOT_ASSESSABLE_REASONS))
def test_every_not_assessable_reason_round_trips_and_has_a_picture_text(
    tmp_path: Path, record_with_cut: StudyRecord, ct_header: Dataset, series_uids: list[str], reason: str
) -> None:
    from dataclasses import replace

    vertebrae = [
        replace(v, assessment_reason=reason) if v.assessment == "not_assessable" else v
        for v in record_with_cut.vertebrae
    ]
    record = replace(record_with_cut, vertebrae=vertebrae)
    path = _save(build_sr(record, ct_header, referenced_sop_instance_uids=series_uids), tmp_path / "r.dcm")
    assert read_sr_measurements(path)["L2"]["assessment_reason"] == reason
    assert reason in REASON_SHORT and REASON_SHORT[reason]


def test_posterior_height_limit_round_trips_and_is_shown(
    tmp_path: Path, record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    # T12's posterior height read taller than its neighbours allow: the limit its shape was
    # graded at is in the SR beside the measured heights (SPV044, mm), and in the picture.
    from dataclasses import replace

    vertebrae = [
        replace(v, posterior_height_limit_mm=19.8) if v.label == "T12" else v for v in record.vertebrae
    ]
    limited = replace(record, vertebrae=vertebrae)
    path = _save(build_sr(limited, ct_header, referenced_sop_instance_uids=series_uids), tmp_path / "r.dcm")
    back = read_sr_measurements(path)
    assert back["T12"]["posterior_height_limit_mm"] == pytest.approx(19.8)
    assert back["T12"]["heights_mm"]["posterior"] == pytest.approx(23.5)
    assert back["T11"]["posterior_height_limit_mm"] is None
    groups = hd.sr.srread(path).content.get_image_measurement_groups()
    t12 = next(g for g in groups if g.tracking_identifier == "T12 vertebral body")
    (m,) = t12.get_measurements(name=C.POSTERIOR_HEIGHT_LIMIT.as_pydicom())
    assert m.unit.value == "mm"
    assert dciodvfy_errors(path)[0] == []
    assert _label_lines(vertebrae[1])[1].endswith("Hp 23.5 mm (graded at 19.8)")
    assert "graded at" not in _label_lines(vertebrae[0])[1]
    with pytest.raises(ValueError, match="posterior_height_limit_mm"):
        replace(vertebrae[1], posterior_height_limit_mm=0.0)
