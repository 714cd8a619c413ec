"""Coded concepts used in the spinevcf DICOM outputs.

Every standard code below was checked against DICOM PS3.16 as distributed in
pydicom 3.0.2's ``pydicom.sr.codedict`` (generated from the DICOM standard's
context groups) unless its comment says otherwise; the context group (CID) or
template (TID) it is taken from is named in the comment. ``docs/sr.md`` lists
the sources.

No standard code exists for a Genant grade, a vertebral deformity type or the
six endplate keypoints, so spinevcf defines the private coding scheme
:data:`PRIVATE_SCHEME_DESIGNATOR` (``99SPINEVCF``; DICOM PS3.3 C.12.1.1.2.2:
private designators start with ``99``). The SR declares it in its Coding Scheme
Identification Sequence (:func:`coding_scheme_identification`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from pydicom.dataset import Dataset

from spinevcf.assess import NOT_ASSESSABLE_REASONS
from spinevcf.report.sr_encode import Code
from spinevcf.schema import DEFORMITIES, KEYPOINT_NAMES, LEVEL_STATUSES, LEVELS

__all__ = [
    "Code",
    "PRIVATE_SCHEME_DESIGNATOR",
    "PRIVATE_SCHEME_NAME",
    "PRIVATE_SCHEME_VERSION",
    "PRIVATE_SCHEME_ORGANIZATION",
    "IMAGING_MEASUREMENT_REPORT",
    "PROCEDURE_CT",
    "VERTEBRAL_BODY",
    "SPINE",
    "HEIGHT",
    "ANTERIOR",
    "CENTRAL",
    "POSTERIOR",
    "HEIGHT_MODIFIERS",
    "SEVERITY",
    "MILD",
    "MODERATE",
    "SEVERE",
    "GRADE_SEVERITY",
    "YES",
    "NO",
    "UNIT_MM",
    "UNIT_PERCENT",
    "UNIT_NO_UNITS",
    "LEVEL_CODES",
    "GENANT_GRADE",
    "GENANT_GRADE_VALUES",
    "DEFORMITY_TYPE",
    "DEFORMITY_VALUES",
    "VERTEBRAL_FRACTURE_PROBABILITY",
    "PATIENT_FRACTURE_PROBABILITY",
    "ANY_VERTEBRAL_FRACTURE",
    "NUMBER_OF_FRACTURED_VERTEBRAE",
    "NUMBER_OF_VERTEBRAE_EVALUATED",
    "VERTEBRAL_BODY_DETECTED",
    "VERTEBRAL_FRACTURE_ASSESSMENT",
    "HEIGHT_REDUCTION_CODES",
    "POSTERIOR_HEIGHT_LIMIT",
    "KEYPOINT_CODES",
    "ASSESSMENT_STATUS",
    "NOT_EVALUATED",
    "NOT_ASSESSABLE_REASON",
    "NOT_ASSESSABLE_REASON_VALUES",
    "NUMBER_OF_VERTEBRAE_NOT_ASSESSABLE",
    "LEVEL_CONFIDENCE",
    "LEVEL_STATUS",
    "LEVEL_STATUS_VALUES",
    "private_code_table",
    "coding_scheme_identification",
]

# --------------------------------------------------------------------------- private scheme
PRIVATE_SCHEME_DESIGNATOR: Final = "99SPINEVCF"
PRIVATE_SCHEME_NAME: Final = "spinevcf private codes"
PRIVATE_SCHEME_VERSION: Final = "1.2"
PRIVATE_SCHEME_ORGANIZATION: Final = "spinevcf project"


def _private(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME_DESIGNATOR, meaning)


# --------------------------------------------------------------------------- document / context
#: DCM 126000, CID 7021 "Measurement Report Document Title" (TID 1500 title).
IMAGING_MEASUREMENT_REPORT: Final = Code("126000", "DCM", "Imaging Measurement Report")
#: LN 25045-6, CID 100 "Quantitative Diagnostic Imaging Procedure". No "CT of spine" code
#: could be verified against a DICOM or LOINC table here (see docs/sr.md), so the
#: procedure is reported as a CT of an unspecified body region.
PROCEDURE_CT: Final = Code("25045-6", "LN", "CT unspecified body region")

# --------------------------------------------------------------------------- anatomy
#: SCT 3572006 "Structure of body of vertebra". Not in PS3.16 as shipped with pydicom;
#: listed in method-notes and corroborated by a public DICOM-RT terminology file.
VERTEBRAL_BODY: Final = Code("3572006", "SCT", "Vertebral body")
#: SCT 421060004 "Spine", CID 4030 / CID 6114.
SPINE: Final = Code("421060004", "SCT", "Spine")

#: SNOMED CT codes of the vertebrae, CID 7603 "Vertebra" (same codes in CID 7151/7192).
LEVEL_CODES: Final = MappingProxyType(
    {
        "C1": Code("14806007", "SCT", "C1 vertebra"),
        "C2": Code("39976000", "SCT", "C2 vertebra"),
        "C3": Code("113205007", "SCT", "C3 vertebra"),
        "C4": Code("5329002", "SCT", "C4 vertebra"),
        "C5": Code("36978003", "SCT", "C5 vertebra"),
        "C6": Code("36054005", "SCT", "C6 vertebra"),
        "C7": Code("87391001", "SCT", "C7 vertebra"),
        "T1": Code("64864005", "SCT", "T1 vertebra"),
        "T2": Code("53733008", "SCT", "T2 vertebra"),
        "T3": Code("1626008", "SCT", "T3 vertebra"),
        "T4": Code("73071006", "SCT", "T4 vertebra"),
        "T5": Code("56401006", "SCT", "T5 vertebra"),
        "T6": Code("45296009", "SCT", "T6 vertebra"),
        "T7": Code("62487009", "SCT", "T7 vertebra"),
        "T8": Code("11068009", "SCT", "T8 vertebra"),
        "T9": Code("82687006", "SCT", "T9 vertebra"),
        "T10": Code("7610001", "SCT", "T10 vertebra"),
        "T11": Code("12989004", "SCT", "T11 vertebra"),
        "T12": Code("23215003", "SCT", "T12 vertebra"),
        "L1": Code("66794005", "SCT", "L1 vertebra"),
        "L2": Code("14293000", "SCT", "L2 vertebra"),
        "L3": Code("36470004", "SCT", "L3 vertebra"),
        "L4": Code("11994002", "SCT", "L4 vertebra"),
        "L5": Code("49668003", "SCT", "L5 vertebra"),
    }
)

# --------------------------------------------------------------------------- measurements
#: DCM 121207 "Height", CID 7470 "Linear Measurement".
HEIGHT: Final = Code("121207", "DCM", "Height")
#: Topographical modifiers of the finding site of a height, CID 2 "Anatomic Modifier".
ANTERIOR: Final = Code("255549009", "SCT", "Anterior")
CENTRAL: Final = Code("26216008", "SCT", "Central")
POSTERIOR: Final = Code("255551008", "SCT", "Posterior")
#: Height key of :class:`spinevcf.schema.VertebraRecord` -> topographical modifier.
HEIGHT_MODIFIERS: Final = MappingProxyType({"anterior": ANTERIOR, "middle": CENTRAL, "posterior": POSTERIOR})

#: SCT 246112005 "Severity" (attribute) and its values, CID 6130 / CID 3716.
SEVERITY: Final = Code("246112005", "SCT", "Severity")
MILD: Final = Code("255604002", "SCT", "Mild")
MODERATE: Final = Code("6736007", "SCT", "Moderate")
SEVERE: Final = Code("24484000", "SCT", "Severe")
#: Genant grade -> standard severity qualifier (grade 0 has none).
GRADE_SEVERITY: Final = MappingProxyType({1: MILD, 2: MODERATE, 3: SEVERE})

#: SCT 373066001 / 373067005, CID 230 "Yes-No".
YES: Final = Code("373066001", "SCT", "Yes")
NO: Final = Code("373067005", "SCT", "No")

#: UCUM units, CID 7181 / CID 83.
UNIT_MM: Final = Code("mm", "UCUM", "mm")
UNIT_PERCENT: Final = Code("%", "UCUM", "Percent")
UNIT_NO_UNITS: Final = Code("1", "UCUM", "no units")

# --------------------------------------------------------------------------- private codes
GENANT_GRADE: Final = _private("SPV001", "Genant semiquantitative grade")
GENANT_GRADE_VALUES: Final = MappingProxyType(
    {
        0: _private("SPV010", "Genant grade 0 (normal)"),
        1: _private("SPV011", "Genant grade 1 (mild)"),
        2: _private("SPV012", "Genant grade 2 (moderate)"),
        3: _private("SPV013", "Genant grade 3 (severe)"),
    }
)
DEFORMITY_TYPE: Final = _private("SPV020", "Vertebral deformity type")
DEFORMITY_VALUES: Final = MappingProxyType(
    {
        "none": _private("SPV021", "No deformity"),
        "wedge": _private("SPV022", "Wedge deformity"),
        "biconcave": _private("SPV023", "Biconcave deformity"),
        "crush": _private("SPV024", "Crush deformity"),
    }
)
VERTEBRAL_FRACTURE_PROBABILITY: Final = _private("SPV030", "Vertebral fracture probability")
PATIENT_FRACTURE_PROBABILITY: Final = _private("SPV031", "Patient vertebral fracture probability")
ANY_VERTEBRAL_FRACTURE: Final = _private("SPV032", "Any vertebral fracture")
NUMBER_OF_FRACTURED_VERTEBRAE: Final = _private("SPV033", "Number of fractured vertebrae")
NUMBER_OF_VERTEBRAE_EVALUATED: Final = _private("SPV034", "Number of vertebral bodies evaluated")
VERTEBRAL_BODY_DETECTED: Final = _private("SPV035", "Vertebral body detected")
VERTEBRAL_FRACTURE_ASSESSMENT: Final = _private("SPV036", "Vertebral compression fracture assessment")
#: Key of ``VertebraRecord.height_reductions_pct`` (spinevcf.grading reductions) -> concept.
POSTERIOR_HEIGHT_LIMIT: Final = _private("SPV044", "Posterior height limit used for grading")
HEIGHT_REDUCTION_CODES: Final = MappingProxyType(
    {
        "wedge": _private("SPV041", "Wedge height reduction"),
        "biconcave": _private("SPV042", "Biconcave height reduction"),
        "crush": _private("SPV043", "Crush height reduction"),
    }
)
#: Keypoint name (spinevcf.schema.KEYPOINT_NAMES order) -> concept of its SCOORD3D POINT.
KEYPOINT_CODES: Final = MappingProxyType(
    {
        "anterior_superior": _private("SPV051", "Anterior superior endplate point"),
        "middle_superior": _private("SPV052", "Middle superior endplate point"),
        "posterior_superior": _private("SPV053", "Posterior superior endplate point"),
        "anterior_inferior": _private("SPV054", "Anterior inferior endplate point"),
        "middle_inferior": _private("SPV055", "Middle inferior endplate point"),
        "posterior_inferior": _private("SPV056", "Posterior inferior endplate point"),
    }
)

#: SCT 373121007 "Not Evaluated", CID 3703: the value of :data:`ASSESSMENT_STATUS` for a
#: detected body that the image cannot support a finding for (a body cut by the scan).
NOT_EVALUATED: Final = Code("373121007", "SCT", "Not Evaluated")
#: Concept of the qualitative evaluation that states a body was not assessed.
ASSESSMENT_STATUS: Final = _private("SPV060", "Vertebral fracture assessment status")
#: Why a body was not assessed (``VertebraRecord.assessment_reason``).
NOT_ASSESSABLE_REASON: Final = _private("SPV061", "Reason not assessable")
NOT_ASSESSABLE_REASON_VALUES: Final = MappingProxyType(
    {
        "cut_by_scan_range": _private("SPV062", "Cut by the scanned range"),
        "cut_by_field_of_view": _private("SPV063", "Cut by the reconstructed field of view"),
        "next_to_metal": _private("SPV064", "Metal in or next to the vertebral body"),
        "implausible_height": _private("SPV065", "Implausible height with no disc visible beyond"),
        "outside_reformatted_image": _private("SPV066", "Beyond the straightened image"),
        "unstable_measurement": _private("SPV067", "Measurement not reproducible on the image"),
    }
)
#: Patient level: bodies detected but not assessable (not in "evaluated").
NUMBER_OF_VERTEBRAE_NOT_ASSESSABLE: Final = _private("SPV037", "Number of vertebral bodies not assessable")
#: Probability (0-1) that the level name is right (``VertebraRecord.level_confidence``).
LEVEL_CONFIDENCE: Final = _private("SPV070", "Vertebral level confidence")
#: Whether the level name is supported by the anatomy in view.
LEVEL_STATUS: Final = _private("SPV071", "Vertebral level status")
LEVEL_STATUS_VALUES: Final = MappingProxyType(
    {
        "confident": _private("SPV072", "Level name confident"),
        "uncertain": _private("SPV073", "Level name uncertain"),
    }
)

# Import-time consistency checks against the shared schema (a mismatch is a programming error).
if set(LEVEL_CODES) != set(LEVELS):  # pragma: no cover
    raise RuntimeError("LEVEL_CODES does not cover spinevcf.schema.LEVELS")
if set(DEFORMITY_VALUES) != set(DEFORMITIES):  # pragma: no cover
    raise RuntimeError("DEFORMITY_VALUES does not cover spinevcf.schema.DEFORMITIES")
if set(NOT_ASSESSABLE_REASON_VALUES) != set(NOT_ASSESSABLE_REASONS):  # pragma: no cover
    raise RuntimeError("NOT_ASSESSABLE_REASON_VALUES does not cover spinevcf.assess.NOT_ASSESSABLE_REASONS")
if set(LEVEL_STATUS_VALUES) != set(LEVEL_STATUSES):  # pragma: no cover
    raise RuntimeError("LEVEL_STATUS_VALUES does not cover spinevcf.schema.LEVEL_STATUSES")
if tuple(KEYPOINT_CODES) != KEYPOINT_NAMES:  # pragma: no cover
    raise RuntimeError("KEYPOINT_CODES does not follow spinevcf.schema.KEYPOINT_NAMES")


def private_code_table() -> list[Code]:
    """All codes of the 99SPINEVCF scheme, sorted by code value (for docs and tests)."""
    found = [
        GENANT_GRADE,
        *GENANT_GRADE_VALUES.values(),
        DEFORMITY_TYPE,
        *DEFORMITY_VALUES.values(),
        VERTEBRAL_FRACTURE_PROBABILITY,
        PATIENT_FRACTURE_PROBABILITY,
        ANY_VERTEBRAL_FRACTURE,
        NUMBER_OF_FRACTURED_VERTEBRAE,
        NUMBER_OF_VERTEBRAE_EVALUATED,
        VERTEBRAL_BODY_DETECTED,
        VERTEBRAL_FRACTURE_ASSESSMENT,
        NUMBER_OF_VERTEBRAE_NOT_ASSESSABLE,
        *HEIGHT_REDUCTION_CODES.values(),
        POSTERIOR_HEIGHT_LIMIT,
        *KEYPOINT_CODES.values(),
        ASSESSMENT_STATUS,
        NOT_ASSESSABLE_REASON,
        *NOT_ASSESSABLE_REASON_VALUES.values(),
        LEVEL_CONFIDENCE,
        LEVEL_STATUS,
        *LEVEL_STATUS_VALUES.values(),
    ]
    return sorted(found, key=lambda c: c.value)


def coding_scheme_identification() -> Dataset:
    """One item of the Coding Scheme Identification Sequence declaring 99SPINEVCF.

    DICOM PS3.3 C.12.1.1.2 (SOP Common Module): a private coding scheme used in
    the object should be identified there.
    """
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME_DESIGNATOR
    item.CodingSchemeName = PRIVATE_SCHEME_NAME
    item.CodingSchemeVersion = PRIVATE_SCHEME_VERSION
    item.CodingSchemeResponsibleOrganization = PRIVATE_SCHEME_ORGANIZATION
    return item
