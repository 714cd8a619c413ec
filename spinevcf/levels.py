"""Level names of the detected bodies: the detector's count fixed by the anatomy in view.

:func:`name_levels` is the one entry point the pipeline calls after decoding. It labels the
detections in order (:func:`spinevcf.detector.assign_levels`), then moves the names so they
agree with the anatomical anchors found in the CT (the rib-bearing vertebrae,
:mod:`spinevcf.ribs`), and states how sure each name is (``Detection.level_confidence``).

The names of a column move together: the detector fixes their order and gaps, the
anchors their offset ``k``. The posterior over ``k`` is

``P(k | CT) ∝ exp(-SHIFT_PENALTY |k|) * prod_i P(ribs on sides_i | name_i + k)``

(:func:`spinevcf.ribs.shift_scores`; bodies whose rib region is not in the scan, or lies in
the padding outside a small reconstructed field of view, or next to metal, do not count).
The names use the most probable ``k``, and each labelled detection's
``level_confidence`` is that posterior probability ``P(k* | CT)``: the probability that the
whole column is named right given the detector's count and the ribs. It is high only when
the ribs pin the offset: the first or the last rib-bearing vertebra (the cervicothoracic or
thoracolumbar transition) in view and the ribs agreeing with it. A column that is thoracic
throughout, lumbar throughout, or whose ribs cannot be seen (ribs cut by the field of view)
leaves every shift about equally likely except for the prior (``P(0) ≈ 0.47``): its names
are the detector's and are reported ``"uncertain"`` (:func:`level_status`). Evidence that
disagrees (a rib pattern that no single shift explains, e.g. 11 or 13 rib pairs) splits the
posterior and lowers the confidence too. See docs/levels.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from spinevcf.anchors import CostalEvidence, find_costal
from spinevcf.detector import Detection, assign_levels
from spinevcf.geometry.cpr import CPRImage
from spinevcf.ribs import (
    MAX_SHIFT,
    P_SIDES_ELSEWHERE,
    P_SIDES_LEVEL,
    P_SIDES_THORACIC,
    SHIFT_PENALTY,
    RibEvidence,
    best_shift,
    find_ribs,
)
from spinevcf.schema import LEVELS
from spinevcf.volume import Volume

__all__ = [
    "name_levels",
    "level_status",
    "name_from_evidence",
    "shift_scores",
    "shift_posterior",
    "CONFIDENT_LEVEL",
    "P_COSTAL",
    "P_ALAR",
]

log = logging.getLogger(__name__)

#: ``P(rib heads beside the body on 0, 1, 2 sides | level class)`` (:mod:`spinevcf.anchors`).
#: Measured on the 60 synthetic validation studies (seeds 100100-100159, detector's bodies
#: matched to the truth, uncut): T2-T11 11 / 60 / 349 of 420, T1 0 / 0 / 27, T12 1 / 5 / 44,
#: lumbar 180 / 4 / 4 of 188, C7 0 / 1 / 10; widened (real rib heads sit over the disc and
#: can be given to a neighbour; anatomy unlike the generator's). The costal element of a
#: cervical transverse process bulges beside the body like a rib head, so cervical levels
#: share T1's row: this reading does not tell C7 from T1 (the long reach does).
P_COSTAL: dict[str, tuple[float, float, float]] = {
    "T": (0.06, 0.19, 0.75),
    "T1": (0.10, 0.15, 0.75),
    "T12": (0.10, 0.20, 0.70),
    "L": (0.88, 0.08, 0.04),
    "C": (0.10, 0.15, 0.75),
    "S": (0.88, 0.08, 0.04),  # a mobile S1 is a lumbar-type body
}
#: ``P(alae beside the body below the last detection on 0, 1, 2 sides | its level class)``.
#: Measured as :data:`P_COSTAL`: S1 (below L5) 2 / 2 / 17 of 21; lumbar bodies (for a lumbar
#: body below) 176 / 8 / 4 of 188; thoracic 470 / 21 / 6 of 497; widened.
P_ALAR: dict[str, tuple[float, float, float]] = {
    "S": (0.10, 0.10, 0.80),
    "L": (0.80, 0.12, 0.08),
    "T": (0.88, 0.08, 0.04),
    "C": (0.88, 0.08, 0.04),
}
#: Names after L5 (not detector levels): the sacral segments, for the body below the last
#: detection and for a mobile first sacral segment.
SACRAL_LEVELS: tuple[str, ...] = ("S1", "S2")

#: Prior of the number of rib pairs (the last rib-bearing vertebra is T11, T12 or L1).
#: Whole-spine CT, counted from C1: 11 pairs (no 12th rib) in 107 of 1,340 patients
#: (8 %) and lumbar ribs in 0.4-5.8 % (Yun et al., Korean J Radiol 2018;19:1140; Nakajima
#: et al., Insights Imaging 2014;5:77; docs/levels.md); rounded.
P_RIB_PAIRS: dict[int, float] = {11: 0.06, 12: 0.91, 13: 0.03}
#: Prior of the lumbosacral junction: a lumbarised S1 (a sixth mobile lumbar-type body) in
#: 4.0-6.2 %, a sacralised L5 (four mobile lumbar bodies) in 2.7-12.3 % of whole-spine CTs
#: (Nakajima et al. 2014; Chalian et al. / PMID 40381031, Skeletal Radiol 2025); rounded.
P_LUMBOSACRAL: dict[str, float] = {"normal": 0.90, "lumbarised_s1": 0.05, "sacralised_l5": 0.05}


def _extended_name(j: int) -> str:
    """Level name of index ``j`` of C1..L5, continued into the sacrum (S1, S2)."""
    return LEVELS[j] if j < len(LEVELS) else SACRAL_LEVELS[min(j - len(LEVELS), len(SACRAL_LEVELS) - 1)]


def _level_class(level: str, table: dict[str, tuple[float, float, float]]) -> tuple[float, float, float]:
    """The row of ``table`` for ``level``: its own (``"T1"``) or its region's (``"T"``)."""
    return table.get(level, table[level[0]])


def _last_rib_bearing(rib_pairs: int) -> str:
    """The most caudal rib-bearing vertebra with ``rib_pairs`` pairs (T11, T12 or L1)."""
    return LEVELS[LEVELS.index("T1") + rib_pairs - 1]


def _costal_role(name: str, rib_pairs: int) -> str:
    """The :data:`P_COSTAL` row of the body called ``name`` in a spine with ``rib_pairs`` pairs.

    The first rib-bearing body reads as ``"T1"``, the last as ``"T12"`` (the short last
    rib), the ones between as ``"T"``; bodies without ribs as their region (``"C"``, ``"L"``,
    ``"S"``; a mobile S1 is a lumbar-type body and reads as ``"S"``'s equal row).
    """
    last = _last_rib_bearing(rib_pairs)
    if name == "T1":
        return "T1"
    if name == last:
        return "T12"
    if name in LEVELS and LEVELS.index("T1") < LEVELS.index(name) < LEVELS.index(last):
        return "T"
    return "L" if name[0] == "T" else name[0]


def _rib_row(name: str, rib_pairs: int) -> tuple[float, float, float]:
    """``P(ribs found on 0, 1, 2 sides)`` (:mod:`spinevcf.ribs` tables) for that body."""
    role = _costal_role(name, rib_pairs)
    if role in ("T1", "T12"):
        return P_SIDES_LEVEL[role]
    return P_SIDES_THORACIC if role == "T" else P_SIDES_ELSEWHERE


def _alar_role(name: str, lumbosacral: str) -> str:
    """The :data:`P_ALAR` row of the body called ``name`` below the last detection.

    The alae lie beside the first sacral segment: S1 normally, S2 below a lumbarised (mobile)
    S1, L5 when it is sacralised.
    """
    if lumbosacral == "lumbarised_s1" and name == "S1":
        return "L"
    if lumbosacral == "sacralised_l5" and name == "L5":
        return "S"
    return name[0]


#: A level name whose confidence is at least this is "confident"; below, "uncertain".
CONFIDENT_LEVEL = 0.9


#: The anchors move the detector's names only to an offset whose posterior exceeds this
#: (clearly more likely than not); weaker evidence leaves the count, flagged uncertain. 0.5
#: before 2026-12-06; 0.7 chosen on the transitional validation seeds (docs/levels.md).
MIN_SHIFT_POSTERIOR = 0.7


def level_status(confidence: float | None) -> str | None:
    """``"confident"`` / ``"uncertain"`` for a level confidence; ``None`` when it is unknown.

    Example:
        >>> level_status(0.97), level_status(0.6), level_status(None)
        ('confident', 'uncertain', None)
    """
    if confidence is None:
        return None
    return "confident" if confidence >= CONFIDENT_LEVEL else "uncertain"


def shift_scores(
    detections: Sequence[Detection], ribs: RibEvidence, costal: CostalEvidence | None = None
) -> dict[int, float]:
    """Log-posterior (up to a constant) of each shift ``k`` of the detector's names.

    Args:
        detections: labelled detections, cranial first.
        ribs: :func:`spinevcf.ribs.find_ribs` on them.
        costal: :func:`spinevcf.anchors.find_costal` on them (``None``: ribs only).

    Returns:
        ``{k: score}`` (module docstring); empty when no detection is labelled.

    Raises:
        ValueError: evidence for another number of detections.
    """
    dets = list(detections)
    n = len(dets)
    if len(ribs.sides) != n:
        raise ValueError(f"{n} detections but rib evidence for {len(ribs.sides)}")
    if costal is not None and len(costal.bulge_mm) != n + 1:
        raise ValueError(f"{n} detections but costal evidence for {len(costal.bulge_mm) - 1}")
    idx = [(i, LEVELS.index(d.label)) for i, d in enumerate(dets) if d.label is not None]
    if not idx:
        return {}
    assert ribs.observed is not None and ribs.near_metal is not None  # set by __post_init__
    costal_sides = costal.costal_sides() if costal is not None else None
    terms: list[tuple[int, str, int]] = []  # (body, reading, sides)
    for i, _ in idx:
        if ribs.observed[i]:
            terms.append((i, "rib", int(ribs.sides[i])))
        elif costal is not None and costal_sides is not None and costal.readable[i] and not ribs.near_metal[i]:
            terms.append((i, "costal", int(costal_sides[i])))
    level_of = dict(idx)
    alar = None
    if costal is not None and dets[-1].label is not None and costal.seen[n] and not ribs.near_metal[n - 1]:
        alar = int(costal.alar_sides()[n])
    lo = -min(j for _, j in idx)
    last = max(j for _, j in idx)
    hi = len(LEVELS) - last  # the last body may be a mobile S1 (lumbarised)
    scores: dict[int, float] = {}
    for k in sorted(range(max(lo, -MAX_SHIFT), min(hi, MAX_SHIFT) + 1), key=abs):
        # Marginalise the transitional anatomy: the rib count moves the last rib-bearing
        # body, the lumbosacral junction the alae and whether a mobile S1 can exist.
        joint: list[float] = []
        for pairs, p_pairs in P_RIB_PAIRS.items():
            body = 0.0
            for i, reading, sides in terms:
                name = _extended_name(level_of[i] + k)
                if reading == "rib":
                    row = _rib_row(name, pairs)
                else:
                    row = _level_class(_costal_role(name, pairs), P_COSTAL)
                body += float(np.log(row[min(sides, 2)]))
            for junction, p_junction in P_LUMBOSACRAL.items():
                if last + k >= len(LEVELS) and junction != "lumbarised_s1":
                    continue  # a mobile body past L5 exists only with a lumbarised S1
                total = body + float(np.log(p_pairs * p_junction))
                if alar is not None:
                    below = _extended_name(level_of[n - 1] + k + 1)
                    total += float(np.log(_level_class(_alar_role(below, junction), P_ALAR)[min(alar, 2)]))
                joint.append(total)
        scores[k] = -SHIFT_PENALTY * abs(k) + float(np.logaddexp.reduce(joint))
    return scores


def shift_posterior(
    detections: Sequence[Detection], ribs: RibEvidence, costal: CostalEvidence | None = None
) -> dict[int, float]:
    """Posterior probability of each shift ``k`` of the detector's names (module docstring).

    Example:
        >>> p = np.full(24, 1 / 24)
        >>> dets = [Detection(1.0, np.array([r, 0.0]), np.zeros((6, 2)), p, label=lab)
        ...         for r, lab in ((0.0, "T11"), (25.0, "T12"), (50.0, "L1"))]
        >>> post = shift_posterior(dets, RibEvidence([], np.array([2, 2, 0]), np.array([0.0, 25, 50])))
        >>> round(post[0], 2)  # the last rib-bearing body is T12: the offset is pinned
        0.89
    """
    scores = shift_scores(detections, ribs, costal)
    if not scores:
        return {}
    ks = list(scores)
    z = np.array([scores[k] for k in ks])
    p = np.exp(z - z.max())
    p /= p.sum()
    return {k: float(q) for k, q in zip(ks, p, strict=True)}


def name_from_evidence(
    detections: Sequence[Detection], ribs: RibEvidence, costal: CostalEvidence | None = None
) -> list[Detection]:
    """Shift labelled detections to the most probable offset and set their ``level_confidence``.

    Args:
        detections: output of :func:`~spinevcf.detector.assign_levels`, cranial first.
        ribs: :func:`spinevcf.ribs.find_ribs` on the same detections.
        costal: :func:`spinevcf.anchors.find_costal` on them (``None``: ribs only).

    Returns:
        The detections with shifted labels; ``level_confidence`` is the posterior of the
        chosen shift on every labelled detection, ``None`` on unlabelled ones.
    """
    dets = list(detections)
    scores = shift_scores(dets, ribs, costal)
    if not scores:
        return dets
    post = shift_posterior(dets, ribs, costal)
    k = best_shift(scores)
    if k and post[k] <= MIN_SHIFT_POSTERIOR:
        # The anchors do not make another offset more likely than not: the detector's own
        # count stands (and is uncertain: its posterior is below one half too).
        log.info("anchors favour a shift of %+d but not by a majority: the detector's count stands", k)
        k = 0
    if k:
        log.info("level names shifted by %+d to agree with the anatomical anchors", k)
    conf = round(post[k], 4)
    out = []
    for d in dets:
        if d.label is None:
            out.append(d)
            continue
        j = LEVELS.index(d.label) + k
        if j >= len(LEVELS):  # a mobile S1: no name in C1-L5
            log.info("the last body is taken for a mobile (lumbarised) S1 and left unnamed")
            out.append(replace(d, label=None, level_confidence=None))
        else:
            out.append(replace(d, label=LEVELS[j], level_confidence=conf))
    return out


def name_levels(
    volume: Volume, cpr: CPRImage, detections: Sequence[Detection], *, anchors: bool = True
) -> list[Detection]:
    """Name the levels of ``detections`` (cranial first on return).

    Args:
        volume: the CT the CPR was made from (anchors are looked for in it).
        cpr: the straightened image the detections are on.
        detections: decoded detections inside the CPR's valid rows (any order).
        anchors: use the anatomical anchors; ``False`` keeps the detector's count (and
            leaves ``level_confidence`` unknown).

    Returns:
        New detections, sorted by row, with ``label`` set (``None`` where no level can be
        given) and ``level_confidence`` set where it is known.
    """
    dets = assign_levels(list(detections))
    if anchors and dets:
        dets = name_from_evidence(dets, find_ribs(volume, cpr, dets), find_costal(volume, cpr, dets))
    return dets
