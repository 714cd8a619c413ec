"""The volume type shared by every stage: voxels plus an affine to patient LPS millimetres."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from spinevcf.decimate import BlockSums

__all__ = ["Volume", "SeriesInfo"]


@dataclass(frozen=True)
class SeriesInfo:
    """Identifiers and DICOM attributes of the source series.

    These are carried to the outputs (SR, secondary capture) but must never be
    logged. ``dataset`` optionally holds one source slice header (no pixel
    data) from which patient/study attributes are copied into derived objects.
    """

    study_instance_uid: str = ""
    series_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    modality: str = "CT"
    series_description: str = ""
    sop_instance_uids: tuple[str, ...] = ()
    sop_class_uid: str = ""
    dataset: Any = None  # pydicom.Dataset header of one slice, or None for NIfTI input
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Volume:
    """A 3D CT volume in Hounsfield units with its voxel-to-LPS affine.

    Conventions (used everywhere in spinevcf):

    * ``array`` has shape ``(n0, n1, n2)``; for DICOM input this is
      ``(slices, rows, columns)``.
    * ``affine`` is a 4x4 matrix mapping *array indices in array axis order*
      ``(i0, i1, i2, 1)`` to patient coordinates in LPS millimetres
      (x to the patient's left, y posterior, z superior). Column ``a`` of
      ``affine[:3, :3]`` is the step in mm of one voxel along array axis ``a``.
    * Voxel centres are at integer indices.

    Args:
        array: voxel values in HU (int16 or float32).
        affine: 4x4 index-to-LPS matrix.
        info: identifiers of the source series.
        block_sums: in-plane block sums of ``array`` made while it was decoded
            (:mod:`spinevcf.decimate`), used by the localizer's resampling; ``None``
            when not made. They describe ``array`` as loaded: code that changes
            ``array`` in place must set this to ``None``.

    Example:
        >>> v = Volume(np.zeros((2, 3, 4), np.int16), np.eye(4))
        >>> v.index_to_lps([[1, 2, 3]]).tolist()
        [[1.0, 2.0, 3.0]]
    """

    array: npt.NDArray[Any]
    affine: npt.NDArray[np.float64]
    info: SeriesInfo = field(default_factory=SeriesInfo)
    block_sums: BlockSums | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"array must be 3D, got shape {self.array.shape}")
        aff = np.asarray(self.affine, dtype=np.float64)
        if aff.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {aff.shape}")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-9:
            raise ValueError("affine is singular")
        self.affine = aff

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape."""
        s = self.array.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def spacing(self) -> npt.NDArray[np.float64]:
        """Voxel size in mm along each array axis."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        """3x3 matrix whose columns are the unit LPS directions of the array axes."""
        return self.affine[:3, :3] / self.spacing[None, :]

    def index_to_lps(self, idx: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map (N, 3) array indices (float allowed) to (N, 3) LPS mm."""
        p = np.atleast_2d(np.asarray(idx, dtype=np.float64))
        return p @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, pts: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map (N, 3) LPS mm to fractional (N, 3) array indices."""
        p = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        inv = np.linalg.inv(self.affine)
        return p @ inv[:3, :3].T + inv[:3, 3]

    def crop(self, start: Sequence[int], stop: Sequence[int]) -> Volume:
        """The voxels ``start[a]:stop[a]`` along each array axis, at their patient positions.

        The affine's origin moves to the first kept voxel; the block sums (made for the
        whole array) are not carried over.

        Example:
            >>> v = Volume(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([2.5, 1.0, 1.0, 1.0]))
            >>> part = v.crop((1, 0, 2), (2, 3, 4))
            >>> part.shape, part.index_to_lps([[0, 0, 0]]).tolist(), int(part.array[0, 0, 0])
            ((1, 3, 2), [[2.5, 0.0, 2.0]], 14)
        """
        lo = np.asarray(start, dtype=np.int64)
        hi = np.asarray(stop, dtype=np.int64)
        if (
            lo.shape != (3,)
            or hi.shape != (3,)
            or (lo < 0).any()
            or (hi > self.shape).any()
            or (hi <= lo).any()
        ):
            raise ValueError(f"crop {tuple(lo)}:{tuple(hi)} is not a non-empty box inside {self.shape}")
        affine = self.affine.copy()
        affine[:3, 3] = self.index_to_lps(lo[None])[0]
        arr = np.ascontiguousarray(self.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
        return Volume(arr, affine, self.info)

    def nbytes_int16(self) -> int:
        """Size of the volume stored as int16, the reference for memory budgets."""
        return int(np.prod(self.shape)) * 2
