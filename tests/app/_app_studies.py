"""Small DICOM studies for the application tests (the model-free pipeline double is
:class:`tests.fake_pipeline.FakePipeline`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import MRImageStorage

from spinevcf.io import write_ct_series
from spinevcf.volume import Volume

__all__ = [
    "REPO",
    "needs_models",
    "PATIENT",
    "SHAPE",
    "make_volume",
    "write_study",
    "write_mr_study",
]

REPO = Path(__file__).resolve().parents[2]


def models_available(repo: Path = REPO / "model_repository") -> bool:
    """Whether both trained models (ONNX + spinevcf.json) are in the repository."""
    return all(
        (repo / name / "1" / "model.onnx").is_file() and (repo / name / "spinevcf.json").is_file()
        for name in ("spine_localizer_3d", "vertebra_detector_2d")
    )


needs_models = pytest.mark.skipif(
    not models_available(),
    reason="model_repository/ has no trained ONNX models yet (1/model.onnx + spinevcf.json)",
)

#: Patient identifiers written into every test study; they must never appear in logs.
PATIENT = {"PatientName": "Quarkfeld^Hildegunde", "PatientID": "PID-73914-QX", "PatientBirthDate": "19510203"}
#: (slices, rows, columns): small enough for seconds-long end-to-end runs.
SHAPE = (64, 256, 256)
SPACING_MM = (3.0, 1.5, 1.5)


def make_volume(*, spine: bool = True, shape: tuple[int, int, int] = SHAPE) -> Volume:
    """A water cylinder in air, with a bone-density column behind its centre when ``spine``."""
    n0, n1, n2 = shape
    arr = np.full(shape, -1000, dtype=np.int16)
    r, c = np.mgrid[0:n1, 0:n2]
    body = (r - n1 / 2) ** 2 + (c - n2 / 2) ** 2 <= (0.4 * n1) ** 2
    arr[:, body] = 0
    if spine:
        column = (r - 0.62 * n1) ** 2 + (c - n2 / 2) ** 2 <= (0.06 * n1) ** 2
        arr[:, column] = 700
    aff = np.eye(4)
    aff[:3, :3] = np.diag([1.0, 1.0, 1.0])
    # slices go inferior (-z), rows posterior (+y), columns to the left (+x)
    aff[:3, 0] = (0.0, 0.0, -SPACING_MM[0])
    aff[:3, 1] = (0.0, SPACING_MM[1], 0.0)
    aff[:3, 2] = (SPACING_MM[2], 0.0, 0.0)
    aff[:3, 3] = (-n2 * SPACING_MM[2] / 2, -n1 * SPACING_MM[1] / 2, 0.0)
    return Volume(arr, aff)


def write_study(
    folder: Path, *, spine: bool = True, shape: tuple[int, int, int] = SHAPE, seed: int = 7
) -> Path:
    """Write a CT series of :func:`make_volume` with :data:`PATIENT` into ``folder`` (UIDs from ``seed``)."""
    write_ct_series(make_volume(spine=spine, shape=shape), folder, patient=PATIENT, rng_seed=seed)
    return folder


def write_mr_study(folder: Path, *, shape: tuple[int, int, int] = (16, 64, 64)) -> Path:
    """A series whose files say MR (Modality and SOP Class): no CT in the study."""
    write_study(folder, spine=False, shape=shape)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            ds = pydicom.dcmread(path)
            ds.Modality = "MR"
            ds.SOPClassUID = MRImageStorage
            ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
            ds.save_as(path)
    return folder
