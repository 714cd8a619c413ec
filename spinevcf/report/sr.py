"""DICOM Structured Report (TID 1500 Measurement Report) of the spinevcf findings.

The SR is a Comprehensive 3D SR built with highdicom. Its content tree is
(``docs/sr.md`` shows it as dsrdump prints it):

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
Patient and study attributes are copied by highdicom from the source CT header;
every instance of the evaluated series is listed in the Current Requested
Procedure Evidence Sequence.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from spinevcf._version import __version__
from spinevcf.grading import GRADE_THRESHOLDS
from spinevcf.report import codes as C
from spinevcf.report import sr_encode
from spinevcf.schema import KEYPOINT_NAMES, StudyRecord, VertebraRecord

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
#: Content Sequence and Current Requested Procedure Evidence Sequence.
_CONTENT_SEQUENCE_TAG: Final = 0x0040A730
_EVIDENCE_TAG: Final = 0x0040A375
_PATIENT_TRACKING_ID: Final = "Patient-level vertebral fracture assessment"
#: Patient/study attributes copied from the source CT into every derived object (SR, SC);
#: highdicom reads them from the first evidence item (type 2 in the SR IOD).
PATIENT_STUDY_KEYWORDS: Final = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_COPIED_FOR_EVIDENCE: Final = (
    *PATIENT_STUDY_KEYWORDS,
    "SpecificCharacterSet",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "Modality",
)


def _check_uid(uid: str, what: str) -> str:
    uid = str(uid)
    if len(uid) > _UID_MAX_LEN or not UID_PATTERN.match(uid):
        raise ValueError(f"{what} is not a valid DICOM UID (digits and dots, at most 64 characters)")
    return uid


def _same(a: Code | hd.sr.CodedConcept | None, b: Code) -> bool:
    return a is not None and a.value == b.value and a.scheme_designator == b.scheme_designator


def _algorithm_id(version: str) -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification with the grading parameters."""
    return hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME, version=version, parameters=_algorithm_parameters()
    )


def _prepare_source(source: Dataset) -> Dataset:
    """Validate the source CT header and return a copy with the type 2 attributes present."""
    if not isinstance(source, Dataset):
        raise TypeError(f"source must be a pydicom Dataset, got {type(source).__name__}")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "FrameOfReferenceUID"):
        if keyword not in source or not str(getattr(source, keyword)).strip():
            raise ValueError(f"source header lacks {keyword}")
        _check_uid(str(getattr(source, keyword)), f"source {keyword}")
    src = Dataset()
    for keyword in _COPIED_FOR_EVIDENCE:
        if keyword in source:
            setattr(src, keyword, getattr(source, keyword))
        elif keyword in PATIENT_STUDY_KEYWORDS:
            setattr(src, keyword, None)
    src.SOPInstanceUID = source.get("SOPInstanceUID", "")
    return src


def _evidence(src: Dataset, uids: Sequence[str], *, uid_only: bool = False) -> list[Dataset]:
    """One minimal header per referenced instance of the evaluated series.

    highdicom copies the patient and study attributes from the first item only and reads
    just the study, series, SOP class and SOP instance UIDs of the others, so only the
    first is a full copy of ``src``; the others hold those four UIDs (a deep copy of the
    whole header per slice was a sizeable part of building the SR). With ``uid_only``
    the others are the checked UID strings alone (:mod:`sr_encode` writes their items).
    """
    if not uids:
        if not str(src.SOPInstanceUID):
            raise ValueError(
                "no referenced_sop_instance_uids given and the source header has no SOPInstanceUID"
            )
        uids = [str(src.SOPInstanceUID)]
    out: list[Dataset] = []
    seen: set[str] = set()
    for i, uid in enumerate(uids):
        uid = _check_uid(uid, f"referenced_sop_instance_uids[{i}]")
        if uid in seen:
            continue
        seen.add(uid)
        if out and uid_only:
            out.append(uid)  # type: ignore[arg-type]
            continue
        if out:
            ds = Dataset()
            ds.StudyInstanceUID = src.StudyInstanceUID
            ds.SeriesInstanceUID = src.SeriesInstanceUID
            ds.SOPClassUID = src.SOPClassUID
        else:
            ds = copy.deepcopy(src)  # Dataset.update would share (and so overwrite) the UID element
        ds.SOPInstanceUID = uid
        out.append(ds)
    return out


def _vertebra_group(
    v: VertebraRecord, frame_of_reference_uid: str, algo: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one vertebral body (an assessed one, or one not assessable)."""
    level_code = C.LEVEL_CODES[v.label]
    if not v.assessed:
        return _not_assessable_group(v, algo)
    kp = {name: v.keypoints[i] for i, name in enumerate(KEYPOINT_NAMES)}
    measurements: list[hd.sr.Measurement] = []
    for key, modifier in C.HEIGHT_MODIFIERS.items():
        if key not in v.heights_mm:
            raise ValueError(f"vertebra {v.label}: heights_mm lacks {key!r}")
        sup, inf = _HEIGHT_KEYPOINTS[key]
        coords = [
            hd.sr.CoordinatesForMeasurement3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.asarray([kp[name]], dtype=np.float64),
                frame_of_reference_uid=frame_of_reference_uid,
                purpose=C.KEYPOINT_CODES[name],
            )
            for name in (sup, inf)
        ]
        measurements.append(
            hd.sr.Measurement(
                name=C.HEIGHT,
                value=float(v.heights_mm[key]),
                unit=C.UNIT_MM,
                finding_sites=[hd.sr.FindingSite(level_code, topographical_modifier=modifier)],
                referenced_coordinates=coords,
            )
        )
    for key, pct in (v.height_reductions_pct or {}).items():
        if key not in C.HEIGHT_REDUCTION_CODES:
            raise ValueError(
                f"vertebra {v.label}: unknown height reduction {key!r}; "
                f"expected one of {sorted(C.HEIGHT_REDUCTION_CODES)}"
            )
        measurements.append(
            hd.sr.Measurement(name=C.HEIGHT_REDUCTION_CODES[key], value=float(pct), unit=C.UNIT_PERCENT)
        )
    if v.fracture_probability is not None:
        measurements.append(
            hd.sr.Measurement(
                name=C.VERTEBRAL_FRACTURE_PROBABILITY,
                value=float(v.fracture_probability),
                unit=C.UNIT_NO_UNITS,
            )
        )
    evaluations = [
        hd.sr.QualitativeEvaluation(C.GENANT_GRADE, C.GENANT_GRADE_VALUES[v.genant_grade]),
        hd.sr.QualitativeEvaluation(C.DEFORMITY_TYPE, C.DEFORMITY_VALUES[v.deformity]),
    ]
    if v.genant_grade in C.GRADE_SEVERITY:
        evaluations.append(hd.sr.QualitativeEvaluation(C.SEVERITY, C.GRADE_SEVERITY[v.genant_grade]))
    measurements.extend(_level_measurements(v))
    evaluations.extend(_level_evaluations(v))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=f"{v.label} vertebral body"
        ),
        finding_type=C.VERTEBRAL_BODY,
        algorithm_id=algo,
        finding_sites=[hd.sr.FindingSite(level_code)],
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def _level_measurements(v: VertebraRecord) -> list[hd.sr.Measurement]:
    if v.level_confidence is None:
        return []
    return [hd.sr.Measurement(name=C.LEVEL_CONFIDENCE, value=float(v.level_confidence), unit=C.UNIT_NO_UNITS)]


def _level_evaluations(v: VertebraRecord) -> list[hd.sr.QualitativeEvaluation]:
    if v.level_status is None:
        return []
    return [hd.sr.QualitativeEvaluation(C.LEVEL_STATUS, C.LEVEL_STATUS_VALUES[v.level_status])]


def _not_assessable_group(
    v: VertebraRecord, algo: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of a detected body the image cannot support a finding for.

    No height, no Genant grade, no probability: only the level, the status "Not Evaluated"
    and the reason (docs/sr.md).
    """
    if v.assessment_reason not in C.NOT_ASSESSABLE_REASON_VALUES:
        raise ValueError(f"vertebra {v.label}: unknown assessment_reason {v.assessment_reason!r}")
    evaluations = [
        hd.sr.QualitativeEvaluation(C.ASSESSMENT_STATUS, C.NOT_EVALUATED),
        hd.sr.QualitativeEvaluation(
            C.NOT_ASSESSABLE_REASON, C.NOT_ASSESSABLE_REASON_VALUES[v.assessment_reason]
        ),
        *_level_evaluations(v),
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=f"{v.label} vertebral body"
        ),
        finding_type=C.VERTEBRAL_BODY,
        algorithm_id=algo,
        finding_sites=[hd.sr.FindingSite(C.LEVEL_CODES[v.label])],
        measurements=_level_measurements(v) or None,
        qualitative_evaluations=evaluations,
    )


def _algorithm_parameters() -> list[str]:
    thresholds = ",".join(f"{t:.2f}" for t in GRADE_THRESHOLDS)
    return [f"genant_thresholds={thresholds}", "method=Zakharov2023-CPR-keypoints"]


def _group_values(v: VertebraRecord, algorithm_version: str) -> sr_encode.GroupValues:
    """What :func:`_vertebra_group` puts into one body's group, for :mod:`sr_encode`.

    Checks the record as :func:`_vertebra_group` does (same errors) and draws the tracking
    UID at the same point, so both paths give the same document.
    """
    level_code = C.LEVEL_CODES[v.label]
    algorithm = (ALGORITHM_NAME, algorithm_version, _algorithm_parameters())
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
    measurements: list[tuple[Code, float, Code]] = []
    for key, pct in (v.height_reductions_pct or {}).items():
        if key not in C.HEIGHT_REDUCTION_CODES:
            raise ValueError(
                f"vertebra {v.label}: unknown height reduction {key!r}; "
                f"expected one of {sorted(C.HEIGHT_REDUCTION_CODES)}"
            )
        measurements.append((C.HEIGHT_REDUCTION_CODES[key], float(pct), C.UNIT_PERCENT))
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


def _encode_dataset(ds: Dataset) -> bytes:
    """``ds`` as pydicom writes it inside a sequence item (explicit VR little endian)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def _patient_group(
    record: StudyRecord, algo: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 patient-level group (also the only group when no vertebra was found)."""
    n_eval = sum(1 for v in record.vertebrae if v.assessed)
    n_not = len(record.vertebrae) - n_eval
    n_frac = sum(1 for v in record.vertebrae if v.fractured)
    fractured = record.patient_fractured if record.patient_fractured is not None else n_frac > 0
    measurements = [
        hd.sr.Measurement(C.NUMBER_OF_VERTEBRAE_EVALUATED, n_eval, C.UNIT_NO_UNITS),
        hd.sr.Measurement(C.NUMBER_OF_VERTEBRAE_NOT_ASSESSABLE, n_not, C.UNIT_NO_UNITS),
        hd.sr.Measurement(C.NUMBER_OF_FRACTURED_VERTEBRAE, n_frac, C.UNIT_NO_UNITS),
    ]
    if record.patient_fracture_probability is not None:
        measurements.append(
            hd.sr.Measurement(
                C.PATIENT_FRACTURE_PROBABILITY,
                float(record.patient_fracture_probability),
                C.UNIT_NO_UNITS,
            )
        )
    evaluations = [
        hd.sr.QualitativeEvaluation(C.VERTEBRAL_BODY_DETECTED, C.YES if record.vertebrae else C.NO),
        hd.sr.QualitativeEvaluation(C.ANY_VERTEBRAL_FRACTURE, C.YES if fractured else C.NO),
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=_PATIENT_TRACKING_ID),
        finding_type=C.VERTEBRAL_FRACTURE_ASSESSMENT,
        algorithm_id=algo,
        finding_sites=[hd.sr.FindingSite(C.SPINE)],
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def _attach_encoded(sr: FileDataset, groups: Sequence[bytes], evidence: Sequence[Dataset | str]) -> None:
    """Put the directly encoded vertebra groups and evidence list into ``sr``.

    The groups go before the patient-level group in the Imaging Measurements container,
    the evidence replaces the one-instance list highdicom made. Both are raw elements:
    pydicom writes them as they are, and parses them (like any element read from a file)
    when they are accessed. The datasets holding them are marked as explicit VR little
    endian in their own character set, so that pydicom's writer does not parse them first.
    """
    container = sr.ContentSequence[-1]
    patient = [_encode_dataset(item) for item in container.ContentSequence]
    container[_CONTENT_SEQUENCE_TAG] = sr_encode.raw_sequence(
        _CONTENT_SEQUENCE_TAG, sr_encode.sequence_value([*groups, *patient])
    )
    container.set_original_encoding(False, True, container._character_set)
    first = evidence[0]
    assert isinstance(first, Dataset)
    uids = [str(first.SOPInstanceUID), *(str(u) for u in evidence[1:])]
    sr[_EVIDENCE_TAG] = sr_encode.raw_sequence(
        _EVIDENCE_TAG,
        sr_encode.evidence_sequence_value(
            str(first.StudyInstanceUID), str(first.SeriesInstanceUID), str(first.SOPClassUID), uids
        ),
    )
    sr.set_original_encoding(False, True, sr._character_set)


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
    direct_encoding: bool = True,
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
        direct_encoding: write the vertebra groups and the evidence list straight to
            their bytes (:mod:`spinevcf.report.sr_encode`; the same document, about 10x
            faster to build and save) instead of through highdicom's template classes.
            Text that is not ASCII always takes the highdicom path.

    Returns:
        The SR dataset, ready for ``save_as``; :func:`highdicom.sr.srread` (or
        ``highdicom.sr.Comprehensive3DSR.from_dataset``) gives its content as highdicom
        objects, and :func:`read_sr_measurements` reads it back.

    Raises:
        TypeError: ``source`` is not a pydicom Dataset.
        ValueError: a required attribute is missing, a UID is malformed, the
            record belongs to another study or series, or a vertebra lacks a height.

    Example:
        >>> sr = build_sr(record, volume.info.dataset,
        ...               referenced_sop_instance_uids=volume.info.sop_instance_uids)  # doctest: +SKIP
        >>> sr.save_as(out / "spine_sr.dcm")  # doctest: +SKIP
    """
    if not isinstance(record, StudyRecord):
        raise TypeError(f"record must be a StudyRecord, got {type(record).__name__}")
    src = _prepare_source(source)
    if record.study_instance_uid and record.study_instance_uid != str(src.StudyInstanceUID):
        raise ValueError("record.study_instance_uid differs from the source header's StudyInstanceUID")
    if record.series_instance_uid and record.series_instance_uid != str(src.SeriesInstanceUID):
        raise ValueError("record.series_instance_uid differs from the source header's SeriesInstanceUID")
    labels = [v.label for v in record.vertebrae]
    if len(set(labels)) != len(labels):
        raise ValueError("record lists a vertebral level more than once")
    for_uid = str(source.FrameOfReferenceUID)
    algo = _algorithm_id(algorithm_version)
    direct = direct_encoding and sr_encode.is_ascii(algorithm_version, *labels)
    evidence = _evidence(src, referenced_sop_instance_uids, uid_only=direct)

    if direct:
        encoded = [
            sr_encode.vertebra_group_item(_group_values(v, algorithm_version), for_uid)
            for v in record.vertebrae
        ]
        groups = [_patient_group(record, algo)]
    else:
        groups = [_vertebra_group(v, for_uid, algo) for v in record.vertebrae]
        groups.append(_patient_group(record, algo))
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[ALGORITHM_NAME, algorithm_version]),
        name=ALGORITHM_NAME,
        manufacturer_name=manufacturer,
        model_name=f"{ALGORITHM_NAME} {algorithm_version}",
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=C.PROCEDURE_CT,
        imaging_measurements=groups,
        title=C.IMAGING_MEASUREMENT_REPORT,
        language_of_content_item_and_descendants=hd.sr.LanguageOfContentItemAndDescendants(
            hd.sr.CodedConcept("en-US", "RFC5646", "English (United States)")
        ),
    )
    root = report[0]
    # highdicom's SR constructor deep-copies the content tree, parses the copy back into its
    # content-item classes and walks it twice looking for IMAGE/COMPOSITE references (the
    # evidence check): about 60 % of building a 20-vertebra report. The tree holds no such
    # references (only SCOORD3D points in the CT's frame of reference), so the document is
    # built around the root container alone, which yields the same modules and evidence, and
    # the finished tree is then attached as it is.
    stub = Dataset()
    for element in root:
        if element.keyword != "ContentSequence":
            stub.add(element)
    stub.ContentSequence = []
    document = hd.sr.Comprehensive3DSR(
        evidence=evidence[:1] if direct else evidence,
        content=stub,
        series_instance_uid=_check_uid(series_instance_uid, "series_instance_uid")
        if series_instance_uid
        else generate_uid(),
        series_number=series_number,
        sop_instance_uid=_check_uid(sop_instance_uid, "sop_instance_uid")
        if sop_instance_uid
        else generate_uid(),
        instance_number=instance_number,
        manufacturer=manufacturer,
        is_complete=True,
        series_description=SR_SERIES_DESCRIPTION,
    )
    sr = FileDataset("", Dataset(document), file_meta=document.file_meta, preamble=b"\0" * 128)
    sr.ContentSequence = root.ContentSequence
    sr.CodingSchemeIdentificationSequence = [C.coding_scheme_identification()]
    if direct:
        _attach_encoded(sr, encoded, evidence)
    logger.info(
        "built measurement report: %d vertebral bodies, %d evidence instances",
        len(record.vertebrae),
        len(referenced_sop_instance_uids) or 1,
    )
    return sr


# --------------------------------------------------------------------------- reading back
def _load_report(path: str | Path | Dataset) -> hd.sr.MeasurementReport:
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
    values: list[hd.sr.CodedConcept] = []
    for evaluation in group.get_qualitative_evaluations(name=name):
        value = evaluation.value
        if not isinstance(value, hd.sr.CodedConcept):
            raise ValueError(f"{name.meaning!r} evaluation does not hold a code")
        values.append(value)
    return values


def _single_evaluation(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code) -> hd.sr.CodedConcept:
    found = _evaluation_values(group, name)
    if len(found) != 1:
        raise ValueError(f"expected one {name.meaning!r} evaluation, found {len(found)}")
    return found[0]


def _single_value(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code) -> float | None:
    found = group.get_measurements(name=name)
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
            "genant_grade": None,
            "deformity": "none",
            "severity": None,
            "fracture_probability": None,
            "keypoints_lps_mm": None,
            **level_values,
        }
    heights: dict[str, float] = {}
    keypoints: dict[str, list[float]] = {}
    for m in group.get_measurements(name=C.HEIGHT):
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
        (or ``None``), ``genant_grade`` (0-3), ``deformity``, ``severity``
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
