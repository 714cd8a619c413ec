"""DICOM Structured Report (TID 1500 Measurement Report) of the spinevcf findings.

The SR is a Comprehensive 3D SR. Its content tree is (``docs/sr.md`` shows it as dsrdump
prints it):

* TID 1500 Imaging Measurement Report: language, observer context (device =
  the spinevcf algorithm), procedure reported;
* one TID 1501 Measurement and Qualitative Evaluation Group per vertebral body
  (tracking identifier "<level> vertebral body" + tracking UID, finding type
  vertebral body, finding site = the vertebra's SNOMED CT code, TID 4019
  algorithm identification) holding:

  * three TID 300 Height measurements (DCM 121207, mm) whose finding site
    carries the topographical modifier Anterior / Central / Posterior; each is
    INFERRED FROM two SCOORD3D POINTs, its superior and inferior endplate
    keypoints, in the CT's frame of reference (private concept names
    ``99SPINEVCF SPV051..SPV056``);
  * the height reductions (wedge / biconcave / crush, %) and the vertebral
    fracture probability (UCUM "1");
  * qualitative evaluations: Genant grade (private), deformity type (private)
    and, for grades 1-3, the standard severity Mild / Moderate / Severe;

* one patient-level TID 1501 group: number of vertebral bodies evaluated,
  number of fractured vertebrae (Genant grade >= 1), patient fracture
  probability, "Vertebral body detected" (Yes/No) and "Any vertebral fracture"
  (Yes/No). A study in which no vertebral body was found gets only this group,
  with 0 evaluated and "Vertebral body detected" = No.

Every TID 1501 group carries the TID 4019 Algorithm Identification, which
identifies the algorithm of all the measurements and evaluations in the group
(repeating it on every measurement tripled the size of the tree).
Patient and study attributes are copied from the source CT header;
every instance of the evaluated series is listed in the Current Requested
Procedure Evidence Sequence.

Building uses pydicom alone: the document header by :mod:`spinevcf.report.header`, the
content tree and the evidence list written straight to their bytes by
:mod:`spinevcf.report.sr_encode`. The document is the one highdicom's template classes and
``Comprehensive3DSR`` built before issue 15 (compared byte for byte in
``tests/report/test_sr_encode.py``, where highdicom stays the reference). Reading back
(:func:`read_sr_measurements`, :func:`read_sr_patient_findings`) uses highdicom, imported
when first called, so that writing a report never imports it.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import Comprehensive3DSRStorage, ExplicitVRLittleEndian, generate_uid

from spinevcf._version import __version__
from spinevcf.grading import GRADE_THRESHOLDS
from spinevcf.report import codes as C
from spinevcf.report import header, sr_encode
from spinevcf.report.header import PATIENT_STUDY_KEYWORDS
from spinevcf.report.sr_encode import Code
from spinevcf.schema import KEYPOINT_NAMES, StudyRecord, VertebraRecord

if TYPE_CHECKING:
    import highdicom as hd

__all__ = [
    "ALGORITHM_NAME",
    "SR_SERIES_NUMBER",
    "SR_SERIES_DESCRIPTION",
    "PATIENT_STUDY_KEYWORDS",
    "UID_PATTERN",
    "build_sr",
    "read_sr_measurements",
    "read_sr_patient_findings",
]

logger = logging.getLogger(__name__)

#: Name of the algorithm in TID 4019 and of the observer device.
ALGORITHM_NAME: Final = "spinevcf"
#: Default series number of the SR series.
SR_SERIES_NUMBER: Final = 9901
SR_SERIES_DESCRIPTION: Final = "spinevcf vertebral fracture SR (research use)"
#: A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1).
UID_PATTERN: Final = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UID_MAX_LEN: Final = 64

#: Height key -> (superior keypoint, inferior keypoint) that define it.
_HEIGHT_KEYPOINTS: Final = {
    "anterior": ("anterior_superior", "anterior_inferior"),
    "middle": ("middle_superior", "middle_inferior"),
    "posterior": ("posterior_superior", "posterior_inferior"),
}
#: Current Requested Procedure Evidence Sequence.
_EVIDENCE_TAG: Final = 0x0040A375
_PATIENT_TRACKING_ID: Final = "Patient-level vertebral fracture assessment"
#: Language of the content (RFC 5646), TID 1204.
_LANGUAGE: Final = Code("en-US", "RFC5646", "English (United States)")
#: SR Document General module: the report is complete, not verified, not final.
_COMPLETION_FLAG: Final = "COMPLETE"
_VERIFICATION_FLAG: Final = "UNVERIFIED"
_PRELIMINARY_FLAG: Final = "PRELIMINARY"


def _check_uid(uid: str, what: str) -> str:
    uid = str(uid)
    if len(uid) > _UID_MAX_LEN or not UID_PATTERN.match(uid):
        raise ValueError(f"{what} is not a valid DICOM UID (digits and dots, at most 64 characters)")
    return uid


def _same(a: Code | hd.sr.CodedConcept | None, b: Code) -> bool:
    return a is not None and a.value == b.value and a.scheme_designator == b.scheme_designator


def _check_source(source: Dataset) -> None:
    """Refuse a source header without the identifiers the SR takes from it."""
    if not isinstance(source, Dataset):
        raise TypeError(f"source must be a pydicom Dataset, got {type(source).__name__}")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "FrameOfReferenceUID"):
        if keyword not in source or not str(getattr(source, keyword)).strip():
            raise ValueError(f"source header lacks {keyword}")
        _check_uid(str(getattr(source, keyword)), f"source {keyword}")


def _evidence_uids(source: Dataset, uids: Sequence[str]) -> list[str]:
    """The checked SOP Instance UIDs of the evidence, each once, in the given order.

    Empty ``uids``: the source slice alone.
    """
    if not uids:
        own = str(source.get("SOPInstanceUID", ""))
        if not own:
            raise ValueError(
                "no referenced_sop_instance_uids given and the source header has no SOPInstanceUID"
            )
        uids = [own]
    out: list[str] = []
    seen: set[str] = set()
    for i, uid in enumerate(uids):
        uid = _check_uid(uid, f"referenced_sop_instance_uids[{i}]")
        if uid not in seen:
            seen.add(uid)
            out.append(uid)
    return out


def _algorithm_parameters() -> list[str]:
    thresholds = ",".join(f"{t:.2f}" for t in GRADE_THRESHOLDS)
    return [f"genant_thresholds={thresholds}", "method=Zakharov2023-CPR-keypoints"]


def _group_values(v: VertebraRecord, algorithm: tuple[str, str, Sequence[str]]) -> sr_encode.GroupValues:
    """The TID 1501 group of one vertebral body (an assessed one, or one not assessable).

    A body that is not assessable has no height, no Genant grade, no probability: only the
    level, the status "Not Evaluated" and the reason (docs/sr.md).

    Raises:
        ValueError: a height is missing, or a reduction or reason is unknown.
    """
    level_code = C.LEVEL_CODES[v.label]
    level_measurements = (
        []
        if v.level_confidence is None
        else [(C.LEVEL_CONFIDENCE, float(v.level_confidence), C.UNIT_NO_UNITS)]
    )
    level_evaluations = (
        [] if v.level_status is None else [(C.LEVEL_STATUS, C.LEVEL_STATUS_VALUES[v.level_status])]
    )
    if not v.assessed:
        if v.assessment_reason not in C.NOT_ASSESSABLE_REASON_VALUES:
            raise ValueError(f"vertebra {v.label}: unknown assessment_reason {v.assessment_reason!r}")
        return sr_encode.GroupValues(
            tracking_identifier=f"{v.label} vertebral body",
            tracking_uid=generate_uid(),
            finding_type=C.VERTEBRAL_BODY,
            finding_site=level_code,
            algorithm=algorithm,
            measurements=level_measurements,
            evaluations=[
                (C.ASSESSMENT_STATUS, C.NOT_EVALUATED),
                (C.NOT_ASSESSABLE_REASON, C.NOT_ASSESSABLE_REASON_VALUES[v.assessment_reason]),
                *level_evaluations,
            ],
        )
    kp = {name: v.keypoints[i] for i, name in enumerate(KEYPOINT_NAMES)}
    heights = []
    for key, modifier in C.HEIGHT_MODIFIERS.items():
        if key not in v.heights_mm:
            raise ValueError(f"vertebra {v.label}: heights_mm lacks {key!r}")
        points = [(C.KEYPOINT_CODES[name], [float(x) for x in kp[name]]) for name in _HEIGHT_KEYPOINTS[key]]
        heights.append((C.HEIGHT, float(v.heights_mm[key]), C.UNIT_MM, modifier, points))
    measurements: list[tuple[Code, int | float, Code]] = []
    for key, pct in (v.height_reductions_pct or {}).items():
        if key not in C.HEIGHT_REDUCTION_CODES:
            raise ValueError(
                f"vertebra {v.label}: unknown height reduction {key!r}; "
                f"expected one of {sorted(C.HEIGHT_REDUCTION_CODES)}"
            )
        measurements.append((C.HEIGHT_REDUCTION_CODES[key], float(pct), C.UNIT_PERCENT))
    if v.posterior_height_limit_mm is not None:
        measurements.append((C.POSTERIOR_HEIGHT_LIMIT, float(v.posterior_height_limit_mm), C.UNIT_MM))
    if v.fracture_probability is not None:
        measurements.append(
            (C.VERTEBRAL_FRACTURE_PROBABILITY, float(v.fracture_probability), C.UNIT_NO_UNITS)
        )
    evaluations = [
        (C.GENANT_GRADE, C.GENANT_GRADE_VALUES[v.genant_grade]),
        (C.DEFORMITY_TYPE, C.DEFORMITY_VALUES[v.deformity]),
    ]
    if v.genant_grade in C.GRADE_SEVERITY:
        evaluations.append((C.SEVERITY, C.GRADE_SEVERITY[v.genant_grade]))
    return sr_encode.GroupValues(
        tracking_identifier=f"{v.label} vertebral body",
        tracking_uid=generate_uid(),
        finding_type=C.VERTEBRAL_BODY,
        finding_site=level_code,
        algorithm=algorithm,
        heights=heights,
        measurements=[*measurements, *level_measurements],
        evaluations=[*evaluations, *level_evaluations],
    )


def _patient_group_values(
    record: StudyRecord, algorithm: tuple[str, str, Sequence[str]]
) -> sr_encode.GroupValues:
    """The patient-level TID 1501 group (also the only group when no vertebra was found).

    The counts are integers (Numeric Value only); the probability a float.
    """
    n_eval = sum(1 for v in record.vertebrae if v.assessed)
    n_not = len(record.vertebrae) - n_eval
    n_frac = sum(1 for v in record.vertebrae if v.fractured)
    fractured = record.patient_fractured if record.patient_fractured is not None else n_frac > 0
    measurements: list[tuple[Code, int | float, Code]] = [
        (C.NUMBER_OF_VERTEBRAE_EVALUATED, n_eval, C.UNIT_NO_UNITS),
        (C.NUMBER_OF_VERTEBRAE_NOT_ASSESSABLE, n_not, C.UNIT_NO_UNITS),
        (C.NUMBER_OF_FRACTURED_VERTEBRAE, n_frac, C.UNIT_NO_UNITS),
    ]
    if record.patient_fracture_probability is not None:
        measurements.append(
            (C.PATIENT_FRACTURE_PROBABILITY, float(record.patient_fracture_probability), C.UNIT_NO_UNITS)
        )
    return sr_encode.GroupValues(
        tracking_identifier=_PATIENT_TRACKING_ID,
        tracking_uid=generate_uid(),
        finding_type=C.VERTEBRAL_FRACTURE_ASSESSMENT,
        finding_site=C.SPINE,
        algorithm=algorithm,
        measurements=measurements,
        evaluations=[
            (C.VERTEBRAL_BODY_DETECTED, C.YES if record.vertebrae else C.NO),
            (C.ANY_VERTEBRAL_FRACTURE, C.YES if fractured else C.NO),
        ],
    )


def build_sr(
    record: StudyRecord,
    source: Dataset,
    *,
    referenced_sop_instance_uids: Sequence[str] = (),
    series_number: int = SR_SERIES_NUMBER,
    instance_number: int = 1,
    algorithm_version: str = __version__,
    manufacturer: str = ALGORITHM_NAME,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> FileDataset:
    """Build the TID 1500 Measurement Report of a study as a Comprehensive 3D SR.

    Args:
        record: the study's findings (vertebrae cranial to caudal).
        source: one CT slice header of the evaluated series
            (``volume.info.dataset``); patient, study and frame of reference
            are taken from it. It is not modified.
        referenced_sop_instance_uids: SOP Instance UIDs of every slice of the
            evaluated series, recorded as evidence; empty = the source slice only.
        series_number: Series Number of the new SR series.
        instance_number: Instance Number of the SR.
        algorithm_version: version recorded in TID 4019 and the observer device.
        manufacturer: Manufacturer of the SR and of the observer device.
        series_instance_uid: UID of the new series (generated when ``None``).
        sop_instance_uid: UID of the SR instance (generated when ``None``).

    Returns:
        The SR dataset (Explicit VR Little Endian), ready for ``save_as``. Its content tree
        and evidence list are encoded already and written as they are;
        :func:`highdicom.sr.srread` (or ``highdicom.sr.Comprehensive3DSR.from_dataset``)
        gives its content as highdicom objects, and :func:`read_sr_measurements` reads it back.

    Raises:
        TypeError: ``source`` is not a pydicom Dataset, or a number is not an integer.
        ValueError: a required attribute is missing, a UID is malformed, the
            record belongs to another study or series, a vertebra lacks a height,
            a number is below 1 or the manufacturer is not a valid DICOM LO.

    Example:
        >>> sr = build_sr(record, volume.info.dataset,
        ...               referenced_sop_instance_uids=volume.info.sop_instance_uids)  # doctest: +SKIP
        >>> sr.save_as(out / "spine_sr.dcm")  # doctest: +SKIP
    """
    if not isinstance(record, StudyRecord):
        raise TypeError(f"record must be a StudyRecord, got {type(record).__name__}")
    _check_source(source)
    if record.study_instance_uid and record.study_instance_uid != str(source.StudyInstanceUID):
        raise ValueError("record.study_instance_uid differs from the source header's StudyInstanceUID")
    if record.series_instance_uid and record.series_instance_uid != str(source.SeriesInstanceUID):
        raise ValueError("record.series_instance_uid differs from the source header's SeriesInstanceUID")
    labels = [v.label for v in record.vertebrae]
    if len(set(labels)) != len(labels):
        raise ValueError("record lists a vertebral level more than once")
    for_uid = str(source.FrameOfReferenceUID)
    evidence = _evidence_uids(source, referenced_sop_instance_uids)
    algorithm = (ALGORITHM_NAME, algorithm_version, _algorithm_parameters())
    # UIDs are drawn in this order: tracking UIDs (vertebrae, then the patient group),
    # device observer, series, instance (tests/report/highdicom_reference.py draws alike).
    groups = [_group_values(v, algorithm) for v in record.vertebrae]
    groups.append(_patient_group_values(record, algorithm))
    device = sr_encode.DeviceObserver(
        uid=generate_uid(entropy_srcs=[ALGORITHM_NAME, algorithm_version]),
        name=ALGORITHM_NAME,
        manufacturer=manufacturer,
        model_name=f"{ALGORITHM_NAME} {algorithm_version}",
    )
    series_uid = (
        _check_uid(series_instance_uid, "series_instance_uid") if series_instance_uid else generate_uid()
    )
    sop_uid = _check_uid(sop_instance_uid, "sop_instance_uid") if sop_instance_uid else generate_uid()

    sr = header.new_instance(
        source,
        sop_class_uid=Comprehensive3DSRStorage,
        sop_instance_uid=sop_uid,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_instance_uid=series_uid,
        series_number=series_number,
        instance_number=instance_number,
        modality="SR",
        manufacturer=manufacturer,
        series_description=SR_SERIES_DESCRIPTION,
        now=datetime.datetime.now(),
    )
    # SR Document General module (no request, no performed procedure step).
    sr.CompletionFlag = _COMPLETION_FLAG
    sr.VerificationFlag = _VERIFICATION_FLAG
    sr.PreliminaryFlag = _PRELIMINARY_FLAG
    sr.PerformedProcedureCodeSequence = []
    sr.ReferencedPerformedProcedureStepSequence = []
    sr.CodingSchemeIdentificationSequence = [C.coding_scheme_identification()]
    encodings = convert_encodings(sr.get("SpecificCharacterSet", sr_encode.DEFAULT_ENCODINGS[0]))
    content = sr_encode.measurement_report_content(
        language=_LANGUAGE,
        device=device,
        procedure_reported=C.PROCEDURE_CT,
        groups=[sr_encode.measurement_group_item(g, for_uid, encodings) for g in groups],
        encodings=encodings,
    )
    for element in sr_encode.root_elements(
        C.IMAGING_MEASUREMENT_REPORT, sr_encode.MEASUREMENT_REPORT_TEMPLATE, content
    ):
        sr[element.tag] = element
    sr[_EVIDENCE_TAG] = sr_encode.raw_sequence(
        _EVIDENCE_TAG,
        sr_encode.evidence_sequence_value(
            str(source.StudyInstanceUID), str(source.SeriesInstanceUID), str(source.SOPClassUID), evidence
        ),
    )
    # The raw elements are explicit VR little endian in the document's character set: marked
    # so, pydicom's writer copies them as they are instead of parsing them first.
    sr.set_original_encoding(False, True, sr._character_set)
    logger.info(
        "built measurement report: %d vertebral bodies, %d evidence instances",
        len(record.vertebrae),
        len(evidence),
    )
    return sr


# --------------------------------------------------------------------------- reading back
def _load_report(path: str | Path | Dataset) -> hd.sr.MeasurementReport:
    import highdicom as hd  # reading only: writing a report never imports highdicom (issue 15)

    sr = path if isinstance(path, Dataset) else hd.sr.srread(path)
    if not isinstance(sr, hd.sr.Comprehensive3DSR):
        sr = hd.sr.Comprehensive3DSR.from_dataset(sr)
    content = sr.content
    if not isinstance(content, hd.sr.MeasurementReport):
        raise ValueError("the SR does not hold a TID 1500 Measurement Report")
    return content


def _lookup(code: hd.sr.CodedConcept, table: dict[Any, Code] | Any, what: str) -> Any:
    for key, candidate in table.items():
        if _same(code, candidate):
            return key
    raise ValueError(f"unexpected {what} code {code.value} ({code.scheme_designator})")


def _evaluation_values(
    group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code
) -> list[hd.sr.CodedConcept]:
    from highdicom.sr import CodedConcept  # imported already by _load_report

    values: list[hd.sr.CodedConcept] = []
    for evaluation in group.get_qualitative_evaluations(name=name.as_pydicom()):
        value = evaluation.value
        if not isinstance(value, CodedConcept):
            raise ValueError(f"{name.meaning!r} evaluation does not hold a code")
        values.append(value)
    return values


def _single_evaluation(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code) -> hd.sr.CodedConcept:
    found = _evaluation_values(group, name)
    if len(found) != 1:
        raise ValueError(f"expected one {name.meaning!r} evaluation, found {len(found)}")
    return found[0]


def _single_value(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code) -> float | None:
    found = group.get_measurements(name=name.as_pydicom())
    if len(found) > 1:
        raise ValueError(f"expected at most one {name.meaning!r} measurement, found {len(found)}")
    return float(found[0].value) if found else None


def _read_vertebra(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> tuple[str, dict[str, Any]]:
    sites = group.finding_sites
    if len(sites) != 1:
        raise ValueError("a vertebral body group must have exactly one finding site")
    level = _lookup(sites[0].value, dict(C.LEVEL_CODES), "vertebral level")
    level_values = _read_level(group)
    status = _evaluation_values(group, C.ASSESSMENT_STATUS)
    if status:
        if not _same(status[0], C.NOT_EVALUATED):
            raise ValueError(f"{level}: unknown assessment status {status[0].meaning!r}")
        reason = _lookup(
            _single_evaluation(group, C.NOT_ASSESSABLE_REASON), dict(C.NOT_ASSESSABLE_REASON_VALUES), "reason"
        )
        return level, {
            "tracking_identifier": group.tracking_identifier,
            "tracking_uid": str(group.tracking_uid),
            "assessment": "not_assessable",
            "assessment_reason": reason,
            "heights_mm": {},
            "height_reductions_pct": None,
            "posterior_height_limit_mm": None,
            "genant_grade": None,
            "deformity": "none",
            "severity": None,
            "fracture_probability": None,
            "keypoints_lps_mm": None,
            **level_values,
        }
    heights: dict[str, float] = {}
    keypoints: dict[str, list[float]] = {}
    for m in group.get_measurements(name=C.HEIGHT.as_pydicom()):
        if not _same(m.unit, C.UNIT_MM):
            raise ValueError(f"{level}: height unit is not mm")
        modifiers = [fs.topographical_modifier for fs in m.finding_sites]
        if len(modifiers) != 1 or modifiers[0] is None:
            raise ValueError(f"{level}: a height lacks its topographical modifier")
        key = _lookup(modifiers[0], dict(C.HEIGHT_MODIFIERS), "height modifier")
        heights[key] = float(m.value)
        for coord in m.referenced_coordinates:
            name = _lookup(coord.name, dict(C.KEYPOINT_CODES), "keypoint")
            keypoints[name] = [float(x) for x in np.asarray(coord.value, dtype=np.float64).reshape(-1, 3)[0]]
    reductions = {
        key: value
        for key, code in C.HEIGHT_REDUCTION_CODES.items()
        if (value := _single_value(group, code)) is not None
    }
    severity = [value.meaning for value in _evaluation_values(group, C.SEVERITY)]
    missing = [n for n in KEYPOINT_NAMES if n not in keypoints]
    if missing:
        raise ValueError(f"{level}: keypoints missing: {missing}")
    return level, {
        "tracking_identifier": group.tracking_identifier,
        "tracking_uid": str(group.tracking_uid),
        "heights_mm": heights,
        "height_reductions_pct": reductions or None,
        "posterior_height_limit_mm": _single_value(group, C.POSTERIOR_HEIGHT_LIMIT),
        "genant_grade": _lookup(
            _single_evaluation(group, C.GENANT_GRADE), dict(C.GENANT_GRADE_VALUES), "grade"
        ),
        "deformity": _lookup(
            _single_evaluation(group, C.DEFORMITY_TYPE), dict(C.DEFORMITY_VALUES), "deformity"
        ),
        "severity": severity[0] if severity else None,
        "fracture_probability": _single_value(group, C.VERTEBRAL_FRACTURE_PROBABILITY),
        "keypoints_lps_mm": [keypoints[n] for n in KEYPOINT_NAMES],
        "assessment": "assessed",
        "assessment_reason": None,
        **level_values,
    }


def _read_level(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> dict[str, Any]:
    status = _evaluation_values(group, C.LEVEL_STATUS)
    return {
        "level_confidence": _single_value(group, C.LEVEL_CONFIDENCE),
        "level_status": _lookup(status[0], dict(C.LEVEL_STATUS_VALUES), "level status") if status else None,
    }


def _split_groups(
    report: hd.sr.MeasurementReport,
) -> tuple[list[hd.sr.MeasurementsAndQualitativeEvaluations], hd.sr.MeasurementsAndQualitativeEvaluations]:
    vertebrae, patient = [], []
    for group in report.get_image_measurement_groups():
        if _same(group.finding_type, C.VERTEBRAL_FRACTURE_ASSESSMENT):
            patient.append(group)
        elif _same(group.finding_type, C.VERTEBRAL_BODY):
            vertebrae.append(group)
    if len(patient) != 1:
        raise ValueError(f"expected one patient-level group, found {len(patient)}")
    return vertebrae, patient[0]


def read_sr_measurements(path: str | Path | Dataset) -> dict[str, dict[str, Any]]:
    """Read the per-vertebra findings back from a spinevcf SR with highdicom.

    Args:
        path: an SR file written from :func:`build_sr` (or the dataset itself).

    Returns:
        ``{level: {...}}`` in SR order (cranial to caudal) with the keys
        ``heights_mm`` (anterior/middle/posterior, mm), ``height_reductions_pct``
        (or ``None``), ``posterior_height_limit_mm`` (or ``None``), ``genant_grade`` (0-3),
        ``deformity``, ``severity``
        (code meaning or ``None``), ``fracture_probability`` (or ``None``),
        ``keypoints_lps_mm`` (6 x 3, :data:`spinevcf.schema.KEYPOINT_NAMES` order),
        ``tracking_identifier`` and ``tracking_uid``: the same names as in results.json.

    Raises:
        ValueError: the SR is not a spinevcf TID 1500 report or is inconsistent.
    """
    vertebrae, _ = _split_groups(_load_report(path))
    out: dict[str, dict[str, Any]] = {}
    for group in vertebrae:
        level, values = _read_vertebra(group)
        if level in out:
            raise ValueError(f"level {level} is reported twice")
        out[level] = values
    return out


def read_sr_patient_findings(path: str | Path | Dataset) -> dict[str, Any]:
    """Read the patient-level group back from a spinevcf SR.

    Returns:
        ``patient_fractured`` (bool), ``patient_fracture_probability`` (or ``None``),
        ``vertebral_body_detected`` (bool), ``number_of_vertebrae_evaluated`` and
        ``number_of_fractured_vertebrae`` (int).
    """
    _, group = _split_groups(_load_report(path))
    yes_no = {True: C.YES, False: C.NO}
    n_eval = _single_value(group, C.NUMBER_OF_VERTEBRAE_EVALUATED)
    n_frac = _single_value(group, C.NUMBER_OF_FRACTURED_VERTEBRAE)
    if n_eval is None or n_frac is None:
        raise ValueError("patient-level group lacks its vertebra counts")
    return {
        "patient_fractured": _lookup(_single_evaluation(group, C.ANY_VERTEBRAL_FRACTURE), yes_no, "yes/no"),
        "patient_fracture_probability": _single_value(group, C.PATIENT_FRACTURE_PROBABILITY),
        "vertebral_body_detected": _lookup(
            _single_evaluation(group, C.VERTEBRAL_BODY_DETECTED), yes_no, "yes/no"
        ),
        "number_of_vertebrae_evaluated": int(n_eval),
        "number_of_vertebrae_not_assessable": int(
            _single_value(group, C.NUMBER_OF_VERTEBRAE_NOT_ASSESSABLE) or 0
        ),
        "number_of_fractured_vertebrae": int(n_frac),
    }
