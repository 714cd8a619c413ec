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

from spinevcf.detector import Detection, assign_levels
from spinevcf.geometry.cpr import CPRImage
from spinevcf.ribs import RibEvidence, best_shift, find_ribs, shift_labels, shift_scores
from spinevcf.volume import Volume

__all__ = ["name_levels", "level_status", "name_from_evidence", "shift_posterior", "CONFIDENT_LEVEL"]

log = logging.getLogger(__name__)

#: A level name whose confidence is at least this is "confident"; below, "uncertain".
CONFIDENT_LEVEL = 0.9


def level_status(confidence: float | None) -> str | None:
    """``"confident"`` / ``"uncertain"`` for a level confidence; ``None`` when it is unknown.

    Example:
        >>> level_status(0.97), level_status(0.6), level_status(None)
        ('confident', 'uncertain', None)
    """
    if confidence is None:
        return None
    return "confident" if confidence >= CONFIDENT_LEVEL else "uncertain"


def shift_posterior(detections: Sequence[Detection], evidence: RibEvidence) -> dict[int, float]:
    """Posterior probability of each shift ``k`` of the detector's names (module docstring).

    Example:
        >>> p = np.full(24, 1 / 24)
        >>> dets = [Detection(1.0, np.array([r, 0.0]), np.zeros((6, 2)), p, label=lab)
        ...         for r, lab in ((0.0, "T11"), (25.0, "T12"), (50.0, "L1"))]
        >>> post = shift_posterior(dets, RibEvidence([], np.array([2, 2, 0]), np.array([0.0, 25, 50])))
        >>> round(post[0], 2)  # the last rib-bearing body is T12: the offset is pinned
        0.93
    """
    scores = shift_scores(detections, evidence)
    if not scores:
        return {}
    ks = list(scores)
    z = np.array([scores[k] for k in ks])
    p = np.exp(z - z.max())
    p /= p.sum()
    return {k: float(q) for k, q in zip(ks, p, strict=True)}


def name_from_evidence(detections: Sequence[Detection], evidence: RibEvidence) -> list[Detection]:
    """Shift labelled detections to the most probable offset and set their ``level_confidence``.

    Args:
        detections: output of :func:`~spinevcf.detector.assign_levels`, cranial first.
        evidence: :func:`spinevcf.ribs.find_ribs` on the same detections.

    Returns:
        The detections with shifted labels; ``level_confidence`` is the posterior of the
        chosen shift on every labelled detection, ``None`` on unlabelled ones.
    """
    dets = list(detections)
    scores = shift_scores(dets, evidence)
    if not scores:
        return dets
    post = shift_posterior(dets, evidence)
    k = best_shift(scores)
    if k:
        log.info("level names shifted by %+d to agree with the rib-bearing vertebrae", k)
    conf = round(post[k], 4)
    return [d if d.label is None else replace(d, level_confidence=conf) for d in shift_labels(dets, k)]


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
        dets = name_from_evidence(dets, find_ribs(volume, cpr, dets))
    return dets
