"""Calibrate the vertebra fracture probability on synthetic validation studies.

The probability is logistic in the vertebra's height reduction (``spinevcf.grading``):
``p = 1 / (1 + exp(-(reduction - center) / scale))``. This script runs the committed models
on validation studies (seeds disjoint from training and from the evaluation set), matches
predictions to truth, fits ``scale`` by maximum likelihood (Platt scaling) with ``center`` pinned to the Genant
grade-1 threshold (0.20: a probability of 0.5 or more exactly when the grade is 1 or more;
``--free-center`` fits both, as before)
on (predicted reduction, truth grade >= 1) of the matched bodies the application assesses
(a not-assessable body gets no probability), and writes them into
``model_repository/vertebra_detector_2d/spinevcf.json`` as ``calibration``.

It also reports, on the same matched pairs, the linear-weighted kappa of the Genant grades
(predicted vs truth, same pairs) and, with ``--dump``, writes every study's true and
predicted labels and heights; ``--from-dump`` refits from such a file (the reductions are
recomputed from the heights with the current grading rule) without running the models.

Usage::

    python scripts/calibrate.py --seeds 100100 100160 [--write] [--dump pairs.json]
    python scripts/calibrate.py --from-dump pairs.json [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from spinevcf.evaluate import match_study, roc_auc, weighted_kappa
from spinevcf.grading import GRADE_THRESHOLDS, genant_grade, grade_column
from spinevcf.pipeline import Pipeline, default_model_repository
from spinevcf.synth import SynthConfig, generate_case

#: The calibration studies come from the generator's default population (its fracture
#: prevalence), the same population as the evaluation set, so that the probabilities mean
#: what they say there; a site would recalibrate on its own prevalence.


def _nll(params: np.ndarray, r: np.ndarray, y: np.ndarray) -> float:
    center, log_scale = params
    z = (r - center) / np.exp(log_scale)
    # log(1 + exp(-z)) for positives, log(1 + exp(z)) for negatives, numerically stable.
    return float(np.sum(np.logaddexp(0.0, np.where(y > 0, -z, z))))


def run_studies(seeds: tuple[int, int], repo: Path) -> list[dict[str, Any]]:
    """Run the pipeline on the validation studies; per study its truth, prediction and matches."""
    pipe = Pipeline(repo)
    studies = []
    for seed in range(*seeds):
        case = generate_case(seed, SynthConfig())
        rec = pipe.run(case.volume).record
        m = match_study(case.truth, rec)
        studies.append(
            {
                "seed": seed,
                "pairs": [list(pair) for pair in m.pairs],
                "truth": [
                    {"label": v.label, "heights_mm": v.heights_mm, "genant_grade": v.genant_grade}
                    for v in case.truth.vertebrae
                ],
                "prediction": [
                    {
                        "label": v.label,
                        "heights_mm": v.heights_mm,
                        "genant_grade": v.genant_grade,
                        "assessment": v.assessment,
                    }
                    for v in rec.vertebrae
                ],
                "fractures_intended": case.phantom.info["fractures_intended"],
            }
        )
        print(f"seed {seed}: {len(m.pairs)} matched vertebrae", flush=True)
    pipe.close()
    return studies


def predicted_reductions(study: dict[str, Any]) -> list[float | None]:
    """Height reduction of every predicted vertebra, ``None`` where not assessable.

    Graded with :func:`spinevcf.grading.grade_column` over the assessable bodies only, as the
    pipeline does, so a dump can be refitted after a change of the grading rule.
    """
    pred = study["prediction"]
    idx = [i for i, v in enumerate(pred) if v.get("assessment", "assessed") == "assessed"]
    grades = grade_column([pred[i]["label"] for i in idx], [pred[i]["heights_mm"] for i in idx])
    out: list[float | None] = [None] * len(pred)
    for i, g in zip(idx, grades, strict=True):
        out[i] = g.reduction
    return out


def fit_calibration(studies: list[dict[str, Any]], *, free_center: bool = False) -> dict[str, Any]:
    """Platt fit on the matched, assessable predictions; recall, level accuracy, AUC, kappa.

    Args:
        studies: the per-study pairs (:func:`run_studies` or a ``--dump`` file).
        free_center: fit the centre too (by default it is the grade-1 threshold).
    """
    red, lab, grade_true, grade_pred = [], [], [], []
    n_true = n_matched = n_level_ok = n_not_assessed = 0
    for st in studies:
        truth, pred = st["truth"], st["prediction"]
        reductions = predicted_reductions(st)
        n_true += len(truth)
        n_matched += len(st["pairs"])
        for t, p in st["pairs"]:
            n_level_ok += truth[t]["label"] == pred[p]["label"]
            if reductions[p] is None:
                # Not assessable: the application gives it no probability (and never uses it
                # in the patient's), so it is no calibration sample.
                n_not_assessed += 1
                continue
            red.append(reductions[p])
            lab.append(1.0 if (truth[t]["genant_grade"] or 0) >= 1 else 0.0)
            grade_true.append(int(truth[t]["genant_grade"] or 0))
            grade_pred.append(genant_grade(reductions[p]))
    r_arr, y_arr = np.asarray(red), np.asarray(lab)
    free = minimize(_nll, x0=np.array([0.2, np.log(0.02)]), args=(r_arr, y_arr), method="Nelder-Mead")
    if free_center:
        center, scale = float(free.x[0]), float(np.exp(free.x[1]))
    else:
        # The 50 % point is pinned to the Genant grade-1 threshold, so that the probability and
        # the grade never contradict each other (p >= 0.5 exactly when grade >= 1); only the
        # steepness is fitted.
        center = GRADE_THRESHOLDS[0]
        pinned = minimize(
            lambda x: _nll(np.array([center, x[0]]), r_arr, y_arr), x0=np.array([np.log(0.02)]), method="Nelder-Mead"
        )
        scale = float(np.exp(pinned.x[0]))
    return {
        "calibration": [round(center, 5), round(scale, 5)],
        "center_pinned_to_grade_1": not free_center,
        "unconstrained_fit": [round(float(free.x[0]), 5), round(float(np.exp(free.x[1])), 5)],
        "validation": {
            "recall": round(n_matched / max(1, n_true), 4),
            "level_accuracy": round(n_level_ok / max(1, n_matched), 4),
            "reduction_auc": round(float(roc_auc(y_arr.astype(bool), r_arr)), 4),
            "grade_kappa": round(float(weighted_kappa(grade_true, grade_pred) or float("nan")), 4),
        },
        "pairs": int(len(y_arr)),
        "positives": int(y_arr.sum()),
        "not_assessable_pairs": n_not_assessed,
    }


def main() -> int:
    """Collect (reduction, label) pairs and fit the logistic calibration."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=(100100, 100160), metavar=("START", "STOP"))
    ap.add_argument("--write", action="store_true", help="store the result in the detector's spinevcf.json")
    ap.add_argument("--models", type=Path, default=None, help="model repository (default: the committed one)")
    ap.add_argument("--dump", type=Path, default=None, help="write per-study labels and heights (JSON) here")
    ap.add_argument(
        "--from-dump", type=Path, default=None, help="refit from an earlier --dump instead of running the models"
    )
    ap.add_argument(
        "--free-center", action="store_true", help="fit the centre too (default: pinned to the grade-1 threshold)"
    )
    args = ap.parse_args()
    repo = args.models or default_model_repository()
    if args.from_dump:
        studies = json.loads(args.from_dump.read_text())
        seeds = [min(st["seed"] for st in studies), max(st["seed"] for st in studies) + 1]
        command = f"python scripts/calibrate.py --seeds {seeds[0]} {seeds[1]} --dump D; python scripts/calibrate.py --from-dump D --write"
    else:
        studies = run_studies(tuple(args.seeds), repo)
        seeds = list(args.seeds)
        command = f"python scripts/calibrate.py --seeds {seeds[0]} {seeds[1]} --write"
        regraded = [
            [None if r is None else genant_grade(r) for r in predicted_reductions(st)] for st in studies
        ]
        mismatch = sum(
            g != v["genant_grade"] for st, gs in zip(studies, regraded, strict=True)
            for g, v in zip(gs, st["prediction"], strict=True)
        )  # fmt: skip
        if mismatch:
            print(f"warning: {mismatch} regraded predictions differ from the pipeline's grades", file=sys.stderr)
    out = fit_calibration(studies, free_center=args.free_center) | {"seeds": seeds}
    print(json.dumps(out, indent=2))
    if args.dump:
        args.dump.write_text(json.dumps(studies) + "\n")
        print(f"per-study heights written to {args.dump}")
    if args.write:
        path = repo / "vertebra_detector_2d" / "spinevcf.json"
        cfg = json.loads(path.read_text())
        cfg["calibration"] = out["calibration"]
        cfg["calibration_fit"] = {k: v for k, v in out.items() if k != "calibration"} | {"command": command}
        path.write_text(json.dumps(cfg, indent=2) + "\n")
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
