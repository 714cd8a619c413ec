"""Input/output of CT volumes: DICOM series (read and write) and NIfTI/ITK images.

Public entry points:

* :func:`load_volume` -- a DICOM folder or a ``.nii``/``.nii.gz``/``.mha``/``.nrrd`` file.
* :func:`load_study`, :func:`scan_folder`, :func:`select_ct_series`, :func:`load_series`.
* :func:`write_ct_series` -- a CT Image Storage series from a :class:`~spinevcf.volume.Volume`.
* :func:`load_nifti`.
"""

from __future__ import annotations

from spinevcf.io.dicom import (
    SeriesCandidate,
    SeriesGeometry,
    check_series,
    find_series,
    load_series,
    load_study,
    rank_candidates,
    scan_folder,
    select_ct_series,
)
from spinevcf.io.dicom_write import write_ct_series
from spinevcf.io.nifti import load_nifti, load_volume

__all__ = [
    "SeriesCandidate",
    "SeriesGeometry",
    "check_series",
    "find_series",
    "load_series",
    "load_study",
    "rank_candidates",
    "scan_folder",
    "select_ct_series",
    "write_ct_series",
    "load_nifti",
    "load_volume",
]
