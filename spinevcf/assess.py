"""Assessability: whether the image supports measuring and grading a detected body.

A body is measured and graded only when the scan holds it whole. The test uses the body's
*expected* anatomical extent, not where its keypoints landed: where a scan stops inside a
body, the detector tends to put the endplate on the last slice or on an inner bright band,
so keypoints a few millimetres inside the volume prove nothing. The expected extent comes
from the spacing of the body's detected neighbours along the spine curve (one body plus
its two discs span about 1.2 times the body-to-body pitch), or, for a body without a
detected neighbour, from a conservative pitch for its region. A body is **not assessable**
when:

* ``cut_by_scan_range``: its expected extent, discs included, plus one slice spacing does
  not lie inside the scanned range (the first and last slice centres), and on the side
  where it does not, the scan does not show the disc beyond the body and the next body's
  endplate past it (a crushed body is shorter than its expected extent: where the scan
  shows its disc, it holds the body whole);
* ``cut_by_field_of_view``: its expected extent leaves the reconstructed image in-plane
  (the image square, and the reconstruction circle inscribed in it where the scanner pads
  outside the circle: :func:`reconstruction_circle`), or its interior samples read as
  outside the reconstruction (padding or air);
* ``next_to_metal``: metal (screws, rods, cement with metal) lies in or next to it: streaks
  make its endplates unreliable;
* ``outside_reformatted_image``: its keypoints reach the end of the straightened image
  (the spine curve ends inside it);
* ``implausible_height``: it is the last detected body on one side, its measured height is
  far below what its neighbour's pitch implies, and no disc is visible beyond it in the
  straightened image (a body cut by the scan or hidden, not a measurable collapse).

Such a body is still reported (detected, with its level), never graded, never a neighbour
reference for grading, and never part of the patient's probability (docs/sr.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from spinevcf.detector import Detection
from spinevcf.geometry import sampling
from spinevcf.geometry.cpr import CPRImage
from spinevcf.schema import LEVEL_INDEX
from spinevcf.volume import Volume

__all__ = [
    "Assessment",
    "assess_bodies",
    "imaged",
    "reconstruction_circle",
    "keypoints_in_scan",
    "NOT_ASSESSABLE_REASONS",
    "EXTENT_PITCH_FRACTION",
    "SLICE_MARGIN",
    "IN_PLANE_MARGIN_MM",
    "METAL_HU",
    "IMPLAUSIBLE_HEIGHT_FRACTION",
]

log = logging.getLogger(__name__)

#: Reasons a body is not assessable (results.json ``assessment_reason``) and their text.
NOT_ASSESSABLE_REASONS: Final = MappingProxyType(
    {
        "cut_by_scan_range": "cut by the scanned range: the body or a disc next to it is not fully in the scan",
        "cut_by_field_of_view": "cut by the reconstructed field of view",
        "next_to_metal": "metal in or next to the body",
        "implausible_height": "implausible height for its level with no disc visible beyond it",
        "outside_reformatted_image": "extends beyond the straightened image (the spine curve ends in it)",
        "unstable_measurement": (
            "the heights are not reproduced when the image is shifted by 3-6 mm: the endplates are "
            "not resolved well enough to measure (spinevcf.stability)"
        ),
    }
)

#: Half the expected extent of a body with its two discs, as a fraction of the pitch (distance
#: between neighbouring body centres): a body fills about 0.75-0.8 of the pitch, so the far
#: side of each disc lies at about 0.5 + 0.1 pitch from the centre.
EXTENT_PITCH_FRACTION: Final = 0.6
#: Pitch of a body without a detected neighbour (mm): the upper end of the adult range per
#: region, so that a lone body is only assessed when the scan clearly holds it.
FALLBACK_PITCH_MM: Final = MappingProxyType({"C": 22.0, "T": 32.0, "L": 42.0})
#: Neighbours farther apart than this times the column's median pitch have a missed body between them.
MAX_PITCH_RATIO: Final = 1.5
#: Safety factor on the local median pitch (the step from one level to the next in adult
#: morphometry is up to about 10 %: the expected extent is not allowed to be short).
PITCH_STEP_FACTOR: Final = 1.1
#: Pairs of neighbours within this many bodies of a body give its expected pitch.
PITCH_WINDOW: Final = 3
#: Keypoints closer than this (pixels) to the CPR's first or last valid row mean a body cut by
#: the straightened image (the spine curve ends inside it).
COMPLETE_MARGIN_PX: Final = 1.0
#: The expected extent must lie this many slice spacings inside the first / last slice centre.
SLICE_MARGIN: Final = 1.0
#: ... and this far (mm) inside the in-plane faces of the image.
IN_PLANE_MARGIN_MM: Final = 2.0
#: Lateral offsets (mm) of the sagittal planes in which the expected extent is checked along the scan.
LATERAL_SAMPLES_MM: Final = (-10.0, 0.0, 10.0)
#: The body's anterior and posterior walls lie this far (mm) beyond its keypoints (2 mm
#: keypoint inset from the corners, about 1 mm of cortex).
WALL_MARGIN_MM: Final = 3.0
#: Body width over depth used for its lateral extent (adult thoracolumbar bodies are about
#: 1.3-1.5 times as wide as deep; cervical ones about 1.1-1.4).
WIDTH_PER_DEPTH: Final = 1.3
#: Lateral offsets (mm) of the samples that must show tissue inside the body.
CORE_LATERAL_MM: Final = (-6.0, 0.0, 6.0)
#: Inside a vertebral body no tissue is below this (HU): lower means outside the
#: reconstruction circle (padding) or no data.
OUTSIDE_FOV_HU: Final = -900.0
#: Metal (HU); also the threshold of the rib search (spinevcf.ribs).
METAL_HU: Final = 2500.0
#: Metal searched this far around the body (mm) and every ``METAL_STEP_MM``.
METAL_MARGIN_MM: Final = 5.0
METAL_STEP_MM: Final = 2.5
METAL_LATERAL_MM: Final = 22.0
#: Fewer metal samples than this are noise (a calcification, a streak peak).
METAL_MIN_SAMPLES: Final = 3
#: A detection with fewer keypoints than this inside the scanned volume is not reported.
MIN_KEYPOINTS_IN_SCAN: Final = 3
#: A detection shorter than this fraction of the column's median body height is a sliver (the
#: visible part of a cut body): no pitch reference for its neighbours.
SLIVER_FRACTION: Final = 0.6
#: Fraction of the pitch a body's height fills (adult thoracolumbar average).
BODY_PITCH_FRACTION: Final = 0.78
#: A last body whose mean height is below this fraction of the expected one is implausible.
IMPLAUSIBLE_HEIGHT_FRACTION: Final = 0.55
#: A disc is "visible" beyond an endplate when the CPR profile dips at least this far
#: below the bone on its far side (HU).
DISC_CONTRAST_HU: Final = 60.0
#: A slice's corners (outside the inscribed circle) hold the scanner's padding when at
#: least this share of their pixels is one value, at or below ``PADDING_MAX_HU``: air
#: inside the reconstruction is noisy, padding is constant.
PADDING_SHARE: Final = 0.99
PADDING_MAX_HU: Final = -1000.0
#: Slices sampled for the padding test.
PADDING_SLICES: Final = 5
#: Points around a body's outline for the reconstruction-circle test.
OUTLINE_POINTS: Final = 24
#: The disc beyond a body reads more than this (HU) below the body's own cancellous bone
#: (a dip between two bright bands that is not below it is bone: the ring apophysis or an
#: inner band of a cut body, not a disc). Thin discs on 2.5-5 mm slices read only 0-10 HU
#: below it (partial volume with both endplates).
DISC_BELOW_BODY_HU: Final = 0.0
#: Keypoints lie up to this far (mm) from the body's cortical surface (annotators place
#: them inside the corners); the disc search starts this far inside the body.
KEYPOINT_INSET_MM: Final = 2.0
#: How far beyond an endplate (times the pitch) the disc and the next body's endplate are
#: looked for where the expected extent leaves the scan: the 2 mm keypoint inset, the
#: cortex and a disc of up to about 0.3 of the pitch (the lower lumbar discs).
DISC_SEARCH_FRACTION: Final = 0.4
#: Where the scan ends inside the disc beyond an endplate, the disc must be seen over at
#: least this much of the profile (mm) and over at least ``OPEN_DISC_MIN_SLICES`` slice
#: spacings, every sample ``DISC_CONTRAST_HU`` below the cancellous bone of the body and
#: of its neighbour on the other side.
OPEN_DISC_MIN_MM: Final = 4.0
OPEN_DISC_MIN_SLICES: Final = 2.0


@dataclass(frozen=True)
class Assessment:
    """Whether one detected body can be measured and graded.

    Attributes:
        reason: key of :data:`NOT_ASSESSABLE_REASONS` when not assessable, else ``None``.
        extent_s_mm: expected (cranial, caudal) arc-length extent used for the test.
    """

    reason: str | None
    extent_s_mm: tuple[float, float]

    @property
    def assessable(self) -> bool:
        """``True`` when the image supports a finding (no reason against it)."""
        return self.reason is None


def _region(label: str | None) -> str:
    return label[0] if label else "T"


def _pitches(
    s: npt.NDArray[np.float64], labels: Sequence[str | None], usable: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """(n, 2) cranial and caudal pitch expected at each body, from the column around it.

    The pitch at body ``i`` is the median distance between consecutive detections that are
    both ``usable`` and one level apart, among the pairs within :data:`PITCH_WINDOW` bodies of
    ``i``; pairs more than :data:`MAX_PITCH_RATIO` times the column's median apart are a missed
    body and are not used. A body's own position never decides its size: a cut body's visible
    part (a sliver) sits close to its neighbour and would make its own pitch look short.
    Without any such pair nearby, the conservative region pitch (:data:`FALLBACK_PITCH_MM`).
    """
    n = len(s)
    pairs: list[tuple[int, float]] = []  # (index of the cranial body, pitch)
    for j in range(n - 1):
        if not (usable[j] and usable[j + 1]):
            continue
        lj, lk = labels[j], labels[j + 1]
        if lj is not None and lk is not None and LEVEL_INDEX[lk] - LEVEL_INDEX[lj] != 1:
            continue  # a level gap: a body was missed in between
        pairs.append((j, abs(s[j + 1] - s[j])))
    if pairs:
        column = float(np.median([p for _, p in pairs]))
        pairs = [(j, p) for j, p in pairs if p <= MAX_PITCH_RATIO * column]
    out = np.empty((n, 2))
    for i in range(n):
        near = [p for j, p in pairs if -PITCH_WINDOW <= j - i < PITCH_WINDOW]
        out[i] = float(np.median(near)) * PITCH_STEP_FACTOR if near else FALLBACK_PITCH_MM[_region(labels[i])]
    return out


def _inside_cpr_rows(cpr: CPRImage, kp: npt.NDArray[np.float64]) -> bool:
    """Whether six (row, col) keypoints lie inside the CPR's valid rows (curve not ended in them)."""
    last = float(cpr.valid_rows or cpr.image.shape[1]) - 1.0
    return bool((kp[:, 0] >= COMPLETE_MARGIN_PX).all() and (kp[:, 0] <= last - COMPLETE_MARGIN_PX).all())


def keypoints_in_scan(volume: Volume, cpr: CPRImage, det: Detection) -> int:
    """How many of a detection's six keypoints lie inside the scanned volume."""
    idx = volume.lps_to_index(cpr.pixel_to_lps(np.asarray(det.keypoints_px, dtype=np.float64)))
    shape = np.asarray(volume.shape, dtype=np.float64)
    return int(((idx >= -0.5) & (idx <= shape - 0.5)).all(axis=1).sum())


def imaged(volume: Volume, cpr: CPRImage, det: Detection) -> bool:
    """Whether the scan shows a detection at all (:data:`MIN_KEYPOINTS_IN_SCAN` keypoints in it).

    A "body" the detector extrapolated beyond the end of the scan, with nothing of it in the
    image, is not a detection to report.
    """
    return keypoints_in_scan(volume, cpr, det) >= MIN_KEYPOINTS_IN_SCAN


def _usable_neighbours(
    volume: Volume, cpr: CPRImage, detections: Sequence[Detection]
) -> npt.NDArray[np.bool_]:
    """Detections whose position says something about their neighbours' size."""
    centres = cpr.pixel_to_lps(np.stack([np.asarray(d.center_px, dtype=np.float64) for d in detections]))
    idx = volume.lps_to_index(centres)
    inside = (idx[:, 0] >= 0) & (idx[:, 0] <= volume.shape[0] - 1)
    rows = [np.asarray(d.keypoints_px, dtype=np.float64)[:, 0] for d in detections]
    height = np.array([np.mean(r[3:6] - r[0:3]) for r in rows]) * cpr.pixel_mm
    tall = height >= SLIVER_FRACTION * float(np.median(height))
    return inside & tall


def reconstruction_circle(volume: Volume) -> bool:
    """Whether the scanner padded the image outside the reconstruction circle.

    Many scanners reconstruct a circle inscribed in the square image and store a constant
    padding value (-1024 to -3024 HU) outside it; nothing outside the circle was imaged.
    Detected from the corners of :data:`PADDING_SLICES` slices: at least
    :data:`PADDING_SHARE` of the pixels outside the circle (by 2 pixels) hold one value at
    or below :data:`PADDING_MAX_HU`.

    Example:
        >>> img = np.full((3, 32, 32), -1000, dtype=np.int16)
        >>> img += np.random.default_rng(0).integers(-20, 20, img.shape).astype(np.int16)
        >>> vol = Volume(img, np.eye(4))
        >>> reconstruction_circle(vol)
        False
        >>> yy, xx = np.ogrid[0:32, 0:32]
        >>> img[:, (yy - 15.5) ** 2 + (xx - 15.5) ** 2 > 16.0**2] = -2048
        >>> reconstruction_circle(vol)
        True
    """
    n, rows, cols = volume.shape
    if rows != cols:
        return False
    c = 0.5 * (rows - 1)
    yy, xx = np.ogrid[0:rows, 0:cols]
    corners = (yy - c) ** 2 + (xx - c) ** 2 > (0.5 * rows + 2.0) ** 2
    if not corners.any():
        return False
    for k in np.unique(np.linspace(0, n - 1, PADDING_SLICES).round().astype(int)):
        values = volume.array[k][corners]
        mode = np.bincount((values - values.min()).astype(np.int64)).argmax() + values.min()
        if mode > PADDING_MAX_HU or float((values == mode).mean()) < PADDING_SHARE:
            return False
    return True


def _inside(volume: Volume, idx: npt.NDArray[np.float64]) -> tuple[bool, bool]:
    """(inside the scanned range along the slice axis, inside the image in-plane)."""
    shape = np.asarray(volume.shape, dtype=np.float64)
    z_ok = bool(((idx[:, 0] >= SLICE_MARGIN) & (idx[:, 0] <= shape[0] - 1 - SLICE_MARGIN)).all())
    pad = IN_PLANE_MARGIN_MM / volume.spacing[1:]
    xy_ok = bool(((idx[:, 1:] >= -0.5 + pad) & (idx[:, 1:] <= shape[1:] - 0.5 - pad)).all())
    return z_ok, xy_ok


def _in_circle(volume: Volume, idx: npt.NDArray[np.float64]) -> bool:
    """Whether points lie :data:`IN_PLANE_MARGIN_MM` inside the circle inscribed in the image
    (the reconstruction circle: :func:`reconstruction_circle`)."""
    centre = 0.5 * (np.asarray(volume.shape[1:], dtype=np.float64) - 1.0)
    radius = 0.5 * volume.shape[1] - IN_PLANE_MARGIN_MM / float(volume.spacing[1])
    return bool((((idx[:, 1:] - centre) ** 2).sum(axis=1) <= radius**2).all())


def _sample(volume: Volume, idx: npt.NDArray[np.float64], fill: float) -> npt.NDArray[np.float64]:
    return sampling.map_coordinates(
        volume.array, idx.T, order=0, mode="constant", cval=fill, output=volume.array.dtype
    )


def _box(
    cpr: CPRImage, s_range: tuple[float, float], u_range: tuple[float, float], v: Sequence[float], step: float
) -> npt.NDArray[np.float64]:
    """LPS points of a regular (s, u, v) grid, both ends of each range included, at most ``step`` apart."""
    ss = _span(s_range, step)
    uu = _span(u_range, step)
    S, U, V = np.meshgrid(ss, uu, np.asarray(v, dtype=np.float64), indexing="ij")
    return cpr.curve.local_to_global(S.ravel(), U.ravel(), V.ravel())


def _span(r: tuple[float, float], step: float) -> npt.NDArray[np.float64]:
    """Samples from ``r[0]`` to ``r[1]`` (both included), at most ``step`` apart; none for an empty range."""
    if r[1] < r[0]:
        return np.empty(0)
    n = max(1, int(np.ceil((r[1] - r[0]) / step - 1e-9)))
    return np.linspace(r[0], r[1], n + 1)


def _outline(
    cpr: CPRImage, s_range: tuple[float, float], u_range: tuple[float, float], half_width: float, step: float
) -> npt.NDArray[np.float64]:
    """LPS points on a body's elliptic wall: depth ``u_range``, width ``2 half_width``, along ``s_range``."""
    ss = _span(s_range, step)
    t = np.linspace(0.0, 2.0 * np.pi, OUTLINE_POINTS, endpoint=False)
    u = 0.5 * (u_range[0] + u_range[1]) + 0.5 * (u_range[1] - u_range[0]) * np.cos(t)
    v = half_width * np.sin(t)
    S = np.repeat(ss, t.size)
    return cpr.curve.local_to_global(S, np.tile(u, ss.size), np.tile(v, ss.size))


def _central_columns(kp_rc: npt.NDArray[np.float64], n_cols: int) -> npt.NDArray[np.int64]:
    """CPR columns of the central 60 % of a body's depth (between its keypoints), inside the image."""
    c0, c1 = float(kp_rc[:, 1].min()), float(kp_rc[:, 1].max())
    width = c1 - c0
    cols = np.arange(int(round(c0 + 0.2 * width)), int(round(c1 - 0.2 * width)) + 1)
    return cols[(cols >= 0) & (cols < n_cols)]


def _disc_visible(cpr: CPRImage, kp_rc: npt.NDArray[np.float64], caudal: bool, pitch: float) -> bool:
    """Whether the CPR shows a disc (a dip, then bone) beyond one endplate of a body."""
    img = cpr.image[0]
    rows_valid = int(cpr.valid_rows or img.shape[0])
    plate = kp_rc[3:6] if caudal else kp_rc[0:3]
    cols = _central_columns(kp_rc, img.shape[1])
    start = float(plate[:, 0].mean())
    length = EXTENT_PITCH_FRACTION * pitch / cpr.pixel_mm
    stop = start + length if caudal else start - length
    lo, hi = sorted((start, stop))
    rows = np.arange(int(np.floor(lo)), int(np.ceil(hi)) + 1)
    if cols.size == 0 or rows.min() < 0 or rows.max() >= rows_valid:
        return False
    rc = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.float64)
    if not cpr.inside_source(rc).all():
        return False
    profile = img[rows][:, cols].mean(axis=1)
    if not caudal:
        profile = profile[::-1]  # from the endplate outwards
    dip = int(np.argmin(profile))
    return bool(dip < profile.size - 1 and profile[dip:].max() - profile[dip] >= DISC_CONTRAST_HU)


def _cancellous_hu(cpr: CPRImage, kp_rc: npt.NDArray[np.float64]) -> float | None:
    """A body's cancellous bone on the CPR: median of the middle half of its rows (central columns)."""
    img = cpr.image[0]
    cols = _central_columns(kp_rc, img.shape[1])
    r_sup, r_inf = float(kp_rc[0:3, 0].mean()), float(kp_rc[3:6, 0].mean())
    quarter = 0.25 * (r_inf - r_sup)
    inner = np.arange(int(np.ceil(r_sup + quarter)), int(np.floor(r_inf - quarter)) + 1)
    inner = inner[(inner >= 0) & (inner < img.shape[0])]
    if inner.size == 0 or cols.size == 0:
        return None
    return float(np.median(img[inner][:, cols].mean(axis=1)))


def _disc_in_scan(
    volume: Volume,
    cpr: CPRImage,
    kp_rc: npt.NDArray[np.float64],
    caudal: bool,
    pitch: float,
    body_hu: float | None,
    neighbour_hu: float | None = None,
) -> bool:
    """Whether the scan shows the disc beyond one endplate (and the next body's bone past it).

    The CPR profile (mean over the central 60 % of the body's columns) from
    :data:`KEYPOINT_INSET_MM` inside the endplate's keypoints outwards, up to
    :data:`DISC_SEARCH_FRACTION` of the pitch, is read only as far as every sample lies
    between the first and last slice centres. The disc is in the scan when either

    * the profile dips at least :data:`DISC_CONTRAST_HU` below the bone on both sides of the
      dip (the endplate, then the next body's endplate) and more than
      :data:`DISC_BELOW_BODY_HU` below the body's own cancellous bone, the dip (the disc)
      :data:`SLICE_MARGIN` slice spacings inside the first / last slice centre; or
    * the scan ends inside the disc: the profile is cut short by the scan's end, and its last
      :data:`OPEN_DISC_MIN_MM` (and at least :data:`OPEN_DISC_MIN_SLICES` slice spacings)
      up to that end all read at least :data:`DISC_CONTRAST_HU` below the cancellous bone
      of the body (``body_hu``, :func:`_cancellous_hu`) and of its neighbour on the other
      side (``neighbour_hu``; a false thin
      detection on two endplates reads denser than any body). A crushed body is much shorter
      than its pitch, so its expected extent can leave the scan while its endplate and the
      soft disc beyond it are in view.

    A body cut by the scan has neither profile: beyond its last imaged part there is no
    scan, and what the scan holds beyond a band inside a cut body is that body's own bone.
    """
    img = cpr.image[0]
    plate = kp_rc[3:6] if caudal else kp_rc[0:3]
    cols = _central_columns(kp_rc, img.shape[1])
    out = 1 if caudal else -1
    inset = int(round(KEYPOINT_INSET_MM / cpr.pixel_mm))  # the endplate's cortex may lie inside the keypoints
    start = int(round(float(plate[:, 0].mean()))) - out * inset
    length = inset + int(np.ceil(DISC_SEARCH_FRACTION * pitch / cpr.pixel_mm))
    rows = start + np.arange(length + 1) * out
    rows = rows[(rows >= 0) & (rows < int(cpr.valid_rows or img.shape[0]))]
    if cols.size == 0 or rows.size < 3:
        return False
    rc = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.float64)
    z = volume.lps_to_index(cpr.pixel_to_lps(rc))[:, 0].reshape(rows.size, cols.size)
    last = volume.shape[0] - 1
    in_scan = ((z >= 0.0) & (z <= last)).all(axis=1)  # between the first and last slice centres
    n_in = int(np.argmin(in_scan)) if not in_scan.all() else rows.size  # rows before the first outside
    if n_in < 3:
        return False
    profile = img[rows[:n_in]][:, cols].mean(axis=1)
    if body_hu is None:  # no cancellous bone to compare the disc with
        return False
    bone = body_hu if neighbour_hu is None else min(body_hu, neighbour_hu)
    if n_in < rows.size and _open_disc(profile, z[:n_in], bone, cpr.pixel_mm):
        return True
    dip = int(np.argmin(profile))
    if dip == 0 or dip == n_in - 1 or not ((z[dip] >= SLICE_MARGIN) & (z[dip] <= last - SLICE_MARGIN)).all():
        return False
    floor = float(profile[dip])
    return bool(
        floor < body_hu - DISC_BELOW_BODY_HU
        and profile[:dip].max() - floor >= DISC_CONTRAST_HU
        and profile[dip + 1 :].max() - floor >= DISC_CONTRAST_HU
    )


def _open_disc(
    profile: npt.NDArray[np.float64], z: npt.NDArray[np.float64], body: float, pixel_mm: float
) -> bool:
    """Whether a profile that the scan's end cuts short ends in disc (see :func:`_disc_in_scan`).

    Args:
        profile: CPR intensities from inside the endplate outwards, up to the scan's end.
        z: slice index of every sample of each profile row (rows x columns).
        body: the cancellous bone the disc must be softer than (HU).
        pixel_mm: CPR pixel size along the profile.
    """
    soft = profile <= body - DISC_CONTRAST_HU
    if not soft[-1]:
        return False
    first = int(soft.size - np.argmin(soft[::-1])) if not soft.all() else 0  # the soft run up to the end
    run_mm = (soft.size - first) * pixel_mm
    centre = z[first:].mean(axis=1)
    run_slices = float(centre.max() - centre.min()) if centre.size > 1 else 0.0
    return run_mm >= OPEN_DISC_MIN_MM and run_slices >= OPEN_DISC_MIN_SLICES


def assess_bodies(
    volume: Volume,
    cpr: CPRImage,
    detections: Sequence[Detection],
    heights: Sequence[dict[str, float]] | None = None,
) -> list[Assessment]:
    """Assess every detected body of a column (cranial first, as named by the pipeline).

    Args:
        volume: the CT (its grid decides what the scan holds).
        cpr: the straightened image the detections are on.
        detections: named detections sorted cranial to caudal.
        heights: measured ``{"anterior", "middle", "posterior"}`` heights (mm) per detection,
            for the implausible-height test; ``None`` skips that test.

    Returns:
        One :class:`Assessment` per detection, in order.
    """
    n = len(detections)
    if n == 0:
        return []
    labels = [d.label for d in detections]
    kps = [np.asarray(d.keypoints_px, dtype=np.float64) for d in detections]
    s_c = np.array([cpr.pixel_to_local(np.atleast_2d(d.center_px))[0][0] for d in detections])
    usable = _usable_neighbours(volume, cpr, detections)
    pitch = _pitches(s_c, labels, usable)
    circle = reconstruction_circle(volume)
    bone = [_cancellous_hu(cpr, kp) for kp in kps]
    # Per body, the cancellous bone of the neighbour opposite its cranial and its caudal end.
    opposite = [(bone[i + 1] if i + 1 < n else None, bone[i - 1] if i > 0 else None) for i in range(n)]
    out: list[Assessment] = []
    for i in range(n):
        s_kp, u_kp = cpr.pixel_to_local(kps[i])
        s_lo = min(s_c[i] - EXTENT_PITCH_FRACTION * pitch[i, 0], float(s_kp.min()))
        s_hi = max(s_c[i] + EXTENT_PITCH_FRACTION * pitch[i, 1], float(s_kp.max()))
        u_lo, u_hi = float(u_kp.min()), float(u_kp.max())
        extent = (float(s_lo), float(s_hi))
        reason: str | None = None
        # 1. Along the scan: the expected extent in three sagittal planes near the mid-plane,
        # each half on its own. Where a half leaves the scan, the scan may still show the
        # disc beyond the body and the next endplate (a crushed body is shorter than expected).
        step = max(s_hi - s_lo, u_hi - u_lo) / 4.0
        z_ok = True
        for caudal, half in ((False, (s_lo, float(s_c[i]))), (True, (float(s_c[i]), s_hi))):
            along = _box(cpr, half, (u_lo, u_hi), LATERAL_SAMPLES_MM, step / 2.0)
            if not _inside(volume, volume.lps_to_index(along))[0] and not _disc_in_scan(
                volume, cpr, kps[i], caudal, float(pitch[i, int(caudal)]), bone[i], opposite[i][int(caudal)]
            ):
                z_ok = False
        # In-plane: the whole body, walls included. The walls lie beyond the keypoints
        # (annotators place them inside the corners); the width is estimated from the depth.
        wall_lo, wall_hi = u_lo - WALL_MARGIN_MM, u_hi + WALL_MARGIN_MM
        half_width = WIDTH_PER_DEPTH * 0.5 * (wall_hi - wall_lo)
        body = _box(
            cpr,
            (float(s_kp.min()), float(s_kp.max())),
            (wall_lo, wall_hi),
            (-half_width, 0.0, half_width),
            step,
        )
        _, xy_ok = _inside(volume, volume.lps_to_index(body))
        if xy_ok and circle:
            # the body's elliptic outline (its walls), not its box, inside the circle
            wall = _outline(cpr, (float(s_kp.min()), float(s_kp.max())), (wall_lo, wall_hi), half_width, step)
            xy_ok = _in_circle(volume, volume.lps_to_index(wall))
        if not z_ok:
            reason = "cut_by_scan_range"
        elif not xy_ok:
            reason = "cut_by_field_of_view"
        # 2. The body's interior must be imaged (not padding outside the reconstruction circle).
        if reason is None:
            core = _box(
                cpr,
                (float(s_kp.min()) + 1.0, float(s_kp.max()) - 1.0),
                (u_lo + 2.0, u_hi - 2.0),
                CORE_LATERAL_MM,
                3.0,
            )
            if (_sample(volume, volume.lps_to_index(core), fill=-3024.0) < OUTSIDE_FOV_HU).any():
                reason = "cut_by_field_of_view"
        # 3. Metal in or next to the body.
        if reason is None:
            lat = np.arange(-METAL_LATERAL_MM, METAL_LATERAL_MM + 1e-6, METAL_STEP_MM)
            region = _box(
                cpr,
                (float(s_kp.min()) - METAL_MARGIN_MM, float(s_kp.max()) + METAL_MARGIN_MM),
                (u_lo - METAL_MARGIN_MM, u_hi + 2 * METAL_MARGIN_MM),
                lat,
                METAL_STEP_MM,
            )
            if (
                int((_sample(volume, volume.lps_to_index(region), fill=0.0) >= METAL_HU).sum())
                >= METAL_MIN_SAMPLES
            ):
                reason = "next_to_metal"
        # 4. A last body far too short for its pitch, with no disc beyond it.
        if reason is None and heights is not None:
            reason = _implausible(volume, cpr, kps[i], heights[i], usable, i, pitch[i], bone[i], opposite[i])
        # 6. The body must lie within the straightened image it was measured on.
        if reason is None and not _inside_cpr_rows(cpr, kps[i]):
            reason = "outside_reformatted_image"
        out.append(Assessment(reason, extent))
    n_out = sum(not a.assessable for a in out)
    if n_out:
        log.info("%d of %d vertebral bodies not assessable", n_out, n)
    return out


def _implausible(
    volume: Volume,
    cpr: CPRImage,
    kp: npt.NDArray[np.float64],
    h: dict[str, float],
    usable: npt.NDArray[np.bool_],
    i: int,
    pitch: npt.NDArray[np.float64],
    body_hu: float | None,
    neighbour_hu: tuple[float | None, float | None] = (None, None),
) -> str | None:
    """``"implausible_height"`` for an end body too short for its pitch with no disc beyond.

    An end is a side without a usable detected neighbour (none, or only a detection outside
    the scan or a sliver). The disc beyond it counts as seen where :func:`_disc_visible`
    finds it in the reformatted image or, where the scan ends within that window,
    :func:`_disc_in_scan` finds it inside the scan (``body_hu``: the body's cancellous
    bone; ``neighbour_hu``: that of the neighbour on the other side of each end, cranial
    end first).
    """
    n = len(usable)
    ends = [
        (side, caudal)
        for side, caudal, j in ((0, False, i - 1), (1, True, i + 1))
        if not (0 <= j < n and usable[j])
    ]
    if not ends:
        return None
    expected = BODY_PITCH_FRACTION * float(np.min(pitch))
    if float(np.mean(list(h.values()))) >= IMPLAUSIBLE_HEIGHT_FRACTION * expected:
        return None
    for side, caudal in ends:
        if not _disc_visible(cpr, kp, caudal, float(pitch[side])) and not _disc_in_scan(
            volume, cpr, kp, caudal, float(pitch[side]), body_hu, neighbour_hu[side]
        ):
            return "implausible_height"
    return None
