"""Choose the detector's keypoint search radius on validation studies.

The radius (``keypoint_search_cells`` in the detector's ``spinevcf.json``) decides how far
a keypoint regressed from the body centre may move to a peak of its own keypoint map
(``spinevcf.detector.refine_keypoints``). It is a decoding parameter, so it is chosen like
one: on synthetic validation studies (seeds 100100-100159, the calibration seeds; never the
evaluation seeds 900000-900049), by the linear-weighted kappa of the Genant grades (the
grade is what the radius changes), then by the ROC AUC of the measured height reduction.

Usage::

    python scripts/select_keypoint_radius.py [--models DIR] [--seeds 100100 100160] [--radii 0 1 2 3 4]

Prints one line per radius; writes nothing (set the chosen value in
``configs/detector.yaml`` and the exported ``spinevcf.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from spinevcf.evaluate import match_study, roc_auc, weighted_kappa
from spinevcf.pipeline import Pipeline, default_model_repository
from spinevcf.synth import SynthConfig, generate_case


def main() -> int:
    """Evaluate each radius on the validation studies."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=Path, default=None)
    ap.add_argument("--seeds", type=int, nargs=2, default=(100100, 100160), metavar=("START", "STOP"))
    ap.add_argument("--radii", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0])
    args = ap.parse_args()
    pipe = Pipeline(args.models or default_model_repository())
    base = pipe.detector_config
    acc: dict[float, dict[str, list[float]]] = {
        r: {"reduction": [], "fractured": [], "kp_err": [], "grade_true": [], "grade_pred": []} for r in args.radii
    }
    for seed in range(*args.seeds):
        case = generate_case(seed, SynthConfig())
        curve = pipe.localize(case.volume)
        if curve is None:
            continue
        cpr = pipe.reformat(case.volume, curve)
        for r in args.radii:
            pipe.detector_config = dataclasses.replace(base, keypoint_search_cells=r)
            record = pipe.grade(case.volume, cpr, pipe.detect(cpr, case.volume))
            a = acc[r]
            for t, p in match_study(case.truth, record).pairs:
                tv, pv = case.truth.vertebrae[t], record.vertebrae[p]
                reductions = pv.height_reductions_pct or {}
                a["reduction"].append(max(reductions.values()) if reductions else 0.0)
                a["fractured"].append(float(tv.fractured))
                a["kp_err"].append(float(np.linalg.norm(tv.keypoints - pv.keypoints, axis=1).mean()))
                a["grade_true"].append(tv.genant_grade)
                a["grade_pred"].append(pv.genant_grade)
        pipe.detector_config = base
    for r in args.radii:
        a = acc[r]
        auc = roc_auc(np.asarray(a["fractured"], dtype=bool), np.asarray(a["reduction"]))
        kappa = weighted_kappa(a["grade_true"], a["grade_pred"])
        kappa = float("nan") if kappa is None else kappa
        print(
            f"radius {r:g} cells: {len(a['fractured'])} matched vertebrae ({int(sum(a['fractured']))} fractured), "
            f"kappa {kappa:.4f}, reduction AUC {auc:.4f}, keypoint error {np.mean(a['kp_err']):.3f} mm"
        )
    pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
