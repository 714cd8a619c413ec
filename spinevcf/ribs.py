"""Rib-bearing vertebrae: the anatomical anchor of the level names.

Ribs articulate with the twelve thoracic vertebrae and with no other, so the first and
the last rib-bearing vertebra of a column are T1 and T12. The detector names levels from
the look of the CPR, which a model trained on synthetic anatomy can get wrong by a whole
number of levels on a real scan (every name shifted by the same amount); the ribs fix that
shift (:func:`anchor_levels`). Transitional anatomy (11 or 13 rib pairs, a cervical or a
lumbar rib; a few percent of people) defeats this anchor, as it does a reader who counts
from the ribs: the model card says so.

Finding the ribs (:func:`find_ribs`), in the straightened space of the spine curve
(``s`` along the curve, ``u`` posterior, ``v`` left, mm):

1. The CT is sampled on a :data:`STEP_MM` grid: ``s`` over the detected column plus a
   margin, ``u`` in :data:`U_RANGE_MM` around the body centres, and on each side ``|v|``
   from :data:`INNER_MM` to :data:`OUTER_MM`. The column itself (``|v| < INNER_MM``) is
   left out, so each rib is cut from its vertebra and stands alone.
2. Bone is ``HU >= BONE_HU``; its 3D connected components (26-connected: a thin oblique
   rib sampled at 2 mm touches itself only diagonally) are labelled on each side.
3. A component holds ribs when it leaves the column (it touches the inner face of the
   grid) and runs far laterally (it reaches ``|v| >= REACH_MM``, which lumbar and cervical
   transverse processes do not). Each separate piece of it next to the inner face (within
   :data:`ROOT_BAND_MM`) is a rib's root if it is thin (at most
   :data:`MAX_ROOT_HEIGHT_MM` along ``s``, which kidneys, iliac wings and scapulae are
   not); ribs that touch each other further out still count one by one. A root lies
   behind the body centre (``u >= ROOT_MIN_U_MM``): vessels that leave the aorta
   sideways, bright with contrast, pass in front.
4. The rib belongs to the vertebra whose body centre is nearest, along ``s``, to the
   rib's root (its mean ``s`` near the inner face): a rib leaves the column at about the
   level of its own vertebra (roots fall up to half a body spacing from it on real CT, so
   single bodies can swap ribs with a neighbour; the anchoring only needs the
   transitions).
5. A body counts as observed when its rib region (out to ``REACH_MM``) lies in the scan and
   in the reconstructed field of view (above :data:`PAD_HU`), and no metal (pedicle screws,
   rods: ``>= METAL_HU``) is in the column within one body spacing of it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.detector import Detection
from spinevcf.geometry import sampling
from spinevcf.geometry.cpr import CPRImage, index_frame
from spinevcf.geometry.curve import SpineCurve
from spinevcf.schema import LEVELS
from spinevcf.volume import Volume

__all__ = [
    "Rib",
    "RibEvidence",
    "find_ribs",
    "anchor_levels",
    "is_rib_bearing_level",
    "shift_scores",
    "best_shift",
    "shift_labels",
]

log = logging.getLogger(__name__)

#: Sampling step of the straightened grid (mm).
STEP_MM = 2.0
#: Posterior offsets sampled around the curve (mm): from in front of the body centre to
#: behind the transverse processes (ribs pass behind the body, then curve forwards).
U_RANGE_MM = (-30.0, 76.0)
#: Lateral distance from the curve where the grid starts (mm): beyond the vertebral body
#: and the transverse-process roots, inside the reach of every rib.
INNER_MM = 40.0
#: Lateral distance where the grid ends (mm).
OUTER_MM = 110.0
#: Lateral distance a rib reaches at least (mm); transverse processes end before it.
REACH_MM = 70.0
#: A component counts as leaving the column if it has voxels within this of the inner face.
TOUCH_MM = 4.0
#: Largest extent along ``s`` of a rib's root (mm), measured within ``ROOT_BAND_MM``.
MAX_ROOT_HEIGHT_MM = 26.0
#: Width of the band next to the inner face where the root is measured (mm).
ROOT_BAND_MM = 8.0
#: A root taller than ``MAX_ROOT_HEIGHT_MM`` is split at a valley of its profile along ``s``
#: where the profile falls to this share of the lower of the two peaks beside it or below:
#: neighbouring ribs touching next to the column (thick slices blur them together along
#: ``s``; broad rib necks) are one piece there, but their profile dips between them, while
#: a kidney's, a scapula's or an iliac wing's does not.
ROOT_SPLIT_FRACTION = 0.5
#: Bone threshold (HU) on the trilinearly sampled grid.
BONE_HU = 180.0
#: A root farther than this (times the median body spacing) from every body centre is
#: not assigned (a rib of a body outside the detections).
MAX_ROOT_DISTANCE = 0.75
#: Body spacing assumed with a single detection (mm).
DEFAULT_SPACING_MM = 25.0
#: ``P(ribs found on 0, 1, 2 sides | level)`` for T2-T11. Measured on the 60 synthetic
#: validation studies (seeds 100100-100159, detector's bodies): 1 / 11 / 388 of 400, i.e.
#: 0.3 / 3 / 97 %; widened because real ribs leave the column up to half a body spacing
#: from their body and can be given to a neighbour.
P_SIDES_THORACIC: tuple[float, float, float] = (0.08, 0.12, 0.80)
#: The same for T1 (broad, steep, may merge with the clavicle or the scapula; measured
#: 0 / 1 / 12 of 13) and T12 (may be short; measured 0 / 4 / 44 of 48).
P_SIDES_LEVEL: dict[str, tuple[float, float, float]] = {"T1": (0.15, 0.25, 0.60), "T12": (0.10, 0.20, 0.70)}
#: The same for cervical and lumbar levels: cervical or lumbar ribs, an iliac crest or a
#: contrast-filled renal pelvis taken for a rib (measured 164 / 4 / 4 of 172, the ribs
#: all at L5, next to the sacral alae). A rib on one side only is weak evidence, so that
#: one false rib next to the thoracolumbar junction does not move the names.
P_SIDES_ELSEWHERE: tuple[float, float, float] = (0.88, 0.10, 0.02)
#: Log-prior cost of each level of shift away from the detector's names: a shift of k
#: levels must explain the ribs better by k log-units before it replaces the detector's
#: count.
SHIFT_PENALTY = 1.0
#: Largest shift considered (levels).
MAX_SHIFT = 4
#: Share of a body's rib region (within half a body spacing along ``s``, out to
#: ``REACH_MM``) that must lie inside the scan for its ribs to count as observed.
MIN_OBSERVED = 0.95
#: 26-connectivity: a thin oblique rib sampled at 2 mm touches itself only diagonally.
_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
#: Samples at or below this are not tissue: the padding outside the reconstructed field of
#: view (scanners fill it with -1024 to -3024 HU) or air. Beside and behind the column
#: there is always tissue (muscle, bone, lung at -950 to -700 HU), so a rib region that
#: reaches such values is not observed: a small-field-of-view reconstruction that cuts the
#: ribs a few cm from the column shows no ribs, which is no evidence of none.
PAD_HU = -990.0
#: HU of metal (pedicle screws, rods): above any bone.
METAL_HU = 2500.0
#: Sampling step of the metal check (mm): finer than a pedicle screw (6 mm and more).
METAL_STEP_MM = 3.0
#: Column margin sampled above the first and below the last body (mm).
MARGIN_MM = 30.0
#: A rib's root lies behind the body centre (mm of ``u``); vessels leave the aorta in front.
ROOT_MIN_U_MM = 0.0


@dataclass(frozen=True)
class Rib:
    """One rib found next to the column.

    Attributes:
        side: ``+1`` left, ``-1`` right (LPS ``v`` sign).
        root_s_mm: mean arc length of the rib's voxels next to the column.
        reach_mm: largest lateral distance of the rib within the grid.
        root_height_mm: extent along ``s`` of the rib next to the column.
        vertebra: index of the detection it belongs to, ``None`` when no body is near.
    """

    side: int
    root_s_mm: float
    reach_mm: float
    root_height_mm: float
    vertebra: int | None


@dataclass(frozen=True)
class RibEvidence:
    """Ribs of a column and which detected bodies bear them.

    Attributes:
        ribs: every rib found.
        sides: ``(n,)`` number of sides (0, 1, 2) on which detection ``i`` bears a rib.
        body_s_mm: ``(n,)`` arc length of each detection's body centre.
        observed: ``(n,)`` whether the scan shows where detection ``i``'s ribs would be
            (a body at the edge of the scan has its ribs cut off, and metal next to a body
            throws streaks into its rib region: no evidence either way).
        near_metal: ``(n,)`` whether metal is in the column within one body spacing of
            detection ``i`` (its streaks make any bone test next to the body unreliable).
    """

    ribs: list[Rib]
    sides: npt.NDArray[np.int64]
    body_s_mm: npt.NDArray[np.float64]
    observed: npt.NDArray[np.bool_] | None = None
    near_metal: npt.NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        if self.observed is None:
            object.__setattr__(self, "observed", np.ones(len(self.sides), dtype=bool))
        if self.near_metal is None:
            object.__setattr__(self, "near_metal", np.zeros(len(self.sides), dtype=bool))

    @property
    def rib_bearing(self) -> npt.NDArray[np.bool_]:
        """Whether each detection bears a rib on at least one side."""
        return self.sides >= 1


def is_rib_bearing_level(label: str) -> bool:
    """Whether a level normally bears ribs (T1-T12).

    Example:
        >>> [is_rib_bearing_level(x) for x in ("C7", "T1", "T12", "L1")]
        [False, True, True, False]
    """
    return label.startswith("T")


def find_ribs(volume: Volume, cpr: CPRImage, detections: Sequence[Detection]) -> RibEvidence:
    """Find the ribs next to the detected column and the bodies they belong to.

    Args:
        volume: the CT (HU).
        cpr: the CPR the detections were made on (its curve defines the straightened grid).
        detections: detected bodies, cranial first.

    Returns:
        The ribs and, per detection, the number of sides bearing one.
    """
    n = len(detections)
    if n == 0:
        return RibEvidence(
            [], np.zeros(0, np.int64), np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
        )
    body_s = np.array([float(np.mean(cpr.pixel_to_local(d.keypoints_px)[0])) for d in detections])
    curve = cpr.curve
    s0 = max(0.0, float(body_s.min()) - MARGIN_MM)
    s1 = min(curve.length, float(body_s.max()) + MARGIN_MM)
    s = np.arange(s0, s1 + 1e-9, STEP_MM)
    u = np.arange(U_RANGE_MM[0], U_RANGE_MM[1] + 1e-9, STEP_MM)
    a = np.arange(INNER_MM, OUTER_MM + 1e-9, STEP_MM)
    frame = index_frame(volume, curve, s)
    band = int(round(ROOT_BAND_MM / STEP_MM))
    spacing = float(np.median(np.diff(body_s))) if n > 1 else DEFAULT_SPACING_MM
    max_dist = MAX_ROOT_DISTANCE * spacing
    reach_cols = int(np.floor((REACH_MM - INNER_MM) / STEP_MM + 1e-9)) + 1
    near_metal = _near_metal(volume, curve, (s0, s1), body_s, spacing)
    observed = ~near_metal
    ribs: list[Rib] = []
    for side in (1, -1):
        coords, hu = _sample_grid(volume, frame, u, side * a)  # the (s, u, |v|) grid on this side
        inside = (
            np.all(
                (coords >= -0.5)
                & (coords <= np.asarray(volume.shape, dtype=np.float64)[:, None, None, None] - 0.5),
                axis=0,
            )
            & (hu > PAD_HU)
        )[:, :, :reach_cols]
        for i in range(n):
            rows = np.abs(s - body_s[i]) <= 0.5 * spacing
            if rows.any() and inside[rows].mean() < MIN_OBSERVED:
                observed[i] = False
        bone = hu >= BONE_HU
        lab, count = ndimage.label(bone, structure=_FULL_CONNECTIVITY)
        if count == 0:
            continue
        for k, sl in enumerate(ndimage.find_objects(lab), start=1):
            if sl is None or sl[2].start * STEP_MM > TOUCH_MM:
                continue  # does not leave the column
            reach = INNER_MM + (sl[2].stop - 1) * STEP_MM
            if reach < REACH_MM:
                continue
            # The component's roots: its separate pieces next to the inner face, seen along
            # |v| (ribs that touch each other or the scapula further out are still one
            # rib per root).
            in_band = lab[sl[0], sl[1], :band] == k
            root = in_band.any(axis=2)
            pieces, n_pieces = ndimage.label(root, structure=np.ones((3, 3), dtype=bool))
            for q, psl in enumerate(ndimage.find_objects(pieces), start=1):
                if psl is None:
                    continue
                piece = pieces[psl] == q
                profile = (in_band[psl] & piece[:, :, None]).sum(axis=(1, 2))  # bone per row
                for part in _split_root(profile):
                    rows, cols = np.nonzero(piece[part])
                    rows = rows + part.start
                    height = (rows.max() - rows.min() + 1) * STEP_MM
                    root_s = float(s[sl[0].start + psl[0].start + rows].mean())
                    root_u = float(u[sl[1].start + psl[1].start + cols].mean())
                    if height > MAX_ROOT_HEIGHT_MM or root_u < ROOT_MIN_U_MM:
                        continue
                    d = np.abs(body_s - root_s)
                    j = int(np.argmin(d))
                    ribs.append(Rib(side, root_s, reach, height, j if d[j] <= max_dist else None))
    sides = np.zeros(n, np.int64)
    for i in range(n):
        sides[i] = len({r.side for r in ribs if r.vertebra == i})
    return RibEvidence(ribs, sides, body_s, observed, near_metal)


def _split_root(profile: npt.NDArray[np.int64]) -> list[slice]:
    """Row ranges of the ribs in one root piece, from its profile along ``s``.

    ``profile[r]`` is the piece's bone in row ``r`` (samples of the root band). A piece no
    taller than :data:`MAX_ROOT_HEIGHT_MM` is one rib (or one structure that is not a rib).
    A taller one is split, deepest valley first, wherever the profile falls to
    :data:`ROOT_SPLIT_FRACTION` of the lower of the peaks on either side, until each part
    is short enough for one rib or has no such valley; the valley row itself belongs to
    neither part, and rows at a part's ends below that share of its peak (the bone that
    joined it to its neighbour) are trimmed off. Parts that stay too tall are rejected by
    the caller.

    Example:
        >>> _split_root(np.array([2, 17, 24, 20, 8, 13, 16, 12, 4, 11, 16, 16, 12, 6]))  # two ribs touching
        [slice(1, 7, None), slice(9, 13, None)]
        >>> _split_root(np.array([2, 6, 9, 9, 9, 8, 8, 9, 9, 9, 9, 7, 5, 3, 1]))  # a kidney
        [slice(0, 15, None)]
    """
    p = np.asarray(profile, dtype=np.float64)
    max_rows = int(np.floor(MAX_ROOT_HEIGHT_MM / STEP_MM + 1e-9))
    if len(p) <= max_rows:
        return [slice(0, len(p))]
    parts: list[slice] = []
    pending = [(0, len(p))]
    while pending:
        lo, hi = pending.pop()
        if hi - lo <= max_rows:
            parts.append(slice(lo, hi))  # short enough for one rib: not split further
            continue
        best: tuple[float, int] | None = None  # (valley / lower peak, row)
        for i in range(lo + 1, hi - 1):
            depth = min(p[lo:i].max(), p[i + 1 : hi].max())
            if p[i] <= ROOT_SPLIT_FRACTION * depth and (best is None or p[i] / depth < best[0]):
                best = (p[i] / depth, i)
        if best is None:
            parts.append(slice(lo, hi))
        else:
            pending += [(best[1] + 1, hi), (lo, best[1])]
    if len(parts) == 1:
        return [slice(0, len(p))]  # no valley: one tall structure, not ribs
    trimmed = []
    for part in sorted(parts, key=lambda sl: sl.start):
        # the thin bone that joined this rib to its neighbour is not part of its root
        keep = np.nonzero(p[part] > ROOT_SPLIT_FRACTION * p[part].max())[0]
        trimmed.append(slice(part.start + int(keep[0]), part.start + int(keep[-1]) + 1))
    return trimmed


def _sample_grid(
    volume: Volume,
    frame: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]],
    u: npt.NDArray[np.float64],
    v: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    """Trilinear HU on the straightened ``(s, u, v)`` grid of ``frame`` (outside: -1000).

    Returns:
        The index coordinates ``(3, S, U, V)`` and the HU ``(S, U, V)``.
    """
    centre, step_u, step_v = frame
    coords = (
        centre.T[:, :, None, None]
        + step_u.T[:, :, None, None] * u[None, None, :, None]
        + step_v.T[:, :, None, None] * v[None, None, None, :]
    )
    hu = sampling.map_coordinates(
        volume.array, coords, order=1, mode="constant", cval=-1000.0, output=np.float32
    )
    return coords, hu


def _near_metal(
    volume: Volume,
    curve: SpineCurve,
    s_range: tuple[float, float],
    body_s: npt.NDArray[np.float64],
    spacing: float,
) -> npt.NDArray[np.bool_]:
    """Per body: is there metal (``>= METAL_HU``) in the column within one body spacing?

    Pedicle screws and rods throw streaks into the rib region that pass the bone test;
    the ribs of those bodies are not evidence either way. The column (``|v| < INNER_MM``)
    is sampled every :data:`METAL_STEP_MM`, finer than the thinnest screw.
    """
    s = np.arange(s_range[0], s_range[1] + 1e-9, METAL_STEP_MM)
    u = np.arange(U_RANGE_MM[0], U_RANGE_MM[1] + 1e-9, METAL_STEP_MM)
    v = np.arange(-INNER_MM, INNER_MM + 1e-9, METAL_STEP_MM)
    _, hu = _sample_grid(volume, index_frame(volume, curve, s), u, v)
    metal_rows = (hu >= METAL_HU).any(axis=(1, 2))
    near = np.zeros(len(body_s), dtype=bool)
    if metal_rows.any():
        ms = s[metal_rows]
        near = np.abs(body_s[:, None] - ms[None, :]).min(axis=1) <= spacing
        log.info(
            "metal next to %d of %d vertebral bodies: their ribs are not used", int(near.sum()), len(near)
        )
    return near


def _log_likelihood(sides: int, level: str) -> float:
    """``log P(ribs found on sides | level)`` (:data:`P_SIDES_THORACIC` and friends)."""
    table = P_SIDES_LEVEL.get(level, P_SIDES_THORACIC if is_rib_bearing_level(level) else P_SIDES_ELSEWHERE)
    return float(np.log(table[min(max(int(sides), 0), 2)]))


def shift_scores(detections: Sequence[Detection], evidence: RibEvidence) -> dict[int, float]:
    """Log-score of each candidate shift ``k`` of the detector's names (see :func:`anchor_levels`).

    ``score(k) = sum_i log P(sides_i | name_i + k) - SHIFT_PENALTY * |k|`` over the labelled,
    observed detections, for every ``k`` with ``|k| <= MAX_SHIFT`` that keeps all names in
    :data:`~spinevcf.schema.LEVELS`. Up to a constant, ``score(k)`` is the log-posterior of
    the shift: the prior ``exp(-SHIFT_PENALTY |k|)`` centred on the detector's count times
    the likelihood of the ribs found. Empty when no detection is labelled.

    Raises:
        ValueError: ``evidence`` is not for these detections.
    """
    dets = list(detections)
    if len(dets) != len(evidence.sides):
        raise ValueError(f"{len(dets)} detections but rib evidence for {len(evidence.sides)}")
    idx = [(i, LEVELS.index(d.label)) for i, d in enumerate(dets) if d.label is not None]
    if not idx:
        return {}
    assert evidence.observed is not None  # set by __post_init__
    seen = [(i, j) for i, j in idx if evidence.observed[i]]
    lo = -min(j for _, j in idx)
    hi = len(LEVELS) - 1 - max(j for _, j in idx)
    return {
        k: sum(_log_likelihood(int(evidence.sides[i]), LEVELS[j + k]) for i, j in seen)
        - SHIFT_PENALTY * abs(k)
        for k in sorted(range(max(lo, -MAX_SHIFT), min(hi, MAX_SHIFT) + 1), key=abs)
    }


def best_shift(scores: dict[int, float]) -> int:
    """The shift with the highest score; ties go to the smaller ``|k|`` (then the negative)."""
    best_k, best = 0, -np.inf
    for k in sorted(scores, key=lambda x: (abs(x), x)):
        if scores[k] > best + 1e-9:
            best_k, best = k, scores[k]
    return best_k


def anchor_levels(detections: Sequence[Detection], evidence: RibEvidence) -> list[Detection]:
    """Shift the detector's level names so the rib-bearing bodies are the thoracic ones.

    Every candidate shift ``k`` (all names moved ``k`` levels, staying within
    :data:`~spinevcf.schema.LEVELS`) is scored by how well the ribs found agree with the
    shifted names, ``sum_i log P(sides_i | name_i + k)`` (:data:`P_SIDES_THORACIC`,
    :data:`P_SIDES_LEVEL`, :data:`P_SIDES_ELSEWHERE`; ``sides_i`` = sides bearing a rib), minus
    :data:`SHIFT_PENALTY` per level of shift (so the detector's names stand where the ribs
    do not decide, e.g. a column that is thoracic throughout). Bodies whose rib region is
    not in the scan (``evidence.observed``) do not count. The detector keeps the order and
    the gaps of its names; the ribs fix their offset.

    Args:
        detections: labelled detections (output of
            :func:`~spinevcf.detector.assign_levels`), cranial first.
        evidence: :func:`find_ribs` on the same detections.

    Returns:
        The detections with shifted labels (the same objects when no shift wins).

    Example:
        >>> p = np.full(24, 1 / 24)
        >>> dets = [Detection(1.0, np.array([r, 0.0]), np.zeros((6, 2)), p, label=lab)
        ...         for r, lab in ((0.0, "T10"), (25.0, "T11"), (50.0, "T12"), (75.0, "L1"))]
        >>> ev = RibEvidence([], np.array([2, 2, 0, 0]), np.array([0.0, 25, 50, 75]))
        >>> [d.label for d in anchor_levels(dets, ev)]  # the last rib-bearing body is T12
        ['T11', 'T12', 'L1', 'L2']
    """
    dets = list(detections)
    scores = shift_scores(dets, evidence)
    best_k = best_shift(scores) if scores else 0
    if best_k == 0:
        return dets
    log.info("level names shifted by %+d to agree with the rib-bearing vertebrae", best_k)
    return shift_labels(dets, best_k)


def shift_labels(detections: Sequence[Detection], k: int) -> list[Detection]:
    """The detections with every label moved ``k`` levels (unlabelled ones unchanged)."""
    return [d if d.label is None else replace(d, label=LEVELS[LEVELS.index(d.label) + k]) for d in detections]
