"""Fixtures of the report tests: a minimal CT slice header and a hand-made StudyRecord."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from spinevcf.schema import StudyRecord, VertebraRecord

N_SLICES = 5


def _keypoints(z_top: float, ha: float, hm: float, hp: float, x: float = 0.0) -> list[list[float]]:
    """Six LPS keypoints of a body whose superior endplate is at z_top (anterior at y=-15)."""
    ys = (-15.0, 0.0, 15.0)
    sup = [[x, y, z_top] for y in ys]
    inf = [[x, y, z_top - h] for y, h in zip(ys, (ha, hm, hp), strict=True)]
    return sup + inf


@pytest.fixture
def ct_header() -> Dataset:
    """One CT Image Storage slice header (no pixel data) with made-up identifiers."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientName = "Test^Spine"
    ds.PatientID = "TEST-0001"
    ds.PatientBirthDate = "19500101"
    ds.PatientSex = "F"
    ds.AccessionNumber = "ACC0001"
    ds.StudyID = "1"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    ds.Manufacturer = "TestVendor"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-100.0, -100.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.Rows = 512
    ds.Columns = 512
    ds.BodyPartExamined = "SPINE"
    ds.PatientOrientation = ""
    ds.PositionReferenceIndicator = ""
    return ds


@pytest.fixture
def series_uids(ct_header: Dataset) -> list[str]:
    """SOP Instance UIDs of the evaluated series (the header's own first)."""
    return [str(ct_header.SOPInstanceUID)] + [generate_uid() for _ in range(N_SLICES - 1)]


@pytest.fixture
def record(ct_header: Dataset) -> StudyRecord:
    """Three vertebrae T11, T12, L1; T12 is a grade 2 wedge fracture."""
    specs = [
        # label, z_top, (Ha, Hm, Hp), grade, deformity, reductions %, probability
        (
            "T11",
            100.0,
            (22.0, 21.5, 23.0),
            0,
            "none",
            {"wedge": 4.3478, "biconcave": 6.5217, "crush": 0.0},
            0.0123,
        ),
        (
            "T12",
            70.0,
            (16.5, 19.876543219876543, 23.5),
            2,
            "wedge",
            {"wedge": 29.787234042553195, "biconcave": 15.419, "crush": 0.0},
            0.9876543210987654,
        ),
        (
            "L1",
            40.0,
            (24.0, 23.4, 24.5),
            0,
            "none",
            {"wedge": 2.0408, "biconcave": 4.4898, "crush": 0.0},
            0.0211,
        ),
    ]
    vertebrae = []
    for i, (label, z, (ha, hm, hp), grade, deformity, red, prob) in enumerate(specs):
        kp = _keypoints(z, ha, hm, hp, x=0.25 * i)
        cpr = (np.array([[30 + 30 * i, 20], [30 + 30 * i, 35], [30 + 30 * i, 50]], float)).tolist()
        cpr += [[r + h, c] for (r, c), h in zip(cpr, (ha, hm, hp), strict=True)]
        vertebrae.append(
            VertebraRecord(
                label=label,
                keypoints_lps_mm=kp,
                heights_mm={"anterior": ha, "middle": hm, "posterior": hp},
                genant_grade=grade,
                deformity=deformity,
                fracture_probability=prob,
                detection_score=0.99,
                height_reductions_pct=red,
                cpr_keypoints_px=cpr,
            )
        )
    return StudyRecord(
        study_instance_uid=str(ct_header.StudyInstanceUID),
        series_instance_uid=str(ct_header.SeriesInstanceUID),
        vertebrae=vertebrae,
        patient_fractured=True,
        patient_fracture_probability=0.9881,
        model_version="0.1.0",
    )


@pytest.fixture
def empty_record(ct_header: Dataset) -> StudyRecord:
    """A study in which no vertebral body was found."""
    return StudyRecord(
        study_instance_uid=str(ct_header.StudyInstanceUID),
        series_instance_uid=str(ct_header.SeriesInstanceUID),
        vertebrae=[],
        patient_fractured=False,
        patient_fracture_probability=0.0,
        status="no_spine",
        message="no vertebral body detected",
    )


@pytest.fixture
def record_with_cut(record: StudyRecord) -> StudyRecord:
    """``record`` plus an L2 cut by the scan (not assessable, uncertain level) and level confidences."""
    from dataclasses import replace

    vertebrae = [replace(v, level_confidence=0.98, level_status="confident") for v in record.vertebrae]
    cpr = [[120.0, 20.0], [120.0, 35.0], [120.0, 50.0], [134.0, 20.0], [134.0, 35.0], [134.0, 50.0]]
    vertebrae.append(
        VertebraRecord(
            label="L2",
            keypoints_lps_mm=_keypoints(10.0, 14.0, 14.0, 14.0),
            heights_mm={},
            genant_grade=None,
            deformity="none",
            detection_score=0.9,
            cpr_keypoints_px=cpr,
            assessment="not_assessable",
            assessment_reason="cut_by_scan_range",
            level_confidence=0.55,
            level_status="uncertain",
        )
    )
    return replace(record, vertebrae=vertebrae)
