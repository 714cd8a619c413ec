"""Compare the normative grading rule with the old one on one pipeline run.

Reads the per-study dump of ``scripts/calibrate.py --dump`` (true and predicted labels and
heights of the validation studies) and grades truth and predictions with both rules:

* ``old``: own shape against 1, crush against neighbours' Hp grown by 3 %/level
  (``old_rule_reductions`` in ``scripts/normative_morphometry.py``);
* ``normative``: :func:`spinevcf.grading.grade_column` (level-specific normal anatomy).

For each rule it prints the linear-weighted kappa of predicted vs true Genant grades over
matched pairs, the vertebra ROC AUC of the predicted reduction against true grade >= 1, and
the number of true positives. A prediction that is not assessable counts as grade 0 and
reduction 0, as in ``scripts/calibrate.py``.

With ``--truth-seeds START STOP`` it instead generates those synthetic studies and prints,
for both rules, the confusion of the generator's intended grade
(``phantom.info["fractures_intended"]``) against the grade of the truth keypoints: bodies the
generator did not fracture should stay grade 0, intended fractures keep their grade.

Usage::

    python scripts/compare_grading_rules.py pairs.json
    python scripts/compare_grading_rules.py --truth-seeds 0 40
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from spinevcf.evaluate import roc_auc, weighted_kappa
from spinevcf.grading import genant_grade, grade_column

_SCRIPT = Path(__file__).resolve().parent / "normative_morphometry.py"


def _old_rule_module() -> Any:
    spec = importlib.util.spec_from_file_location("normative_morphometry", _SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _reductions(rule: str, vertebrae: list[dict[str, Any]], old: Any) -> list[float | None]:
    """Reduction per vertebra (None where not assessable); only assessable bodies are neighbours."""
    idx = [i for i, v in enumerate(vertebrae) if v.get("assessment", "assessed") == "assessed"]
    labels = [vertebrae[i]["label"] for i in idx]
    hs = [vertebrae[i]["heights_mm"] for i in idx]
    if rule == "old":
        arr = [np.array([h["anterior"], h["middle"], h["posterior"]]) for h in hs]
        red = old.old_rule_reductions(labels, arr)
    else:
        red = [g.reduction for g in grade_column(labels, hs)]
    out: list[float | None] = [None] * len(vertebrae)
    for i, r in zip(idx, red, strict=True):
        out[i] = float(r)
    return out


def compare(studies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Kappa, AUC and positives per rule."""
    old = _old_rule_module()
    result = {}
    for rule in ("old", "normative"):
        gt, gp, y, score = [], [], [], []
        for st in studies:
            rt = _reductions(rule, st["truth"], old)
            rp = _reductions(rule, st["prediction"], old)
            for t, p in st["pairs"]:
                true_grade = genant_grade(rt[t] or 0.0)
                pred_red = rp[p] if rp[p] is not None else 0.0
                gt.append(true_grade)
                gp.append(genant_grade(pred_red))
                y.append(true_grade >= 1)
                score.append(pred_red)
        result[rule] = {
            "pairs": len(gt),
            "true_positives": int(sum(y)),
            "grade_kappa": round(float(weighted_kappa(gt, gp) or float("nan")), 4),
            "reduction_auc": round(float(roc_auc(y, score) or float("nan")), 4),
            "predicted_positives": int(sum(g >= 1 for g in gp)),
        }
    return result


def truth_confusion(seeds: range) -> dict[str, Any]:
    """Intended vs truth grade of synthetic studies, per rule and deformity type."""
    from spinevcf.synth import generate_case

    old = _old_rule_module()
    conf: dict[str, dict[str, list[list[int]]]] = {}
    for seed in seeds:
        case = generate_case(seed)
        intended = case.phantom.info["fractures_intended"]
        vertebrae = [{"label": v.label, "heights_mm": v.heights_mm} for v in case.truth.vertebrae]
        for rule in ("old", "normative"):
            for v, r in zip(vertebrae, _reductions(rule, vertebrae, old), strict=True):
                it = intended.get(v["label"], {"deformity": "none", "reduction": 0.0})
                planned = genant_grade(it["reduction"]) if it["deformity"] != "none" else 0
                kind = it["deformity"] if planned else "none"
                table = conf.setdefault(rule, {}).setdefault(kind, [[0] * 4 for _ in range(4)])
                table[planned][genant_grade(r or 0.0)] += 1
    return {"seeds": [seeds.start, seeds.stop], "rows: intended grade, columns: truth grade": conf}


def main() -> int:
    """Print the comparison as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump", type=Path, nargs="?", help="output of scripts/calibrate.py --dump")
    ap.add_argument("--truth-seeds", type=int, nargs=2, metavar=("START", "STOP"), default=None)
    args = ap.parse_args()
    if args.truth_seeds:
        result = truth_confusion(range(*args.truth_seeds))
        print(f"seeds {result['seeds'][0]}-{result['seeds'][1] - 1}; rows: intended grade 0-3, columns: truth grade 0-3")
        for rule, by_kind in result["rows: intended grade, columns: truth grade"].items():
            for kind, rows in sorted(by_kind.items()):
                print(f"{rule:9s} {kind:9s} " + " | ".join(" ".join(f"{x:4d}" for x in row) for row in rows))
        return 0
    if args.dump is None:
        ap.error("give a dump file or --truth-seeds")
    print(json.dumps(compare(json.loads(args.dump.read_text())), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
