"""Calibrate the vertebra fracture probability on synthetic validation studies.

The probability is logistic in the vertebra's height reduction (``spinevcf.grading``):
``p = 1 / (1 + exp(-(reduction - center) / scale))``. This script runs the committed models
on validation studies (seeds disjoint from training and from the evaluation set), matches
predictions to truth, fits ``center`` and ``scale`` by maximum likelihood (Platt scaling)
on (predicted reduction, truth grade >= 1), and writes them into
``model_repository/vertebra_detector_2d/spinevcf.json`` as ``calibration``.

Usage::

    python scripts/calibrate.py --seeds 100100 100160 [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from spinevcf.evaluate import match_study, roc_auc
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


def main() -> int:
    """Collect (reduction, label) pairs and fit the logistic calibration."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=(100100, 100160), metavar=("START", "STOP"))
    ap.add_argument("--write", action="store_true", help="store the result in the detector's spinevcf.json")
    ap.add_argument("--models", type=Path, default=None, help="model repository (default: the committed one)")
    args = ap.parse_args()
    repo = args.models or default_model_repository()
    pipe = Pipeline(repo)
    red, lab = [], []
    n_true = n_matched = n_level_ok = 0
    for seed in range(*args.seeds):
        case = generate_case(seed, SynthConfig())
        rec = pipe.run(case.volume).record
        m = match_study(case.truth, rec)
        n_true += len(case.truth.vertebrae)
        n_matched += len(m.pairs)
        n_level_ok += sum(case.truth.vertebrae[t].label == rec.vertebrae[p].label for t, p in m.pairs)
        for t, p in m.pairs:
            r = rec.vertebrae[p].height_reductions_pct or {}
            red.append(max(r.values()) / 100.0 if r else 0.0)
            lab.append(1.0 if case.truth.vertebrae[t].fractured else 0.0)
        print(f"seed {seed}: {len(m.pairs)} matched vertebrae", flush=True)
    r_arr, y_arr = np.asarray(red), np.asarray(lab)
    fit = minimize(_nll, x0=np.array([0.2, np.log(0.02)]), args=(r_arr, y_arr), method="Nelder-Mead")
    center, scale = float(fit.x[0]), float(np.exp(fit.x[1]))
    out = {
        "calibration": [round(center, 5), round(scale, 5)],
        "validation": {
            "recall": round(n_matched / max(1, n_true), 4),
            "level_accuracy": round(n_level_ok / max(1, n_matched), 4),
            "reduction_auc": round(float(roc_auc(y_arr.astype(bool), r_arr)), 4),
        },
        "pairs": int(len(y_arr)),
        "positives": int(y_arr.sum()),
        "seeds": list(args.seeds),
    }
    print(json.dumps(out, indent=2))
    if args.write:
        path = repo / "vertebra_detector_2d" / "spinevcf.json"
        cfg = json.loads(path.read_text())
        cfg["calibration"] = out["calibration"]
        cfg["calibration_fit"] = {k: v for k, v in out.items() if k != "calibration"} | {
            "command": f"python scripts/calibrate.py --seeds {args.seeds[0]} {args.seeds[1]} --write"
        }
        path.write_text(json.dumps(cfg, indent=2) + "\n")
        print(f"written to {path}")
    pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
