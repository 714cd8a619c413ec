"""Write a :class:`~spinevcf.volume.Volume` as a CT Image Storage series.

Used by the synthetic data generator and by tests. The geometry comes from the volume
affine (docs/architecture.md): array axis 0 = slices, 1 = rows, 2 = columns, so

* ImageOrientationPatient = (unit column-2 direction, unit column-1 direction),
* PixelSpacing = (|affine column 1|, |affine column 2|) (row spacing, column spacing),
* ImagePositionPatient of slice ``k`` = ``affine @ (k, 0, 0, 1)``.

Column 0 need not be orthogonal to the slice plane: a sheared affine (gantry tilt) is
written exactly through the slice positions. The in-plane columns 1 and 2 must be
orthogonal. Pixels are stored as 16-bit integers with RescaleSlope/RescaleIntercept
(per slice if sequences are given), so ``HU = stored * slope + intercept`` exactly
reproduces the volume values rounded to the slope's quantum.

Compressed transfer syntaxes use :meth:`pydicom.dataset.Dataset.compress` where pydicom
has an encoder: RLE Lossless (native), JPEG-LS Lossless (pyjpegls), JPEG 2000 Lossless
(pylibjpeg-openjpeg). pydicom has no JPEG Lossless (Process 14) encoder, so that syntax is
refused here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydicom.datadict import keyword_dict
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from spinevcf.errors import OutputError
from spinevcf.volume import Volume

__all__ = [
    "DEFAULT_PATIENT",
    "SUPPORTED_TRANSFER_SYNTAXES",
    "write_ct_series",
    "patient_position_from_orientation",
]

log = logging.getLogger(__name__)

#: Patient module attributes written when the caller gives none (synthetic, not a person).
DEFAULT_PATIENT: dict[str, str] = {
    "PatientName": "SYNTHETIC^SPINE",
    "PatientID": "SVCF-0001",
    "PatientBirthDate": "19600101",
    "PatientSex": "O",
}
#: Transfer syntaxes this writer can produce.
SUPPORTED_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless}
)
#: Largest deviation from orthogonality (cosine) allowed between the in-plane axes.
_INPLANE_ORTHO_TOL = 1e-6
#: Smallest image side the JPEG 2000 encoder (fixed 6 resolutions) accepts.
_J2K_MIN_SIZE = 32
_DEFAULT_DATE = "20000101"
_DEFAULT_TIME = "120000"


def patient_position_from_orientation(row_cosines: npt.ArrayLike, col_cosines: npt.ArrayLike) -> str:
    """PatientPosition (HFS, FFS, HFP, FFP) of an axial image with this orientation.

    Uses the usual scanner convention: supine images have rows going posterior (column
    cosine +y), prone ones anterior; head-first supine images have columns going to the
    patient's left (+x), feet-first supine ones to the right (mirrored for prone).
    """
    row = np.asarray(row_cosines, dtype=np.float64)
    col = np.asarray(col_cosines, dtype=np.float64)
    supine = col[1] >= 0
    head_first = (row[0] >= 0) == supine
    return ("HF" if head_first else "FF") + ("S" if supine else "P")


def _per_slice(value: float | Sequence[float], n: int, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(
            f"{name} must be a number or a sequence of {n} values (one per slice), got shape {arr.shape}"
        )
    return arr


def _uid(seed: int | None, *parts: object) -> UID:
    if seed is None:
        return generate_uid()
    return generate_uid(entropy_srcs=["spinevcf", str(seed), *map(str, parts)])


def _ds_value(v: float) -> str:
    """Decimal String (max 16 characters) for a float."""
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    if len(s) > 16:
        s = f"{v:.10g}"[:16]
    return s


def write_ct_series(
    volume: Volume,
    out_dir: str | os.PathLike[str],
    *,
    patient: Mapping[str, Any] | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_description: str = "spinevcf synthetic CT",
    series_number: int = 1,
    transfer_syntax: str = ExplicitVRLittleEndian,
    slice_order: Literal["ascending", "descending"] = "ascending",
    shuffle_files: bool = False,
    kvp: float = 120.0,
    convolution_kernel: str | None = None,
    rescale_slope: float | Sequence[float] = 1.0,
    rescale_intercept: float | Sequence[float] = -1024.0,
    pixel_representation: int = 1,
    bits_stored: int = 16,
    patient_position: str | None = None,
    study_date: str = _DEFAULT_DATE,
    manufacturer: str = "spinevcf",
    rng_seed: int | None = None,
) -> list[Path]:
    """Write ``volume`` as a CT Image Storage series, one file per slice.

    Args:
        volume: HU volume (slices, rows, columns) with its affine; in-plane axes orthogonal.
        out_dir: folder to write to (created).
        patient: Patient-module attributes by DICOM keyword, replacing
            :data:`DEFAULT_PATIENT` entries (e.g. ``{"PatientID": "X"}``).
        study_instance_uid: StudyInstanceUID (generated when ``None``).
        series_instance_uid: SeriesInstanceUID (generated when ``None``).
        frame_of_reference_uid: FrameOfReferenceUID (generated when ``None``).
        series_description: SeriesDescription.
        series_number: SeriesNumber.
        transfer_syntax: one of :data:`SUPPORTED_TRANSFER_SYNTAXES`.
        slice_order: ``"ascending"``: InstanceNumber 1 is array slice 0;
            ``"descending"``: InstanceNumber 1 is the last array slice.
        shuffle_files: write the files in random order with InstanceNumbers in random order
            (tests that readers use positions only).
        kvp: KVP.
        convolution_kernel: ConvolutionKernel (omitted when ``None``).
        rescale_slope: RescaleSlope, one value or one per array slice.
        rescale_intercept: RescaleIntercept, one value or one per array slice.
        pixel_representation: 1 signed (default) or 0 unsigned stored values.
        bits_stored: BitsStored (12..16); stored values must fit.
        patient_position: PatientPosition; inferred from the orientation when ``None``.
        study_date: StudyDate/SeriesDate/ContentDate (YYYYMMDD).
        manufacturer: Manufacturer.
        rng_seed: seed making UIDs and the shuffle deterministic; ``None``: random UIDs.

    Returns:
        The written paths, in array slice order (index 0 first). Files are named
        ``<SOPInstanceUID>.dcm``.

    Raises:
        ValueError: unsupported transfer syntax, bad arguments, values that do not fit the
            stored integer range, non-orthogonal in-plane axes.
        OutputError: the folder cannot be written.
    """
    if transfer_syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        raise ValueError(
            f"transfer_syntax {UID(transfer_syntax).name} has no encoder here; use one of "
            f"{sorted(UID(u).name for u in SUPPORTED_TRANSFER_SYNTAXES)}"
        )
    if slice_order not in ("ascending", "descending"):
        raise ValueError(f"slice_order must be 'ascending' or 'descending', got {slice_order!r}")
    if pixel_representation not in (0, 1):
        raise ValueError(f"pixel_representation must be 0 or 1, got {pixel_representation!r}")
    if not 8 < bits_stored <= 16:
        raise ValueError(f"bits_stored must be 9..16, got {bits_stored}")
    pat = dict(DEFAULT_PATIENT)
    for key, value in (patient or {}).items():
        if key not in keyword_dict:
            raise ValueError(f"patient key {key!r} is not a DICOM keyword")
        pat[key] = value

    n, rows, cols = volume.shape
    if transfer_syntax == JPEG2000Lossless and min(rows, cols) < _J2K_MIN_SIZE:
        raise ValueError(
            f"JPEG 2000 encoding (6 wavelet levels in pylibjpeg-openjpeg) needs rows and columns >= "
            f"{_J2K_MIN_SIZE}, got {rows}x{cols}"
        )
    aff = volume.affine
    col_step, row_step = aff[:3, 1], aff[:3, 2]
    row_sp, col_sp = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    row_cos, col_cos = row_step / col_sp, col_step / row_sp
    if abs(float(row_cos @ col_cos)) > _INPLANE_ORTHO_TOL:
        raise ValueError("the volume's in-plane axes (affine columns 1 and 2) are not orthogonal")
    normal = np.cross(row_cos, col_cos)
    slice_gap = abs(float(aff[:3, 0] @ normal))
    if slice_gap <= 0:
        raise ValueError("the volume's slice axis lies in the slice plane")

    slopes = _per_slice(rescale_slope, n, "rescale_slope")
    intercepts = _per_slice(rescale_intercept, n, "rescale_intercept")
    if np.any(slopes <= 0):
        raise ValueError("rescale_slope must be positive")
    if pixel_representation:
        lo, hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
        store_dtype = np.dtype("<i2")
    else:
        lo, hi = 0, (1 << bits_stored) - 1
        store_dtype = np.dtype("<u2")

    rng = np.random.default_rng(rng_seed)
    study_uid = study_instance_uid or _uid(rng_seed, "study")
    series_uid = series_instance_uid or _uid(rng_seed, "series", series_number)
    for_uid = frame_of_reference_uid or _uid(rng_seed, "for")
    sop_uids = [_uid(rng_seed, series_uid, "sop", k) for k in range(n)]
    for u in (study_uid, series_uid, for_uid, *sop_uids[:1]):
        if not UID(u).is_valid:
            raise ValueError(f"invalid UID {u!r}")

    instance_numbers = np.arange(1, n + 1) if slice_order == "ascending" else np.arange(n, 0, -1)
    write_order = np.arange(n) if slice_order == "ascending" else np.arange(n)[::-1]
    if shuffle_files:
        instance_numbers = rng.permutation(instance_numbers)
        write_order = rng.permutation(n)

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out.name!r}: {exc.strerror}") from exc

    base = Dataset()
    base.SpecificCharacterSet = "ISO_IR 100"
    base.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    base.SOPClassUID = CTImageStorage
    now = datetime.now()
    base.InstanceCreationDate = now.strftime("%Y%m%d")
    base.InstanceCreationTime = now.strftime("%H%M%S")
    base.StudyDate = base.SeriesDate = base.AcquisitionDate = base.ContentDate = study_date
    base.StudyTime = base.SeriesTime = base.AcquisitionTime = base.ContentTime = _DEFAULT_TIME
    base.AccessionNumber = ""
    base.Modality = "CT"
    base.Manufacturer = manufacturer
    base.ReferringPhysicianName = ""
    base.StudyDescription = "spinevcf"
    base.SeriesDescription = series_description
    for key, value in pat.items():
        setattr(base, key, value)
    base.BodyPartExamined = "SPINE"
    base.SliceThickness = _ds_value(slice_gap)
    base.SpacingBetweenSlices = _ds_value(slice_gap)
    base.KVP = _ds_value(kvp)
    if convolution_kernel is not None:
        base.ConvolutionKernel = convolution_kernel
    base.PatientPosition = patient_position or patient_position_from_orientation(row_cos, col_cos)
    base.StudyInstanceUID = study_uid
    base.SeriesInstanceUID = series_uid
    base.StudyID = "1"
    base.SeriesNumber = series_number
    base.AcquisitionNumber = 1
    base.FrameOfReferenceUID = for_uid
    base.PositionReferenceIndicator = ""
    base.ImageOrientationPatient = [_ds_value(v) for v in (*row_cos, *col_cos)]
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.Rows = rows
    base.Columns = cols
    base.PixelSpacing = [_ds_value(row_sp), _ds_value(col_sp)]
    base.BitsAllocated = 16
    base.BitsStored = bits_stored
    base.HighBit = bits_stored - 1
    base.PixelRepresentation = pixel_representation
    base.WindowCenter = "400"
    base.WindowWidth = "1800"
    base.RescaleType = "HU"

    paths: list[Path] = [Path()] * n
    compressed = transfer_syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    arr = volume.array
    for k in write_order:
        k = int(k)
        hu = np.asarray(arr[k], dtype=np.float64)
        stored = np.rint((hu - intercepts[k]) / slopes[k])
        smin, smax = float(stored.min()), float(stored.max())
        if smin < lo or smax > hi:
            raise ValueError(
                f"slice {k}: stored values {smin:.0f}..{smax:.0f} do not fit {bits_stored} bits "
                f"({'signed' if pixel_representation else 'unsigned'}) with slope {slopes[k]:g} and "
                f"intercept {intercepts[k]:g}"
            )
        pix = stored.astype(store_dtype)
        ds = Dataset()
        ds.update(base)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uids[k]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if compressed else transfer_syntax
        ds.file_meta = meta
        ds.SOPInstanceUID = sop_uids[k]
        ds.InstanceNumber = int(instance_numbers[k])
        ipp = aff[:3, :3] @ np.array([k, 0.0, 0.0]) + aff[:3, 3]
        ds.ImagePositionPatient = [_ds_value(v) for v in ipp]
        ds.SliceLocation = _ds_value(float(ipp @ normal))
        ds.RescaleIntercept = _ds_value(intercepts[k])
        ds.RescaleSlope = _ds_value(slopes[k])
        if compressed:
            ds.compress(transfer_syntax, arr=pix, generate_instance_uid=False)
        else:
            ds.PixelData = pix.tobytes()
        path = out / f"{sop_uids[k]}.dcm"
        try:
            ds.save_as(path, enforce_file_format=True)
        except OSError as exc:
            raise OutputError(f"cannot write {path.name}: {exc.strerror}") from exc
        paths[k] = path
    log.info("wrote %d CT slices (%s) to the folder %r", n, UID(transfer_syntax).name, out.name)
    return paths
