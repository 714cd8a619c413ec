"""Tests of spinevcf.io.dicom: geometry round trips, decoding and every refusal."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from spinevcf.errors import (
    DuplicateSliceError,
    GantryTiltError,
    InconsistentOrientationError,
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
from spinevcf.io import load_study, scan_folder, select_ct_series, write_ct_series
from spinevcf.io.dicom import MAX_GANTRY_TILT_DEG, check_series, find_series
from spinevcf.volume import Volume

# --------------------------------------------------------------------- geometry round trip

ORIENTATIONS = {
    "head_first_supine": dict(row_cos=(1, 0, 0), col_cos=(0, 1, 0)),
    "feet_first_supine": dict(row_cos=(-1, 0, 0), col_cos=(0, 1, 0)),
    "head_first_prone": dict(row_cos=(-1, 0, 0), col_cos=(0, -1, 0)),
    "feet_first_prone": dict(row_cos=(1, 0, 0), col_cos=(0, -1, 0)),
    "slice_axis_against_normal": dict(row_cos=(1, 0, 0), col_cos=(0, 1, 0), slice_sign=-1.0),
    "tilted_gantry_20deg": dict(row_cos=(1, 0, 0), col_cos=(0, 1, 0), tilt_deg=20.0),
    "tilted_gantry_negative": dict(row_cos=(1, 0, 0), col_cos=(0, 1, 0), tilt_deg=-12.0, slice_sign=-1.0),
}


@pytest.mark.parametrize("name", sorted(ORIENTATIONS))
@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled"])
def test_marker_round_trip(series_dir, h, name: str, order: str) -> None:
    aff = h.make_affine(**ORIENTATIONS[name])
    folder, _, vol = series_dir(
        aff,
        slice_order="descending" if order == "descending" else "ascending",
        shuffle_files=order == "shuffled",
    )
    loaded = load_study(folder)
    assert loaded.array.dtype == np.int16
    assert loaded.shape == vol.shape
    want = h.marker_points(vol)
    got = h.marker_points(loaded)
    for hu, p in want.items():
        np.testing.assert_allclose(got[hu], p, atol=1e-3)
    # every voxel, not only the markers: the loaded grid is the written grid
    assert np.count_nonzero(loaded.array != h.BACKGROUND_HU) == len(h.MARKERS)
    # the loaded slice axis points along +normal (sorted ascending)
    n = np.cross(loaded.affine[:3, 2], loaded.affine[:3, 1])
    assert float(loaded.affine[:3, 0] @ n) > 0


def test_tilted_affine_is_exactly_sheared(series_dir, h) -> None:
    aff = h.make_affine(tilt_deg=20.0)
    folder, _, _ = series_dir(aff)
    loaded = load_study(folder)
    np.testing.assert_allclose(loaded.affine, aff, atol=1e-4)
    assert loaded.info.extra["gantry_tilt_deg"] == pytest.approx(20.0, abs=1e-3)
    # non-orthogonal slice column
    assert abs(loaded.affine[:3, 0] @ loaded.affine[:3, 1]) > 0.1


@pytest.mark.parametrize("angles", [(20.0, 10.0), (-25.0, 5.0)])
def test_oblique_round_trip(series_dir, h, angles: tuple[float, float]) -> None:
    aff = h.make_affine(rot=h.rotation(*angles))
    folder, _, vol = series_dir(aff, shuffle_files=True)
    loaded = load_study(folder)
    for hu, p in h.marker_points(vol).items():
        np.testing.assert_allclose(h.marker_points(loaded)[hu], p, atol=1e-3)


def test_oblique_and_tilted(series_dir, h) -> None:
    aff = h.make_affine(rot=h.rotation(15.0, -8.0), tilt_deg=10.0)
    folder, _, vol = series_dir(aff)
    loaded = load_study(folder)
    for hu, p in h.marker_points(vol).items():
        np.testing.assert_allclose(h.marker_points(loaded)[hu], p, atol=1e-3)


def test_series_info(series_dir) -> None:
    folder, paths, _ = series_dir(series_description="bone 1mm", shuffle_files=True)
    loaded = load_study(folder)
    info = loaded.info
    ds0 = pydicom.dcmread(paths[0])
    assert info.study_instance_uid == ds0.StudyInstanceUID
    assert info.series_instance_uid == ds0.SeriesInstanceUID
    assert info.frame_of_reference_uid == ds0.FrameOfReferenceUID
    assert info.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert info.series_description == "bone 1mm"
    # sorted order = array slice order = order of the written paths (ascending normal)
    assert info.sop_instance_uids == tuple(pydicom.dcmread(p).SOPInstanceUID for p in paths)
    assert info.dataset is not None and "PixelData" not in info.dataset
    assert info.dataset.PatientID == "SVCF-0001"


# ---------------------------------------------------------------------- values and dtypes


def test_per_slice_rescale_integral(series_dir, h) -> None:
    n = h.SHAPE[0]
    intercepts = [-1024.0 - 10 * k for k in range(n)]
    slopes = [1.0 if k % 2 else 2.0 for k in range(n)]
    folder, _, vol = series_dir(rescale_intercept=intercepts, rescale_slope=slopes)
    loaded = load_study(folder)
    assert loaded.array.dtype == np.int16
    np.testing.assert_array_equal(loaded.array, vol.array)
    # the files really differ in rescale
    ds = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())]
    assert len({float(d.RescaleIntercept) for d in ds}) == n


def test_fractional_slope_gives_float32(series_dir, h) -> None:
    folder, _, vol = series_dir(rescale_slope=0.5, rescale_intercept=-1000.25)
    loaded = load_study(folder)
    assert loaded.array.dtype == np.float32
    # values are quantized to the slope: (-1000 + 1000.25) / 0.5 = 0.5 -> rounds to 0 or 1
    np.testing.assert_allclose(loaded.array, vol.array, atol=0.25 + 1e-6)


def test_unsigned_pixels(series_dir, h) -> None:
    folder, paths, vol = series_dir(pixel_representation=0, rescale_intercept=-1024.0)
    assert pydicom.dcmread(paths[0]).PixelRepresentation == 0
    loaded = load_study(folder)
    np.testing.assert_array_equal(loaded.array, vol.array)


def test_bits_above_bits_stored_are_ignored(series_dir, h) -> None:
    """12-bit unsigned data with junk in the 4 unused high bits (allowed by the standard)."""
    folder, paths, vol = series_dir(pixel_representation=0, bits_stored=12, rescale_intercept=-1024.0)
    for p in paths:
        ds = pydicom.dcmread(p)
        raw = np.frombuffer(ds.PixelData, dtype="<u2") | np.uint16(0xA000)
        ds.PixelData = raw.tobytes()
        ds.save_as(p)
    np.testing.assert_array_equal(load_study(folder).array, vol.array)


def test_signed_12_bit_negative_values(series_dir, h) -> None:
    folder, _, vol = series_dir(bits_stored=12, rescale_intercept=0.0)
    np.testing.assert_array_equal(load_study(folder).array, vol.array)


def test_overflowing_int16_is_promoted(tmp_path, h) -> None:
    """Unsigned 16-bit stored values with intercept 0 can exceed int16: float32, values exact."""
    arr = np.zeros(h.SHAPE, np.float32)
    arr[7, 1, 2] = 60000.0
    arr[1, 2, 3] = 123.0
    write_ct_series(Volume(arr, h.make_affine()), tmp_path, pixel_representation=0, rescale_intercept=0.0)
    loaded = load_study(tmp_path)
    assert loaded.array.dtype == np.float32
    np.testing.assert_array_equal(loaded.array, arr)


@pytest.mark.parametrize(
    "syntax", [ImplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda u: u.name
)
def test_compressed_series_decode_like_uncompressed(tmp_path, h, syntax) -> None:
    shape = (5, 40, 36)  # the JPEG 2000 encoder needs >= 32 pixels per side
    aff = h.make_affine()
    rng = np.random.default_rng(3)
    vol = Volume(rng.integers(-1500, 3000, shape).astype(np.int16), aff)
    ref_dir, comp_dir = tmp_path / "ref", tmp_path / "comp"
    ref = write_ct_series(vol, ref_dir, rng_seed=1)
    comp = write_ct_series(vol, comp_dir, transfer_syntax=syntax, rng_seed=2)
    assert pydicom.dcmread(comp[0]).file_meta.TransferSyntaxUID == syntax
    a = load_study(ref_dir)
    b = load_study(comp_dir)
    np.testing.assert_array_equal(a.array, vol.array)
    np.testing.assert_array_equal(b.array, a.array)
    np.testing.assert_allclose(b.affine, a.affine)
    assert len(ref) == len(comp) == shape[0]


@pytest.mark.skipif(
    shutil.which("dcmcjpeg") is None, reason="dcmcjpeg (dcmtk) not installed: no JPEG Lossless encoder"
)
def test_jpeg_lossless_sv1_decodes(series_dir, h, tmp_path) -> None:
    folder, paths, vol = series_dir()
    out = tmp_path / "sv1"
    out.mkdir()
    for p in paths:
        subprocess.run(["dcmcjpeg", "+e1", str(p), str(out / p.name)], check=True, capture_output=True)
    assert pydicom.dcmread(out / paths[0].name).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    np.testing.assert_array_equal(load_study(out).array, vol.array)


def test_jpeg_lossless_has_no_writer(h, tmp_path) -> None:
    with pytest.raises(ValueError, match="no encoder"):
        write_ct_series(h.make_volume(), tmp_path, transfer_syntax=JPEGLosslessSV1)


# -------------------------------------------------------------------------------- selection


def test_selection_prefers_axial_original_and_rejects_others(tmp_path, h) -> None:
    vol = h.make_volume()
    write_ct_series(vol, tmp_path / "a", series_number=2, series_description="axial", rng_seed=1)
    thin = Volume(np.full((20, 24, 20), -1000, np.int16), h.make_affine())
    write_ct_series(thin, tmp_path / "b", series_number=3, series_description="thin", rng_seed=2)
    # a sagittal reformat
    sag = h.make_affine(row_cos=(0, 1, 0), col_cos=(0, 0, -1))
    write_ct_series(
        Volume(np.zeros((30, 24, 20), np.int16), sag), tmp_path / "c", series_number=4, rng_seed=3
    )
    # a derived series with even more slices
    paths = write_ct_series(
        Volume(np.zeros((40, 24, 20), np.int16), h.make_affine()), tmp_path / "d", series_number=5, rng_seed=4
    )
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.save_as(p)
    ranked = find_series(tmp_path)
    by_num = {c.series_number: c for c in ranked}
    assert ranked[0].series_number == 3 and ranked[0].accepted
    assert "not selected" in by_num[2].reason
    assert "not axial" in by_num[4].reason
    assert "derived" in by_num[5].reason
    assert select_ct_series(scan_folder(tmp_path)).series_number == 3
    assert load_study(tmp_path).shape == (20, 24, 20)


def test_localizer_in_same_series_is_split_off(series_dir, h) -> None:
    folder, paths, vol = series_dir()
    # turn a copy of one slice into a lateral localizer with the same series UID
    ds = pydicom.dcmread(paths[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "scout.dcm")
    cands = scan_folder(folder)
    assert len(cands) == 2
    np.testing.assert_array_equal(load_study(folder).array, vol.array)


def test_non_dicom_files_skipped_with_warning(series_dir, caplog) -> None:
    folder, _, vol = series_dir()
    (folder / "notes.txt").write_text("not a DICOM file")
    (folder / "sub").mkdir()
    (folder / "sub" / "junk.bin").write_bytes(b"\x00" * 300)
    with caplog.at_level(logging.WARNING, logger="spinevcf.io.dicom"):
        loaded = load_study(folder)
    assert loaded.shape == vol.shape
    assert any("skipped 2 non-DICOM" in r.getMessage() for r in caplog.records)


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")
def test_logs_and_errors_name_no_input_path(series_dir, tmp_path: Path, caplog) -> None:
    """A folder named after the patient (as in PACS exports) appears in no log line or error."""
    source, _, _ = series_dir()
    folder = tmp_path / "DOE^JOHN_12345"
    shutil.move(source, folder)
    (folder / "notes.txt").write_text("not a DICOM file")
    # Passes the 'DICM' check but cannot be parsed: a corrupt file of unknown series.
    (folder / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 64)
    with caplog.at_level(logging.DEBUG), pytest.raises(UnreadableFileError) as info:
        load_study(folder)
    assert "corrupt" in str(info.value) and "broken.dcm" in str(info.value)
    assert any("skipped 1 non-DICOM" in r.getMessage() for r in caplog.records)

    empty = tmp_path / "SMITH^JANE_67890"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a DICOM file")
    with caplog.at_level(logging.DEBUG), pytest.raises(NoDicomFilesError) as no_dicom:
        load_study(empty)
    assert "no DICOM files in the input folder" in str(no_dicom.value)

    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for text in (logged, str(info.value), str(no_dicom.value)):
        for secret in ("DOE", "JOHN", "12345", "SMITH", "JANE", str(tmp_path)):
            assert secret not in text, f"{secret!r} in {text!r}"


# ---------------------------------------------------------------------------------- errors


def _edit(path: Path, **attrs: object) -> None:
    ds = pydicom.dcmread(path)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.save_as(path)


def test_no_dicom_files(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(NoDicomFilesError):
        load_study(tmp_path)
    with pytest.raises(NoDicomFilesError):
        load_study(tmp_path / "missing")


def test_missing_middle_slice(series_dir) -> None:
    folder, paths, _ = series_dir()
    paths[5].unlink()
    with pytest.raises(SliceGapError, match="missing"):
        load_study(folder)


def test_duplicate_position(series_dir) -> None:
    folder, paths, _ = series_dir()
    _edit(paths[6], ImagePositionPatient=pydicom.dcmread(paths[5]).ImagePositionPatient)
    with pytest.raises(DuplicateSliceError):
        load_study(folder)


def test_one_different_orientation(series_dir) -> None:
    folder, paths, _ = series_dir()
    _edit(paths[3], ImageOrientationPatient=[1, 0, 0, 0, 0.9950042, 0.0998334])
    with pytest.raises(InconsistentOrientationError, match="1 of 12"):
        load_study(folder)


def test_one_different_size(series_dir) -> None:
    folder, paths, _ = series_dir()
    _edit(paths[2], Rows=12)
    with pytest.raises(MixedImageSizeError):
        load_study(folder)


def test_missing_pixel_data(series_dir) -> None:
    folder, paths, _ = series_dir()
    ds = pydicom.dcmread(paths[4])
    del ds.PixelData
    ds.save_as(paths[4])
    with pytest.raises(MissingPixelDataError):
        load_study(folder)


def test_truncated_pixel_data(series_dir) -> None:
    folder, paths, _ = series_dir()
    data = paths[7].read_bytes()
    paths[7].write_bytes(data[: len(data) - 300])
    with pytest.raises(UnreadableFileError, match="truncated"):
        load_study(folder)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless], ids=lambda u: u.name)
def test_truncated_compressed_file(series_dir, syntax) -> None:
    folder, paths, _ = series_dir(transfer_syntax=syntax)
    data = paths[7].read_bytes()
    paths[7].write_bytes(data[: len(data) - 20])
    with pytest.raises(UnreadableFileError):
        load_study(folder)


def test_truncated_header(series_dir) -> None:
    """Cut inside the header, before the series UID: the series cannot be known -> refuse."""
    folder, paths, _ = series_dir()
    data = paths[7].read_bytes()
    paths[7].write_bytes(data[:400])
    with pytest.raises(UnreadableFileError):
        load_study(folder)


def test_mr_modality(series_dir) -> None:
    folder, paths, _ = series_dir()
    for p in paths:
        _edit(p, Modality="MR")
    with pytest.raises(NoCTSeriesError, match="modality MR"):
        load_study(folder)


def test_localizer_only(series_dir) -> None:
    folder, paths, _ = series_dir()
    for p in paths:
        _edit(p, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    with pytest.raises(NoCTSeriesError, match="localizer"):
        load_study(folder)


def test_too_few_slices(series_dir) -> None:
    folder, paths, _ = series_dir(shape=(2, 24, 20))
    with pytest.raises(TooFewSlicesError):
        load_study(folder)


def test_too_large(series_dir, h) -> None:
    folder, _, _ = series_dir()
    need = int(np.prod(h.SHAPE)) * 2
    with pytest.raises(VolumeTooLargeError, match=f"max_bytes={need - 1}"):
        load_study(folder, max_bytes=need - 1)
    assert load_study(folder, max_bytes=need).shape == h.SHAPE


def test_gantry_tilt_above_limit(series_dir, h) -> None:
    folder, _, _ = series_dir(h.make_affine(tilt_deg=MAX_GANTRY_TILT_DEG + 5))
    with pytest.raises(GantryTiltError, match="exceeds"):
        load_study(folder)


def test_positions_not_on_a_line(series_dir) -> None:
    folder, paths, _ = series_dir()
    ipp = [float(v) for v in pydicom.dcmread(paths[6]).ImagePositionPatient]
    ipp[0] += 3.0
    _edit(paths[6], ImagePositionPatient=ipp)
    with pytest.raises(GantryTiltError, match="straight line"):
        load_study(folder)


def test_unsupported_transfer_syntax(series_dir) -> None:
    folder, paths, _ = series_dir()
    ds = pydicom.dcmread(paths[0])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.92"  # JPEG 2000 Part 2: no decoder
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x0a" + b"\x00" * 30])
    ds.save_as(paths[0], enforce_file_format=True)
    with pytest.raises(UnsupportedTransferSyntaxError, match="JPEG 2000 Part 2"):
        load_study(folder)


def test_check_series_without_decoding(series_dir) -> None:
    folder, paths, _ = series_dir()
    paths[3].unlink()
    cand = select_ct_series(scan_folder(folder))
    with pytest.raises(SliceGapError):
        check_series(cand)
