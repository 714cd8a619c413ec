"""The SR written with pydicom alone is the SR highdicom builds, byte for byte.

:func:`spinevcf.report.sr.build_sr` writes the document header with pydicom
(``spinevcf/report/header.py``) and the content tree and evidence straight to bytes
(``spinevcf/report/sr_encode.py``); :func:`tests.report.highdicom_reference.reference_sr` builds
the same report with highdicom's template classes and ``Comprehensive3DSR`` (the way spinevcf
built it before issue 15). With the generated UIDs drawn from one counter, the creation times
fixed and the writing library named alike in both (highdicom names itself, the run path names
pydicom), both must save as the same file: any element that differs fails.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset

import spinevcf.report.sr as sr_module
from spinevcf.report import codes as C
from spinevcf.report import sr_encode
from spinevcf.report.sr import build_sr, read_sr_measurements, read_sr_patient_findings
from spinevcf.schema import LEVELS, StudyRecord, VertebraRecord
from tests.report import highdicom_reference as reference

_EVIDENCE_TAG = 0x0040A375
_CONTENT_SEQUENCE_TAG = 0x0040A730
_SERIES_UID = "1.2.826.0.1.3680043.10.2.1"
_SOP_UID = "1.2.826.0.1.3680043.10.2.2"


def _counter_uids(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count(1)

    def uid(*_args: object, **_kwargs: object) -> str:
        return f"1.2.826.0.1.3680043.10.1.{next(counter)}"

    monkeypatch.setattr(sr_module, "generate_uid", uid)
    monkeypatch.setattr(reference, "generate_uid", uid)


def _build(
    monkeypatch: pytest.MonkeyPatch,
    record: StudyRecord,
    header: Dataset,
    uids: list[str],
    *,
    highdicom: bool,
    **kw: object,
) -> FileDataset:
    """One SR, by the run path or by the highdicom reference; UIDs from a fresh counter."""
    _counter_uids(monkeypatch)
    build = reference.reference_sr if highdicom else build_sr
    return build(
        record,
        header,
        referenced_sop_instance_uids=uids,
        series_instance_uid=_SERIES_UID,
        sop_instance_uid=_SOP_UID,
        **kw,  # type: ignore[arg-type]
    )


def _assert_same_file(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, header: Dataset, uids: list[str], **kw: object
) -> bytes:
    ours = _build(monkeypatch, record, header, uids, highdicom=False, **kw)
    theirs = _build(monkeypatch, record, header, uids, highdicom=True, **kw)
    return reference.assert_same_file(ours, theirs)


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
                posterior_height_limit_mm=round(0.8 * heights["posterior"], 3) if i % 5 == 2 else None,
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


def test_source_slice_only_other_charset_and_patient_fields(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset
) -> None:
    ct_header.SpecificCharacterSet = "ISO_IR 192"
    ct_header.PatientName = "M\u00fcller^J\u00fcrgen"
    ct_header.StudyTime = "101500.25"
    del ct_header.AccessionNumber  # type 2: written empty by both
    del ct_header.PatientBirthDate
    _assert_same_file(monkeypatch, record, ct_header, [])


def test_no_character_set_and_other_numbers(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    del ct_header.SpecificCharacterSet
    _assert_same_file(
        monkeypatch,
        record,
        ct_header,
        series_uids,
        series_number=3,
        instance_number=7,
        manufacturer="ACME Lab",
    )


@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
def test_non_ascii_text_same_file(
    monkeypatch: pytest.MonkeyPatch,
    record_with_cut: StudyRecord,
    ct_header: Dataset,
    series_uids: list[str],
    charset: str,
) -> None:
    """A version and manufacturer that are not ASCII are encoded in the document's character set."""
    ct_header.SpecificCharacterSet = charset
    data = _assert_same_file(
        monkeypatch,
        record_with_cut,
        ct_header,
        series_uids,
        algorithm_version="0.1.0-\u00e9",
        manufacturer="Universit\u00e4t",
    )
    encoding = "latin_1" if charset == "ISO_IR 100" else "utf-8"
    assert "0.1.0-\u00e9".encode(encoding) in data and "Universit\u00e4t".encode(encoding) in data


def test_the_comparison_sees_a_one_character_change(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    """The same length, one character apart: the comparison fails (it is not vacuous)."""
    ours = _build(monkeypatch, record, ct_header, series_uids, highdicom=False, algorithm_version="0.1.1")
    theirs = _build(monkeypatch, record, ct_header, series_uids, highdicom=True, algorithm_version="0.1.2")
    with pytest.raises(AssertionError, match="differs from the highdicom-built one"):
        reference.assert_same_file(ours, theirs)


def test_codes_and_fixed_texts_are_ascii() -> None:
    """What sr_encode writes as ASCII is: every code of the report and its scheme."""
    from types import MappingProxyType

    found = []
    for name in C.__all__:
        value = getattr(C, name)
        for code in value.values() if isinstance(value, MappingProxyType | dict) else [value]:
            if isinstance(code, C.Code):
                found.append(code)
                assert str(code.value).isascii() and str(code.meaning).isascii(), name
                assert code.scheme_designator.isascii(), name
    assert len(found) > 50


def test_encoded_parts_stay_raw_when_saved_and_read_back(
    monkeypatch: pytest.MonkeyPatch, record_with_cut: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    sr = _build(monkeypatch, record_with_cut, ct_header, series_uids, highdicom=False)
    reference.file_bytes(sr)
    # pydicom wrote them as they are (parsing them first would cost what was saved)
    assert isinstance(sr.get_item(_EVIDENCE_TAG), RawDataElement)
    assert isinstance(sr.get_item(_CONTENT_SEQUENCE_TAG), RawDataElement)
    # ... and they read back as sequences
    refs = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert [str(r.ReferencedSOPInstanceUID) for r in refs] == series_uids
    measured = read_sr_measurements(sr)
    assert list(measured) == [v.label for v in record_with_cut.vertebrae]
    assert measured["L2"]["assessment"] == "not_assessable"
    assert measured["L2"]["level_status"] == "uncertain"
    assert read_sr_patient_findings(sr)["number_of_vertebrae_not_assessable"] == 1


def test_bad_records_fail_as_in_the_reference(
    monkeypatch: pytest.MonkeyPatch, record: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    broken = replace(record.vertebrae[0])
    broken.heights_mm = {"anterior": 1.0, "middle": 1.0}
    bad = replace(record, vertebrae=[broken])
    for highdicom in (False, True):
        with pytest.raises(ValueError, match="heights_mm lacks 'posterior'"):
            _build(monkeypatch, bad, ct_header, series_uids, highdicom=highdicom)
    reduction = replace(record.vertebrae[0], height_reductions_pct={"tilt": 3.0})
    for highdicom in (False, True):
        with pytest.raises(ValueError, match="unknown height reduction 'tilt'"):
            _build(
                monkeypatch,
                replace(record, vertebrae=[reduction]),
                ct_header,
                series_uids,
                highdicom=highdicom,
            )
    for highdicom in (False, True):
        with pytest.raises(ValueError, match="series_number"):
            _build(monkeypatch, record, ct_header, series_uids, highdicom=highdicom, series_number=0)
        with pytest.raises(ValueError, match="64 characters"):
            _build(monkeypatch, record, ct_header, series_uids, highdicom=highdicom, manufacturer="x" * 65)


def test_code_item_long_values() -> None:
    from pydicom.sr.coding import Code as PydicomCode

    Code = sr_encode.Code
    short = sr_encode.code_item(Code("121207", "DCM", "Height"))
    assert sr_encode.code_item(PydicomCode("121207", "DCM", "Height")) == short  # same attributes
    assert short.startswith(b"\x08\x00\x00\x01SH")  # (0008,0100) Code Value
    long_code = sr_encode.code_item(Code("12345678901234567", "99X", "long"))
    assert b"\x08\x00\x19\x01UC" in long_code  # (0008,0119) Long Code Value
    urn = sr_encode.code_item(Code("urn:oid:1.2.3.4.5.6.7.8.9", "99X", "urn"))
    assert b"\x08\x00\x20\x01UR" in urn  # (0008,0120) URN Code Value
