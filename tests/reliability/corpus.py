"""Builders of the reliability corpus: small, deliberately bad (or odd) CT studies.

Every builder writes one study into an empty folder and returns that folder. Studies
are small (:data:`SHAPE`, 16 slices of 64 x 64) so the whole corpus is written in a
few seconds. Every DICOM file carries :data:`PATIENT`, distinctive identifiers that
the security tests look for in logs, messages and outputs.

:data:`CASES` lists each builder with the outcome spinevcf must produce:

* ``library``: what :func:`spinevcf.io.dicom.load_study` does -- an exception class
  (the *exact* class expected) or :data:`VOLUME` (returns a volume);
* ``app``: what ``python -m app`` does -- ``"error"`` (one-line message, the exit code
  of the library error, no output files) or ``"result"`` (exit 0 with a results.json;
  ``expect_status`` says which status, ``None`` when any valid status is fine).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import JPEG2000Lossless, MRImageStorage, generate_uid

from spinevcf.errors import (
    DuplicateSliceError,
    GantryTiltError,
    InputError,
    NoCTSeriesError,
    NoDicomFilesError,
    SliceGapError,
    SpineVCFError,
    TooFewSlicesError,
    UnreadableFileError,
    VolumeTooLargeError,
)
from spinevcf.io.dicom_write import write_ct_series
from spinevcf.volume import Volume

__all__ = [
    "PATIENT",
    "SHAPE",
    "SPACING_MM",
    "VOLUME",
    "Case",
    "CASES",
    "case_by_name",
    "make_volume",
    "write_valid",
    "dicom_files",
]

#: Identifiers written into every corpus file; they must never appear in logs or messages.
PATIENT: dict[str, str] = {
    "PatientName": "Zyxwortel^Brunhildegard",
    "PatientID": "PID-QZ-846213",
    "PatientBirthDate": "19470521",
}
#: (slices, rows, columns) of the corpus volumes.
SHAPE: tuple[int, int, int] = (16, 64, 64)
#: (slice, row, column) spacing in mm.
SPACING_MM: tuple[float, float, float] = (3.0, 2.0, 2.0)
#: Marker for "load_study returns a volume".
VOLUME = "volume"
#: Gantry tilts (degrees) written by the tilt builders: one accepted, one refused.
TILT_OK_DEG = 15.0
TILT_BAD_DEG = 40.0
#: Slice-normal angles (degrees) from the z axis of the oblique builders.
OBLIQUE_OK_DEG = 20.0
OBLIQUE_BAD_DEG = 60.0
#: What the "huge" headers claim: rows, columns and slices (4096 x 4096 x 2000 x 2 bytes = 67 GB).
HUGE_ROWS = HUGE_COLS = 4096
HUGE_SLICES = 2000
#: Rescale slope of the wrongly rescaled study.
BAD_SLOPE = 1000.0
_AIR_HU = -1000
_WATER_HU = 0
_BONE_HU = 700
_SKULL_HU = 1200
#: Enhanced CT Image Storage SOP class.
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"


def make_volume(
    *,
    shape: tuple[int, int, int] = SHAPE,
    spine: bool = True,
    body: bool = True,
    tilt_deg: float = 0.0,
    oblique_deg: float = 0.0,
) -> Volume:
    """A water cylinder in air with a bone column behind its centre.

    Args:
        shape: (slices, rows, columns).
        spine: add the bone column.
        body: add the water cylinder (``False`` with ``spine=False``: all air).
        tilt_deg: gantry tilt: the slice step leans posteriorly by this angle.
        oblique_deg: rotate the slice plane about the patient's x axis by this angle.

    Returns:
        An int16 HU volume; slices go inferior, rows posterior, columns to the left.
    """
    n0, n1, n2 = shape
    arr = np.full(shape, _AIR_HU, dtype=np.int16)
    r, c = np.mgrid[0:n1, 0:n2]
    if body:
        arr[:, (r - n1 / 2) ** 2 + (c - n2 / 2) ** 2 <= (0.4 * n1) ** 2] = _WATER_HU
    if spine:
        arr[:, (r - 0.62 * n1) ** 2 + (c - n2 / 2) ** 2 <= (0.08 * n1) ** 2] = _BONE_HU
    s0, s1, s2 = SPACING_MM
    t = np.radians(oblique_deg)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])
    row_dir = rot @ np.array([0.0, 1.0, 0.0])  # array axis 1 (rows) goes posterior
    col_dir = rot @ np.array([1.0, 0.0, 0.0])  # array axis 2 (columns) goes left
    normal = -np.cross(col_dir, row_dir)  # inferior for oblique_deg = 0
    step = normal * s0 + row_dir * s0 * np.tan(np.radians(tilt_deg))
    aff = np.eye(4)
    aff[:3, 0] = step
    aff[:3, 1] = row_dir * s1
    aff[:3, 2] = col_dir * s2
    aff[:3, 3] = (-n2 * s2 / 2, -n1 * s1 / 2, 0.0)
    return Volume(arr, aff)


def write_valid(folder: Path, *, seed: int = 1, **kwargs: object) -> Path:
    """A valid study (one CT series of :func:`make_volume`) with :data:`PATIENT`.

    Args:
        folder: target folder (created).
        seed: UID seed.
        **kwargs: passed to :func:`spinevcf.io.dicom_write.write_ct_series`.
    """
    write_ct_series(make_volume(), folder, patient=PATIENT, rng_seed=seed, **kwargs)  # type: ignore[arg-type]
    return folder


def dicom_files(folder: Path) -> list[Path]:
    """The ``.dcm`` files below ``folder`` (sorted, so in array slice order for fresh series)."""
    return sorted(p for p in folder.rglob("*.dcm") if p.is_file())


def _slice_files(folder: Path) -> list[Path]:
    """Files of a fresh single series sorted by position (ascending along the normal)."""
    files = dicom_files(folder)
    return sorted(files, key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber))


def _edit(path: Path, **attrs: object) -> None:
    ds = pydicom.dcmread(path)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path)


# ----------------------------------------------------------------------------- builders


def build_valid(folder: Path) -> Path:
    """Baseline: a valid 16-slice axial CT with a spine-like column."""
    return write_valid(folder)


def build_non_ct(folder: Path) -> Path:
    """Every file says MR (Modality and SOP class)."""
    write_valid(folder)
    for p in dicom_files(folder):
        ds = pydicom.dcmread(p)
        ds.Modality = "MR"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.save_as(p)
    return folder


def _keep(folder: Path, n: int) -> Path:
    write_valid(folder)
    for p in _slice_files(folder)[n:]:
        p.unlink()
    return folder


def build_single_slice(folder: Path) -> Path:
    """One slice only."""
    return _keep(folder, 1)


def build_two_slices(folder: Path) -> Path:
    """Two slices only."""
    return _keep(folder, 2)


def build_missing_slice(folder: Path) -> Path:
    """Slice 8 of 16 deleted: one gap is twice the others."""
    write_valid(folder)
    _slice_files(folder)[8].unlink()
    return folder


def build_duplicate_positions(folder: Path) -> Path:
    """A copy of slice 5 with a new SOPInstanceUID at the same position."""
    write_valid(folder)
    src = _slice_files(folder)[5]
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = 99
    ds.save_as(folder / "duplicate.dcm")
    return folder


def build_tilt_within_limit(folder: Path) -> Path:
    """Gantry tilt of :data:`TILT_OK_DEG` (accepted: sheared affine)."""
    write_ct_series(make_volume(tilt_deg=TILT_OK_DEG), folder, patient=PATIENT, rng_seed=2)
    return folder


def build_tilt_beyond_limit(folder: Path) -> Path:
    """Gantry tilt of :data:`TILT_BAD_DEG` (refused)."""
    write_ct_series(make_volume(tilt_deg=TILT_BAD_DEG), folder, patient=PATIENT, rng_seed=3)
    return folder


def build_oblique_within_limit(folder: Path) -> Path:
    """Slice plane :data:`OBLIQUE_OK_DEG` from axial (still counted as axial)."""
    write_ct_series(make_volume(oblique_deg=OBLIQUE_OK_DEG), folder, patient=PATIENT, rng_seed=4)
    return folder


def build_oblique_beyond_limit(folder: Path) -> Path:
    """Slice plane :data:`OBLIQUE_BAD_DEG` from axial (not an axial series)."""
    write_ct_series(make_volume(oblique_deg=OBLIQUE_BAD_DEG), folder, patient=PATIENT, rng_seed=5)
    return folder


def build_mixed_series(folder: Path) -> Path:
    """One folder: the axial CT (series 2), a 3-image scout, a thin MR series, a coronal reformat.

    The loader must pick series 2; its SeriesInstanceUID is in ``folder/expected_series.txt``
    (not a DICOM file: also checks that stray files are ignored).
    """
    uid = generate_uid()
    write_ct_series(make_volume(), folder / "axial", patient=PATIENT, rng_seed=6, series_number=2,
                    series_instance_uid=uid)
    study = pydicom.dcmread(dicom_files(folder / "axial")[0]).StudyInstanceUID
    # scout: 3 images, ImageType LOCALIZER
    write_ct_series(make_volume(shape=(3, 64, 64)), folder / "scout", patient=PATIENT, rng_seed=7,
                    series_number=1, study_instance_uid=study)
    for p in dicom_files(folder / "scout"):
        _edit(p, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    # MR series with more slices than the CT
    write_ct_series(make_volume(shape=(24, 64, 64)), folder / "mr", patient=PATIENT, rng_seed=8,
                    series_number=3, study_instance_uid=study)
    for p in dicom_files(folder / "mr"):
        ds = pydicom.dcmread(p)
        ds.Modality = "MR"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.save_as(p)
    # a coronal reformat (DERIVED) with more slices
    cor = make_volume(shape=(20, 64, 64), oblique_deg=90.0)
    write_ct_series(cor, folder / "coronal", patient=PATIENT, rng_seed=9, series_number=4,
                    study_instance_uid=study)
    for p in dicom_files(folder / "coronal"):
        _edit(p, ImageType=["DERIVED", "SECONDARY", "REFORMATTED"])
    (folder / "expected_series.txt").write_text(uid + "\n")
    return folder


def build_truncated_file(folder: Path) -> Path:
    """Slice 4's file cut in the middle of its pixel data."""
    write_valid(folder)
    p = _slice_files(folder)[4]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return folder


def build_truncated_header(folder: Path) -> Path:
    """Slice 4's file cut inside its header (series UID unreadable)."""
    write_valid(folder)
    p = _slice_files(folder)[4]
    p.write_bytes(p.read_bytes()[:300])
    return folder


def build_non_dicom_only(folder: Path) -> Path:
    """Only non-DICOM files: text, a PNG signature, random bytes, an empty file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (folder / "random.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "empty.dcm").write_bytes(b"")
    return folder


def build_valid_plus_junk(folder: Path) -> Path:
    """A valid series plus non-DICOM files (ignored) and a DICOMDIR-like text file."""
    write_valid(folder / "series")
    build_non_dicom_only(folder / "junk")
    return folder


def build_jpeg2000(folder: Path) -> Path:
    """The valid study stored as JPEG 2000 Lossless."""
    return write_valid(folder, transfer_syntax=JPEG2000Lossless)


def build_enhanced_ct(folder: Path) -> Path:
    """The valid study converted to one Legacy Converted Enhanced CT multi-frame file (highdicom)."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    tmp = folder.parent / f".{folder.name}-single"
    write_valid(tmp)
    datasets = [pydicom.dcmread(p) for p in _slice_files(tmp)]
    enh = LegacyConvertedEnhancedCTImage(
        legacy_datasets=datasets,
        series_instance_uid=generate_uid(),
        series_number=10,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    folder.mkdir(parents=True, exist_ok=True)
    enh.save_as(folder / "enhanced.dcm")
    shutil.rmtree(tmp)
    return folder


def build_empty_folder(folder: Path) -> Path:
    """An empty folder."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_unreadable_entries(folder: Path) -> Path:
    """A valid series plus a directory named like a DICOM file and a broken symlink.

    Root ignores chmod 000, so unreadability is simulated: the broken symlink cannot be
    opened (like a file without read permission). It may be a slice, so the study is refused.
    """
    write_valid(folder)
    (folder / "slice_000.dcm").mkdir()
    os.symlink(folder / "gone" / "slice_999.dcm", folder / "slice_999.dcm")
    return folder


def build_directory_named_like_file(folder: Path) -> Path:
    """A valid series plus an empty directory named ``IM0001.dcm`` (harmless)."""
    write_valid(folder)
    (folder / "IM0001.dcm").mkdir()
    return folder


def build_all_air(folder: Path) -> Path:
    """Every voxel is -1000 HU."""
    write_ct_series(make_volume(spine=False, body=False), folder, patient=PATIENT, rng_seed=10)
    return folder


def build_extreme_rescale(folder: Path) -> Path:
    """RescaleSlope :data:`BAD_SLOPE` on every slice (values up to millions of "HU")."""
    write_valid(folder)
    for p in dicom_files(folder):
        _edit(p, RescaleSlope=f"{BAD_SLOPE:g}")
    return folder


def build_head_no_spine(folder: Path) -> Path:
    """A skull-like ellipsoid shell (bone) around brain-like tissue: no spine in view."""
    n0, n1, n2 = SHAPE
    z, r, c = np.mgrid[0:n0, 0:n1, 0:n2].astype(np.float64)
    e = ((z - n0 / 2) / (0.6 * n0)) ** 2 + ((r - n1 / 2) / (0.42 * n1)) ** 2 + ((c - n2 / 2) / (0.36 * n2)) ** 2
    arr = np.full(SHAPE, _AIR_HU, dtype=np.int16)
    arr[e <= 1.0] = _SKULL_HU
    arr[e <= 0.8] = 35
    vol = make_volume()
    write_ct_series(Volume(arr, vol.affine), folder, patient=PATIENT, rng_seed=11)
    return folder


def build_huge_headers(folder: Path) -> Path:
    """One Enhanced CT header claiming :data:`HUGE_SLICES` frames of :data:`HUGE_ROWS` x :data:`HUGE_COLS`.

    The PixelData element's length claims the whole 67 GB but the file holds a few bytes:
    the loader must refuse on the memory budget before reading any pixel.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian

    def item(**kw: object) -> Dataset:
        ds = Dataset()
        for key, value in kw.items():
            setattr(ds, key, value)
        return ds

    folder.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = ENHANCED_CT_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.Rows, ds.Columns, ds.NumberOfFrames = HUGE_ROWS, HUGE_COLS, HUGE_SLICES
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SharedFunctionalGroupsSequence = DicomSequence([item(
        PlaneOrientationSequence=DicomSequence([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
        PixelMeasuresSequence=DicomSequence([item(PixelSpacing=[0.1, 0.1], SliceThickness=0.5)]),
        PixelValueTransformationSequence=DicomSequence(
            [item(RescaleSlope=1, RescaleIntercept=-1024, RescaleType="HU")]
        ),
    )])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence([
        item(PlanePositionSequence=DicomSequence([item(ImagePositionPatient=[-200.0, -200.0, -0.5 * k])]))
        for k in range(HUGE_SLICES)
    ])
    ds.PixelData = b"\0" * 16
    path = folder / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    # make the PixelData length claim the whole multi-frame image (the file stays small)
    data = bytearray(path.read_bytes())
    tag = data.rfind(b"\xe0\x7f\x10\x00")
    data[tag + 8 : tag + 12] = (HUGE_ROWS * HUGE_COLS * HUGE_SLICES * 2 % (1 << 32)).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return folder


def build_malicious_uids(folder: Path) -> Path:
    """Valid pixels, but StudyInstanceUID / SeriesInstanceUID / SOPInstanceUIDs are path attacks."""
    write_valid(folder)
    for k, p in enumerate(dicom_files(folder)):
        ds = pydicom.dcmread(p)
        ds.StudyInstanceUID = "../../etc"
        ds.SeriesInstanceUID = "../../../tmp/evil-series"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"../../evil/{k}"
        ds.FrameOfReferenceUID = "/etc/passwd"
        ds.save_as(p)
    return folder


# ------------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Case:
    """One corpus entry.

    Attributes:
        name: identifier (test id).
        build: writes the study into the given folder and returns it.
        library: exact exception class load_study raises, or :data:`VOLUME`.
        app: ``"error"`` or ``"result"``.
        expect_status: results.json status when ``app == "result"`` (``None``: any).
        models_decide: the app outcome depends on what the trained models see (checked
            only with the real models; the fake pipeline says "no spine").
    """

    name: str
    build: Callable[[Path], Path]
    library: type[SpineVCFError] | str
    app: str
    expect_status: str | None = None
    models_decide: bool = False

    @property
    def exit_code(self) -> int:
        """Exit status of ``python -m app`` for this case."""
        if self.app == "result":
            return 0
        assert isinstance(self.library, type)
        return self.library.exit_code


CASES: tuple[Case, ...] = (
    Case("valid", build_valid, VOLUME, "result", models_decide=True),
    Case("non_ct_modality", build_non_ct, NoCTSeriesError, "error"),
    Case("single_slice", build_single_slice, TooFewSlicesError, "error"),
    Case("two_slices", build_two_slices, TooFewSlicesError, "error"),
    Case("missing_slice", build_missing_slice, SliceGapError, "error"),
    Case("duplicate_positions", build_duplicate_positions, DuplicateSliceError, "error"),
    Case("tilt_within_limit", build_tilt_within_limit, VOLUME, "result", models_decide=True),
    Case("tilt_beyond_limit", build_tilt_beyond_limit, GantryTiltError, "error"),
    Case("oblique_within_limit", build_oblique_within_limit, VOLUME, "result", models_decide=True),
    Case("oblique_beyond_limit", build_oblique_beyond_limit, NoCTSeriesError, "error"),
    Case("mixed_series", build_mixed_series, VOLUME, "result", models_decide=True),
    Case("truncated_pixels", build_truncated_file, UnreadableFileError, "error"),
    Case("truncated_header", build_truncated_header, UnreadableFileError, "error"),
    Case("non_dicom_only", build_non_dicom_only, NoDicomFilesError, "error"),
    Case("valid_plus_junk", build_valid_plus_junk, VOLUME, "result", models_decide=True),
    Case("jpeg2000", build_jpeg2000, VOLUME, "result", models_decide=True),
    Case("enhanced_ct", build_enhanced_ct, VOLUME, "result", models_decide=True),
    Case("empty_folder", build_empty_folder, NoDicomFilesError, "error"),
    Case("unreadable_entries", build_unreadable_entries, UnreadableFileError, "error"),
    Case("directory_named_like_file", build_directory_named_like_file, VOLUME, "result", models_decide=True),
    Case("all_air", build_all_air, VOLUME, "result", expect_status="no_spine"),
    Case("extreme_rescale", build_extreme_rescale, VOLUME, "result", models_decide=True),
    Case("head_no_spine", build_head_no_spine, VOLUME, "result", expect_status="no_spine"),
    Case("huge_headers", build_huge_headers, VolumeTooLargeError, "error"),
    Case("malicious_uids", build_malicious_uids, InputError, "error"),
)


def case_by_name(name: str) -> Case:
    """The corpus case called ``name``."""
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(name)
