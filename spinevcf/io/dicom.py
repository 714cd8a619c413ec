"""DICOM CT ingestion: scan a folder, choose the diagnostic axial CT series, build a Volume.

Three steps, each usable on its own:

1. :func:`scan_folder` reads the *headers* of every file below a folder (pixel data is
   not touched) and groups the images into :class:`SeriesCandidate` objects, one per
   (StudyInstanceUID, SeriesInstanceUID) -- localizer images that share a series UID
   with an axial stack are put in a candidate of their own.
2. :func:`select_ct_series` ranks the candidates (see :func:`rank_candidates` for the
   rules) and returns the best one; every candidate gets a human-readable ``reason``.
3. :func:`load_series` checks the geometry from the headers (:func:`check_series`),
   checks the memory budget, then decodes the pixels into one preallocated array.

Geometry comes from ImagePositionPatient (IPP) and ImageOrientationPatient (IOP) only;
SliceThickness, InstanceNumber, SliceLocation and file order are never used. Slices are
sorted by the projection of IPP on the slice normal ``n = row_cosines x column_cosines``
(ascending), so the first array slice is the one lowest along ``n``. The affine follows
docs/architecture.md: column 0 = step between consecutive sorted slice positions,
column 1 = column cosines * PixelSpacing[0] (row step), column 2 = row cosines *
PixelSpacing[1] (column step), translation = IPP of the first sorted slice.

Decisions (named constants below):

* A series needs at least :data:`MIN_SLICES` slices.
* Axial means the slice normal is within :data:`AXIAL_MAX_ANGLE_DEG` of the LPS z axis.
* Gantry tilt: when the slice positions advance along a line that is not the slice
  normal, the tilt angle is measured. Up to :data:`MAX_GANTRY_TILT_DEG` the tilt is
  represented *exactly* by a sheared affine (column 0 is the real step between slice
  positions, not orthogonal to the slice plane); above it :class:`GantryTiltError`.
  Below :data:`NEGLIGIBLE_TILT_DEG` (rounding of IPP) column 0 is projected on the
  normal so the affine stays orthogonal.
* Spacing: every gap between consecutive slices (along the normal) must be within
  :data:`SLICE_SPACING_REL_TOL` of the median gap (plus :data:`POSITION_ABS_TOL_MM`),
  else :class:`SliceGapError` (a missing slice doubles one gap). Two slices closer than
  :data:`DUPLICATE_TOL_MM` are :class:`DuplicateSliceError`.
* Output dtype: ``int16`` when every RescaleSlope and RescaleIntercept is an integer (and
  the rescaled values fit int16; a slice that does not fit promotes the whole volume to
  float32), else ``float32``. Values are Hounsfield units.
* A file that claims to be DICOM but is truncated raises :class:`UnreadableFileError`
  when it belongs to the loaded series; when its series cannot even be read from its
  header, :func:`load_study` refuses too, since it may be a slice of the chosen series.
* Enhanced CT (multi-frame, per-frame functional groups) is supported for uncompressed
  and compressed pixel data; each frame is one slice.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import AMBIGUOUS_VR

from spinevcf.decimate import plan_block_sums, sum_slice_blocks
from spinevcf.errors import (
    DuplicateSliceError,
    GantryTiltError,
    InconsistentOrientationError,
    InputError,
    MissingPixelDataError,
    MixedImageSizeError,
    NoCTSeriesError,
    NoDicomFilesError,
    SliceGapError,
    TooFewSlicesError,
    UnreadableFileError,
    UnsupportedTransferSyntaxError,
    VolumeTooLargeError,
)
from spinevcf.volume import SeriesInfo, Volume

__all__ = [
    "MIN_SLICES",
    "AXIAL_MAX_ANGLE_DEG",
    "MAX_GANTRY_TILT_DEG",
    "NEGLIGIBLE_TILT_DEG",
    "SLICE_SPACING_REL_TOL",
    "POSITION_ABS_TOL_MM",
    "DUPLICATE_TOL_MM",
    "ORIENTATION_TOL",
    "DEFAULT_MEMORY_FRACTION",
    "default_max_bytes",
    "CT_IMAGE_STORAGE",
    "ENHANCED_CT_STORAGES",
    "FrameRef",
    "SeriesCandidate",
    "SeriesGeometry",
    "scan_folder",
    "rank_candidates",
    "select_ct_series",
    "find_series",
    "check_series",
    "load_series",
    "load_study",
]

log = logging.getLogger(__name__)

#: Fewest slices a usable series may have.
MIN_SLICES = 3
#: Largest angle (degrees) between the slice normal and the LPS z axis for an "axial" series.
AXIAL_MAX_ANGLE_DEG = 30.0
#: Largest gantry tilt (degrees) represented by a sheared affine; more is refused.
MAX_GANTRY_TILT_DEG = 30.0
#: Tilts below this (degrees) are IPP rounding noise: the slice step is projected on the normal.
NEGLIGIBLE_TILT_DEG = 0.05
#: Allowed relative deviation of one slice gap from the median gap.
SLICE_SPACING_REL_TOL = 0.10
#: Absolute position tolerance (mm) added to the relative one (IPP is often rounded to 0.01 mm).
POSITION_ABS_TOL_MM = 0.02
#: Two slices closer than this along the normal (mm) are duplicates.
DUPLICATE_TOL_MM = 0.01
#: Largest difference between two IOP direction-cosine vectors counted as "the same".
ORIENTATION_TOL = 1e-3
#: A valid DICOM UID: digits and dots (PS3.5 9.1), at most :data:`_UID_MAX_LEN` characters.
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UID_MAX_LEN = 64
#: Largest |RescaleSlope| / |RescaleIntercept| applied with integer arithmetic.
_INT_RESCALE_MAX = 2**20
#: Without an explicit ``max_bytes``, a volume may use at most this fraction of physical memory.
DEFAULT_MEMORY_FRACTION = 0.5

#: SOP Class UID of CT Image Storage.
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: Enhanced CT Image Storage and Legacy Converted Enhanced CT Image Storage.
ENHANCED_CT_STORAGES = frozenset({"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"})
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

_PIXEL_DATA_TAG_LE = struct.pack("<HH", 0x7FE0, 0x0010)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_NATIVE_LE_SYNTAXES = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
_INT16_MIN, _INT16_MAX = -32768, 32767
_SPECIFIC_CHARACTER_SET = 0x00080005
#: VRs whose conversion depends on more than the element itself (see :class:`_ConvertedValues`).
_CONTEXT_VRS = frozenset({"SQ", "UN"}) | frozenset(str(v) for v in AMBIGUOUS_VR)


@dataclass(frozen=True)
class FrameRef:
    """One 2D image (a single-frame file, or one frame of a multi-frame file).

    Attributes:
        path: the file.
        frame: 0-based frame index in a multi-frame file, ``None`` for single-frame files.
        sop_instance_uid: SOPInstanceUID of the file.
        position: ImagePositionPatient (mm) or ``None`` when absent.
        orientation: ImageOrientationPatient (6 cosines) or ``None`` when absent.
        rows: Rows.
        columns: Columns.
        pixel_spacing: PixelSpacing (row spacing, column spacing) or ``None``.
        slope: RescaleSlope (1 when absent).
        intercept: RescaleIntercept (0 when absent).
        transfer_syntax: TransferSyntaxUID of the file.
        bits_allocated: BitsAllocated.
        bits_stored: BitsStored.
        pixel_representation: 0 unsigned, 1 two's complement.
        samples_per_pixel: SamplesPerPixel.
        pixel_offset: byte offset of the (7FE0,0010) tag in the file, or ``None``.
        has_pixel_data: whether the file has a PixelData element.
        truncated: the header itself ends inside an element (corrupt or cut file).
    """

    path: Path
    frame: int | None
    sop_instance_uid: str
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    pixel_offset: int | None
    has_pixel_data: bool
    truncated: bool = False


@dataclass
class SeriesCandidate:
    """A group of images from one series, with the verdict of the series selection.

    Attributes:
        study_instance_uid: StudyInstanceUID ("" when unknown).
        series_instance_uid: SeriesInstanceUID ("" when unknown).
        series_number: SeriesNumber or ``None``.
        series_description: SeriesDescription ("" when absent).
        modality: Modality.
        sop_class_uid: SOPClassUID of the first image.
        image_type: ImageType values (upper case).
        photometric: PhotometricInterpretation.
        frames: the images (unsorted: file order).
        header: header (no pixel data) of the first image; never log it.
        unreadable: files of this series that could not be read.
        accepted: set by :func:`rank_candidates`: the series would be used.
        reason: set by :func:`rank_candidates`: why it is used or rejected.
    """

    study_instance_uid: str
    series_instance_uid: str
    series_number: int | None
    series_description: str
    modality: str
    sop_class_uid: str
    image_type: tuple[str, ...]
    photometric: str
    frames: list[FrameRef] = field(default_factory=list)
    header: Dataset | None = None
    unreadable: list[Path] = field(default_factory=list)
    accepted: bool = False
    reason: str = ""

    @property
    def n_slices(self) -> int:
        """Number of images (slices) in the candidate."""
        return len(self.frames)

    @property
    def label(self) -> str:
        """Identification for messages: series number, description and UID (no patient data)."""
        num = "?" if self.series_number is None else str(self.series_number)
        desc = f" '{self.series_description}'" if self.series_description else ""
        return f"series {num}{desc} (UID {self.series_instance_uid or 'unknown'})"

    @property
    def is_enhanced(self) -> bool:
        """Whether the images are multi-frame Enhanced / Legacy Converted Enhanced CT."""
        return self.sop_class_uid in ENHANCED_CT_STORAGES

    @property
    def slice_normal(self) -> npt.NDArray[np.float64] | None:
        """Unit slice normal from the first image's IOP, or ``None``."""
        iop = next((f.orientation for f in self.frames if f.orientation is not None), None)
        if iop is None:
            return None
        return _normal(iop)

    @property
    def axial_angle_deg(self) -> float | None:
        """Angle (degrees) between the slice normal and the LPS z axis, or ``None``."""
        n = self.slice_normal
        if n is None:
            return None
        return float(np.degrees(np.arccos(min(1.0, abs(float(n[2]))))))

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """PixelSpacing of the first image that has one."""
        return next((f.pixel_spacing for f in self.frames if f.pixel_spacing is not None), None)

    @property
    def slice_spacing(self) -> float | None:
        """Median distance (mm) between consecutive positions along the normal, or ``None``."""
        n = self.slice_normal
        pos = [f.position for f in self.frames if f.position is not None]
        if n is None or len(pos) < 2:
            return None
        d = np.sort(np.asarray(pos) @ n)
        gaps = np.diff(d)
        gaps = gaps[gaps > DUPLICATE_TOL_MM]
        return float(np.median(gaps)) if gaps.size else None

    @property
    def orientation_label(self) -> str:
        """Short text: the dominant plane of the slices and the angle to it."""
        n = self.slice_normal
        if n is None:
            return "unknown"
        axis = int(np.argmax(np.abs(n)))
        plane = ("sagittal", "coronal", "axial")[axis]
        angle = float(np.degrees(np.arccos(min(1.0, abs(float(n[axis]))))))
        return plane if angle < 0.5 else f"{plane} ({angle:.1f} deg oblique)"


@dataclass(frozen=True)
class SeriesGeometry:
    """Geometry of a series derived from its headers by :func:`check_series`.

    Attributes:
        frames: images sorted by position along the slice normal (ascending).
        affine: 4x4 index -> LPS affine of the (slices, rows, columns) array.
        slice_spacing_mm: distance between consecutive slice planes along the normal.
        tilt_deg: angle between the slice step and the slice normal (gantry tilt).
    """

    frames: tuple[FrameRef, ...]
    affine: npt.NDArray[np.float64]
    slice_spacing_mm: float
    tilt_deg: float


# ----------------------------------------------------------------------------- scanning


def _normal(iop: Sequence[float]) -> npt.NDArray[np.float64]:
    row = np.asarray(iop[:3], dtype=np.float64)
    col = np.asarray(iop[3:6], dtype=np.float64)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else n


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _float(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _header_truncated(ds: Dataset, size: int) -> bool:
    """True when the header read does not end exactly at the end of the file.

    pydicom stops silently at a cut element; the last element it kept then either claims
    more bytes than the file holds, or ends before the file does (an element header or
    value was cut off and dropped).
    """
    keys = list(ds.keys())
    if not keys:
        return True
    raw = ds.get_item(max(keys), keep_deferred=True)
    if isinstance(raw, RawDataElement) and raw.length != _UNDEFINED_LENGTH and raw.value_tell is not None:
        if raw.value is not None and len(raw.value) < raw.length:
            return True
        return raw.value_tell + raw.length != size
    return False


def _functional_item(ds: Dataset, per_frame: Dataset | None, seq: str) -> Dataset | None:
    """First item of functional group ``seq`` for one frame (per-frame first, then shared)."""
    for groups in (per_frame, _first(ds.get("SharedFunctionalGroupsSequence"))):
        if groups is not None and seq in groups:
            item = _first(groups.get(seq))
            if item is not None:
                return item
    return None


def _first(seq: Any) -> Dataset | None:
    if seq is None:
        return None
    try:
        return seq[0] if len(seq) else None
    except (TypeError, IndexError):
        return None


def _frames_of(
    ds: Dataset,
    path: Path,
    pixel_offset: int | None,
    has_pixels: bool,
    truncated: bool,
    get: Callable[[str, Any], Any] | None = None,
) -> list[FrameRef]:
    """The FrameRefs of one file (one for single-frame images, NumberOfFrames for enhanced).

    ``get(keyword, default)`` reads a top-level value (default ``ds.get``; the scan passes
    :meth:`_ConvertedValues.getter`, which reuses values converted for earlier files).
    """
    if get is None:
        get = ds.get
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    common: dict[str, Any] = dict(
        path=path,
        sop_instance_uid=str(get("SOPInstanceUID", "")),
        rows=int(get("Rows", 0) or 0),
        columns=int(get("Columns", 0) or 0),
        transfer_syntax=ts,
        bits_allocated=int(get("BitsAllocated", 0) or 0),
        bits_stored=int(get("BitsStored", get("BitsAllocated", 0)) or 0),
        pixel_representation=int(get("PixelRepresentation", 0) or 0),
        samples_per_pixel=int(get("SamplesPerPixel", 1) or 1),
        pixel_offset=pixel_offset,
        has_pixel_data=has_pixels,
        truncated=truncated,
    )
    if str(get("SOPClassUID", "")) in ENHANCED_CT_STORAGES:
        n_frames = int(get("NumberOfFrames", 1) or 1)
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        frames = []
        for k in range(n_frames):
            pf = per_frame[k] if k < len(per_frame) else None
            pos = _functional_item(ds, pf, "PlanePositionSequence")
            ori = _functional_item(ds, pf, "PlaneOrientationSequence")
            meas = _functional_item(ds, pf, "PixelMeasuresSequence")
            pvt = _functional_item(ds, pf, "PixelValueTransformationSequence")
            frames.append(
                FrameRef(
                    frame=k,
                    position=_floats(pos.get("ImagePositionPatient") if pos else None, 3),  # type: ignore[arg-type]
                    orientation=_floats(ori.get("ImageOrientationPatient") if ori else None, 6),
                    pixel_spacing=_floats(meas.get("PixelSpacing") if meas else None, 2),  # type: ignore[arg-type]
                    slope=_float(pvt.get("RescaleSlope") if pvt else None, 1.0),
                    intercept=_float(pvt.get("RescaleIntercept") if pvt else None, 0.0),
                    **common,
                )
            )
        return frames
    return [
        FrameRef(
            frame=None,
            position=_floats(get("ImagePositionPatient", None), 3),  # type: ignore[arg-type]
            orientation=_floats(get("ImageOrientationPatient", None), 6),
            pixel_spacing=_floats(get("PixelSpacing", None), 2),  # type: ignore[arg-type]
            slope=_float(get("RescaleSlope", None), 1.0),
            intercept=_float(get("RescaleIntercept", None), 0.0),
            **common,
        )
    ]


class _BaseNameReader(io.BufferedReader):
    """A binary file whose ``name`` is its base name only.

    pydicom quotes ``name`` in its warnings and log lines (e.g. on a truncated file);
    a folder of a PACS export may be named after the patient, so no full path is handed on.

    Args:
        path: the file to open for reading.
    """

    def __init__(self, path: Path) -> None:
        # builtins.open (unbuffered: a FileIO), so that tests can fail it like any other open
        super().__init__(open(path, "rb", buffering=0))
        self._base_name = path.name

    @property
    def name(self) -> str:  # type: ignore[override]
        """The file's base name."""
        return self._base_name


class _ConvertedValues:
    """Raw element values that pydicom has already converted without error in this scan.

    Checking that every element of a header converts (the corruption check of
    :func:`_read_header`) used to convert all of them (``Dataset.iterall``), the largest
    cost of a scan. The files of one series repeat most values byte for byte, and the
    conversion of a raw element is a function of its tag, VR, value bytes, encoding and
    the dataset's SpecificCharacterSet alone -- except for sequences (items are parsed
    with their own context), private tags (the VR may come from the private creator),
    VR UN and ambiguous VRs (resolved from other elements of the dataset). So a raw
    element whose key was seen before is known to convert and is left raw (pydicom
    converts it, identically, when it is used); any other element is converted as before
    (errors propagate unchanged) and its key remembered. At most ``max_entries`` keys
    are kept, so memory stays bounded on huge folders.

    Args:
        max_entries: the most keys remembered.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._values: dict[tuple[Any, ...], Any] = {}
        self._max_entries = max_entries

    @staticmethod
    def _charset_key(ds: Dataset) -> Any:
        charset = ds.get_item(_SPECIFIC_CHARACTER_SET, keep_deferred=True)
        if charset is None:
            return None
        return charset.value if isinstance(charset, RawDataElement) else repr(charset.value)

    def getter(self, ds: Dataset) -> Callable[[str, Any], Any]:
        """A ``ds.get(keyword, default)`` that reuses the values converted for earlier files.

        A raw element whose key is known gets the value converted before (the same value
        pydicom would convert it to; callers must not modify it); the element stays raw in
        ``ds``. Anything else is ``ds.get``. Call after :meth:`check` of ``ds``.
        """
        charset_key = self._charset_key(ds)

        def get(keyword: str, default: Any = None) -> Any:
            tag = tag_for_keyword(keyword)
            raw = ds.get_item(tag, keep_deferred=True) if tag is not None else None
            key = self._key(raw, charset_key) if raw is not None else None
            if key is not None and key in self._values:
                return self._values[key]
            return ds.get(keyword, default)

        return get

    def check(self, ds: Dataset) -> None:
        """Make sure every element of ``ds`` (and of its sequence items) converts.

        Raises:
            Whatever pydicom raises for a value it cannot convert.
        """
        charset_key = self._charset_key(ds)
        for tag in ds.keys():
            raw = ds.get_item(tag, keep_deferred=True)
            key = self._key(raw, charset_key)
            if key is not None and key in self._values:
                continue
            elem = ds[tag]  # converts the raw element (and raises on a corrupt value)
            if elem.VR == "SQ":
                for item in elem.value or ():
                    for _elem in item.iterall():
                        pass
            if key is not None and len(self._values) < self._max_entries:
                self._values[key] = elem.value

    @staticmethod
    def _key(raw: Any, charset_key: Any) -> tuple[Any, ...] | None:
        """The memo key of a raw element, or ``None`` when its conversion depends on context."""
        if not isinstance(raw, RawDataElement) or raw.value is None or raw.tag.is_private:
            return None
        vr = raw.VR
        if vr is None:
            try:
                vr = dictionary_VR(raw.tag)
            except KeyError:
                return None
        if vr in _CONTEXT_VRS:
            return None
        return (int(raw.tag), raw.VR, raw.value, raw.is_little_endian, raw.is_implicit_VR, charset_key)


def _read_header(
    path: Path, checked: _ConvertedValues | None = None
) -> tuple[Dataset, int | None, bool, bool]:
    """Read one header; returns (dataset, pixel tag offset, has pixel data, truncated).

    Every element value is checked to convert (see :class:`_ConvertedValues`); the
    returned dataset may still hold raw (not yet converted) elements.

    Args:
        path: the file.
        checked: values known to convert, shared by the files of one scan (``None``: a new
            set for this file alone).

    Raises:
        InvalidDicomError: not a DICOM file (no 'DICM' prefix).
        OSError: the file cannot be opened.
    """
    size = path.stat().st_size
    with _BaseNameReader(path) as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=False)
        pos = fp.tell()
        tag = fp.read(4)
    meta = getattr(ds, "file_meta", None)
    # pydicom converts element values lazily: check that they all convert now so that a
    # corrupt value (unknown VR, bad length) fails here, where the caller treats the file
    # as corrupt.
    checked = checked if checked is not None else _ConvertedValues()
    checked.check(ds)
    if meta is not None:
        checked.check(meta)
    little = meta is None or meta.get("TransferSyntaxUID") != "1.2.840.10008.1.2.2"
    pix_tag = _PIXEL_DATA_TAG_LE if little else struct.pack(">HH", 0x7FE0, 0x0010)
    has_pixels = pos < size and tag == pix_tag
    truncated = (not has_pixels and _header_truncated(ds, size)) or (has_pixels and size - pos < 12)
    return ds, (pos if has_pixels else None), has_pixels, truncated


def _os_reason(exc: OSError) -> str:
    """The cause of an OS error without the file name that ``str(exc)`` would include."""
    return exc.strerror or type(exc).__name__


def _iter_files(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan_folder(path: str | os.PathLike[str]) -> list[SeriesCandidate]:
    """Read the headers of every file below ``path`` and group the images by series.

    Only headers are read (``stop_before_pixels``); files without the DICOM 'DICM' prefix
    are skipped and counted (one warning with the count). Images are grouped by
    (StudyInstanceUID, SeriesInstanceUID); localizer images (ImageType LOCALIZER) of a
    series form a candidate of their own so that a scout stored in the axial series does
    not spoil it. Non-image objects (SR, presentation states) become candidates without
    frames, which the selection rejects. DICOM files whose header is cut before the series
    UID are collected in a candidate with empty UIDs.

    Args:
        path: a folder (searched recursively) or a single file.

    Returns:
        The candidates, in order of first appearance; their ``reason`` is empty until
        :func:`rank_candidates` runs.

    Raises:
        NoDicomFilesError: the folder does not exist or holds no DICOM file.
    """
    root = Path(path)
    if not root.exists():
        raise NoDicomFilesError("the input path does not exist")
    files = [root] if root.is_file() else list(_iter_files(root))
    groups: dict[tuple[str, str, bool, str], SeriesCandidate] = {}
    skipped: list[Path] = []
    n_dicom = 0
    checked = _ConvertedValues()
    for f in files:
        try:
            ds, offset, has_pixels, truncated = _read_header(f, checked)
        except InvalidDicomError:
            skipped.append(f)
            log.debug("not a DICOM file, skipped: %s", f.name)
            continue
        except OSError as exc:
            # It may be a slice of the series (no read permission, dangling link): the study
            # is refused by load_study like a corrupt file of unknown series.
            log.warning("cannot read %s: %s", f.name, _os_reason(exc))
            _unknown(groups).unreadable.append(f)
            skipped.append(f)
            continue
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt files
            # The file claimed to be DICOM (it passed the 'DICM' check) but could not be parsed.
            log.warning("corrupt DICOM file %s (%s)", f.name, type(exc).__name__)
            _unknown(groups).unreadable.append(f)
            n_dicom += 1
            continue
        n_dicom += 1
        get = checked.getter(ds)
        sop_class = str(get("SOPClassUID", ""))
        meta = getattr(ds, "file_meta", None)
        if sop_class == _MEDIA_STORAGE_DIRECTORY or (
            meta is not None and meta.get("MediaStorageSOPClassUID") == _MEDIA_STORAGE_DIRECTORY
        ):
            log.debug("DICOMDIR skipped: %s", f.name)
            continue
        study = str(get("StudyInstanceUID", ""))
        series = str(get("SeriesInstanceUID", ""))
        if not series:
            if truncated:
                log.warning("DICOM file %s is truncated before its series UID", f.name)
            else:
                log.warning("DICOM file %s has no SeriesInstanceUID", f.name)
            _unknown(groups).unreadable.append(f)
            continue
        try:
            image_type = tuple(str(v).strip().upper() for v in (get("ImageType", None) or ()))
            number = get("SeriesNumber", None)
            series_number = int(number) if number not in (None, "") else None
            is_image = "Rows" in ds or has_pixels or sop_class in ENHANCED_CT_STORAGES or sop_class == CT_IMAGE_STORAGE
            file_frames = _frames_of(ds, f, offset, has_pixels, truncated, get) if is_image else []
        except (TypeError, ValueError, OverflowError) as exc:
            # A value of the wrong type or multiplicity (e.g. two numbers in Rows).
            log.warning("corrupt DICOM file %s (%s)", f.name, type(exc).__name__)
            _unknown(groups).unreadable.append(f)
            continue
        is_localizer = "LOCALIZER" in image_type
        key = (study, series, is_localizer, "enh" if sop_class in ENHANCED_CT_STORAGES else "")
        cand = groups.get(key)
        if cand is None:
            cand = SeriesCandidate(
                study_instance_uid=study,
                series_instance_uid=series,
                series_number=series_number,
                series_description=str(get("SeriesDescription", "") or ""),
                modality=str(get("Modality", "") or ""),
                sop_class_uid=sop_class,
                image_type=image_type,
                photometric=str(get("PhotometricInterpretation", "") or ""),
                header=ds,
            )
            groups[key] = cand
        if truncated:
            cand.unreadable.append(f)
        cand.frames.extend(file_frames)
    if skipped:
        log.warning("skipped %d non-DICOM or unreadable file(s) in the input", len(skipped))
    if n_dicom == 0:
        if root.is_file():
            raise NoDicomFilesError("the input file is not a readable DICOM file")
        raise NoDicomFilesError(f"no DICOM files in the input folder ({len(skipped)} other file(s) skipped)")
    log.info("found %d DICOM file(s) in %d series in the input", n_dicom, len(groups))
    return list(groups.values())


def _unknown(groups: dict[tuple[str, str, bool, str], SeriesCandidate]) -> SeriesCandidate:
    key = ("", "", False, "unreadable")
    if key not in groups:
        groups[key] = SeriesCandidate("", "", None, "", "", "", (), "")
    return groups[key]


# ---------------------------------------------------------------------------- selection


def _rejection(c: SeriesCandidate) -> str | None:
    """Why ``c`` cannot be the diagnostic axial CT series, or ``None`` when it can."""
    if not c.series_instance_uid:
        return f"{len(c.unreadable)} corrupt DICOM file(s) whose series cannot be read"
    if c.modality != "CT":
        return f"modality {c.modality or 'missing'} is not CT"
    if c.sop_class_uid != CT_IMAGE_STORAGE and c.sop_class_uid not in ENHANCED_CT_STORAGES:
        return f"SOP class {c.sop_class_uid or 'missing'} is not (Enhanced) CT Image Storage"
    if "LOCALIZER" in c.image_type:
        return "localizer (scout) images"
    if c.image_type and c.image_type[0] == "DERIVED":
        return "derived images (ImageType DERIVED), e.g. a reformat"
    if len(c.image_type) > 1 and c.image_type[1] == "SECONDARY":
        return "secondary images (ImageType SECONDARY)"
    if not c.frames:
        return "no images"
    if c.photometric and c.photometric != "MONOCHROME2":
        return f"PhotometricInterpretation {c.photometric} is not MONOCHROME2"
    angle = c.axial_angle_deg
    if angle is None:
        return "no ImageOrientationPatient"
    if angle > AXIAL_MAX_ANGLE_DEG:
        return (
            f"not axial: slice normal is {angle:.1f} deg from the z axis "
            f"(limit {AXIAL_MAX_ANGLE_DEG:g} deg; {c.orientation_label})"
        )
    return None


def _rank_key(c: SeriesCandidate) -> tuple[int, int, int, int, float, float]:
    """Sort key (smaller is better) of an acceptable candidate."""
    axial_tag = 0 if "AXIAL" in c.image_type else 1
    primary = 0 if c.image_type[:2] == ("ORIGINAL", "PRIMARY") else 1
    spacing = c.slice_spacing or math.inf
    ps = c.pixel_spacing
    area = ps[0] * ps[1] if ps else math.inf
    too_few = 0 if c.n_slices >= MIN_SLICES else 1
    return (too_few, primary, axial_tag, -c.n_slices, spacing, area)


def rank_candidates(candidates: Sequence[SeriesCandidate]) -> list[SeriesCandidate]:
    """Judge every candidate, fill ``accepted``/``reason``, return them best first.

    Rejected outright: modality other than CT; SOP class other than CT Image Storage,
    Enhanced CT or Legacy Converted Enhanced CT; ImageType LOCALIZER; ImageType DERIVED
    (value 1) or SECONDARY (value 2); PhotometricInterpretation other than MONOCHROME2;
    slice normal more than :data:`AXIAL_MAX_ANGLE_DEG` from the z axis. The acceptable
    ones are ranked by, in order: at least :data:`MIN_SLICES` images (a series with
    fewer is ranked last and makes :func:`load_series` raise TooFewSlicesError); ImageType starting ORIGINAL\\PRIMARY (before a missing/partial ImageType); AXIAL in
    ImageType; most slices; finest slice spacing; finest pixel spacing. The first is
    ``accepted``; the others get a reason naming the one chosen. Geometric defects
    (gaps, duplicates, mixed orientation) are *not* judged here: they make
    :func:`load_series` raise a precise error for the chosen series (:func:`check_series`
    reports them without loading).

    Args:
        candidates: from :func:`scan_folder`.

    Returns:
        All candidates, acceptable ones first (best first), then the rejected ones.
    """
    ok: list[SeriesCandidate] = []
    bad: list[SeriesCandidate] = []
    for c in candidates:
        why = _rejection(c)
        c.accepted = False
        if why is None:
            ok.append(c)
        else:
            c.reason = f"rejected: {why}"
            bad.append(c)
    ok.sort(key=_rank_key)
    if ok:
        best = ok[0]
        best.accepted = True
        spacing = best.slice_spacing
        sp = f", {spacing:.3g} mm apart" if spacing else ""
        image_type = "\\".join(best.image_type) or "missing"
        best.reason = f"selected: axial CT, {best.n_slices} slices{sp}, ImageType {image_type}"
        for c in ok[1:]:
            c.reason = (
                f"not selected: an acceptable CT series, ranked below {best.label} "
                f"({c.n_slices} vs {best.n_slices} slices)"
            )
    return ok + bad


def select_ct_series(candidates: Sequence[SeriesCandidate]) -> SeriesCandidate:
    """Return the best diagnostic axial CT series (rules: :func:`rank_candidates`).

    Raises:
        NoCTSeriesError: no candidate qualifies; the message lists every rejection.
    """
    ranked = rank_candidates(candidates)
    if ranked and ranked[0].accepted:
        log.info("using %s: %s", ranked[0].label, ranked[0].reason)
        return ranked[0]
    lines = "; ".join(f"{c.label}: {c.reason}" for c in ranked) or "no series"
    raise NoCTSeriesError(f"no usable axial CT series: {lines}")


def find_series(path: str | os.PathLike[str]) -> list[SeriesCandidate]:
    """Scan ``path`` and rank its series (best first), each with its ``reason``."""
    return rank_candidates(scan_folder(path))


# ----------------------------------------------------------------------------- geometry


def check_series(candidate: SeriesCandidate) -> SeriesGeometry:
    """Validate the geometry of a series from its headers alone and build its affine.

    Raises:
        TooFewSlicesError: fewer than :data:`MIN_SLICES` images.
        InconsistentOrientationError: IOP/IPP missing, not unit/orthogonal, or different
            between slices.
        MixedImageSizeError: Rows, Columns or PixelSpacing differ between slices.
        DuplicateSliceError: two slices at the same position.
        SliceGapError: slice gaps not uniform (missing slice).
        GantryTiltError: slices not on one line, or tilt above :data:`MAX_GANTRY_TILT_DEG`.
    """
    label = candidate.label
    frames = candidate.frames
    if len(frames) < MIN_SLICES:
        raise TooFewSlicesError(f"{label} has {len(frames)} slice(s); at least {MIN_SLICES} are needed")
    if any(f.orientation is None for f in frames) or any(f.position is None for f in frames):
        raise InconsistentOrientationError(
            f"{label}: a slice lacks ImagePositionPatient or ImageOrientationPatient"
        )
    iops = np.asarray([f.orientation for f in frames], dtype=np.float64)
    if np.abs(iops - iops[0]).max() > ORIENTATION_TOL:
        n_diff = int(np.sum(np.abs(iops - iops[0]).max(axis=1) > ORIENTATION_TOL))
        raise InconsistentOrientationError(
            f"{label}: {n_diff} of {len(frames)} slices have a different ImageOrientationPatient"
        )
    row, col = iops[0, :3], iops[0, 3:]
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        raise InconsistentOrientationError(
            f"{label}: ImageOrientationPatient cosines are not unit and orthogonal"
        )
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)

    sizes = {(f.rows, f.columns) for f in frames}
    spacings = {f.pixel_spacing for f in frames}
    if len(sizes) > 1:
        raise MixedImageSizeError(f"{label}: slices have different sizes (rows, columns) {sorted(sizes)}")
    if None in spacings:
        raise MixedImageSizeError(f"{label}: a slice lacks PixelSpacing")
    sp = np.asarray(sorted(spacings), dtype=np.float64)  # type: ignore[arg-type]
    if np.ptp(sp, axis=0).max() > 1e-4 * sp.max():
        raise MixedImageSizeError(f"{label}: slices have different PixelSpacing {sorted(spacings)}")  # type: ignore[type-var]
    if sp.min() <= 0:
        raise MixedImageSizeError(f"{label}: PixelSpacing must be positive")
    rows, cols = frames[0].rows, frames[0].columns
    if rows <= 0 or cols <= 0:
        raise MixedImageSizeError(f"{label}: Rows/Columns missing or zero")

    pos = np.asarray([f.position for f in frames], dtype=np.float64)
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    d, pos = d[order], pos[order]
    gaps = np.diff(d)
    dup = np.flatnonzero(gaps < DUPLICATE_TOL_MM)
    if dup.size:
        raise DuplicateSliceError(
            f"{label}: {dup.size} pair(s) of slices share a position (first at {d[dup[0]]:.2f} mm along the normal)"
        )
    median = float(np.median(gaps))
    tol = SLICE_SPACING_REL_TOL * median + POSITION_ABS_TOL_MM
    bad = np.flatnonzero(np.abs(gaps - median) > tol)
    if bad.size:
        worst = float(gaps[bad[np.argmax(np.abs(gaps[bad] - median))]])
        raise SliceGapError(
            f"{label}: slice spacing is not uniform: a gap of {worst:.3f} mm against a median of "
            f"{median:.3f} mm (tolerance {tol:.3f} mm); a slice is probably missing"
        )
    n = len(frames)
    step = (pos[-1] - pos[0]) / (n - 1)
    # every slice must lie on the line pos[0] + i * step (in-plane drift means no single affine)
    resid = pos - (pos[0] + np.arange(n)[:, None] * step)
    if np.abs(resid).max() > tol:
        raise GantryTiltError(
            f"{label}: slice positions are not on one straight line (deviation "
            f"{np.abs(resid).max():.3f} mm > {tol:.3f} mm); cannot build one affine"
        )
    along = float(step @ normal)
    tilt = float(np.degrees(np.arccos(min(1.0, abs(along) / float(np.linalg.norm(step))))))
    if tilt > MAX_GANTRY_TILT_DEG:
        raise GantryTiltError(
            f"{label}: gantry tilt of {tilt:.1f} deg exceeds the limit of {MAX_GANTRY_TILT_DEG:g} deg"
        )
    if tilt < NEGLIGIBLE_TILT_DEG:
        step = along * normal
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col * sp[0, 0]
    affine[:3, 2] = row * sp[0, 1]
    affine[:3, 3] = pos[0]
    return SeriesGeometry(
        frames=tuple(frames[i] for i in order), affine=affine, slice_spacing_mm=abs(along), tilt_deg=tilt
    )


# ------------------------------------------------------------------------------ loading


def _is_integral(x: float) -> bool:
    # Large integers take the float path: int64 arithmetic must not overflow.
    return float(x).is_integer() and abs(x) <= _INT_RESCALE_MAX


def _check_rescale(label: str, frames: Sequence[FrameRef]) -> None:
    """Refuse a RescaleSlope/RescaleIntercept that is not finite, or a zero slope.

    Raises:
        InputError: a slice has such a value.
    """
    for f in frames:
        if not (math.isfinite(f.slope) and math.isfinite(f.intercept)) or f.slope == 0:
            raise InputError(
                f"{label}: file {f.path.name} has an unusable RescaleSlope/RescaleIntercept "
                "(not finite, or a zero slope); the Hounsfield units cannot be computed"
            )


def _check_decodable(candidate: SeriesCandidate, frames: Sequence[FrameRef]) -> None:
    label = candidate.label
    for f in frames:
        if f.truncated:
            raise UnreadableFileError(f"{label}: file {f.path.name} is truncated or corrupt")
        if not f.has_pixel_data:
            raise MissingPixelDataError(f"{label}: file {f.path.name} has no PixelData")
        if f.samples_per_pixel != 1 or f.bits_allocated not in (8, 16, 32):
            raise UnsupportedTransferSyntaxError(
                f"{label}: {f.samples_per_pixel} sample(s) of {f.bits_allocated} bits per pixel is not a CT image"
            )
    for ts in sorted({f.transfer_syntax for f in frames}):
        if ts in _NATIVE_LE_SYNTAXES:
            continue
        name = UID(ts).name if ts else "missing"
        try:
            ok = get_decoder(ts).is_available
        except NotImplementedError:
            ok = False
        if not ok:
            raise UnsupportedTransferSyntaxError(
                f"{label}: transfer syntax {name} ({ts or '-'}) cannot be decoded by any installed plugin"
            )


def _native_read(f: FrameRef, out: npt.NDArray[Any]) -> bool:
    """Read one uncompressed little-endian frame straight from the file into ``out``.

    Returns False when the file layout is not the simple case (caller then uses pydicom).

    Raises:
        UnreadableFileError: the pixel data is shorter than Rows x Columns x frames.
    """
    if f.transfer_syntax not in _NATIVE_LE_SYNTAXES or f.pixel_offset is None:
        return False
    explicit = f.transfer_syntax == ExplicitVRLittleEndian
    try:
        fp = open(f.path, "rb")
    except OSError as exc:
        raise UnreadableFileError(f"file {f.path.name} cannot be read: {_os_reason(exc)}") from exc
    with fp:
        fp.seek(f.pixel_offset)
        head = fp.read(12 if explicit else 8)
        if head[:4] != _PIXEL_DATA_TAG_LE:
            return False
        if explicit:
            if head[4:6] not in (b"OW", b"OB"):
                return False
            (length,) = struct.unpack("<I", head[8:12])
        else:
            (length,) = struct.unpack("<I", head[4:8])
        nbytes = out.nbytes
        skip = (f.frame or 0) * nbytes
        if length == _UNDEFINED_LENGTH or length < skip + nbytes:
            if length == _UNDEFINED_LENGTH:
                return False
            raise UnreadableFileError(
                f"file {f.path.name}: PixelData holds {length} bytes, fewer than the image needs"
            )
        if skip:
            fp.seek(skip, os.SEEK_CUR)
        got = fp.readinto(memoryview(out).cast("B"))  # type: ignore[arg-type]
    if got != nbytes:
        raise UnreadableFileError(f"file {f.path.name} is truncated: {got} of {nbytes} pixel bytes present")
    return True


def _fix_bits(raw: npt.NDArray[Any], f: FrameRef) -> npt.NDArray[Any]:
    """Clear/sign-extend the bits above BitsStored (pydicom does this on its own path)."""
    bs, ba = f.bits_stored, f.bits_allocated
    if 0 < bs < ba:
        if f.pixel_representation == 1:
            shift = ba - bs
            raw <<= shift
            raw >>= shift
        else:
            raw &= (1 << bs) - 1
    return raw


def _check_encapsulated(f: FrameRef) -> None:
    """Walk the item headers of encapsulated pixel data and require the closing delimiter.

    Some codecs decode a cut codestream without complaint, so a truncated compressed file
    is caught here, from the item lengths, before decoding.

    Raises:
        UnreadableFileError: the items run past the end of the file or are malformed.
    """
    if f.pixel_offset is None:
        return
    size = f.path.stat().st_size
    with open(f.path, "rb") as fp:
        fp.seek(f.pixel_offset)
        head = fp.read(12)
        if len(head) < 12 or struct.unpack("<I", head[8:12])[0] != _UNDEFINED_LENGTH:
            return  # not encapsulated in the usual way: let pydicom judge
        while True:
            item = fp.read(8)
            if len(item) < 8:
                raise UnreadableFileError(
                    f"file {f.path.name} is truncated: compressed pixel data ends early"
                )
            group, elem, length = struct.unpack("<HHI", item)
            if (group, elem) == (0xFFFE, 0xE0DD):
                return
            if (group, elem) != (0xFFFE, 0xE000) or length == _UNDEFINED_LENGTH:
                raise UnreadableFileError(f"file {f.path.name}: malformed encapsulated pixel data")
            if fp.tell() + length > size:
                raise UnreadableFileError(
                    f"file {f.path.name} is truncated: a compressed fragment runs past the end of the file"
                )
            fp.seek(length, os.SEEK_CUR)


class _Decoder:
    """Decodes frames one by one, caching the last multi-frame compressed file."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._cache_path: Path | None = None
        self._cache: npt.NDArray[Any] | None = None

    def raw(self, f: FrameRef) -> npt.NDArray[Any]:
        dtype = np.dtype(f"<{'i' if f.pixel_representation else 'u'}{max(1, f.bits_allocated // 8)}")
        buf = np.empty((f.rows, f.columns), dtype=dtype)
        if _native_read(f, buf):
            return _fix_bits(buf, f)
        encapsulated = f.transfer_syntax not in _NATIVE_LE_SYNTAXES and UID(f.transfer_syntax).is_encapsulated
        try:
            if f.frame is None:
                if encapsulated:
                    _check_encapsulated(f)
                with _BaseNameReader(f.path) as fp:
                    arr = pydicom_pixel_array(fp)
            else:
                if self._cache_path != f.path:
                    if encapsulated:
                        _check_encapsulated(f)
                    with _BaseNameReader(f.path) as fp:
                        self._cache = pydicom_pixel_array(fp)
                    self._cache_path = f.path
                assert self._cache is not None
                arr = self._cache[f.frame] if self._cache.ndim == 3 else self._cache
        except (ValueError, EOFError, OSError, RuntimeError, TypeError) as exc:
            raise UnreadableFileError(
                f"{self.label}: pixel data of file {f.path.name} cannot be decoded: "
                f"{_os_reason(exc) if isinstance(exc, OSError) else exc}"
            ) from exc
        if arr.shape != (f.rows, f.columns):
            raise UnreadableFileError(f"{self.label}: file {f.path.name} decoded to shape {arr.shape}")
        return arr


def _wrap16(x: int) -> int:
    """``x`` modulo 2**16 as an int16 value."""
    return (x + 32768) % 65536 - 32768


def _load_int16(f: FrameRef, dec: _Decoder, dst: npt.NDArray[np.int16]) -> bool:
    """Decode one frame and rescale it into the int16 slice ``dst`` without a temporary volume.

    Uncompressed 16-bit frames are read straight into ``dst`` (viewed as the stored
    integer type); others are decoded by ``dec`` and copied. The Hounsfield range is
    checked first (from BitsStored when that suffices for a frame read here, else from
    the frame's minimum and maximum); then slope and intercept are applied in place in int16 arithmetic, which is
    exact because it is exact modulo 2**16 and the result is known to fit.

    Returns:
        False when the frame does not fit int16 or is not integer: ``dst`` is then
        undefined and the caller takes the general path.

    Raises:
        UnreadableFileError: the pixel data cannot be read or decoded.
    """
    slope, intercept = int(f.slope), int(f.intercept)
    stored: npt.NDArray[Any] | None = None
    if f.bits_allocated == 16:
        stored = dst.view(np.int16 if f.pixel_representation else np.uint16)
        if _native_read(f, stored):
            _fix_bits(stored, f)
        else:
            stored = None
    raw = stored if stored is not None else dec.raw(f)
    if raw.dtype.kind not in "iu":
        return False
    fits = False
    if stored is not None:  # the bits above BitsStored were just cleared / sign-extended
        bits = f.bits_stored if 0 < f.bits_stored <= 16 else 16
        if raw.dtype.kind == "i":
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            lo, hi = 0, (1 << bits) - 1
        ends = (lo * slope + intercept, hi * slope + intercept)
        fits = _INT16_MIN <= min(ends) and max(ends) <= _INT16_MAX
    if not fits:
        lo, hi = int(raw.min()), int(raw.max())
        ends = (lo * slope + intercept, hi * slope + intercept)
        if not (_INT16_MIN <= min(ends) and max(ends) <= _INT16_MAX):
            return False
    if stored is None:
        np.copyto(dst, raw, casting="unsafe")  # exact modulo 2**16
    if slope != 1:
        dst *= _wrap16(slope)
    if intercept != 0:
        dst += _wrap16(intercept)
    return True


def _check_uids(candidate: SeriesCandidate, frames: Sequence[FrameRef]) -> None:
    """Refuse UIDs that are not digits and dots: outputs are named and referenced by them.

    The offending value is not quoted (it may hold anything, e.g. a path or a name).

    Raises:
        InputError: a Study/Series/SOP Instance UID or the FrameOfReferenceUID is missing or
            not a valid DICOM UID.
    """
    header = candidate.header
    values = {
        "StudyInstanceUID": [candidate.study_instance_uid],
        "SeriesInstanceUID": [candidate.series_instance_uid],
        "FrameOfReferenceUID": [str(header.get("FrameOfReferenceUID", "") or "") if header is not None else ""],
        "SOPInstanceUID": sorted({f.sop_instance_uid for f in frames}),
    }
    for keyword, uids in values.items():
        bad = [u for u in uids if not (0 < len(u) <= _UID_MAX_LEN and _UID_RE.match(u))]
        if bad:
            raise InputError(
                f"the selected CT series has {len(bad)} missing or invalid {keyword} value(s) "
                f"(a UID is digits and dots, at most {_UID_MAX_LEN} characters); refusing it"
            )


def default_max_bytes() -> int | None:
    """:data:`DEFAULT_MEMORY_FRACTION` of the machine's physical memory, ``None`` when unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return int(total * DEFAULT_MEMORY_FRACTION) if total > 0 else None


def _decode_slice(
    i: int, f: FrameRef, dec: _Decoder, out: npt.NDArray[Any], label: str
) -> npt.NDArray[Any]:
    """Decode frame ``f`` into slice ``i`` of ``out``; returns ``out`` (promoted to float32 when needed)."""
    if out.dtype == np.int16 and _load_int16(f, dec, out[i]):
        return out
    raw = dec.raw(f)
    if f.slope == 1.0 and f.intercept == 0.0 and raw.dtype == out.dtype:
        out[i] = raw
        return out
    if out.dtype == np.int16:
        tmp = raw.astype(np.int64) * int(f.slope) + int(f.intercept)
        lo, hi = int(tmp.min()), int(tmp.max())
        if lo < _INT16_MIN or hi > _INT16_MAX:
            log.info("%s: values %d..%d do not fit int16, using float32", label, lo, hi)
            out = out.astype(np.float32)
        out[i] = tmp
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        out[i] = raw.astype(np.float64) * f.slope + f.intercept
    if not np.isfinite(out[i]).all():
        raise InputError(
            f"{label}: file {f.path.name}: RescaleSlope/RescaleIntercept give values beyond the "
            "float32 range; the Hounsfield units cannot be represented"
        )
    return out


def load_series(
    candidate: SeriesCandidate, *, max_bytes: int | None = None, block_sums_mm: float | None = None
) -> Volume:
    """Decode a series into a :class:`Volume` of Hounsfield units.

    The geometry is checked first (:func:`check_series`), then pixel data presence and the
    transfer syntaxes, then the memory budget -- all from headers, before any pixel is
    decoded. Pixels go into one preallocated array; uncompressed little-endian files are
    read straight from disk, compressed ones through pydicom's pixel-data plugins.

    Args:
        candidate: a series from :func:`scan_folder`.
        max_bytes: refuse when the output array would need more bytes than this; ``None``:
            :func:`default_max_bytes` (a fraction of physical memory).
        block_sums_mm: also sum each slice's in-plane blocks for resampling to this grid
            spacing while the slice is decoded (``Volume.block_sums``,
            :mod:`spinevcf.decimate`; the localizer's input is then made without reading
            the whole volume again, with the same values); ``None``: not made.

    Returns:
        The volume, ``array`` of shape (slices, rows, columns), ``int16`` when every slope
        and intercept is an integer (and the values fit), else ``float32``; ``info``
        filled from the headers (``sop_instance_uids`` in array order, one per slice; for
        multi-frame images ``info.extra['frame_numbers']`` gives the 1-based frame).

    Raises:
        UnreadableFileError, MissingPixelDataError, UnsupportedTransferSyntaxError,
        VolumeTooLargeError, InputError (invalid UIDs) and the errors of :func:`check_series`.
    """
    geom = check_series(candidate)
    frames = geom.frames
    label = candidate.label
    if candidate.unreadable:
        raise UnreadableFileError(
            f"{label}: {len(candidate.unreadable)} file(s) are truncated or corrupt, "
            f"e.g. {candidate.unreadable[0].name}"
        )
    _check_uids(candidate, frames)
    _check_rescale(label, frames)
    _check_decodable(candidate, frames)
    integral = all(_is_integral(f.slope) and _is_integral(f.intercept) for f in frames)
    dtype = np.dtype(np.int16 if integral else np.float32)
    shape = (len(frames), frames[0].rows, frames[0].columns)
    need = int(np.prod(shape)) * dtype.itemsize
    limit = max_bytes if max_bytes is not None else default_max_bytes()
    limit_name = f"max_bytes={max_bytes}" if max_bytes is not None else (
        f"{limit} bytes ({DEFAULT_MEMORY_FRACTION:g} of physical memory)"
    )
    if limit is not None and need > limit:
        raise VolumeTooLargeError(
            f"{label}: a {shape[0]}x{shape[1]}x{shape[2]} {dtype.name} volume needs {need} bytes, "
            f"above the limit of {limit_name}"
        )
    try:
        out = np.empty(shape, dtype=dtype)
    except MemoryError as exc:
        raise VolumeTooLargeError(
            f"{label}: a {shape[0]}x{shape[1]}x{shape[2]} {dtype.name} volume needs {need} bytes, "
            "more than this machine can allocate"
        ) from exc
    sums = None
    if block_sums_mm is not None:
        spacing = np.linalg.norm(geom.affine[:3, :3], axis=0)
        sums = plan_block_sums(shape, spacing, block_sums_mm, dtype)
    dec = _Decoder(label)
    for i, f in enumerate(frames):
        out = _decode_slice(i, f, dec, out, label)
        if sums is not None:
            if out.dtype != np.int16:
                sums = None  # promoted to float32: the resampling sums the volume itself
            else:
                sum_slice_blocks(out[i], sums.factors, sums.sums[i])  # while the slice is cache-hot
    header = candidate.header
    info = SeriesInfo(
        study_instance_uid=candidate.study_instance_uid,
        series_instance_uid=candidate.series_instance_uid,
        frame_of_reference_uid=str(header.get("FrameOfReferenceUID", "")) if header is not None else "",
        modality=candidate.modality,
        series_description=candidate.series_description,
        sop_instance_uids=tuple(f.sop_instance_uid for f in frames),
        sop_class_uid=candidate.sop_class_uid,
        dataset=header,
        extra={
            "series_number": candidate.series_number,
            "slice_spacing_mm": geom.slice_spacing_mm,
            "gantry_tilt_deg": geom.tilt_deg,
            "transfer_syntax_uids": sorted({f.transfer_syntax for f in frames}),
            "frame_numbers": [None if f.frame is None else f.frame + 1 for f in frames],
        },
    )
    log.info(
        "loaded %s: %s voxels %s, spacing %s mm, tilt %.2f deg",
        label,
        "x".join(map(str, shape)),
        out.dtype.name,
        np.round(np.linalg.norm(geom.affine[:3, :3], axis=0), 4).tolist(),
        geom.tilt_deg,
    )
    return Volume(out, geom.affine, info, block_sums=sums)


def load_study(
    folder: str | os.PathLike[str], *, max_bytes: int | None = None, block_sums_mm: float | None = None
) -> Volume:
    """Scan ``folder``, select the diagnostic axial CT series and load it.

    Refuses (:class:`UnreadableFileError`) when the folder holds corrupt DICOM files whose
    series cannot be determined: one of them may be a slice of the selected series.

    Args:
        folder: folder with the study's DICOM files (any layout, searched recursively).
        max_bytes: memory limit for the output array (see :func:`load_series`).
        block_sums_mm: see :func:`load_series`.

    Raises:
        NoDicomFilesError, NoCTSeriesError, UnreadableFileError and the errors of
        :func:`load_series`.
    """
    candidates = scan_folder(folder)
    chosen = select_ct_series(candidates)
    unknown = [p for c in candidates if not c.series_instance_uid for p in c.unreadable]
    if unknown:
        raise UnreadableFileError(
            f"{len(unknown)} corrupt DICOM file(s) of unknown series (e.g. {unknown[0].name}) may belong "
            f"to {chosen.label}; refusing to load a possibly incomplete series"
        )
    return load_series(chosen, max_bytes=max_bytes, block_sums_mm=block_sums_mm)
