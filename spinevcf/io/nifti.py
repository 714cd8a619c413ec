"""NIfTI / MetaImage / NRRD input through SimpleITK, and :func:`load_volume` dispatch.

SimpleITK reports geometry in LPS: ``point = origin + D @ diag(spacing) @ (i, j, k)``
for ITK index ``(i, j, k)`` = (x, y, z). ``sitk.GetArrayFromImage`` returns the voxels
in the reversed axis order ``(k, j, i)``, so the Volume affine's columns are the ITK
columns permuted: ``affine[:3, a] = (D @ diag(spacing))[:, 2 - a]``; the translation is
the origin. NIfTI files store RAS; ITK converts them to LPS on reading.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from spinevcf.errors import InputError, UnreadableFileError, VolumeTooLargeError
from spinevcf.io.dicom import load_study
from spinevcf.volume import SeriesInfo, Volume

__all__ = ["IMAGE_SUFFIXES", "load_nifti", "load_volume", "itk_to_affine"]

log = logging.getLogger(__name__)

#: File name endings read with SimpleITK.
IMAGE_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
_INT16_INFO = np.iinfo(np.int16)


def itk_to_affine(
    direction: tuple[float, ...], spacing: tuple[float, ...], origin: tuple[float, ...]
) -> np.ndarray:
    """4x4 index->LPS affine for the array of ``sitk.GetArrayFromImage`` (axes z, y, x).

    Args:
        direction: ITK direction, 9 values row-major.
        spacing: ITK spacing (x, y, z).
        origin: ITK origin (LPS mm).
    """
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    m = d @ np.diag(np.asarray(spacing, dtype=np.float64))
    aff = np.eye(4)
    aff[:3, :3] = m[:, ::-1]
    aff[:3, 3] = np.asarray(origin, dtype=np.float64)
    return aff


def load_nifti(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Volume:
    """Read a 3D image file (NIfTI, MetaImage, NRRD) into a :class:`Volume`.

    The array keeps SimpleITK's (z, y, x) order. Images whose values are all integers
    within the int16 range (also when stored as float, as many CT NIfTIs are) become int16,
    everything else float32 (NIfTI scl_slope/scl_inter are applied by ITK).

    Args:
        path: the image file.
        max_bytes: refuse (before reading voxels) when the array as int16 would exceed this.

    Raises:
        UnreadableFileError: the file is missing or cannot be parsed.
        InputError: the image is not 3D scalar.
        VolumeTooLargeError: above ``max_bytes``.
    """
    p = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise UnreadableFileError(
            f"cannot read image header of {p.name}: {str(exc).strip().splitlines()[-1]}"
        ) from exc
    size = reader.GetSize()
    if len(size) != 3 or reader.GetNumberOfComponents() != 1:
        raise InputError(
            f"{p.name}: expected a 3D scalar image, got size {size} with "
            f"{reader.GetNumberOfComponents()} component(s)"
        )
    n_bytes = int(np.prod(size)) * 2
    if max_bytes is not None and n_bytes > max_bytes:
        raise VolumeTooLargeError(
            f"{p.name}: {size[2]}x{size[1]}x{size[0]} voxels need {n_bytes} bytes as int16, "
            f"above the limit of max_bytes={max_bytes}"
        )
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise UnreadableFileError(
            f"cannot read voxels of {p.name}: {str(exc).strip().splitlines()[-1]}"
        ) from exc
    arr = sitk.GetArrayFromImage(img)
    fits = arr.size > 0 and float(arr.min()) >= _INT16_INFO.min and float(arr.max()) <= _INT16_INFO.max
    if fits and (np.issubdtype(arr.dtype, np.integer) or bool(np.all(arr == np.rint(arr)))):
        arr = arr.astype(np.int16)
    else:
        arr = arr.astype(np.float32, copy=False)
    affine = itk_to_affine(img.GetDirection(), img.GetSpacing(), img.GetOrigin())
    info = SeriesInfo(modality="CT", series_description=p.name, extra={"source_file": p.name})
    log.info("loaded %s: %s %s, spacing %s mm", p.name, arr.shape, arr.dtype.name, img.GetSpacing())
    return Volume(np.ascontiguousarray(arr), affine, info)


def load_volume(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Volume:
    """Load a CT from a DICOM folder or an image file, by what ``path`` is.

    Args:
        path: a folder (DICOM study, :func:`spinevcf.io.dicom.load_study`) or a file
            ending in one of :data:`IMAGE_SUFFIXES` (:func:`load_nifti`).
        max_bytes: memory limit passed on.

    Raises:
        InputError: the path does not exist or has an unknown file type; plus the
            loaders' errors.
    """
    p = Path(path)
    if p.is_dir():
        return load_study(p, max_bytes=max_bytes)
    if not p.exists():
        raise InputError("the input path does not exist")
    if p.name.lower().endswith(IMAGE_SUFFIXES):
        return load_nifti(p, max_bytes=max_bytes)
    raise InputError(
        f"cannot tell how to read {p.name}: pass a DICOM folder or a file ending in {', '.join(IMAGE_SUFFIXES)}"
    )
