"""Level names of the detected bodies: the detector's count fixed by the anatomy in view.

:func:`name_levels` is the one entry point the pipeline calls after decoding. It labels the
detections in order (:func:`spinevcf.detector.assign_levels`), then moves the names so they
agree with the anatomical anchors found in the CT (the rib-bearing vertebrae,
:mod:`spinevcf.ribs`), and states how sure each name is (``Detection.level_confidence``).
"""

from __future__ import annotations

from collections.abc import Sequence

from spinevcf.detector import Detection, assign_levels
from spinevcf.geometry.cpr import CPRImage
from spinevcf.ribs import anchor_levels, find_ribs
from spinevcf.volume import Volume

__all__ = ["name_levels", "level_status", "CONFIDENT_LEVEL"]

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


def name_levels(
    volume: Volume, cpr: CPRImage, detections: Sequence[Detection], *, anchors: bool = True
) -> list[Detection]:
    """Name the levels of ``detections`` (cranial first on return).

    Args:
        volume: the CT the CPR was made from (anchors are looked for in it).
        cpr: the straightened image the detections are on.
        detections: decoded detections inside the CPR's valid rows (any order).
        anchors: use the anatomical anchors; ``False`` keeps the detector's count.

    Returns:
        New detections, sorted by row, with ``label`` set (``None`` where no level can be
        given) and ``level_confidence`` set where it is known.
    """
    dets = assign_levels(list(detections))
    if anchors and dets:
        dets = anchor_levels(dets, find_ribs(volume, cpr, dets))
    return dets
