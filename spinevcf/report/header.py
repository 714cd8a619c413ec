"""The header shared by the derived DICOM objects (SR, Secondary Capture), with pydicom alone.

:func:`new_instance` writes the modules every spinevcf object has: File Meta Information,
Patient and General Study (copied from the source CT), General Series, General Equipment,
SOP Common (creation date and time, character set, contributing equipment) and the
content date and time. Each object then adds its own modules (``sr.py``, ``capture.py``).

These objects used to be made by highdicom (``SOPClass``, ``Comprehensive3DSR``,
``SCImage``). In a fresh process that cost about 0.5 s (issue 15: its import, and the first
constructor parsing highdicom's 22 MB table of the standard's modules just to learn that
these IODs have a Content Date), so the run path no longer imports highdicom. The
attributes and values are those highdicom 0.28.2 writes for these objects, with one
deliberate change: the software named in the File Meta Information and in the Contributing
Equipment Sequence is pydicom, which now writes the file, not highdicom.
``tests/report/test_sr_encode.py`` and ``tests/report/test_capture_reference.py`` build the
same study both ways and compare the encoded files byte for byte.

Patient and study attributes are copied from the source as they are (absent ones as empty
type 2 elements); unlike highdicom, an unusual value there (e.g. Patient's Sex "U") is not
refused: the derived objects carry what the CT carries.
"""

from __future__ import annotations

import datetime
import operator
from io import BytesIO
from typing import Final

import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID
from pydicom.valuerep import DA, DT, TM

__all__ = [
    "PATIENT_STUDY_KEYWORDS",
    "IMPLEMENTATION_VERSION_NAME",
    "LIBRARY_MANUFACTURER",
    "LIBRARY_MODEL_NAME",
    "LIBRARY_CONTRIBUTION",
    "check_long_string",
    "new_instance",
]

#: Patient/study attributes copied from the source CT into every derived object (type 2 in
#: the SR and Secondary Capture IODs: written empty when the source lacks them).
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
#: (0002,0013) of the files: pydicom's own name, as pydicom writes it by default (SH, <= 16).
IMPLEMENTATION_VERSION_NAME: Final = f"PYDICOM {pydicom.__version__}"
#: The Contributing Equipment item naming the library that encodes the objects.
LIBRARY_MANUFACTURER: Final = "pydicom contributors"
LIBRARY_MODEL_NAME: Final = "pydicom"
LIBRARY_CONTRIBUTION: Final = "Software library used to create this instance"
#: DCM 109102 "Processing Equipment", CID 7005 (purpose of the contributing equipment).
_PROCESSING_EQUIPMENT: Final = ("109102", "DCM", "Processing Equipment")
_LONG_STRING_MAX: Final = 64


def check_long_string(value: str, what: str) -> str:
    """``value`` if it is a valid DICOM Long String (LO), else ``ValueError`` naming ``what``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if len(value) > _LONG_STRING_MAX:
        raise ValueError(f"{what} must be at most {_LONG_STRING_MAX} characters (DICOM LO)")
    if "\\" in value:
        raise ValueError(f"{what} must not contain a backslash (DICOM LO)")
    return value


def _file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    with BytesIO() as fp:
        write_file_meta_info(fp, meta, enforce_standard=True)  # sets the group length
        meta.FileMetaInformationGroupLength = len(fp.getvalue())
    return meta


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _library_equipment(now: datetime.datetime) -> Dataset:
    """Contributing Equipment item (SOP Common) naming pydicom, which encodes the object."""
    item = Dataset()
    item.Manufacturer = LIBRARY_MANUFACTURER
    item.ManufacturerModelName = LIBRARY_MODEL_NAME
    item.SoftwareVersions = pydicom.__version__
    item.ContributionDateTime = DT(now)
    item.ContributionDescription = LIBRARY_CONTRIBUTION
    item.PurposeOfReferenceCodeSequence = [_code_item(*_PROCESSING_EQUIPMENT)]
    return item


def _positive(value: int, what: str) -> int:
    """``value`` as an int (numpy integers too) if it is >= 1."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}") from None
    if number < 1:
        raise ValueError(f"{what} must be a positive integer, got {number}")
    return number


def new_instance(
    source: Dataset,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    series_instance_uid: str,
    series_number: int,
    instance_number: int,
    modality: str,
    manufacturer: str,
    series_description: str,
    now: datetime.datetime,
) -> FileDataset:
    """A new instance in the study of ``source``, holding the modules every derived object has.

    Args:
        source: a slice header of the evaluated CT series; its Study Instance UID, patient
            and study attributes (:data:`PATIENT_STUDY_KEYWORDS`) and Specific Character Set
            are copied. It is not modified.
        sop_class_uid: SOP Class of the new object.
        sop_instance_uid: its SOP Instance UID (already checked by the caller).
        transfer_syntax_uid: the transfer syntax it is to be written in (File Meta).
        series_instance_uid: UID of its new series.
        series_number: Series Number (>= 1).
        instance_number: Instance Number (>= 1).
        modality: Modality of the new series ("SR", "OT").
        manufacturer: Manufacturer (General Equipment).
        series_description: Series Description.
        now: creation time: Instance Creation and Content Date/Time, the contribution time.

    Returns:
        The dataset with its file meta and a 128-byte zero preamble.

    Raises:
        TypeError: a number is not an int, or the manufacturer not a str.
        ValueError: a number is below 1, or the manufacturer or description is not a valid LO.
    """
    series_number = _positive(series_number, "series_number")
    instance_number = _positive(instance_number, "instance_number")
    check_long_string(manufacturer, "manufacturer")
    check_long_string(series_description, "series_description")
    ds = FileDataset(
        "",
        Dataset(),
        file_meta=_file_meta(sop_class_uid, sop_instance_uid, transfer_syntax_uid),
        preamble=b"\0" * 128,
    )
    charset = source.get("SpecificCharacterSet")
    if charset:
        ds.SpecificCharacterSet = charset
    ds.StudyInstanceUID = str(source.StudyInstanceUID)
    for keyword in PATIENT_STUDY_KEYWORDS:
        setattr(ds, keyword, source.get(keyword))
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = series_number
    ds.Modality = modality
    ds.SeriesDescription = series_description
    ds.Manufacturer = manufacturer
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceNumber = instance_number
    ds.InstanceCreationDate = ds.ContentDate = DA(now.date())
    ds.InstanceCreationTime = ds.ContentTime = TM(now.time())
    ds.ContributingEquipmentSequence = [_library_equipment(now)]
    return ds
