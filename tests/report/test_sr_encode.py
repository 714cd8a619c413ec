"""The directly encoded SR (spinevcf.report.sr_encode) is the highdicom SR, byte for byte.

``build_sr(..., direct_encoding=False)`` builds every content item with highdicom's template
classes and lets pydicom encode them (the reference); the default writes the vertebra groups
and the evidence list straight to bytes. With the generated UIDs drawn from one counter and
the creation times fixed, both must give the same file.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import replace

import numpy as np
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset

import spinevcf.report.sr as sr_module
from spinevcf.report import sr_encode
from spinevcf.report.sr import build_sr, read_sr_measurements, read_sr_patient_findings
from spinevcf.schema import LEVELS, StudyRecord, VertebraRecord

_FIXED_DATE = "20000101"
_FIXED_TIME = "000000.000001"
_EVIDENCE_TAG = 0x0040A375
_CONTENT_SEQUENCE_TAG = 0x0040A730


def _counter_uids(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count(1)
    monkeypatch.setattr(
        sr_module, "generate_uid", lambda *a, **k: f"1.2.826.0.1.3680043.10.1.{next(counter)}"
    )


def _build(
    monkeypatch: pytest.MonkeyPatch,
    record: StudyRecord,
    header: Dataset,
    uids: list[str],
    *,
    direct: bool,
    **kw: object,
) -> FileDataset:
    _counter_uids(monkeypatch)
    sr = build_sr(
        record,
        header,
        referenced_sop_instance_uids=uids,
        series_instance_uid="1.2.826.0.1.3680043.10.2.1",
        sop_instance_uid="1.2.826.0.1.3680043.10.2.2",
        direct_encoding=direct,
        **kw,  # type: ignore[arg-type]
    )
    sr.InstanceCreationDate = sr.ContentDate = _FIXED_DATE
    sr.InstanceCreationTime = sr.ContentTime = _FIXED_TIME
    sr.ContributingEquipmentSequence[0].ContributionDateTime = _FIXED_DATE + _FIXED_TIME
    return sr


def _file_bytes(sr: FileDataset) -> bytes:
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _assert_same_file(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, header: Dataset, uids: list[str], **kw: object
) -> bytes:
    reference = _file_bytes(_build(monkeypatch, record, header, uids, direct=False, **kw))
    direct = _file_bytes(_build(monkeypatch, record, header, uids, direct=True, **kw))
    assert len(direct) == len(reference)
    if direct != reference:
        first = next(i for i, (a, b) in enumerate(zip(direct, reference, strict=True)) if a != b)
        pytest.fail(f"direct SR differs from the highdicom SR at byte {first} of {len(reference)}")
    return direct


def _column_record(header: Dataset, n: int = 17) -> StudyRecord:
    """``n`` bodies from T1 down: every grade and deformity, a cut body, level confidences."""
    rng = np.random.default_rng(15)
    grades = [0, 1, 2, 3]
    deformities = {0: "none", 1: "wedge", 2: "biconcave", 3: "crush"}
    vertebrae = []
    for i, label in enumerate(LEVELS[7 : 7 + n]):
        z = 400.0 - 25.0 * i
        kp = [[float(rng.normal()), y, z] for y in (-15.0, 0.0, 15.0)]
        kp += [
            [float(rng.normal()), y, z - h]
            for y, h in zip((-15.0, 0.0, 15.0), rng.uniform(14, 26, 3), strict=True)
        ]
        conf = None if i % 5 == 4 else float(np.round(rng.uniform(0.3, 1.0), 4))
        status = None if conf is None else ("confident" if conf >= 0.9 else "uncertain")
        if i in (0, n - 1):
            vertebrae.append(
                VertebraRecord(
                    label=label,
                    keypoints_lps_mm=kp,
                    heights_mm={},
                    genant_grade=None,
                    deformity="none",
                    assessment="not_assessable",
                    assessment_reason="cut_by_scan_range" if i == 0 else "next_to_metal",
                    level_confidence=conf,
                    level_status=status,
                )
            )
            continue
        grade = grades[i % 4]
        heights = {
            k: float(kp[j + 3][2] - kp[j][2]) * -1 for j, k in enumerate(("anterior", "middle", "posterior"))
        }
        vertebrae.append(
            VertebraRecord(
                label=label,
                keypoints_lps_mm=kp,
                heights_mm={k: round(v, 3) for k, v in heights.items()},
                genant_grade=grade,
                deformity=deformities[grade],
                fracture_probability=None if i == 3 else float(rng.uniform()),
                height_reductions_pct=None
                if i == 5
                else {"wedge": float(rng.uniform(0, 40)), "biconcave": 1e-7 * i, "crush": 12345.678901234},
                level_confidence=conf,
                level_status=status,
            )
        )
    return StudyRecord(
        study_instance_uid=str(header.StudyInstanceUID),
        series_instance_uid=str(header.SeriesInstanceUID),
        vertebrae=vertebrae,
        patient_fractured=True,
        patient_fracture_probability=0.97,
        model_version="0.1.0",
    )


def test_three_bodies_same_file(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    _assert_same_file(monkeypatch, record, ct_header, series_uids)


def test_not_assessable_and_level_confidence_same_file(
    monkeypatch: pytest.MonkeyPatch, record_with_cut: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    _assert_same_file(monkeypatch, record_with_cut, ct_header, series_uids)


def test_seventeen_bodies_300_slices_same_file(
    monkeypatch: pytest.MonkeyPatch, ct_header: Dataset, series_uids: list[str]
) -> None:
    uids = [*series_uids, *(f"1.2.826.0.1.3680043.10.3.{i}" for i in range(300))]
    uids.insert(7, uids[2])  # a repeated instance is listed once, as highdicom does
    data = _assert_same_file(monkeypatch, _column_record(ct_header), ct_header, uids)
    assert len(data) > 50_000  # 17 groups and 305 evidence items really are in the file


def test_no_vertebra_same_file(
    monkeypatch: pytest.MonkeyPatch, empty_record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    _assert_same_file(monkeypatch, empty_record, ct_header, series_uids)


def test_source_slice_only_and_other_charset(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset
) -> None:
    ct_header.SpecificCharacterSet = "ISO_IR 192"
    ct_header.PatientName = "M\u00fcller^J\u00fcrgen"
    _assert_same_file(monkeypatch, record, ct_header, [])


def test_non_ascii_text_takes_the_highdicom_path(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    sr = _build(monkeypatch, record, ct_header, series_uids, direct=True, algorithm_version="0.1.0-\u00e9")
    assert not isinstance(sr.get_item(_EVIDENCE_TAG), RawDataElement)
    _assert_same_file(monkeypatch, record, ct_header, series_uids, algorithm_version="0.1.0-\u00e9")


def test_encoded_parts_stay_raw_when_saved_and_read_back(
    monkeypatch: pytest.MonkeyPatch, record_with_cut: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    sr = _build(monkeypatch, record_with_cut, ct_header, series_uids, direct=True)
    _file_bytes(sr)
    # pydicom wrote them as they are (parsing them first would cost what was saved)
    assert isinstance(sr.get_item(_EVIDENCE_TAG), RawDataElement)
    assert isinstance(sr.ContentSequence[-1].get_item(_CONTENT_SEQUENCE_TAG), RawDataElement)
    # ... and they read back as sequences
    refs = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert [str(r.ReferencedSOPInstanceUID) for r in refs] == series_uids
    measured = read_sr_measurements(sr)
    assert list(measured) == [v.label for v in record_with_cut.vertebrae]
    assert measured["L2"]["assessment"] == "not_assessable"
    assert measured["L2"]["level_status"] == "uncertain"
    assert read_sr_patient_findings(sr)["number_of_vertebrae_not_assessable"] == 1


def test_bad_records_fail_as_before(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    broken = replace(record.vertebrae[0])
    broken.heights_mm = {"anterior": 1.0, "middle": 1.0}
    bad = replace(record, vertebrae=[broken])
    for direct in (False, True):
        with pytest.raises(ValueError, match="heights_mm lacks 'posterior'"):
            _build(monkeypatch, bad, ct_header, series_uids, direct=direct)
    reduction = replace(record.vertebrae[0], height_reductions_pct={"tilt": 3.0})
    for direct in (False, True):
        with pytest.raises(ValueError, match="unknown height reduction 'tilt'"):
            _build(monkeypatch, replace(record, vertebrae=[reduction]), ct_header, series_uids, direct=direct)


def test_code_item_long_values() -> None:
    from pydicom.sr.coding import Code

    short = sr_encode.code_item(Code("121207", "DCM", "Height"))
    assert short.startswith(b"\x08\x00\x00\x01SH")  # (0008,0100) Code Value
    long_code = sr_encode.code_item(Code("12345678901234567", "99X", "long"))
    assert b"\x08\x00\x19\x01UC" in long_code  # (0008,0119) Long Code Value
    urn = sr_encode.code_item(Code("urn:oid:1.2.3.4.5.6.7.8.9", "99X", "urn"))
    assert b"\x08\x00\x20\x01UR" in urn  # (0008,0120) URN Code Value
