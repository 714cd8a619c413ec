"""Short-reach anatomical anchors of the level names: costal and sacral bone beside the body.

:mod:`spinevcf.ribs` follows each rib 70 mm out from the column. On a small-field-of-view
reconstruction (a cardiac or chest CTA) the ribs are cut a few cm from the column, and
that finder sees none. This module looks only next to the vertebral body, within
:data:`COSTAL_WIDTH_MM` of its lateral wall, which every reconstruction that shows the
column also shows:

* a thoracic vertebra carries the head and the neck of its rib beside the posterior part
  of its body: the head articulates with the body (costovertebral joint), the neck runs
  backwards and outwards to the transverse process (costotransverse joint);
* a lumbar or cervical vertebra has nothing bony there: its transverse processes leave the
  column behind the body (at the pedicle-lamina junction), the space beside the body is
  psoas, fat and vessels;
* the first sacral segment has its alae (the lateral masses) there, fused to the body.

So one measurement, the bone beside the posterior half of the body, tells thoracic and
sacral from lumbar and cervical. :func:`find_costal` makes it for every detected body and
for the body that would follow the last detection (one body spacing below it: the first
sacral segment when the last detection is L5). :mod:`spinevcf.levels` turns it into a
likelihood of each level name.

The measurement, per body and side, in the straightened space of the spine curve (``s``
along the curve, ``u`` posterior, ``v`` left; the body's extent comes from its keypoints,
so everything scales with the body):

1. The CT is sampled every :data:`STEP_MM` over the body's rows (``s`` from the superior
   endplate minus half the disc above, where the rib heads of T2-T10 sit, to the inferior
   endplate) and, per ``(u, |v|)``, the share of those rows that is bone
   (``HU >= BONE_HU``) is taken.
2. The body's lateral wall is the outer edge of the bone that continues outwards from the
   midline (gaps up to :data:`WALL_GAP_MM`; a kidney or a contrast-filled vessel beside the
   body is farther) in a band in front of the rib heads (:data:`WALL_BAND` of the body's
   depth behind its anterior wall). The inside of a body with thin bone may fall below the
   bone threshold: only the wall need be bone (:data:`WALL_FRACTION` of the rows).
3. The same outer edge beside the posterior part of the body (``u`` from
   :data:`COSTAL_U_FROM` of the depth behind its middle to its posterior wall: behind the
   aorta, in front of the transverse processes, so a lumbar transverse process does not
   count), continuing the wall across gaps up to :data:`BULGE_GAP_MM` (a joint space), gives
   the *bulge*: how far the bone beside the posterior body reaches beyond the wall.
4. A bulge of :data:`MIN_BULGE_MM` to :data:`MAX_RIB_BULGE_MM` is a rib head; one of at
   least :data:`MIN_ALA_BULGE_MM` beside the body below the last detection is a sacral
   ala. The window ``|v|`` from the wall out to :data:`COSTAL_WIDTH_MM` beyond it must lie
   in the scan and above :data:`spinevcf.ribs.PAD_HU` (not padding outside the
   reconstructed field) for :data:`MIN_OBSERVED` of its samples, else that side is not
   observed and gives no evidence.

Measured on the 60 synthetic validation studies (detector's bodies, uncut): two sides with
a rib head on 300 of 360 bodies T2-T11, at most one on 150 of 157 lumbar bodies; alae on
both sides below L5 on 16 of 18 (:data:`spinevcf.levels.P_COSTAL`, ``P_ALAR``). About 60 ms
per study. Not yet checked on real CT (the one real CT at hand shows its ribs in full).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spinevcf.detector import Detection
from spinevcf.geometry import sampling
from spinevcf.geometry.cpr import CPRImage, index_frame
from spinevcf.ribs import PAD_HU
from spinevcf.volume import Volume

__all__ = [
    "BodyBox",
    "CostalEvidence",
    "body_boxes",
    "find_costal",
]

#: Sampling step of the window grid (mm).
STEP_MM = 2.0
#: Bone threshold (HU), as in :mod:`spinevcf.ribs`.
BONE_HU = 180.0
#: Start of the window behind the middle of the body, as a share of the body's depth.
COSTAL_U_FROM = 0.2
#: End of the window behind the posterior wall of the body (mm).
COSTAL_U_TO_MM = 0.0
#: Lateral width of the window beyond the body's wall that must be observed (mm).
COSTAL_WIDTH_MM = 10.0
#: Smallest bulge of a rib head beyond the body's wall (mm): the generator's rib heads bulge
#: 4-8 mm, a lumbar body's posterior part 0-2 mm.
MIN_BULGE_MM = 4.0
#: Largest bulge of a rib head (mm); a wider bone beside the body is no rib head (a sacral ala,
#: or soft tissue bright with contrast that touches the body).
MAX_RIB_BULGE_MM = 12.0
#: Smallest bulge of a sacral ala (mm).
MIN_ALA_BULGE_MM = 12.0
#: Band of the body's depth where its lateral wall is measured (shares of the depth behind
#: the anterior wall): in front of the rib heads.
WALL_BAND = (0.3, 0.5)
#: Largest half-width of a vertebral body searched (mm).
MAX_HALF_WIDTH_MM = 40.0
#: Share of a body's rows in which a lateral sample must be bone to be part of its wall.
WALL_FRACTION = 0.15
#: Gap (mm) after which bone no longer belongs to the body's wall (a kidney or a vessel
#: beside the body is farther).
WALL_GAP_MM = 6.0
#: Gap (mm) over which costal bone still counts as continuing the body (a joint space).
BULGE_GAP_MM = 4.0
#: Share of a window that must be inside the scan (and not padding) for it to be observed.
MIN_OBSERVED = 0.95
#: Disc height assumed where a body has no neighbour (mm).
DEFAULT_DISC_MM = 6.0
#: Body spacing assumed with a single detection (mm).
DEFAULT_SPACING_MM = 25.0


@dataclass(frozen=True)
class BodyBox:
    """A vertebral body's extent in the curve's ``(s, u)`` from its keypoints (mm).

    Attributes:
        s_top: superior endplate (mean of its three keypoints).
        s_bottom: inferior endplate.
        u_ant: anterior wall (mean of the two anterior keypoints).
        u_post: posterior wall.
    """

    s_top: float
    s_bottom: float
    u_ant: float
    u_post: float

    @property
    def s_centre(self) -> float:
        """Middle of the body along the curve."""
        return 0.5 * (self.s_top + self.s_bottom)

    @property
    def depth(self) -> float:
        """Antero-posterior depth (mm)."""
        return self.u_post - self.u_ant

    def shifted(self, ds: float) -> BodyBox:
        """The same box moved ``ds`` along the curve."""
        return BodyBox(self.s_top + ds, self.s_bottom + ds, self.u_ant, self.u_post)


@dataclass(frozen=True)
class CostalEvidence:
    """Bone beside the posterior part of each body, per side.

    Attributes:
        bulge_mm: ``(n + 1, 2)`` how far the bone continuing the body reaches beyond the
            body's lateral wall beside its posterior part (row ``n``: the body one spacing
            below the last detection), columns left, right.
        observed: ``(n + 1, 2)`` whether the window lies in the scan and the reconstructed
            field of view.
        half_width_mm: ``(n + 1, 2)`` the body's half-width on each side (its lateral wall in
            front of the rib heads).
    """

    bulge_mm: npt.NDArray[np.float64]
    observed: npt.NDArray[np.bool_]
    half_width_mm: npt.NDArray[np.float64]

    def costal_sides(self) -> npt.NDArray[np.int64]:
        """``(n + 1,)`` observed sides with a rib head (bulge in ``[MIN_BULGE_MM, MAX_RIB_BULGE_MM]``)."""
        head = (self.bulge_mm >= MIN_BULGE_MM) & (self.bulge_mm <= MAX_RIB_BULGE_MM) & self.observed
        return head.sum(axis=1).astype(np.int64)

    def alar_sides(self) -> npt.NDArray[np.int64]:
        """``(n + 1,)`` observed sides with a sacral ala (bulge of at least ``MIN_ALA_BULGE_MM``)."""
        return ((self.bulge_mm >= MIN_ALA_BULGE_MM) & self.observed).sum(axis=1).astype(np.int64)

    @property
    def seen(self) -> npt.NDArray[np.bool_]:
        """``(n + 1,)`` whether both sides of the window were observed."""
        return self.observed.all(axis=1)

    @property
    def readable(self) -> npt.NDArray[np.bool_]:
        """``(n + 1,)`` whether the rib-head reading of a body says something: both sides seen
        and neither side's bone reaching beyond :data:`MAX_RIB_BULGE_MM`.

        Bone that far out beside a body (a transverse process or a rib merging with it, an
        ala, a calcified vessel or the edge of a small reconstruction) would hide a rib head
        behind it, so "no rib head" cannot be read there (the sacral-ala reading of the body
        below the last detection uses :attr:`seen`).
        """
        return self.seen & ~(self.bulge_mm > MAX_RIB_BULGE_MM).any(axis=1)


def body_boxes(cpr: CPRImage, detections: Sequence[Detection]) -> list[BodyBox]:
    """The :class:`BodyBox` of each detection (keypoints in :data:`KEYPOINT_NAMES` order)."""
    boxes = []
    for d in detections:
        s, u = cpr.pixel_to_local(d.keypoints_px)
        boxes.append(
            BodyBox(
                s_top=float(np.mean(s[0:3])),
                s_bottom=float(np.mean(s[3:6])),
                u_ant=float(np.mean(u[[0, 3]])),
                u_post=float(np.mean(u[[2, 5]])),
            )
        )
    return boxes


def _spacing(boxes: Sequence[BodyBox]) -> float:
    c = np.array([b.s_centre for b in boxes])
    return float(np.median(np.diff(c))) if len(c) > 1 else DEFAULT_SPACING_MM


def find_costal(volume: Volume, cpr: CPRImage, detections: Sequence[Detection]) -> CostalEvidence:
    """Measure the bone beside each detected body and beside the body below the last one.

    Args:
        volume: the CT (HU).
        cpr: the CPR the detections are on (its curve defines the straightened space).
        detections: detected bodies, cranial first.

    Returns:
        The evidence, ``n + 1`` rows (the last: one body spacing below the last detection).
    """
    n = len(detections)
    if n == 0:
        return CostalEvidence(np.zeros((1, 2)), np.zeros((1, 2), dtype=bool), np.zeros((1, 2)))
    boxes = body_boxes(cpr, detections)
    spacing = _spacing(boxes)
    boxes.append(boxes[-1].shifted(spacing))
    tops = np.array([b.s_top for b in boxes])
    bottoms = np.array([b.s_bottom for b in boxes])
    discs = np.r_[DEFAULT_DISC_MM, np.clip(tops[1:] - bottoms[:-1], 0.0, None)]
    s_lo = tops - 0.5 * discs
    s = np.arange(float(s_lo.min()), float(bottoms.max()) + STEP_MM, STEP_MM)
    u = np.arange(
        min(b.u_ant for b in boxes), max(b.u_post for b in boxes) + COSTAL_U_TO_MM + STEP_MM, STEP_MM
    )
    half = MAX_HALF_WIDTH_MM + COSTAL_WIDTH_MM
    v = np.arange(-half, half + STEP_MM / 2, STEP_MM)  # left positive (LPS v)
    centre, step_u, step_v = index_frame(volume, cpr.curve, s)
    coords = (
        centre.T[:, :, None, None]
        + step_u.T[:, :, None, None] * u[None, None, :, None]
        + step_v.T[:, :, None, None] * v[None, None, None, :]
    )
    hu = sampling.map_coordinates(
        volume.array, coords, order=1, mode="constant", cval=PAD_HU - 1.0, output=np.float32
    )
    shape = np.asarray(volume.shape, dtype=np.float64)[:, None, None, None]
    valid = np.all((coords >= -0.5) & (coords <= shape - 0.5), axis=0) & (hu > PAD_HU)
    bone = hu >= BONE_HU
    bulge = np.zeros((n + 1, 2))
    observed = np.zeros((n + 1, 2), dtype=bool)
    half_width = np.zeros((n + 1, 2))
    for i, b in enumerate(boxes):
        ref = boxes[i - 1] if i == n else b  # the body below: its own front may be the alae
        mid = 0.5 * (b.u_ant + b.u_post)
        rows = (s >= s_lo[i]) & (s <= b.s_bottom)
        frac = bone[rows].mean(axis=0) if rows.any() else np.zeros(bone.shape[1:])  # (u, v)
        wall_u = (u >= ref.u_ant + WALL_BAND[0] * ref.depth) & (u <= ref.u_ant + WALL_BAND[1] * ref.depth)
        win_u = (u >= mid + COSTAL_U_FROM * b.depth) & (u <= b.u_post + COSTAL_U_TO_MM)
        for k, sign in enumerate((1.0, -1.0)):
            side_v = np.nonzero(sign * v >= 0)[0]
            side_v = side_v[np.argsort(np.abs(v[side_v]))]  # midline outwards
            a = np.abs(v[side_v])
            if i < n:
                half_width[i, k] = _outer_edge(
                    frac[np.ix_(wall_u, side_v)].max(axis=0, initial=0.0), a, 0.0, WALL_GAP_MM
                )
            else:
                half_width[i, k] = half_width[i - 1, k]
            hw = half_width[i, k]
            edge = _outer_edge(frac[np.ix_(win_u, side_v)].max(axis=0, initial=0.0), a, hw, BULGE_GAP_MM)
            bulge[i, k] = max(0.0, edge - hw)
            win_v = side_v[(a >= hw) & (a <= hw + COSTAL_WIDTH_MM)]
            w_valid = valid[np.ix_(rows, win_u, win_v)]
            observed[i, k] = w_valid.size > 0 and float(w_valid.mean()) >= MIN_OBSERVED
    return CostalEvidence(bulge, observed, half_width)


def _outer_edge(
    profile: npt.NDArray[np.float64], a: npt.NDArray[np.float64], start: float, gap_mm: float
) -> float:
    """Outer edge of the bone that continues outwards from ``start`` along a lateral profile.

    ``profile[j]`` is the share of rows with bone at lateral distance ``a[j]`` (ascending).
    From ``start`` outwards, the edge is the last ``a`` with ``profile >= WALL_FRACTION``
    before a gap wider than ``gap_mm``. From the midline (``start == 0``) the gap counts only
    after the first bone (the inside of a body with thin bone may be below the bone
    threshold); from a wall (``start > 0``) it counts at once: bone beyond a gap does not
    continue the wall. The search ends at ``MAX_HALF_WIDTH_MM + COSTAL_WIDTH_MM``.
    """
    edge = start
    seen = start > 0
    for x, f in zip(a, profile, strict=True):
        if x < start or x > MAX_HALF_WIDTH_MM + COSTAL_WIDTH_MM:
            continue
        if f >= WALL_FRACTION:
            edge, seen = x, True
        elif seen and x - edge > gap_mm:
            break
    return float(edge)
