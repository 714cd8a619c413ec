"""Vertebral heights, Genant semiquantitative grading and fracture probability.

The same functions grade the generator's ground truth and the app's findings,
so a synthetic fracture's grade follows exactly from its heights.

Definitions (method-notes, Genant 1993), each judged against the level's normal shape
(:mod:`spinevcf.normative`, normative morphometry as in Eastell 1991 / McCloskey 1993):

* ``Ha``, ``Hm``, ``Hp``: distances between the anterior, middle and posterior
  keypoints of the superior and inferior endplates, in mm, measured in 3D.
* Wedge reduction: ``1 - (Ha / Hp) / W(level)``, ``W`` the level's normal Ha/Hp (0.86 at
  T7, 1.15 at L5): physiological mid-thoracic wedging and lumbar lordotic shape are the
  expected shape, not a loss.
* Biconcave reduction: ``1 - (Hm / max(Ha, Hp)) / C(level)``, ``C`` the level's normal
  middle-to-rim ratio (about 0.85: endplates are concave).
* Crush reduction: ``1 - Hp / Hp_ref`` where ``Hp_ref`` is the posterior height expected
  from the adjacent vertebrae: each neighbour's ``Hp`` times the normal ratio of posterior
  heights between the two levels (:meth:`~spinevcf.normative.Normative.expected_posterior_ratio`,
  e.g. Hp(T12) is normally 0.96 of Hp(L1)); the larger of the two expectations is used, so
  that a crushed neighbour does not hide this one's crush. A crush lowers the whole body, so
  the anterior height must fall short too: the crush reduction is the smaller of
  ``1 - Hp / Hp_ref`` and ``1 - Ha / Ha_ref`` (``Ha_ref`` the neighbours' ``Ha`` through the
  same step and both levels' normal Ha/Hp). Only the directly adjacent level
  counts: a gap in the labels (a missed or not assessable body) means no reference from
  that side, and a body without any neighbour gets no crush reduction. With
  ``second_neighbour=True`` (the application, whose column a scan end or a not assessable
  body can break), a body whose only reference is a neighbour that is itself graded 1 or
  more (by the rule above) also takes the expectation from the level beyond that
  neighbour, through both normal steps: two adjacent crushes at a scan end otherwise
  measure each other as normal.
* With ``tall_posterior`` (the application: :data:`TALL_POSTERIOR`), a posterior height
  above that many times the largest one its neighbours graded 0 predict is taken as a
  reading error (a fracture lowers a body, it never makes its posterior wall taller than
  the neighbours allow): the body's wedge and biconcave reductions take the limit in
  place of the reading. On a 5 mm real chest CT a posterior keypoint placed
  7 mm too high otherwise made a normal T2 a grade-2 wedge (``docs/real-ct.md``). The
  reported heights stay the measured ones; the limit is reported beside them
  (``VertebraGrade.posterior_limit_mm``).
* The vertebra's height reduction is the largest of the three; its deformity
  type is the one that gives it. Genant grade: 0 below 20 %, 1 for 20-25 %,
  2 for 25-40 %, 3 above 40 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from spinevcf.normative import Normative, default_normative
from spinevcf.schema import LEVEL_INDEX, StudyRecord, VertebraRecord

__all__ = [
    "GRADE_THRESHOLDS",
    "TALL_POSTERIOR",
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

#: A posterior height more than this times what the normal neighbours predict is a reading
#: error, not anatomy (the application's limit; see :func:`grade_column`): five standard
#: deviations of the normal step between adjacent levels (SD 0.035-0.05 in the expert
#: keypoints of 100 real CTs, :mod:`spinevcf.normative_table`).
TALL_POSTERIOR: float = 1.2

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
    #: The posterior height the shape was judged against, where the reading exceeded
    #: ``tall_posterior`` times what the normal neighbours predict (else ``None``).
    posterior_limit_mm: float | None = None


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
    """Probability that a patient has at least one fracture: that of the most probable vertebra.

    The maximum, not a noisy-OR: the vertebrae's measurement errors are not independent (one
    scan, one curve, one detector), and a noisy-OR over 15 bodies of p = 0.1 makes a patient
    0.79 with no body graded. With the maximum, the patient's probability is 0.5 or more
    exactly when one of its bodies is graded 1 or more (the calibration's 50 % point is the
    grade-1 threshold). On the validation studies the patient ROC AUC is the same (30 studies
    of seeds 100100+, 1.000) or better (16 cut-preset studies of seeds 100200+: 0.889 -> 0.937).

    Returns 0.0 for an empty list (no vertebra found means no fracture found).

    Example:
        >>> patient_probability([0.1, 0.3, 0.2])
        0.3
    """
    p = np.clip(np.asarray(vertebra_probabilities, dtype=np.float64), 0.0, 1.0)
    if p.size == 0:
        return 0.0
    return float(p.max())


def _check_labels(labels: list[str]) -> None:
    unknown = [lab for lab in labels if lab not in LEVEL_INDEX]
    if unknown:
        raise ValueError(f"labels must be level names C1..L5, got {unknown}")


def grade_column(
    labels: list[str],
    heights: list[dict[str, float]],
    center: float = FRACTURE_PROBABILITY_CENTER,
    scale: float = FRACTURE_PROBABILITY_SCALE,
    *,
    normative: Normative | None = None,
    second_neighbour: bool = False,
    tall_posterior: float | None = None,
) -> list[VertebraGrade]:
    """Grade every vertebra of a column listed cranial to caudal.

    Args:
        labels: level names (C1..L5), cranial to caudal; neighbours for the crush
            reference are the adjacent entries of the next level up or down (a gap in the levels
            means a body was missed or is not assessable, and then that side gives no reference).
        heights: per vertebra ``{"anterior", "middle", "posterior"}`` in mm.
        center: logistic centre of the fracture probability.
        scale: logistic scale of the fracture probability.
        normative: normal shape ratios by level (default: :func:`spinevcf.normative.default_normative`).
        second_neighbour: where a body's only crush reference is a neighbour graded 1 or more, also
            use the level beyond it (see the module doc); the truth of a whole column does
            not need it.
        tall_posterior: where a body's posterior height exceeds this many times the
            posterior height its neighbours graded 0 predict, its wedge and biconcave
            reductions are judged against that limit in place of the reading (see the
            module doc); ``None`` (the truth) judges every reading as it is.

    Returns:
        One :class:`VertebraGrade` per vertebra, in the same order.
    """
    if len(labels) != len(heights):
        raise ValueError("labels and heights must have the same length")
    _check_labels(list(labels))
    norms = normative or default_normative()
    n = len(labels)
    ha = np.array([h["anterior"] for h in heights], dtype=np.float64)
    hm = np.array([h["middle"] for h in heights], dtype=np.float64)
    hp = np.array([h["posterior"] for h in heights], dtype=np.float64)
    if np.any(~np.isfinite(np.r_[ha, hm, hp])) or np.any(np.r_[ha, hm, hp] <= 0):
        raise ValueError("heights must be positive and finite")
    if tall_posterior is not None and not tall_posterior >= 1.0:
        raise ValueError(f"tall_posterior must be at least 1, got {tall_posterior!r}")
    # The posterior height the body's own shape is judged against (see tall_posterior).
    shape_hp = hp

    def shape(i: int) -> tuple[float, float]:
        # Own shape against the level's normal shape.
        wedge = max(0.0, 1.0 - (ha[i] / shape_hp[i]) / norms.wedge_ratio(labels[i]))
        bicon = max(0.0, 1.0 - (hm[i] / max(ha[i], shape_hp[i])) / norms.concavity_ratio(labels[i]))
        return wedge, bicon

    def reference(i: int, path: tuple[int, ...]) -> tuple[float, float] | None:
        # Expected (posterior, anterior) height of body i from the last body of ``path``,
        # through the normal ratio of posterior heights of each adjacent step; the anterior
        # height through the same steps and both end levels' normal wedge.
        ratio, prev = 1.0, i
        for j in path:
            step = norms.expected_posterior_ratio(labels[prev], labels[j])
            if step is None:
                return None
            ratio, prev = ratio * step, j
        k = path[-1]
        return hp[k] * ratio, ha[k] * ratio * norms.wedge_ratio(labels[i]) / norms.wedge_ratio(labels[k])

    deformed = (
        [g.genant_grade >= 1 for g in grade_column(labels, heights, center, scale, normative=norms)]
        if second_neighbour or tall_posterior is not None
        else [False] * n
    )
    if tall_posterior is not None:
        # A fracture never makes the posterior wall taller than normal: a reading far above
        # what the normal neighbours predict is a keypoint off the endplate, and the body's
        # own shape is judged against the limit instead. Its crush, and its use as a
        # neighbour's reference, keep the reading: a crush needs the anterior height short
        # too, and a limit taken from a short neighbour (a crush graded 0) must not lower
        # the reference that neighbour is judged against.
        def limit(i: int) -> float:
            expected = [
                r[0]
                for j in (i - 1, i + 1)
                if 0 <= j < n and not deformed[j] and (r := reference(i, (j,))) is not None
            ]
            return tall_posterior * max(expected) if expected else np.inf

        limits = [limit(i) for i in range(n)]
        shape_hp = np.minimum(hp, limits)
    out: list[VertebraGrade] = []
    for i in range(n):
        wedge, bicon = shape(i)
        # Expected heights from each adjacent neighbour. The larger of the two is used so
        # that a crushed neighbour does not hide this one's crush.
        refs = [r for j in (i - 1, i + 1) if 0 <= j < n and (r := reference(i, (j,))) is not None]
        if second_neighbour and len(refs) == 1:
            for d in (-1, 1):
                j, k = i + d, i + 2 * d
                if 0 <= k < n and deformed[j] and (r := reference(i, (j, k))) is not None:
                    refs.append(r)
        refs_p, refs_a = [r[0] for r in refs], [r[1] for r in refs]
        # A crush lowers the whole body (Genant): its posterior height *and* its anterior
        # height must both fall short of what the neighbours predict; the smaller of the two
        # reductions is the crush. A body whose posterior height alone reads short while its
        # anterior height is normal is not a crush (on real scans: a posterior keypoint off
        # the endplate, or one mis-measured tall neighbour).
        if refs_p:
            crush_posterior = 1.0 - hp[i] / max(refs_p)
            crush_anterior = 1.0 - ha[i] / max(refs_a)
            crush = max(0.0, min(crush_posterior, crush_anterior))
        else:
            crush = 0.0
        red = {"wedge": float(wedge), "biconcave": float(bicon), "crush": float(crush)}
        kind = max(red, key=lambda k: red[k])
        reduction = red[kind]
        grade = genant_grade(reduction)
        out.append(
            VertebraGrade(
                heights_mm={
                    "anterior": float(ha[i]),
                    "middle": float(hm[i]),
                    "posterior": float(hp[i]),
                },
                reductions=red,
                reduction=reduction,
                genant_grade=grade,
                deformity=kind if grade > 0 else "none",
                fracture_probability=fracture_probability(reduction, center, scale),
                posterior_limit_mm=float(shape_hp[i]) if shape_hp[i] < hp[i] else None,
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
