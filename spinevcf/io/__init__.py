"""Input/output of CT volumes: DICOM series (read and write) and NIfTI/ITK images.

Public entry points:

* :func:`load_volume` -- a DICOM folder or a ``.nii``/``.nii.gz``/``.mha``/``.nrrd`` file.
* :func:`load_study`, :func:`scan_folder`, :func:`select_ct_series`, :func:`load_series`.
* :func:`write_ct_series` -- a CT Image Storage series from a :class:`~spinevcf.volume.Volume`.
* :func:`load_nifti`.

The names are loaded from their submodules on first use (PEP 562 ``__getattr__``), so that
importing ``spinevcf.io.dicom`` for a DICOM run does not import the NIfTI reader's SimpleITK
(about 0.1-0.2 s, issue 15) or the series writer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Public name -> submodule that defines it.
_SUBMODULE_OF = {
    "SeriesCandidate": "dicom",
    "SeriesGeometry": "dicom",
    "check_series": "dicom",
    "find_series": "dicom",
    "load_series": "dicom",
    "load_study": "dicom",
    "rank_candidates": "dicom",
    "scan_folder": "dicom",
    "select_ct_series": "dicom",
    "write_ct_series": "dicom_write",
    "load_nifti": "nifti",
    "load_volume": "nifti",
}

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


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # later lookups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
