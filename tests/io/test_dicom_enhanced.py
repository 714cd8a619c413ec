"""Enhanced CT (multi-frame, per-frame functional groups) is read frame by frame."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from spinevcf.io import load_study

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _item(**kw: object) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def _write_enhanced(vol, path, syntax, order) -> None:
    aff = vol.affine
    row = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    col = aff[:3, 1] / np.linalg.norm(aff[:3, 1])
    n, rows, cols = vol.shape
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_CT
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ENHANCED_CT
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
        generate_uid(),
        generate_uid(),
        generate_uid(),
    )
    ds.SeriesNumber = 9
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, n
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SharedFunctionalGroupsSequence = Sequence(
        [
            _item(
                PixelMeasuresSequence=Sequence(
                    [
                        _item(
                            PixelSpacing=[
                                float(np.linalg.norm(aff[:3, 1])),
                                float(np.linalg.norm(aff[:3, 2])),
                            ],
                            SliceThickness=2.5,
                        )
                    ]
                ),
                PlaneOrientationSequence=Sequence(
                    [_item(ImageOrientationPatient=[*map(float, row), *map(float, col)])]
                ),
                PixelValueTransformationSequence=Sequence(
                    [_item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")]
                ),
            )
        ]
    )
    per = []
    frames = []
    for k in order:
        ipp = aff[:3, :3] @ [k, 0, 0] + aff[:3, 3]
        per.append(
            _item(PlanePositionSequence=Sequence([_item(ImagePositionPatient=[float(v) for v in ipp])]))
        )
        frames.append((vol.array[k].astype(np.int32) + 1024).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    stack = np.stack(frames)
    ds.PixelData = stack.tobytes()
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, arr=stack, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless], ids=lambda u: u.name)
def test_enhanced_ct_round_trip(tmp_path, h, syntax) -> None:
    vol = h.make_volume(h.make_affine(row_cos=(-1, 0, 0), col_cos=(0, 1, 0), tilt_deg=8.0))
    order = np.random.default_rng(0).permutation(vol.shape[0])
    _write_enhanced(vol, tmp_path / "enh.dcm", syntax, order)
    loaded = load_study(tmp_path)
    assert loaded.shape == vol.shape and loaded.array.dtype == np.int16
    for hu, p in h.marker_points(vol).items():
        np.testing.assert_allclose(h.marker_points(loaded)[hu], p, atol=1e-3)
    assert np.count_nonzero(loaded.array != h.BACKGROUND_HU) == len(h.MARKERS)
    # frame numbers: array slice i came from frame order.index(...) + 1
    frames = loaded.info.extra["frame_numbers"]
    assert frames == [order.tolist().index(i) + 1 for i in range(vol.shape[0])]
    assert loaded.info.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2.1"
