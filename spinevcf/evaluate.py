"""Evaluation of results.json files against truth.json files (the shared schema).

Layout: ``truth_dir/<case>/truth.json`` and ``results_dir/<case>/results.json`` (or
``results_dir/<StudyInstanceUID>/results.json``, as ``spinevcf run`` writes them); cases are
matched by folder name. Every truth case is evaluated; a case without results (or with a
``status`` other than ``"ok"``) counts as a study with no detections and patient
probability 0, and is reported in ``counts["missing_results"]`` / ``counts["failed_results"]``.
Results without a truth case are ignored and counted in ``counts["extra_results"]``.

Matching, per study: Hungarian assignment (:func:`scipy.optimize.linear_sum_assignment`)
of predicted to true vertebrae on centre distance; a pair is a match only when the
distance is at most half the true vertebra's height (mean of its three heights / 2).
Unmatched predictions whose centre lies within that radius of a partially visible
vertebra listed in ``truth.extra["partial"]`` (``[{"label", "center_lps_mm"}]``; radius =
:data:`PARTIAL_RADIUS_FACTOR` times the median match radius of the study, i.e. a body height, or
:data:`DEFAULT_PARTIAL_RADIUS_MM`) are neither true
nor false positives: the truth cannot say whether the body should have been found. The
same holds for a body without a name in :data:`spinevcf.schema.LEVELS` listed in
``truth.extra["unnamed"]`` (the mobile S1 of a lumbarised sacrum; ``complete: false``
when it is cut too). Each such prediction belongs to the nearest of those bodies.

Cut bodies: a fracture call (assessed with Genant grade >= 1, or fracture probability >=
:data:`OPERATING_THRESHOLD`) on a prediction that belongs to a cut body (partial, or an
unnamed body that is not complete) is a false fracture: the body cannot be measured. It is
counted in ``counts["fracture_calls_on_cut_bodies"]``; a not-assessable or grade-0
detection of a cut body stays ignored.

Metrics:

* detection precision ``TP / (TP + FP)``, recall ``TP / n_true``;
* mean centre error and mean keypoint error (mm, over the 6 keypoints) of matched pairs;
* level accuracy: share of matched pairs with the same label;
* level accuracy by the prediction's ``level_status`` (``level_accuracy_confident``,
  ``level_accuracy_uncertain``) and the share of matched names that are uncertain;
* vertebra-level fracture ROC AUC over all true vertebrae: truth ``genant_grade >= 1`` vs the
  matched prediction's ``fracture_probability`` (0 when unmatched or not assessable; when
  an assessed prediction lacks it, 1.0 if its grade is >= 1 else 0.0). False-positive
  detections have no truth grade and are not part of it;
* assessability misses: matched predictions of complete true bodies that say
  ``not_assessable`` (still true positives for detection, probability 0 in the vertebra
  AUC, left out of the kappa) in ``counts["not_assessable_complete"]``;
* patient-level ROC AUC: ``patient_fractured`` (derived from the grades when absent) vs
  ``patient_fracture_probability`` as the application wrote it (cut bodies included;
  :func:`spinevcf.grading.patient_probability` of the vertebra probabilities only when a result lacks it);
* sensitivity / specificity at :data:`OPERATING_THRESHOLD`, vertebra and patient level, and
  the patient specificity at the highest threshold whose sensitivity is at least
  :data:`TARGET_PATIENT_SENSITIVITY` (``patient_specificity_at_sens90`` and the threshold
  ``patient_threshold_at_sens90``);
* linear-weighted Cohen's kappa of Genant grades over matched, assessed pairs.

An undefined metric (no positives, a single class, nothing matched) is ``None`` and the
reason is listed in ``EvaluationReport.notes``.

Example:
    >>> report = evaluate("truth", "results")  # doctest: +SKIP
    >>> print(report.format_table())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from spinevcf.errors import InputError
from spinevcf.grading import patient_probability
from spinevcf.schema import StudyRecord, VertebraRecord

__all__ = [
    "EvaluationReport",
    "StudyMatch",
    "evaluate",
    "match_study",
    "roc_auc",
    "weighted_kappa",
    "is_fracture_call",
    "specificity_at_sensitivity",
    "OPERATING_THRESHOLD",
    "TARGET_PATIENT_SENSITIVITY",
    "DEFAULT_PARTIAL_RADIUS_MM",
    "TRUTH_FILE",
    "RESULTS_FILE",
]

log = logging.getLogger(__name__)

#: Probability at or above which a vertebra / patient is called fractured.
OPERATING_THRESHOLD: float = 0.5
#: Patient sensitivity at which the patient specificity is also reported.
TARGET_PATIENT_SENSITIVITY: float = 0.90
#: Radius around a partially visible (cut) or unnamed body, in match radii (half a body
#: height): a full body height. The truth centre of a cut body is the centre of the whole
#: body, partly outside the scan; a detection of its visible part lies up to half a body
#: height from it, plus the detector's extrapolation beyond the scan's end.
PARTIAL_RADIUS_FACTOR: float = 2.0
#: Match radius around a partially visible vertebra when the study gives no other scale.
DEFAULT_PARTIAL_RADIUS_MM: float = 12.0
#: File names inside each case folder.
TRUTH_FILE: str = "truth.json"
RESULTS_FILE: str = "results.json"
_FRACTURE_GRADE = 1
_N_GRADES = 4


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float | None:
    """ROC AUC by the Mann-Whitney statistic (ties count one half); ``None`` for one class.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y = np.asarray(labels, dtype=bool)
    x = np.asarray(scores, dtype=np.float64)
    pos, neg = x[y], x[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def weighted_kappa(a: npt.ArrayLike, b: npt.ArrayLike, n_categories: int = _N_GRADES) -> float | None:
    """Linear-weighted Cohen's kappa of two integer ratings in ``0..n_categories-1``.

    Returns ``None`` when undefined (no pairs, or no expected disagreement because both
    raters use a single identical category).

    Example:
        >>> weighted_kappa([0, 1, 2, 3], [0, 1, 2, 3])
        1.0
    """
    ra = np.asarray(a, dtype=int)
    rb = np.asarray(b, dtype=int)
    if ra.size == 0 or ra.shape != rb.shape:
        return None
    obs = np.zeros((n_categories, n_categories))
    np.add.at(obs, (ra, rb), 1.0)
    obs /= obs.sum()
    exp = np.outer(obs.sum(axis=1), obs.sum(axis=0))
    idx = np.arange(n_categories)
    w = np.abs(idx[:, None] - idx[None, :]) / (n_categories - 1)
    denom = float((w * exp).sum())
    if denom <= 0:
        return None
    return float(1.0 - (w * obs).sum() / denom)


@dataclass
class StudyMatch:
    """Matching of one study's predictions to its truth.

    Attributes:
        case: case folder name.
        pairs: (truth index, prediction index) of matched vertebrae.
        unmatched_truth: truth indices without a match (false negatives).
        false_positives: prediction indices matching nothing.
        ignored: prediction indices matching only a partially visible vertebra (or an
            unnamed body; ``ignored_unnamed`` is the subset of those).
        ignored_unnamed: prediction indices of ``ignored`` that belong to an unnamed body.
        ignored_cut: prediction indices of ``ignored`` that belong to a cut body (partial,
            or an unnamed body that is not complete).
    """

    case: str
    pairs: list[tuple[int, int]] = field(default_factory=list)
    unmatched_truth: list[int] = field(default_factory=list)
    false_positives: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    ignored_unnamed: list[int] = field(default_factory=list)
    ignored_cut: list[int] = field(default_factory=list)
    cut_fracture_calls: int = 0


def _match_radius(v: VertebraRecord) -> float:
    h = v.heights_mm
    return float(np.mean([h["anterior"], h["middle"], h["posterior"]])) / 2.0


def match_study(truth: StudyRecord, pred: StudyRecord, case: str = "") -> StudyMatch:
    """Hungarian matching of ``pred`` vertebrae to ``truth`` vertebrae (see module doc).

    Args:
        truth: ground truth.
        pred: predictions.
        case: name used in the result.

    Returns:
        The :class:`StudyMatch`.
    """
    out = StudyMatch(case=case)
    nt, npred = len(truth.vertebrae), len(pred.vertebrae)
    radii = np.array([_match_radius(v) for v in truth.vertebrae])
    matched_pred: set[int] = set()
    if nt and npred:
        tc = np.stack([v.center for v in truth.vertebrae])
        pc = np.stack([v.center for v in pred.vertebrae])
        dist = np.linalg.norm(tc[:, None, :] - pc[None, :, :], axis=2)
        allowed = dist <= radii[:, None]
        big = 1e6 + dist.max()
        rows, cols = linear_sum_assignment(np.where(allowed, dist, big))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if allowed[r, c]:
                out.pairs.append((r, c))
                matched_pred.add(c)
    matched_truth = {r for r, _ in out.pairs}
    out.unmatched_truth = [i for i in range(nt) if i not in matched_truth]

    partial = _listed_centres(truth, case, "partial")
    unnamed = _listed_centres(truth, case, "unnamed")
    unnamed_items = (truth.extra or {}).get("unnamed") or []
    unnamed_cut = np.array([not bool(u.get("complete", False)) for u in unnamed_items], dtype=bool)
    others = np.concatenate([partial, unnamed])
    is_unnamed = np.arange(len(others)) >= len(partial)
    is_cut = np.concatenate([np.ones(len(partial), bool), unnamed_cut])
    partial_radius = PARTIAL_RADIUS_FACTOR * float(np.median(radii)) if nt else DEFAULT_PARTIAL_RADIUS_MM
    for j in range(npred):
        if j in matched_pred:
            continue
        c = pred.vertebrae[j].center
        d = np.linalg.norm(others - c[None, :], axis=1) if len(others) else np.zeros(0)
        if d.size and float(d.min()) <= partial_radius:
            k = int(np.argmin(d))
            out.ignored.append(j)
            if is_unnamed[k]:
                out.ignored_unnamed.append(j)
            if is_cut[k]:
                out.ignored_cut.append(j)
        else:
            out.false_positives.append(j)
    return out


def _listed_centres(truth: StudyRecord, case: str, key: str) -> npt.NDArray[np.float64]:
    """Centres of the bodies listed in ``truth.extra[key]`` ("partial" or "unnamed")."""
    items = (truth.extra or {}).get(key) or []
    try:
        pts = [np.asarray(p["center_lps_mm"], dtype=np.float64) for p in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{case}: truth extra.{key} entries need center_lps_mm: {exc}") from exc
    if any(p.shape != (3,) for p in pts):
        raise InputError(f"{case}: truth extra.{key} center_lps_mm must have 3 values")
    return np.stack(pts) if pts else np.zeros((0, 3))


def is_fracture_call(v: VertebraRecord) -> bool:
    """Whether a prediction calls a fracture: assessed and Genant >= 1, or probability >= threshold."""
    if not v.assessed:
        return False
    if v.genant_grade is not None and v.genant_grade >= _FRACTURE_GRADE:
        return True
    return v.fracture_probability is not None and v.fracture_probability >= OPERATING_THRESHOLD


def _vertebra_probability(v: VertebraRecord) -> float:
    if not v.assessed:
        return 0.0
    if v.fracture_probability is not None:
        return float(v.fracture_probability)
    return 1.0 if v.fractured else 0.0


def _truth_patient(truth: StudyRecord) -> bool:
    if truth.patient_fractured is not None:
        return bool(truth.patient_fractured)
    return any(v.fractured for v in truth.vertebrae)


def _pred_patient_probability(pred: StudyRecord) -> float:
    if pred.patient_fracture_probability is not None:
        return float(pred.patient_fracture_probability)
    return patient_probability([_vertebra_probability(v) for v in pred.vertebrae])


def _sens_spec(labels: list[bool], probs: list[float]) -> tuple[float | None, float | None]:
    y = np.asarray(labels, dtype=bool)
    called = np.asarray(probs, dtype=np.float64) >= OPERATING_THRESHOLD
    sens = float(called[y].mean()) if y.any() else None
    spec = float((~called[~y]).mean()) if (~y).any() else None
    return sens, spec


def specificity_at_sensitivity(
    labels: list[bool], probs: list[float], target: float = TARGET_PATIENT_SENSITIVITY
) -> tuple[float | None, float | None]:
    """Specificity at the highest threshold whose sensitivity is at least ``target``.

    A case is called positive when its score is at or above the threshold.

    Returns:
        (specificity, threshold); ``(None, None)`` without both classes.

    Example:
        >>> specificity_at_sensitivity([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1], 0.9)
        (0.5, 0.4)
    """
    y = np.asarray(labels, dtype=bool)
    x = np.asarray(probs, dtype=np.float64)
    if not y.any() or y.all():
        return None, None
    pos = np.sort(x[y])[::-1]
    k = int(np.ceil(target * pos.size - 1e-9))  # positives that must be called
    thr = float(pos[max(k, 1) - 1])
    spec = float((x[~y] < thr).mean())
    return spec, thr


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


@dataclass
class EvaluationReport:
    """Metrics of an evaluation run (``None`` = undefined, see ``notes``)."""

    metrics: dict[str, float | None]
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    studies: list[StudyMatch] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (metrics, counts, notes and per-study match counts)."""
        return {
            "metrics": self.metrics,
            "counts": self.counts,
            "notes": self.notes,
            "studies": [
                {
                    "case": s.case,
                    "tp": len(s.pairs),
                    "fn": len(s.unmatched_truth),
                    "fp": len(s.false_positives),
                    "ignored_partial": len(s.ignored) - len(s.ignored_unnamed),
                    "ignored_unnamed": len(s.ignored_unnamed),
                    "fracture_calls_on_cut_bodies": s.cut_fracture_calls,
                }
                for s in self.studies
            ],
        }

    def format_table(self) -> str:
        """Human-readable two-column table of counts and metrics."""
        lines = [f"{'metric':<34}{'value':>10}", "-" * 44]
        for k, v in self.counts.items():
            lines.append(f"{k:<34}{v:>10d}")
        for k, v in self.metrics.items():
            lines.append(f"{k:<34}{'n/a' if v is None else f'{v:.4f}':>10}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _load_cases(folder: Path, filename: str) -> dict[str, Path]:
    return {p.parent.name: p for p in sorted(folder.glob(f"*/{filename}"))}


def evaluate(truth_dir: str | Path, results_dir: str | Path) -> EvaluationReport:
    """Evaluate every case of ``truth_dir`` against ``results_dir`` (see module doc).

    Args:
        truth_dir: folder of ``<case>/truth.json``.
        results_dir: folder of ``<case>/results.json``.

    Returns:
        The :class:`EvaluationReport`.

    Raises:
        InputError: a folder is missing, holds no truth case, or a file is unreadable.
    """
    tdir, rdir = Path(truth_dir), Path(results_dir)
    for d, what in ((tdir, "truth"), (rdir, "results")):
        if not d.is_dir():
            raise InputError(f"{what} folder not found: {d}")
    truths = _load_cases(tdir, TRUTH_FILE)
    results = _load_cases(rdir, RESULTS_FILE)
    if not truths:
        raise InputError(f"no <case>/{TRUTH_FILE} under {tdir}")

    notes: list[str] = []
    counts = dict.fromkeys(
        (
            "studies",
            "true_vertebrae",
            "predicted_vertebrae",
            "true_positives",
            "false_positives",
            "false_negatives",
            "ignored_partial",
            "ignored_unnamed",
            "fracture_calls_on_cut_bodies",
            "not_assessable_complete",
            "not_assessable_cut",
            "missing_results",
            "failed_results",
            "extra_results",
        ),
        0,
    )
    # Results may be in folders named after the case (as truth) or after the study UID
    # (as ``spinevcf run`` names them): index the latter by the truth's case name.
    by_uid = {_load(p).study_instance_uid: p for c, p in results.items() if c not in truths}
    for case, tpath in truths.items():
        if case not in results:
            uid = _load(tpath).study_instance_uid
            if uid and uid in by_uid:
                path = by_uid.pop(uid)
                results = {c: p for c, p in results.items() if p != path}
                results[case] = path
    counts["extra_results"] = len(set(results) - set(truths))
    centre_err: list[float] = []
    kp_err: list[float] = []
    level_ok: list[bool] = []
    level_ok_by_status: dict[str, list[bool]] = {"confident": [], "uncertain": []}
    grades_t: list[int] = []
    grades_p: list[int] = []
    vert_y: list[bool] = []
    vert_p: list[float] = []
    pat_y: list[bool] = []
    pat_p: list[float] = []
    studies: list[StudyMatch] = []

    for case, tpath in truths.items():
        truth = _load(tpath)
        if case not in results:
            counts["missing_results"] += 1
            pred = StudyRecord(truth.study_instance_uid, truth.series_instance_uid, [], status="missing")
        else:
            pred = _load(results[case])
            if pred.status != "ok":
                counts["failed_results"] += 1
                pred = StudyRecord(pred.study_instance_uid, pred.series_instance_uid, [], status=pred.status)
        m = match_study(truth, pred, case)
        studies.append(m)
        counts["studies"] += 1
        counts["true_vertebrae"] += len(truth.vertebrae)
        counts["predicted_vertebrae"] += len(pred.vertebrae)
        counts["true_positives"] += len(m.pairs)
        counts["false_positives"] += len(m.false_positives)
        counts["false_negatives"] += len(m.unmatched_truth)
        counts["ignored_partial"] += len(m.ignored) - len(m.ignored_unnamed)
        counts["ignored_unnamed"] += len(m.ignored_unnamed)
        m.cut_fracture_calls = sum(is_fracture_call(pred.vertebrae[j]) for j in m.ignored_cut)
        counts["fracture_calls_on_cut_bodies"] += m.cut_fracture_calls
        counts["not_assessable_cut"] += sum(not pred.vertebrae[j].assessed for j in m.ignored_cut)
        prob_of_truth = dict.fromkeys(range(len(truth.vertebrae)), 0.0)
        for ti, pi in m.pairs:
            tv, pv = truth.vertebrae[ti], pred.vertebrae[pi]
            centre_err.append(float(np.linalg.norm(tv.center - pv.center)))
            kp_err.extend(np.linalg.norm(tv.keypoints - pv.keypoints, axis=1).tolist())
            level_ok.append(tv.label == pv.label)
            if pv.level_status in level_ok_by_status:
                level_ok_by_status[pv.level_status].append(tv.label == pv.label)
            prob_of_truth[ti] = _vertebra_probability(pv)
            if not pv.assessed:
                counts["not_assessable_complete"] += 1
                continue
            if tv.genant_grade is not None and pv.genant_grade is not None:
                grades_t.append(tv.genant_grade)
                grades_p.append(pv.genant_grade)
        for ti, tv in enumerate(truth.vertebrae):
            vert_y.append(tv.fractured)
            vert_p.append(prob_of_truth[ti])
        pat_y.append(_truth_patient(truth))
        pat_p.append(0.0 if pred.status != "ok" else _pred_patient_probability(pred))

    tp, fp = counts["true_positives"], counts["false_positives"]
    metrics: dict[str, float | None] = {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / counts["true_vertebrae"] if counts["true_vertebrae"] else None,
        "mean_center_error_mm": _mean(centre_err),
        "mean_keypoint_error_mm": _mean(kp_err),
        "level_accuracy": _mean([float(x) for x in level_ok]),
        "level_accuracy_confident": _mean([float(x) for x in level_ok_by_status["confident"]]),
        "level_accuracy_uncertain": _mean([float(x) for x in level_ok_by_status["uncertain"]]),
        "uncertain_level_share": len(level_ok_by_status["uncertain"]) / len(level_ok) if level_ok else None,
        "vertebra_auc": roc_auc(vert_y, vert_p),
        "patient_auc": roc_auc(pat_y, pat_p),
    }
    metrics["vertebra_sensitivity"], metrics["vertebra_specificity"] = _sens_spec(vert_y, vert_p)
    metrics["patient_sensitivity"], metrics["patient_specificity"] = _sens_spec(pat_y, pat_p)
    metrics["patient_specificity_at_sens90"], metrics["patient_threshold_at_sens90"] = (
        specificity_at_sensitivity(pat_y, pat_p)
    )
    metrics["grade_kappa_linear"] = weighted_kappa(grades_t, grades_p)

    if tp + fp == 0:
        notes.append("precision undefined: no counted detections")
    if not counts["true_vertebrae"]:
        notes.append("recall undefined: no true vertebrae")
    if not tp:
        notes.append("centre/keypoint errors, level accuracy and kappa undefined: no matched pairs")
    elif metrics["grade_kappa_linear"] is None:
        notes.append("grade kappa undefined: truth and predictions all share one single grade")
    for level, ys in (("vertebra", vert_y), ("patient", pat_y)):
        npos = int(np.sum(ys))
        if npos == 0 or npos == len(ys):
            cls = "fractured" if npos else "non-fractured"
            notes.append(f"{level} AUC undefined: every {level} is {cls} (one class only)")
    log.info("evaluated %d studies", counts["studies"])
    return EvaluationReport(metrics=metrics, counts=counts, notes=notes, studies=studies)


def _load(path: Path) -> StudyRecord:
    try:
        return StudyRecord.load(path)
    except (OSError, json.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
        raise InputError(f"cannot read {path.parent.name}/{path.name}: {exc}") from exc
