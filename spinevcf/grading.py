"""Vertebral heights, Genant semiquantitative grading and fracture probability.

The same functions grade the generator's ground truth and the app's findings,
so a synthetic fracture's grade follows exactly from its heights.

Definitions (method-notes, Genant 1993):

* ``Ha``, ``Hm``, ``Hp``: distances between the anterior, middle and posterior
  keypoints of the superior and inferior endplates, in mm, measured in 3D.
* Wedge reduction: ``1 - Ha / Hp`` (anterior height against the posterior one).
* Biconcave reduction: ``1 - Hm / max(Ha, Hp)``.
* Crush reduction: ``1 - Hp / Hp_ref`` where ``Hp_ref`` is the expected
  posterior height interpolated from the nearest neighbouring vertebrae
  (the larger of the cranial and caudal neighbours' ``Hp``, or the one that exists),
  scaled by :data:`LEVEL_GROWTH_PER_LEVEL` to compensate the craniocaudal
  increase of vertebral size.
* The vertebra's height reduction is the largest of the three; its deformity
  type is the one that gives it. Genant grade: 0 below 20 %, 1 for 20-25 %,
  2 for 25-40 %, 3 above 40 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from spinevcf.schema import StudyRecord, VertebraRecord

__all__ = [
    "GRADE_THRESHOLDS",
    "LEVEL_GROWTH_PER_LEVEL",
    "FRACTURE_PROBABILITY_CENTER",
    "FRACTURE_PROBABILITY_SCALE",
    "VertebraGrade",
    "heights_from_keypoints",
    "genant_grade",
    "grade_column",
    "fracture_probability",
    "patient_probability",
    "truth_record",
]

#: Lower bounds of height reduction for Genant grades 1, 2 and 3.
GRADE_THRESHOLDS: tuple[float, float, float] = (0.20, 0.25, 0.40)

#: Relative increase of vertebral body height from one level to the next caudal one.
LEVEL_GROWTH_PER_LEVEL: float = 0.03

#: Logistic calibration of the fracture probability on the height reduction
#: (defaults; a model folder may override them with values fitted on validation data).
FRACTURE_PROBABILITY_CENTER: float = 0.20
FRACTURE_PROBABILITY_SCALE: float = 0.02

# Reductions are ratios of heights (1 - 16/20 == 0.19999999999999996 in floating point):
# a reduction within this of a threshold counts as reaching it.
_THRESHOLD_TOLERANCE: float = 1e-9


@dataclass(frozen=True)
class VertebraGrade:
    """Grading of one vertebral body."""

    heights_mm: dict[str, float]
    reductions: dict[str, float]  # wedge, biconcave, crush as fractions (0-1)
    reduction: float
    genant_grade: int
    deformity: str
    fracture_probability: float


def heights_from_keypoints(keypoints: npt.ArrayLike) -> dict[str, float]:
    """Ha, Hm, Hp in mm from six (x, y, z) keypoints in the spinevcf order.

    Args:
        keypoints: (6, 3) array: anterior/middle/posterior superior, then inferior.

    Returns:
        ``{"anterior": Ha, "middle": Hm, "posterior": Hp}``.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (6, 3):
        raise ValueError(f"keypoints must be (6, 3), got {kp.shape}")
    h = np.linalg.norm(kp[3:6] - kp[0:3], axis=1)
    return {"anterior": float(h[0]), "middle": float(h[1]), "posterior": float(h[2])}


def genant_grade(reduction: float) -> int:
    """Genant grade 0-3 of a height reduction given as a fraction (0.3 = 30 %)."""
    if not np.isfinite(reduction):
        raise ValueError("reduction must be finite")
    return int(sum(reduction >= t - _THRESHOLD_TOLERANCE for t in GRADE_THRESHOLDS))


def fracture_probability(
    reduction: float,
    center: float = FRACTURE_PROBABILITY_CENTER,
    scale: float = FRACTURE_PROBABILITY_SCALE,
) -> float:
    """Calibrated probability that a vertebra is fractured (grade >= 1), logistic in its reduction."""
    z = (reduction - center) / scale
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def patient_probability(vertebra_probabilities: npt.ArrayLike) -> float:
    """Probability that a patient has at least one fracture: noisy-OR over vertebrae.

    Returns 0.0 for an empty list (no vertebra found means no fracture found).
    """
    p = np.clip(np.asarray(vertebra_probabilities, dtype=np.float64), 0.0, 1.0)
    if p.size == 0:
        return 0.0
    return float(1.0 - np.prod(1.0 - p))


def _level_positions(labels: list[str]) -> npt.NDArray[np.float64]:
    from spinevcf.schema import LEVEL_INDEX

    return np.array([LEVEL_INDEX[lab] for lab in labels], dtype=np.float64)


def grade_column(
    labels: list[str],
    heights: list[dict[str, float]],
    center: float = FRACTURE_PROBABILITY_CENTER,
    scale: float = FRACTURE_PROBABILITY_SCALE,
) -> list[VertebraGrade]:
    """Grade every vertebra of a column listed cranial to caudal.

    Args:
        labels: level names (C1..L5), cranial to caudal; neighbours for the crush
            reference are the adjacent entries of the next level up or down (a gap in the
            levels means a body was missed, and then that side gives no reference).
        heights: per vertebra ``{"anterior", "middle", "posterior"}`` in mm.
        center: logistic centre of the fracture probability.
        scale: logistic scale of the fracture probability.

    Returns:
        One :class:`VertebraGrade` per vertebra, in the same order.
    """
    if len(labels) != len(heights):
        raise ValueError("labels and heights must have the same length")
    n = len(labels)
    pos = _level_positions(labels) if n else np.zeros(0)
    ha = np.array([h["anterior"] for h in heights], dtype=np.float64)
    hm = np.array([h["middle"] for h in heights], dtype=np.float64)
    hp = np.array([h["posterior"] for h in heights], dtype=np.float64)
    if np.any(~np.isfinite(np.r_[ha, hm, hp])) or np.any(np.r_[ha, hm, hp] <= 0):
        raise ValueError("heights must be positive and finite")

    # Own-shape reductions.
    wedge = np.clip(1.0 - ha / hp, 0.0, None)
    bicon = np.clip(1.0 - hm / np.maximum(ha, hp), 0.0, None)
    out: list[VertebraGrade] = []
    for i in range(n):
        # Expected posterior height from the neighbours, rescaled to this level. The larger
        # of the two is used so that a crushed neighbour does not hide this one's crush.
        refs = [
            hp[j] * (1.0 + LEVEL_GROWTH_PER_LEVEL) ** (pos[i] - pos[j])
            for j in (i - 1, i + 1)
            if 0 <= j < n and abs(pos[j] - pos[i]) == 1
        ]
        crush = float(np.clip(1.0 - hp[i] / max(refs), 0.0, None)) if refs else 0.0
        red = {"wedge": float(wedge[i]), "biconcave": float(bicon[i]), "crush": crush}
        kind = max(red, key=lambda k: red[k])
        reduction = red[kind]
        grade = genant_grade(reduction)
        out.append(
            VertebraGrade(
                heights_mm={"anterior": float(ha[i]), "middle": float(hm[i]), "posterior": float(hp[i])},
                reductions=red,
                reduction=reduction,
                genant_grade=grade,
                deformity=kind if grade > 0 else "none",
                fracture_probability=fracture_probability(reduction, center, scale),
            )
        )
    return out


def truth_record(
    labels: list[str],
    keypoints_lps_mm: list[npt.ArrayLike],
    *,
    study_instance_uid: str,
    series_instance_uid: str,
    model_version: str,
    extra: dict[str, Any],
) -> StudyRecord:
    """A ground-truth study record (truth.json) from reference keypoints.

    The heights, reductions, grades and deformity types come from :func:`grade_column`
    over the listed vertebrae, exactly as for predictions; nothing else decides a grade.
    Used for synthetic truth (:func:`spinevcf.synth.truth_for`) and for truth derived from
    VerSe masks (:mod:`spinevcf.io.verse`).

    Args:
        labels: level names, cranial to caudal.
        keypoints_lps_mm: per vertebra its (6, 3) keypoints in LPS mm.
        study_instance_uid: the study's UID.
        series_instance_uid: the series' UID.
        model_version: who made the truth (e.g. ``spinevcf-synth 1.2``).
        extra: stored as the record's ``extra``.
    """
    kps = [np.asarray(k, dtype=np.float64) for k in keypoints_lps_mm]
    grades = grade_column(list(labels), [heights_from_keypoints(k) for k in kps])
    records = [
        VertebraRecord(
            label=label,
            keypoints_lps_mm=kp.tolist(),
            heights_mm={k: round(v, 4) for k, v in g.heights_mm.items()},
            genant_grade=g.genant_grade,
            deformity=g.deformity,
            height_reductions_pct={k: round(100.0 * v, 3) for k, v in g.reductions.items()},
        )
        for label, kp, g in zip(labels, kps, grades, strict=True)
    ]
    return StudyRecord(
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid,
        vertebrae=records,
        patient_fractured=any(r.fractured for r in records),
        model_version=model_version,
        extra=extra,
    )
