"""The spinevcf SR and Secondary Capture as highdicom builds them: the reference of the tests.

Until issue 15 this was how ``spinevcf.report`` made its DICOM objects: every SR content
item with highdicom's template classes (TID 1500 / 1501 / 300 / 4019), the SR document with
``highdicom.sr.Comprehensive3DSR`` and the picture with ``highdicom.sc.SCImage``. The run
path now writes them with pydicom alone (``spinevcf/report/header.py``, ``sr_encode.py``);
this module keeps the highdicom construction, unchanged, only for the tests, which compare
the two encodings byte for byte (``test_sr_encode.py``, ``test_capture_reference.py``).

Generated UIDs are drawn in the same order as in :func:`spinevcf.report.sr.build_sr`
(tracking UIDs in vertebra order, the patient-level group's, the device observer's, the
series', the instance's), so that a test that replaces ``generate_uid`` in both modules by
one counter gets the same UIDs from both.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.sr.codedict import codes as pydicom_codes
from pydicom.uid import generate_uid

from spinevcf._version import __version__
from spinevcf.report import codes, header
from spinevcf.report.capture import CAPTION, SC_BODY_PART, SC_SERIES_DESCRIPTION, SC_SERIES_NUMBER
from spinevcf.report.sr import (
    _HEIGHT_KEYPOINTS,
    _PATIENT_TRACKING_ID,
    ALGORITHM_NAME,
    PATIENT_STUDY_KEYWORDS,
    SR_SERIES_DESCRIPTION,
    SR_SERIES_NUMBER,
    _algorithm_parameters,
    _check_uid,
)
from spinevcf.schema import KEYPOINT_NAMES, StudyRecord, VertebraRecord

__all__ = [
    "reference_sr",
    "reference_secondary_capture",
    "fix_times",
    "name_pydicom_as_writer",
    "file_bytes",
    "assert_same_file",
]


class _PydicomCodes:
    """:mod:`spinevcf.report.codes` with every code as pydicom's ``Code`` (what highdicom takes)."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(codes, name)
        if isinstance(value, codes.Code):
            return value.as_pydicom()
        if isinstance(value, Mapping):
            return {k: v.as_pydicom() if isinstance(v, codes.Code) else v for k, v in value.items()}
        return value


C = _PydicomCodes()

#: Attributes copied from the source CT into the evidence item highdicom reads patient and
#: study information from.
_COPIED_FOR_EVIDENCE = (
    *PATIENT_STUDY_KEYWORDS,
    "SpecificCharacterSet",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "Modality",
)


def _algorithm_id(version: str) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME, version=version, parameters=_algorithm_parameters()
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


def _vertebra_group(
    v: VertebraRecord, frame_of_reference_uid: str, algo: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    level_code = C.LEVEL_CODES[v.label]
    if not v.assessed:
        return _not_assessable_group(v, algo)
    kp = {name: v.keypoints[i] for i, name in enumerate(KEYPOINT_NAMES)}
    measurements: list[hd.sr.Measurement] = []
    for key, modifier in C.HEIGHT_MODIFIERS.items():
        if key not in v.heights_mm:
            raise ValueError(f"vertebra {v.label}: heights_mm lacks {key!r}")
        coords = [
            hd.sr.CoordinatesForMeasurement3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.asarray([kp[name]], dtype=np.float64),
                frame_of_reference_uid=frame_of_reference_uid,
                purpose=C.KEYPOINT_CODES[name],
            )
            for name in _HEIGHT_KEYPOINTS[key]
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
    if v.posterior_height_limit_mm is not None:
        measurements.append(
            hd.sr.Measurement(
                name=C.POSTERIOR_HEIGHT_LIMIT, value=float(v.posterior_height_limit_mm), unit=C.UNIT_MM
            )
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


def _patient_group(
    record: StudyRecord, algo: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
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
                C.PATIENT_FRACTURE_PROBABILITY, float(record.patient_fracture_probability), C.UNIT_NO_UNITS
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


def _evidence(source: Dataset, uids: Sequence[str]) -> list[Dataset]:
    """One header per referenced instance; the first a copy of the patient/study attributes."""
    src = Dataset()
    for keyword in _COPIED_FOR_EVIDENCE:
        if keyword in source:
            setattr(src, keyword, getattr(source, keyword))
        elif keyword in PATIENT_STUDY_KEYWORDS:
            setattr(src, keyword, None)
    uids = list(uids) or [str(source.SOPInstanceUID)]
    out: list[Dataset] = []
    seen: set[str] = set()
    for uid in uids:
        if uid in seen:
            continue
        seen.add(uid)
        if out:
            ds = Dataset()
            ds.StudyInstanceUID = src.StudyInstanceUID
            ds.SeriesInstanceUID = src.SeriesInstanceUID
            ds.SOPClassUID = src.SOPClassUID
        else:
            ds = copy.deepcopy(src)
        ds.SOPInstanceUID = uid
        out.append(ds)
    return out


def reference_sr(
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
    """The SR of :func:`spinevcf.report.sr.build_sr` (same arguments) built with highdicom alone."""
    for_uid = str(source.FrameOfReferenceUID)
    algo = _algorithm_id(algorithm_version)
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
            observer_type=pydicom_codes.DCM.Device, observer_identifying_attributes=device
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
    document = hd.sr.Comprehensive3DSR(
        evidence=_evidence(source, referenced_sop_instance_uids),
        content=report[0],
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
    sr.CodingSchemeIdentificationSequence = [C.coding_scheme_identification()]
    return sr


def reference_secondary_capture(
    rgb: npt.ArrayLike,
    source: Dataset,
    *,
    series_number: int = SC_SERIES_NUMBER,
    instance_number: int = 1,
    manufacturer: str = "spinevcf",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> hd.sc.SCImage:
    """The Secondary Capture of :func:`spinevcf.report.capture.build_secondary_capture`, by highdicom."""
    arr = np.asarray(rgb)
    ref = Dataset()
    for keyword in ("StudyInstanceUID", *PATIENT_STUDY_KEYWORDS, "SpecificCharacterSet"):
        if keyword in source:
            setattr(ref, keyword, getattr(source, keyword))
        elif keyword != "SpecificCharacterSet":
            setattr(ref, keyword, None)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=np.ascontiguousarray(arr),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=instance_number,
        manufacturer=manufacturer,
        patient_orientation=("P", "F"),
        series_description=SC_SERIES_DESCRIPTION,
    )
    sc.ConversionType = hd.sc.ConversionTypeValues.WSD.value
    sc.BurnedInAnnotation = "YES"
    sc.BodyPartExamined = SC_BODY_PART
    sc.ImageComments = f"spinevcf {__version__}: {CAPTION}"
    return sc


# --------------------------------------------------------------------------- comparing
#: Fixed creation date and time written into both objects before they are compared.
FIXED_DATE = "20000101"
FIXED_TIME = "000000.000001"
#: What highdicom writes about itself; the run path names pydicom instead (header.py).
HIGHDICOM_IMPLEMENTATION_UID = "1.2.826.0.1.3680043.9.7433.1.1"
HIGHDICOM_MANUFACTURER = "Highdicom open-source contributors"


def fix_times(ds: Dataset) -> None:
    """Set every creation date and time of a derived object to :data:`FIXED_DATE` / ``TIME``."""
    ds.InstanceCreationDate = ds.ContentDate = FIXED_DATE
    ds.InstanceCreationTime = ds.ContentTime = FIXED_TIME
    ds.ContributingEquipmentSequence[0].ContributionDateTime = FIXED_DATE + FIXED_TIME
    if "DateOfSecondaryCapture" in ds:
        ds.DateOfSecondaryCapture = FIXED_DATE
        ds.TimeOfSecondaryCapture = FIXED_TIME


def name_pydicom_as_writer(reference: Dataset) -> None:
    """Replace, in a highdicom-built object, the only values that differ by design.

    highdicom names itself in the File Meta Information (Implementation Class UID and
    Version Name) and as contributing equipment; the run path names pydicom, which now
    writes the file (``spinevcf.report.header``). Checks first that these are exactly
    highdicom's values, so nothing else is replaced.
    """
    meta = reference.file_meta
    assert meta.ImplementationClassUID == HIGHDICOM_IMPLEMENTATION_UID
    assert meta.ImplementationVersionName == f"highdicom{hd.__version__}"
    equipment = reference.ContributingEquipmentSequence
    assert len(equipment) == 1
    assert equipment[0].Manufacturer == HIGHDICOM_MANUFACTURER
    assert equipment[0].ManufacturerModelName == "highdicom"
    assert equipment[0].SoftwareVersions == hd.__version__
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = header.IMPLEMENTATION_VERSION_NAME
    equipment[0].Manufacturer = header.LIBRARY_MANUFACTURER
    equipment[0].ManufacturerModelName = header.LIBRARY_MODEL_NAME
    equipment[0].SoftwareVersions = pydicom.__version__


def file_bytes(ds: Dataset) -> bytes:
    """The file ``ds`` is saved as (``spinevcf.report.writer`` saves the same way)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def assert_same_file(ours: Dataset, reference: Dataset) -> bytes:
    """Both objects, times fixed and the writer named alike, save as the same bytes."""
    fix_times(ours)
    fix_times(reference)
    name_pydicom_as_writer(reference)
    mine, theirs = file_bytes(ours), file_bytes(reference)
    if mine != theirs:
        first = next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
            min(len(mine), len(theirs)),
        )
        raise AssertionError(
            f"the pydicom-built file differs from the highdicom-built one at byte {first} "
            f"(lengths {len(mine)} and {len(theirs)}): {_element_at(theirs, first)}"
        )
    return mine


def _element_at(data: bytes, offset: int) -> str:
    """The top-level element of a saved file that holds byte ``offset`` (for the message)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    found = "file meta"
    for element in ds:
        if element.file_tell is not None and element.file_tell <= offset:
            found = f"{element.tag} {element.keyword}"
    return found
