"""VerSe-format data (VerSe'19 / VerSe'20): cases, CT and ground truth derived from vertebra masks.

VerSe (Sekuboyina et al., *VerSe: A Vertebrae labelling and segmentation benchmark*, Medical
Image Analysis 2021) labels every vertebra of a CT as a whole (body plus posterior elements);
it has no endplate keypoints. This module derives the spinevcf ground truth from the masks:

* :func:`find_verse_cases` -- the cases under a VerSe root: the BIDS-like layout
  (``rawdata/<sub>/<sub>[_<tags>]_ct.nii.gz`` with ``derivatives/<sub>/<sub>[_<tags>]_seg-vert_msk.nii.gz``
  and the optional centroids ``..._seg-subreg_ctd.json`` (VerSe'20) or ``..._seg-vb_ctd.json``
  (VerSe'19)), the same files side by side in one folder, or the original VerSe'19 names
  (``<name>.nii.gz``, ``<name>_seg.nii.gz``, ``<name>_ctd.json``). A case is one CT file.
* :func:`load_verse_case` -- the CT as a :class:`~spinevcf.volume.Volume` and a
  :class:`~spinevcf.schema.StudyRecord` in exactly the form of the generator's ``truth.json``.
* ``python -m spinevcf.io.verse ROOT OUT [--dicom]`` -- writes ``OUT/<case>/truth.json``
  (and ``OUT/<case>/dicom/``) so that ``spinevcf run`` and ``spinevcf evaluate`` work on VerSe.

Labels (VerSe): 1-7 = C1-C7, 8-19 = T1-T12, 20-24 = L1-L5, 25 = L6, 26 = sacrum,
27 = coccyx, 28 = T13. Records are made for C2..L5 (C1 has no body). L6 and T13 have no
level in the schema: they get no record, are listed in ``extra["transitional"]`` and, so
that a detection of them is neither a true nor a false positive, in ``extra["partial"]``
(with ``"reason": "transitional"``). Grading treats T12 and L1 as neighbours even when a
T13 lies between them. Bodies touching the image border are listed in ``extra["partial"]``
like the generator's bodies cut by the field of view.

Keypoints from a whole-vertebra mask (:func:`vertebra_geometry`), per label:

1. *Body*: a morphological opening of the mask by a ball (the largest radius within
   :data:`BODY_CORE_MM` for which a surviving component, grown back by ``1.5 r``, holds
   :data:`BODY_MIN_FRACTION` of the mask and its most anterior voxels): the posterior
   elements, thinner than the body, fall away. A label where no such body exists (its
   body cut away by the image border) counts as partial.
2. *Frame*: superior axis ``w`` along the chord between the neighbouring bodies' centres
   (one neighbour: between it and this body; none: the body's principal axis nearest to
   LPS z); posterior axis ``v`` from the body towards the posterior elements (the rest of
   the mask), made orthogonal to ``w`` (LPS +y when there are none or they point more
   than 60 degrees away from it); lateral axis ``u = v x w`` (patient left).
3. *Mid-sagittal plane*: the body's lateral centre is the median midpoint of its left and
   right walls on lines along ``u`` through the front 60 % of the body (before the
   pedicles). How these midpoints move with height and with AP position, and how the
   posterior wall's position moves with height, give the body's own axes: ``w`` is tilted
   onto them and ``v`` turned (an oval section's chord midpoints lie on its conjugate
   diameter, which says how far ``v`` is turned), and the body is measured again.
4. *Walls and endplates*: on that plane, the anterior and posterior walls are the median
   crossings of lines along ``v`` at several heights; the three keypoint lines run along
   ``w`` :data:`~spinevcf.synth.anatomy.KEYPOINT_INSET_MM` inside the anterior and
   posterior walls and half-way between them (as the generator defines its keypoints), and
   each meets the superior and inferior endplates where the linearly interpolated mask
   crosses 0.5 (samples every :data:`LINE_STEP_MM`).
5. Steps 2-4 run twice. After the first, each measured mask is split at its posterior
   wall (plus :data:`BODY_BEHIND_WALL_MM`): in front the body region (rims included, which
   the opening rounds off), behind the posterior elements; the second pass takes the
   neighbours' centres and the origin of the AP direction from the keypoints' means. When
   the image border cuts the posterior elements, only those nearer than the cut count for
   the AP direction (a cut skews their centroid sideways).

Heights, reductions and grades then come from :mod:`spinevcf.grading` exactly as for the
generator's truth (:func:`spinevcf.synth.truth_for`).

Centroid files are optional and never used as truth: they are checked against the mask.
Convention implemented (the VerSe tools' one): a JSON list whose first item may be
``{"direction": [c0, c1, c2]}`` (axis codes as in nibabel, e.g. ``["P", "I", "R"]``: array axis
0 increases towards posterior, ...); the other items ``{"label", "X", "Y", "Z"}`` are voxel
indices of the image reoriented (permuted and flipped, not resampled) to those codes, so an
axis flipped by the reorientation maps index ``X`` to ``n - 1 - X``. Without a direction
item, ``X, Y, Z`` are taken as the NIfTI voxel indices ``(i, j, k)``. The distances between
these points and the mask centroids (whole vertebra and body) are stored in
``extra["centroid_check"]``; a median above :data:`CENTROID_MISMATCH_MM` is logged as a
warning (the mask is used either way).

Nothing here logs patient data: messages name files and labels only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.uid import generate_uid
from scipy import ndimage

from spinevcf.errors import InputError, OutputError, SpineVCFError
from spinevcf.geometry.profiles import run_around
from spinevcf.grading import truth_record
from spinevcf.io.nifti import load_nifti
from spinevcf.schema import LEVELS, StudyRecord
from spinevcf.synth.anatomy import KEYPOINT_INSET_MM
from spinevcf.volume import Volume

__all__ = [
    "VERSE_LABELS",
    "ANATOMICAL_ORDER",
    "RECORD_LABELS",
    "TRANSITIONAL_LABELS",
    "LOADER_VERSION",
    "BODY_MIN_FRACTION",
    "BODY_CORE_MM",
    "LINE_STEP_MM",
    "GRID_TOLERANCE_FRACTION",
    "CENTROID_MISMATCH_MM",
    "VerseCase",
    "VertebraGeometry",
    "VerseStudy",
    "find_verse_cases",
    "adjacent_pairs",
    "read_verse_study",
    "load_verse_case",
    "vertebra_geometry",
    "truth_from_geometry",
    "read_centroids",
    "verse_uids",
    "convert_verse",
    "main",
]

log = logging.getLogger(__name__)

#: Version of the mask-to-truth derivation (stored in ``truth.json`` ``model_version``).
LOADER_VERSION: str = "1.0"

#: VerSe label values and their names.
VERSE_LABELS: dict[int, str] = {
    **{i + 1: lev for i, lev in enumerate(LEVELS)},
    25: "L6",
    26: "sacrum",
    27: "coccyx",
    28: "T13",
}
#: Vertebra labels cranial to caudal (T13 after T12, L6 after L5); sacrum and coccyx are not vertebrae here.
ANATOMICAL_ORDER: tuple[int, ...] = (*range(1, 20), 28, *range(20, 25), 25)
#: Labels that become a :class:`~spinevcf.schema.VertebraRecord`: C2..L5.
RECORD_LABELS: frozenset[int] = frozenset(range(2, 25))
#: Transitional vertebrae: measured, but without a level in the schema.
TRANSITIONAL_LABELS: frozenset[int] = frozenset({25, 28})

#: Range (mm) of the opening radius: posterior elements are at most about 6 mm thick (radius).
BODY_CORE_MM: tuple[float, float] = (2.0, 6.0)
#: Step (mm) between the opening radii tried, largest first.
BODY_CORE_STEP_MM: float = 0.5
#: The body region holds at least this share of the whole-vertebra mask.
BODY_MIN_FRACTION: float = 0.3
#: Components of the eroded mask tried per radius, largest first.
BODY_CANDIDATES: int = 3
#: The body region extends this multiple of the opening radius from the opened core.
BODY_GROW_FACTOR: float = 1.5
#: Share of a vertebra's voxels, the most anterior ones, that must lie in its body region.
FRONT_FRACTION: float = 0.01
#: ... in it or at most this far (mm) from it (the opening rounds the body's rims off).
FRONT_GAP_MM: float = 4.0
#: Share of the AP extent kept as the rough body of a vertebra whose body is cut away.
FRONT_PART: float = 0.35
#: Posterior elements count for the AP axis only this much (mm) closer than where the border cuts them.
PE_BORDER_MARGIN_MM: float = 5.0
#: The posterior elements give the AP axis when they have at least this share of the body's voxels
#: and their centroid lies at least this far (mm) from the body's.
PE_MIN_FRACTION: float = 0.02
PE_MIN_OFFSET_MM: float = 10.0
#: After measuring, the body region keeps what lies at most this far (mm) behind the
#: posterior wall on the mid-sagittal plane (the wall curves backwards laterally).
BODY_BEHIND_WALL_MM: float = 3.0
#: Step (mm) of the line profiles through the interpolated mask.
LINE_STEP_MM: float = 0.25
#: Half-length (mm) of the line profiles (longer than any vertebral body).
LINE_HALF_LENGTH_MM: float = 60.0
#: Posterior elements pointing further than this from LPS +y are not trusted as the AP axis.
MAX_AP_ANGLE_DEG: float = 60.0
#: CT and mask grids agree when every corner differs by at most this fraction of the smallest voxel size.
GRID_TOLERANCE_FRACTION: float = 0.1
#: Median centroid-file-to-mask distance (mm) above which a warning is logged.
CENTROID_MISMATCH_MM: float = 10.0
#: AP positions (fractions of the depth from the anterior wall) of the lines across the body.
LATERAL_AP_FRACTIONS: npt.NDArray[np.float64] = np.array([0.15, 0.3, 0.45, 0.6])
#: The turn of v about w is measured only on sections with (width / depth)^2 - 1 at least this.
MIN_OVAL_GAIN: float = 0.2
#: Heights (fractions of the half-height) at which the walls are found on the mid-sagittal plane.
WALL_HEIGHTS: npt.NDArray[np.float64] = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
#: The posterior wall's direction is fitted between this fraction of the posterior height from each endplate.
POSTERIOR_WALL_MARGIN: float = 0.2
#: Wall directions are fitted only over at least this height range (mm); a flatter body keeps its axis.
MIN_SLOPE_SPAN_MM: float = 8.0
#: Largest correction (degrees) of the superior axis by the posterior wall's direction.
MAX_WALL_TILT_DEG: float = 20.0
#: A partial label whose body region lies farther than this (mm) from the line through the
#: nearest measured bodies is a cut-off vertebral arch (its body outside the image): dropped.
MAX_OFF_COLUMN_MM: float = 20.0
#: Neighbouring bodies farther apart than this (mm) are not used for the superior axis.
MAX_NEIGHBOUR_MM: float = 80.0

_NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
_CT_RE = re.compile(r"^(?P<prefix>.+)_ct\.nii(\.gz)?$")
_V19_MASK_RE = re.compile(r"^(?P<prefix>.+)_seg\.nii(\.gz)?$")
_AXIS_CODES: dict[str, tuple[int, float]] = {  # code -> (LPS axis, sign)
    "L": (0, 1.0),
    "R": (0, -1.0),
    "P": (1, 1.0),
    "A": (1, -1.0),
    "S": (2, 1.0),
    "I": (2, -1.0),
}


# --------------------------------------------------------------------------- discovery
@dataclass(frozen=True)
class VerseCase:
    """One VerSe CT with its files.

    Attributes:
        case_id: the CT file name without ``_ct.nii.gz`` (``sub-gl003_dir-ax``) or, for
            VerSe'19 names, without ``.nii.gz`` (``verse004``); unique under one root.
        subject: the subject (``sub-gl003``, ``verse004``): a subject may have several CTs.
        ct_path: the CT image.
        mask_path: the vertebra mask, ``None`` when none was found.
        centroid_path: the centroid JSON, ``None`` when none was found.
    """

    case_id: str
    subject: str
    ct_path: Path
    mask_path: Path | None
    centroid_path: Path | None = None


def _subject_of(prefix: str) -> str:
    return prefix.split("_", 1)[0]


def _first_existing(folders: Sequence[Path], names: Sequence[str]) -> Path | None:
    for d in folders:
        for n in names:
            p = d / n
            if p.is_file():
                return p
    return None


def _derivative_folders(ct: Path, root: Path, subject: str) -> list[Path]:
    """Where a CT's mask and centroids may be: beside it, the mirrored derivatives folder, root/derivatives/<sub>."""
    out = [ct.parent]
    parts = ct.parent.parts
    if "rawdata" in parts:
        i = len(parts) - 1 - parts[::-1].index("rawdata")
        out.append(Path(*parts[:i], "derivatives", *parts[i + 1 :]))
    out.append(root / "derivatives" / subject)
    out.append(root / "derivatives")
    return list(dict.fromkeys(out))


def find_verse_cases(root: str | os.PathLike[str]) -> list[VerseCase]:
    """The VerSe cases under ``root`` (searched recursively), sorted by case id.

    A case is a CT file named ``<prefix>_ct.nii[.gz]`` (VerSe'20 and the BIDS release of
    VerSe'19) or ``<name>.nii[.gz]`` beside a ``<name>_seg.nii[.gz]`` mask (original VerSe'19
    release). Its mask and centroids are looked for beside it, in the folder that mirrors
    ``rawdata/...`` under ``derivatives/...``, and in ``root/derivatives/<subject>``.
    CTs without a mask are listed with ``mask_path=None`` (:func:`load_verse_case` says so).

    Args:
        root: a VerSe dataset folder (or a parent of several).

    Raises:
        InputError: ``root`` is not a folder, or holds no VerSe CT.
    """
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"VerSe root is not a folder: {base}")
    cases: dict[str, VerseCase] = {}
    for p in sorted(base.rglob("*")):
        if not p.is_file():
            continue
        m_ct = _CT_RE.match(p.name)
        m_v19 = _V19_MASK_RE.match(p.name)
        if m_ct:
            prefix = m_ct.group("prefix")
            subject = _subject_of(prefix)
            folders = _derivative_folders(p, base, subject)
            mask = _first_existing(folders, [f"{prefix}_seg-vert_msk{s}" for s in _NIFTI_SUFFIXES])
            ctd = _first_existing(folders, [f"{prefix}_seg-subreg_ctd.json", f"{prefix}_seg-vb_ctd.json"])
            case = VerseCase(prefix, subject, p, mask, ctd)
        elif m_v19:
            prefix = m_v19.group("prefix")
            ct = _first_existing([p.parent], [f"{prefix}{s}" for s in _NIFTI_SUFFIXES])
            if ct is None:
                continue
            ctd = _first_existing([p.parent], [f"{prefix}_ctd.json"])
            case = VerseCase(prefix, prefix, ct, p, ctd)
        else:
            continue
        if case.case_id in cases and cases[case.case_id].ct_path != case.ct_path:
            raise InputError(
                f"two VerSe CTs named {case.case_id} under {base}: "
                f"{cases[case.case_id].ct_path.relative_to(base)} and {case.ct_path.relative_to(base)}"
            )
        cases[case.case_id] = case
    if not cases:
        raise InputError(f"no VerSe CT (*_ct.nii.gz, or <name>.nii.gz with <name>_seg.nii.gz) under {base}")
    return [cases[k] for k in sorted(cases)]


# --------------------------------------------------------------------------- geometry
@dataclass
class VertebraGeometry:
    """What :func:`vertebra_geometry` derives for one label of the mask.

    Attributes:
        label: VerSe label value.
        name: level name (``VERSE_LABELS``).
        center_lps_mm: centroid of the body region (LPS mm).
        vertebra_center_lps_mm: centroid of the whole-vertebra mask.
        keypoints_lps_mm: (6, 3) keypoints in :data:`~spinevcf.schema.KEYPOINT_NAMES` order,
            ``None`` when the body could not be measured.
        frame: 3x3 matrix with columns ``u`` (left), ``v`` (posterior), ``w`` (superior).
        partial: the body touches the image border, or no body was found (its label holds only
            posterior elements: the body is cut away by the border); not measured.
        body_slices: index slices (mask grid) of ``body_mask``.
        body_mask: boolean body region within ``body_slices``.
        note: why the body was not measured ("" when it was).
    """

    label: int
    name: str
    center_lps_mm: npt.NDArray[np.float64]
    vertebra_center_lps_mm: npt.NDArray[np.float64]
    keypoints_lps_mm: npt.NDArray[np.float64] | None
    frame: npt.NDArray[np.float64]
    partial: bool
    body_slices: tuple[slice, slice, slice]
    body_mask: npt.NDArray[np.bool_] = field(repr=False)
    note: str = ""

    @property
    def keypoint_center(self) -> npt.NDArray[np.float64]:
        """Mean of the keypoints when measured, else the body centroid."""
        if self.keypoints_lps_mm is None:
            return self.center_lps_mm
        return self.keypoints_lps_mm.mean(axis=0)

    def body_points_lps(self, affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(n, 3) LPS centres of the body region's voxels (``affine``: the mask's)."""
        idx = np.argwhere(self.body_mask) + np.array([s.start for s in self.body_slices])
        aff = np.asarray(affine, dtype=np.float64)
        return idx @ aff[:3, :3].T + aff[:3, 3]


class _LabelCrop:
    """One label's mask, cropped with a background margin, sampled by trilinear interpolation."""

    PAD = 2

    def __init__(self, labels: npt.NDArray[Any], label: int, sl: tuple[slice, ...], affine: npt.NDArray[np.float64]):
        self.start = np.array([s.start for s in sl]) - self.PAD
        crop = labels[sl] == label
        crop = ndimage.binary_fill_holes(np.pad(crop, self.PAD))
        self.mask: npt.NDArray[np.bool_] = crop
        self.values = crop.astype(np.float32)
        aff = np.asarray(affine, dtype=np.float64)
        self.affine = aff.copy()
        self.affine[:3, 3] = aff[:3, 3] + aff[:3, :3] @ self.start
        self.inv = np.linalg.inv(self.affine)

    def points(self, sel: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        idx = np.argwhere(sel)
        return idx @ self.affine[:3, :3].T + self.affine[:3, 3]

    def sample(self, pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Interpolated mask (0..1) at (..., 3) LPS points; 0 outside the crop."""
        shp = pts.shape[:-1]
        idx = pts.reshape(-1, 3) @ self.inv[:3, :3].T + self.inv[:3, 3]
        out = ndimage.map_coordinates(self.values, idx.T, order=1, mode="constant", cval=0.0, output=np.float32)
        return out.reshape(shp)


def _body_region(crop: _LabelCrop, spacing: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_] | None:
    """The vertebral body within a whole-vertebra mask (morphological opening), ``None`` if not found.

    For radii ``r`` from :data:`BODY_CORE_MM` ``[1]`` down: erode the mask by ``r`` (depth >= r)
    and grow each of the larger components of what is left back by ``BODY_GROW_FACTOR * r``
    within the mask; the first region that holds :data:`BODY_MIN_FRACTION` of the mask and
    the vertebra's most anterior voxels (:func:`_holds_front`) is the body. The posterior
    elements are thinner than the body and vanish first; a crushed body, thinner than the
    junction of its pedicles and laminae, appears at a smaller ``r``.
    """
    m = crop.mask
    total = int(m.sum())
    depth = ndimage.distance_transform_edt(m, sampling=spacing)
    deepest = float(depth.max())
    radii = np.arange(min(BODY_CORE_MM[1], deepest), BODY_CORE_MM[0] - 1e-9, -BODY_CORE_STEP_MM)
    if radii.size == 0:
        radii = np.array([deepest])
    for r in radii:
        lab, n = ndimage.label(depth >= r)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())[1:]
        for k in np.argsort(sizes)[::-1][:BODY_CANDIDATES]:
            reach = ndimage.distance_transform_edt(lab != k + 1, sampling=spacing)
            region = m & (reach <= BODY_GROW_FACTOR * r)
            if region.sum() >= BODY_MIN_FRACTION * total and _holds_front(crop, region, spacing):
                return region
    return None


def _holds_front(crop: _LabelCrop, body: npt.NDArray[np.bool_], spacing: npt.NDArray[np.float64]) -> bool:
    """Whether the vertebra's most anterior voxels (LPS -y) are in or next to ``body``: a body's are."""
    y = crop.points(crop.mask)[:, 1]
    k = max(1, int(FRONT_FRACTION * y.size))
    front = np.argpartition(y, k - 1)[:k]
    gap = ndimage.distance_transform_edt(~body, sampling=spacing)[crop.mask][front]
    return bool(np.mean(gap <= FRONT_GAP_MM) >= 0.5)


def _front_part(crop: _LabelCrop) -> npt.NDArray[np.bool_]:
    """The anterior :data:`FRONT_PART` of the mask's AP (LPS y) extent."""
    y = crop.points(crop.mask)[:, 1]
    out = np.zeros_like(crop.mask)
    keep = y <= y.min() + FRONT_PART * (y.max() - y.min())
    out[tuple(np.argwhere(crop.mask)[keep].T)] = True
    return out


def _posterior_centre(
    crop: _LabelCrop,
    body: npt.NDArray[np.bool_],
    shape: npt.NDArray[np.int64],
    body_centre: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64] | None:
    """Centroid of the posterior elements (mask minus body), ``None`` when there are (almost) none.

    When the image border cuts the posterior elements, only those closer to the body than
    the cut (less :data:`PE_BORDER_MARGIN_MM`) count, so that the cut does not skew the
    centroid sideways.
    """
    rest = crop.mask & ~body
    if not rest.any():
        return None
    c = crop.points(body).mean(axis=0) if body_centre is None else body_centre
    pts = crop.points(rest)
    idx = np.argwhere(rest) + crop.start
    cut = np.any((idx <= 0) | (idx >= shape - 1), axis=1)
    if cut.any():
        d = np.linalg.norm(pts - c, axis=1)
        pts = pts[d < d[cut].min() - PE_BORDER_MARGIN_MM]
    if len(pts) < PE_MIN_FRACTION * body.sum():
        return None
    centre = pts.mean(axis=0)
    if np.linalg.norm(centre - c) < PE_MIN_OFFSET_MM:
        return None  # too little of the arch left to tell the AP direction
    return centre


def _unit(v: npt.ArrayLike) -> npt.NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(a))
    if n < 1e-9:
        raise ValueError("zero vector")
    return a / n


def _run_bounds(t: npt.NDArray[np.float64], f: npt.NDArray[np.float32]) -> tuple[float, float] | None:
    """Sub-sample 0.5 crossings at both ends of the inside run (f >= 0.5) through ``t = 0``.

    ``None`` when the sample at ``t = 0`` is outside or the run reaches an end of the profile.
    """
    run = run_around(f >= 0.5, int(np.argmin(np.abs(t))))
    if run is None:
        return None
    lo, hi = run
    dt = float(t[1] - t[0])
    t_lo = t[lo] - dt * float(f[lo] - 0.5) / max(float(f[lo] - f[lo - 1]), 1e-6)
    t_hi = t[hi] + dt * float(f[hi] - 0.5) / max(float(f[hi] - f[hi + 1]), 1e-6)
    return float(t_lo), float(t_hi)


_T = np.arange(-LINE_HALF_LENGTH_MM, LINE_HALF_LENGTH_MM + 1e-9, LINE_STEP_MM)


def _bounds_along(crop: _LabelCrop, starts: npt.NDArray[np.float64], d: npt.NDArray[np.float64]) -> list[tuple[float, float] | None]:
    """:func:`_run_bounds` on lines ``start + t d`` for each of (n, 3) ``starts``."""
    pts = starts[:, None, :] + _T[None, :, None] * d[None, None, :]
    f = crop.sample(pts)
    return [_run_bounds(_T, row) for row in f]


def _median_bounds(b: list[tuple[float, float] | None]) -> tuple[float, float] | None:
    ok = [x for x in b if x is not None]
    if not ok:
        return None
    arr = np.asarray(ok)
    return float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))


def _measure(
    crop: _LabelCrop, c: npt.NDArray[np.float64], frame: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64] | None, str, tuple[float, float, float] | None]:
    """Six keypoints of the body around ``c`` in ``frame`` (columns u, v, w).

    Returns:
        ``(keypoints, "", slopes)`` or ``(None, reason, None)``; ``slopes`` are the change per
        mm of height of the posterior wall's position along ``v`` (on the mid-sagittal plane)
        and of the lateral walls' midpoint along ``u``, and the tangent of the angle by which
        ``v`` is turned towards ``u`` (``None`` when fewer than three heights, or heights
        spanning less than :data:`MIN_SLOPE_SPAN_MM`, found the posterior wall; the other two
        are 0 when their lines span less or the section is nearly round).
    """
    u, v, w = frame[:, 0], frame[:, 1], frame[:, 2]
    # Height through the centroid, then re-centre at mid-height.
    hb = _bounds_along(crop, c[None], w)[0]
    if hb is None:
        return None, "no endplates along the superior axis", None
    c = c + 0.5 * (hb[0] + hb[1]) * w
    half_h = 0.5 * (hb[1] - hb[0])
    ab = _bounds_along(crop, c[None], v)[0]
    if ab is None:
        return None, "no walls along the AP axis", None
    # Lateral centre from lines across the body in front of the pedicles: the midpoints of
    # the (straight) left and right walls lie on the mid-sagittal plane. How they move with
    # height says how far w leans sideways out of it. How they move with the AP position a
    # says how far v is turned about w: the midpoints of parallel chords of an ellipse with
    # semi-axes A (lateral) and B (AP) lie on its conjugate diameter, which turns by
    # ((A/B)^2 - 1) tan(angle) per mm of a, so a clearly oval section gives the angle.
    depth = ab[1] - ab[0]
    a_pos = ab[0] + depth * LATERAL_AP_FRACTIONS
    b_pos = half_h * np.array([-0.5, 0.0, 0.5])
    ab_grid = np.array([(a, b) for a in a_pos for b in b_pos])
    lat_b = _bounds_along(crop, c[None, :] + ab_grid[:, :1] * v[None, :] + ab_grid[:, 1:] * w[None, :], u)
    ok_lat = [k for k, x in enumerate(lat_b) if x is not None]
    if not ok_lat:
        return None, "no lateral walls", None
    lat = np.array([lat_b[k] for k in ok_lat])
    mids = lat.mean(axis=1)
    c = c + float(np.median(mids)) * u
    a_ok, b_ok = ab_grid[ok_lat, 0], ab_grid[ok_lat, 1]
    cols, names = [np.ones_like(a_ok)], []
    if np.ptp(b_ok) >= MIN_SLOPE_SPAN_MM:
        cols.append(b_ok - b_ok.mean())
        names.append("b")
    if np.ptp(a_ok) >= MIN_SLOPE_SPAN_MM:
        cols.append(a_ok - a_ok.mean())
        names.append("a")
    coef = dict.fromkeys(("b", "a"), 0.0)
    if len(ok_lat) > len(cols):
        fit = np.linalg.lstsq(np.stack(cols, axis=1), mids, rcond=None)[0]
        coef.update({n: float(x) for n, x in zip(names, fit[1:], strict=True)})
    lat_slope = coef["b"]
    gain = (float(np.max(lat[:, 1] - lat[:, 0])) / depth) ** 2 - 1.0
    turn = coef["a"] / gain if gain >= MIN_OVAL_GAIN else 0.0
    # Height again on the mid-sagittal plane, then the walls at several heights.
    hb = _bounds_along(crop, c[None], w)[0]
    if hb is None:
        return None, "no endplates on the mid-sagittal plane", None
    c = c + 0.5 * (hb[0] + hb[1]) * w
    half_h = 0.5 * (hb[1] - hb[0])
    heights = half_h * WALL_HEIGHTS
    wall_b = _bounds_along(crop, c[None, :] + heights[:, None] * w[None, :], v)
    walls = _median_bounds(wall_b)
    if walls is None:
        return None, "no walls on the mid-sagittal plane", None
    front, back = walls
    if back - front <= 2.0 * KEYPOINT_INSET_MM + 1.0:
        return None, f"body too thin ({back - front:.1f} mm)", None
    a_kp = np.array([front + KEYPOINT_INSET_MM, 0.5 * (front + back), back - KEYPOINT_INSET_MM])
    lines = c[None, :] + a_kp[:, None] * v[None, :]
    ep = _bounds_along(crop, lines, w)
    if any(x is None for x in ep):
        return None, "an endplate was not found on a keypoint line", None
    sup = np.array([lines[k] + ep[k][1] * w for k in range(3)])  # type: ignore[index]
    inf = np.array([lines[k] + ep[k][0] * w for k in range(3)])  # type: ignore[index]
    kp = np.concatenate([sup, inf])
    if np.any(np.linalg.norm(sup - inf, axis=1) <= 0.5):
        return None, "zero height", None
    # Direction of the posterior wall over the inner part of the posterior height (which
    # wedge fractures spare), from lines along v starting on the posterior keypoint line.
    t_inf, t_sup = ep[2]  # type: ignore[misc]
    margin = POSTERIOR_WALL_MARGIN * (t_sup - t_inf)
    heights = np.linspace(t_inf + margin, t_sup - margin, len(WALL_HEIGHTS))
    post_b = _bounds_along(crop, lines[2][None, :] + heights[:, None] * w[None, :], v)
    ok = [k for k, b in enumerate(post_b) if b is not None]
    if len(ok) < 3 or np.ptp(heights[ok]) < MIN_SLOPE_SPAN_MM:
        return kp, "", None
    ap_slope = float(np.polyfit(heights[ok], [post_b[k][1] for k in ok], 1)[0])  # type: ignore[index]
    return kp, "", (ap_slope, lat_slope, turn)


def _principal_si_axis(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The principal axis of a point cloud nearest to LPS z, pointing superior."""
    q = points - points.mean(axis=0)
    _, vecs = np.linalg.eigh(q.T @ q)
    w = vecs[:, int(np.argmax(np.abs(vecs[2])))]
    return w if w[2] >= 0 else -w


def _frame(
    w: npt.NDArray[np.float64],
    body_c: npt.NDArray[np.float64],
    pe_c: npt.NDArray[np.float64] | None,
    *,
    trust: bool = False,
) -> npt.NDArray[np.float64]:
    """Columns u (left), v (posterior), w (superior) from ``w`` and the body->posterior-elements direction.

    The direction is used when it is within :data:`MAX_AP_ANGLE_DEG` of LPS +y (always with
    ``trust``), else LPS +y (made orthogonal to ``w``) is.
    """
    y = np.array([0.0, 1.0, 0.0])
    y_perp = y - np.dot(y, w) * w
    if np.linalg.norm(y_perp) < 1e-6:  # superior axis along y: any perpendicular will do
        y_perp = np.cross(w, [1.0, 0.0, 0.0])
    y_perp = _unit(y_perp)
    v = y_perp
    if pe_c is not None:
        d = pe_c - body_c
        d = d - np.dot(d, w) * w
        if np.linalg.norm(d) > 1e-6:
            d = _unit(d)
            if trust or np.dot(d, y_perp) >= math.cos(math.radians(MAX_AP_ANGLE_DEG)):
                v = d
    u = np.cross(v, w)
    return np.stack([u, v, w], axis=1)


def adjacent_pairs(present: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs of anatomically adjacent labels among ``present`` (cranial first).

    T12 and L1 are adjacent unless a T13 is present; L5 and L6 are adjacent.
    """
    seq = [lab for lab in ANATOMICAL_ORDER if lab not in TRANSITIONAL_LABELS or lab in set(present)]
    have = set(present)
    return [(a, b) for a, b in zip(seq[:-1], seq[1:], strict=True) if a in have and b in have]


def _neighbour_axis(
    lab: int,
    pairs: list[tuple[int, int]],
    centres: dict[int, npt.NDArray[np.float64]],
    usable: set[int],
) -> npt.NDArray[np.float64] | None:
    """Superior axis from the anatomically adjacent bodies (cranial minus caudal)."""

    def ok(n: int) -> bool:
        return n in usable and float(np.linalg.norm(centres[n] - centres[lab])) <= MAX_NEIGHBOUR_MM

    up = next((a for a, b in pairs if b == lab and ok(a)), None)
    down = next((b for a, b in pairs if a == lab and ok(b)), None)
    if up is not None and down is not None:
        d = centres[up] - centres[down]
    elif up is not None:
        d = centres[up] - centres[lab]
    elif down is not None:
        d = centres[lab] - centres[down]
    else:
        return None
    return _unit(d) if np.linalg.norm(d) > 1e-6 else None


def _off_column(
    order: list[int],
    results: dict[int, tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64], str]],
    centroid: dict[int, npt.NDArray[np.float64]],
    partial: dict[int, bool],
) -> set[int]:
    """Partial labels whose "body" lies off the column of the measured bodies (a cut-off arch)."""
    measured = [lab for lab in order if results[lab][0] is not None]
    if not measured:
        return set()
    pos = {lab: ANATOMICAL_ORDER.index(lab) for lab in order}
    out = set()
    for lab in order:
        if not partial[lab]:
            continue
        near = sorted(measured, key=lambda m: abs(pos[m] - pos[lab]))[:2]
        a = results[near[0]][0].mean(axis=0)  # type: ignore[union-attr]
        if len(near) == 2:
            d = results[near[1]][0].mean(axis=0) - a  # type: ignore[union-attr]
        else:
            d = results[near[0]][1][:, 2]
        d = _unit(d)
        q = centroid[lab] - a
        if np.linalg.norm(q - np.dot(q, d) * d) > MAX_OFF_COLUMN_MM:
            out.add(lab)
    return out


def vertebra_geometry(mask: Volume, *, case_id: str = "") -> list[VertebraGeometry]:
    """Body regions, frames and keypoints of every vertebra label of a VerSe mask.

    Args:
        mask: the label map (VerSe labels, :data:`VERSE_LABELS`) with its affine.
        case_id: named in log messages.

    Returns:
        One :class:`VertebraGeometry` per vertebra label present (1-25 and 28), cranial to
        caudal. Sacrum and coccyx are not included.
    """
    labels = np.asarray(mask.array)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{case_id}: the vertebra mask holds non-integer values")
    boxes = ndimage.find_objects(labels, max_label=max(VERSE_LABELS))
    present = [lab for lab in ANATOMICAL_ORDER if boxes[lab - 1] is not None]
    spacing = mask.spacing
    shape = np.array(mask.shape)
    crops: dict[int, _LabelCrop] = {}
    bodies: dict[int, npt.NDArray[np.bool_]] = {}
    cut_away: dict[int, bool] = {}
    for lab in present:
        crop = _LabelCrop(labels, lab, boxes[lab - 1], mask.affine)
        crops[lab] = crop
        found = _body_region(crop, spacing)
        # No body found: the opening kept only pieces of the arch, so the body is cut away by
        # the image border (or missing). The anterior part of the mask is a rough stand-in.
        bodies[lab] = found if found is not None else _front_part(crop)
        cut_away[lab] = found is None
    order = list(crops)
    if not order:
        return []
    whole = {lab: crops[lab].points(crops[lab].mask).mean(axis=0) for lab in order}
    partial, posterior = {}, {}
    for lab in order:
        crop = crops[lab]
        idx = np.argwhere(bodies[lab]) + crop.start
        partial[lab] = cut_away[lab] or bool(np.any(idx <= 0) or np.any(idx >= shape - 1))
        posterior[lab] = _posterior_centre(crop, bodies[lab], shape)
    centroid = {lab: crops[lab].points(bodies[lab]).mean(axis=0) for lab in order}
    usable = {lab for lab in order if not partial[lab]}

    results: dict[int, tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64], str]] = {}
    centres = dict(centroid)
    pairs = adjacent_pairs(order)
    ref = dict(centroid)  # a point inside the body, on its mid-sagittal plane once measured
    for _ in range(2):
        for lab in order:
            crop = crops[lab]
            w = _neighbour_axis(lab, pairs, centres, usable)
            if w is None:
                w = _principal_si_axis(crop.points(bodies[lab]))
            frame = _frame(w, ref[lab], posterior[lab])
            if partial[lab]:
                results[lab] = (None, frame, "no vertebral body found" if cut_away[lab] else "cut by the image border")
                continue
            kp, note, slopes = _measure(crop, ref[lab], frame)
            if slopes is not None and max(abs(math.degrees(math.atan(x))) for x in slopes) <= MAX_WALL_TILT_DEG:
                # The body's own axis: along its posterior wall (which fractures spare) and
                # its mid-sagittal plane; tilt w onto it and measure again.
                u0, v0, w0 = frame[:, 0], frame[:, 1], frame[:, 2]
                w_body = _unit(w0 + slopes[0] * v0 + slopes[1] * u0)
                frame = _frame(w_body, ref[lab], ref[lab] + v0 - slopes[2] * u0, trust=True)
                kp, note, _ = _measure(crop, ref[lab], frame)
            results[lab] = (kp, frame, note)
        for lab in order:
            kp, frame, _ = results[lab]
            if kp is None:
                continue
            # Split the mask at the posterior wall: in front, the body (rims included, which
            # the opening rounds off); behind, the posterior elements, whose centroid gives
            # the AP axis of the next pass from the body's measured mid-sagittal centre.
            crop, v = crops[lab], frame[:, 1]
            wall = 0.5 * (kp[2] + kp[5]) + KEYPOINT_INSET_MM * v
            front = crop.mask.copy()
            front[crop.mask] = (crop.points(crop.mask) - wall) @ v <= BODY_BEHIND_WALL_MM
            bodies[lab] = front
            centroid[lab] = crop.points(front).mean(axis=0)
            ref[lab] = kp.mean(axis=0)
            centres[lab] = ref[lab]
            posterior[lab] = _posterior_centre(crop, front, shape, ref[lab])
    dropped = _off_column(order, results, centroid, partial)
    out = []
    for lab in order:
        if lab in dropped:
            log.info("%s: %s is cut by the image and only its posterior elements are inside", case_id or "mask", VERSE_LABELS[lab])
            continue
        kp, frame, note = results[lab]
        if kp is None and not partial[lab]:
            log.warning("%s: %s not measured: %s", case_id or "mask", VERSE_LABELS[lab], note)
        idx = np.argwhere(bodies[lab])
        lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
        start = crops[lab].start
        sl = tuple(slice(int(start[k] + lo[k]), int(start[k] + hi[k])) for k in range(3))
        out.append(
            VertebraGeometry(
                label=lab,
                name=VERSE_LABELS[lab],
                center_lps_mm=centroid[lab],
                vertebra_center_lps_mm=whole[lab],
                keypoints_lps_mm=kp,
                frame=frame,
                partial=partial[lab],
                body_slices=sl,  # type: ignore[arg-type]
                body_mask=bodies[lab][lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]],
                note=note,
            )
        )
    return out


def truth_from_geometry(
    geometry: list[VertebraGeometry], *, uids: dict[str, str], extra: dict[str, Any] | None = None
) -> StudyRecord:
    """Ground truth in the generator's ``truth.json`` form from :func:`vertebra_geometry`.

    Measured C2..L5 bodies become records graded by :func:`~spinevcf.grading.grade_column`;
    bodies touching the border, unmeasurable ones and transitional ones (T13, L6) go to
    ``extra["partial"]``.
    """
    full = [g for g in geometry if g.label in RECORD_LABELS and g.keypoints_lps_mm is not None]
    partial: list[dict[str, Any]] = []
    transitional: list[dict[str, Any]] = []
    for g in geometry:
        centre = np.round(g.keypoint_center, 3).tolist()
        if g.label in TRANSITIONAL_LABELS:
            partial.append({"label": g.name, "center_lps_mm": centre, "reason": "transitional"})
            transitional.append({"label": g.name, "center_lps_mm": centre, "measured": g.keypoints_lps_mm is not None})
        elif g.label in RECORD_LABELS and g.keypoints_lps_mm is None:
            reason = g.note if g.partial else f"not measured: {g.note}"
            partial.append({"label": g.name, "center_lps_mm": centre, "reason": reason})
    ex: dict[str, Any] = {"partial": partial, "transitional": transitional}
    ex.update(extra or {})
    return truth_record(
        [g.name for g in full],
        [np.asarray(g.keypoints_lps_mm) for g in full],
        study_instance_uid=uids["study"],
        series_instance_uid=uids["series"],
        model_version=f"spinevcf-verse {LOADER_VERSION}",
        extra=ex,
    )


# --------------------------------------------------------------------------- centroids
def read_centroids(path: str | os.PathLike[str], reference: Volume) -> dict[int, npt.NDArray[np.float64]]:
    """LPS points of a VerSe centroid JSON (convention: module docstring), by label.

    Args:
        path: the JSON file.
        reference: the image the centroids were annotated on (its grid and affine).

    Raises:
        InputError: unreadable JSON, an unknown axis code, or codes that do not name three
            different image axes.
    """
    p = Path(path)
    try:
        items = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read centroids {p.name}: {exc}") from exc
    if not isinstance(items, list):
        raise InputError(f"centroids {p.name}: expected a JSON list")
    codes: list[str] | None = None
    points: dict[int, list[float]] = {}
    for it in items:
        if not isinstance(it, dict):
            continue
        if "direction" in it:
            codes = [str(c).upper() for c in it["direction"]]
            continue
        try:
            lab = int(it["label"])
            xyz = [float(it["X"]), float(it["Y"]), float(it["Z"])]
        except (KeyError, TypeError, ValueError):
            continue
        if all(math.isfinite(x) for x in xyz):
            points[lab] = xyz
    n = np.array(reference.shape)
    if codes is None:
        perm, flip = [2, 1, 0], [False, False, False]  # NIfTI (i, j, k) = Volume axes (2, 1, 0)
    else:
        if len(codes) != 3 or any(c not in _AXIS_CODES for c in codes):
            raise InputError(f"centroids {p.name}: direction must be three of L/R/A/P/S/I, got {codes}")
        dirs = reference.direction  # columns: LPS unit vectors of the array axes
        perm, flip = [], []
        for c in codes:
            ax, sign = _AXIS_CODES[c]
            cos = dirs[ax, :] * sign
            a = int(np.argmax(np.abs(cos)))
            perm.append(a)
            flip.append(bool(cos[a] < 0))
        if len(set(perm)) != 3:
            raise InputError(f"centroids {p.name}: direction {codes} does not match the image axes")
    out: dict[int, npt.NDArray[np.float64]] = {}
    for lab, xyz in points.items():
        idx = np.zeros(3)
        for k in range(3):
            a = perm[k]
            idx[a] = (n[a] - 1 - xyz[k]) if flip[k] else xyz[k]
        out[lab] = reference.index_to_lps(idx[None])[0]
    return out


def _centroid_check(
    path: Path, reference: Volume, geometry: list[VertebraGeometry], case_id: str
) -> dict[str, Any]:
    pts = read_centroids(path, reference)
    by_label = {g.label: g for g in geometry}
    common = sorted(set(pts) & set(by_label))
    if not common:
        log.warning("%s: the centroid file %s names no label of the mask", case_id, path.name)
        return {"file": path.name, "n": 0}
    d_vert = [float(np.linalg.norm(pts[k] - by_label[k].vertebra_center_lps_mm)) for k in common]
    d_body = [float(np.linalg.norm(pts[k] - by_label[k].center_lps_mm)) for k in common]
    med_vert, med_body = float(np.median(d_vert)), float(np.median(d_body))
    if min(med_vert, med_body) > CENTROID_MISMATCH_MM:
        log.warning(
            "%s: centroids in %s are a median %.1f mm from the mask's; the mask is used",
            case_id,
            path.name,
            med_vert,
        )
    return {
        "file": path.name,
        "n": len(common),
        "median_mm_to_vertebra_centroid": round(med_vert, 2),
        "median_mm_to_body_centroid": round(med_body, 2),
        "max_mm_to_vertebra_centroid": round(float(np.max(d_vert)), 2),
    }


# --------------------------------------------------------------------------- loading
@dataclass
class VerseStudy:
    """A loaded VerSe case: CT, mask, per-vertebra geometry and the derived truth."""

    case: VerseCase
    ct: Volume
    mask: Volume
    vertebrae: list[VertebraGeometry]
    truth: StudyRecord


def verse_uids(case_id: str) -> dict[str, str]:
    """Deterministic study, series and frame-of-reference UIDs of a converted VerSe case."""
    return {
        kind: str(generate_uid(entropy_srcs=["spinevcf-verse", case_id, kind])) for kind in ("study", "series", "frame")
    }


def _check_grid(ct: Volume, mask: Volume, case_id: str) -> None:
    if ct.shape != mask.shape:
        raise InputError(f"{case_id}: CT and vertebra mask grids differ: shape {ct.shape} vs {mask.shape}")
    n = np.array(ct.shape, dtype=np.float64) - 1.0
    corners = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
    diff = float(np.max(np.linalg.norm(ct.index_to_lps(corners) - mask.index_to_lps(corners), axis=1)))
    tol = GRID_TOLERANCE_FRACTION * float(min(ct.spacing.min(), mask.spacing.min()))
    if diff > tol:
        raise InputError(
            f"{case_id}: CT and vertebra mask grids differ: corners up to {diff:.3f} mm apart "
            f"(tolerance {tol:.3f} mm)"
        )


def read_verse_study(case: VerseCase) -> VerseStudy:
    """Load a case's CT and mask, check they share the grid and derive the truth.

    Raises:
        InputError: the CT or mask is missing or unreadable (its subclass
            :class:`~spinevcf.errors.UnreadableFileError`), the grids differ, the mask is not
            integral or has no vertebra label, or no vertebra could be derived.
    """
    if not case.ct_path.is_file():
        raise InputError(f"{case.case_id}: CT file not found: {case.ct_path.name}")
    if case.mask_path is None or not case.mask_path.is_file():
        name = case.mask_path.name if case.mask_path is not None else f"{case.case_id}_seg-vert_msk.nii.gz"
        raise InputError(f"{case.case_id}: vertebra mask not found ({name})")
    ct = load_nifti(case.ct_path)
    mask = load_nifti(case.mask_path)
    _check_grid(ct, mask, case.case_id)
    if not np.issubdtype(mask.array.dtype, np.integer):
        raise InputError(f"{case.case_id}: the vertebra mask {case.mask_path.name} holds non-integer values")
    labels = mask.array
    if not np.any((labels >= 1) & ((labels <= 25) | (labels == 28))):
        raise InputError(f"{case.case_id}: the vertebra mask {case.mask_path.name} has no vertebra label (1-25, 28)")
    geometry = vertebra_geometry(mask, case_id=case.case_id)
    extra: dict[str, Any] = {
        "source": "verse",
        "case": case.case_id,
        "keypoints": "derived from the vertebra mask (spinevcf.io.verse)",
    }
    if case.centroid_path is not None:
        extra["centroid_check"] = _centroid_check(case.centroid_path, mask, geometry, case.case_id)
    truth = truth_from_geometry(geometry, uids=verse_uids(case.case_id), extra=extra)
    log.info(
        "%s: %d vertebrae measured, %d partial or transitional",
        case.case_id,
        len(truth.vertebrae),
        len(truth.extra["partial"]) if truth.extra else 0,
    )
    return VerseStudy(case, ct, mask, geometry, truth)


def load_verse_case(case: VerseCase) -> tuple[Volume, StudyRecord]:
    """The CT (HU, as :func:`~spinevcf.io.nifti.load_nifti` gives it) and its derived ground truth.

    Raises:
        InputError: see :func:`read_verse_study`.
    """
    study = read_verse_study(case)
    return study.ct, study.truth


# --------------------------------------------------------------------------- conversion
def _axial_first(volume: Volume) -> Volume:
    """The same volume with its array axes permuted so that axis 0 is the one nearest LPS z."""
    a0 = int(np.argmax(np.abs(volume.direction[2])))
    if a0 == 0:
        return volume
    perm = [a0] + [a for a in range(3) if a != a0]
    aff = volume.affine.copy()
    aff[:3, :3] = volume.affine[:3, perm]
    return Volume(np.ascontiguousarray(np.transpose(volume.array, perm)), aff, volume.info)


def convert_verse(
    root: str | os.PathLike[str], out: str | os.PathLike[str], *, dicom: bool = False
) -> tuple[list[Path], list[str]]:
    """Write ``out/<case>/truth.json`` (and ``out/<case>/dicom/``) for every case under ``root``.

    Returns:
        ``(written case folders, "<case>: <error>" for the cases that failed)``.

    Raises:
        InputError: ``root`` holds no VerSe case.
        OutputError: a file cannot be written.
    """
    from spinevcf.io.dicom_write import write_ct_series

    out_dir = Path(out)
    done: list[Path] = []
    failed: list[str] = []
    for case in find_verse_cases(root):
        try:
            ct, truth = load_verse_case(case)
        except InputError as exc:
            log.error("%s", exc)
            failed.append(str(exc))
            continue
        folder = out_dir / case.case_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if dicom:
                uids = verse_uids(case.case_id)
                write_ct_series(
                    _axial_first(ct),
                    folder / "dicom",
                    patient={"PatientID": case.subject, "PatientName": f"VERSE^{case.subject}"},
                    study_instance_uid=uids["study"],
                    series_instance_uid=uids["series"],
                    frame_of_reference_uid=uids["frame"],
                    series_description=f"VerSe {case.case_id}",
                    rng_seed=0,
                )
            tmp = folder / "truth.json.tmp"
            tmp.write_text(truth.to_json())
            tmp.replace(folder / "truth.json")
        except OSError as exc:
            raise OutputError(f"cannot write {folder}: {exc.strerror}") from exc
        done.append(folder)
    return done, failed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m spinevcf.io.verse ROOT OUT [--dicom]``; exit 0, or 3 when a case failed."""
    ap = argparse.ArgumentParser(
        prog="python -m spinevcf.io.verse",
        description="Convert VerSe-format data to spinevcf studies: OUT/<case>/truth.json "
        "(ground truth derived from the vertebra masks) and, with --dicom, OUT/<case>/dicom/.",
    )
    ap.add_argument("root", type=Path, help="VerSe dataset folder (rawdata/ + derivatives/, or flat)")
    ap.add_argument("out", type=Path, help="output folder of <case>/truth.json")
    ap.add_argument("--dicom", action="store_true", help="also write each CT as a DICOM series")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        done, failed = convert_verse(args.root, args.out, dicom=args.dicom)
    except SpineVCFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"converted {len(done)} case(s) to {args.out}; {len(failed)} failed")
    for msg in failed:
        print(f"failed: {msg}", file=sys.stderr)
    return InputError.exit_code if failed else 0


if __name__ == "__main__":
    sys.exit(main())
