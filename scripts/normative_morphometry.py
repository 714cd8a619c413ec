"""Derive level-specific normal vertebral shape ratios from real expert keypoints.

Source: the anchor-free-genant annotations (Zakharov et al., Medical Image Analysis 83,
2023, doi:10.1016/j.media.2022.102646; Pisov et al., MICCAI 2020): two experts' six
endplate keypoints of every vertebra in 100 chest CTs of MosMed CTLungCa-500 (patients
50-75 years), voxel coordinates, licence CC BY-NC 4.0. The files are read from
``../shared/data/anchor-free-genant`` and never copied; only derived figures are written.

For every level with at least :data:`MIN_VERTEBRAE` bodies it computes, on the mean of the
two experts' heights per body, the iteratively 3-SD-trimmed mean and SD (as in the
EVOS / Rea et al. 1998 reference-range derivations, so that fractured bodies in the set do
not widen the normal range) of

* ``wedge`` Ha/Hp, ``concavity`` Hm/max(Ha, Hp), and
* ``posterior_step`` Hp(level) / Hp(level above), over patients with both levels annotated.

Levels the chest CTs do not cover well (L3-L5, the cervical spine) get published values or
stated estimates (:data:`LITERATURE`). Heights are taken in voxel units: the files hold no
spacing. The script quantifies how much an anisotropic spacing (slice spacing r times the
in-plane pixel) would move the ratios, reports the expert-1-vs-expert-2 spread (the human
ceiling) and compares the new grading rule with the old one on these real columns
(2-fold cross-validation over patients: normals from one half, calls on the other).

Usage::

    python scripts/normative_morphometry.py            # print the report
    python scripts/normative_morphometry.py --write    # also write spinevcf/normative_table.py
    python scripts/normative_morphometry.py --check    # fail if the committed table differs
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from spinevcf.evaluate import weighted_kappa
from spinevcf.grading import GRADE_THRESHOLDS, genant_grade, grade_column
from spinevcf.normative import Normative
from spinevcf.schema import LEVEL_INDEX, LEVELS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "anchor-free-genant"
TABLE_MODULE = REPO / "spinevcf" / "normative_table.py"

#: The two experts every file has (a third annotated 66 of the 100 CTs; used for the ceiling only).
EXPERTS: tuple[str, str] = ("expert1", "expert2")
EXTRA_EXPERT = "expert3"
#: Fewest bodies of a level (or level pairs) for the data to define its normal value.
MIN_VERTEBRAE = 15
#: Trimming half-width in SDs (Eastell 1991 and McCloskey 1993 define deformity at 3 SD).
TRIM_SD = 3.0
#: MAD -> SD for a normal distribution.
MAD_TO_SD = 1.4826
#: Slice-to-pixel spacing ratios: plausible for these thin-slice chest CTs (the keypoints'
#: endplate depth / posterior height in voxels matches the anatomical ratio within about 15 %),
#: and a stress range.
PLAUSIBLE_ANISOTROPY: tuple[float, float] = (0.8, 1.25)
STRESS_ANISOTROPY: tuple[float, float] = (0.6, 1.6)
#: Cross-validation of the call rates on the real columns.
CV_FOLDS = 2
CV_SEED = 20261203
#: Rounding of the committed figures.
DIGITS = 4

_PANJABI = (
    "mean lumbar posterior heights L2 25.8, L3 26.3, L4 26.5, L5 26.0 mm (spinevcf.synth.anatomy, "
    "compiled from Panjabi et al. 1992 and Zhou et al. 2000), L5 checked against Cook & Baker 2021 "
    "(Int J Spine Surg 15:1072, CT of 196 patients: L5 Hp 26.3 mm)"
)
_STEP_SD_NOTE = "SD set to the data's thoracolumbar step SD"

#: Normal values where the chest CTs cannot give them: (center, sd, source).
LITERATURE: dict[str, dict[str, tuple[float, float, str]]] = {
    "wedge": {
        "L3": (
            1.00,
            0.06,
            "estimate from Eur Spine J 2010;19:768-773 (doi:10.1007/s00586-009-1256-6, Table 1; 120 women, "
            "120 men, 20-80 years): L3 body sagittal wedging -1.1 deg (women) / +1.3 deg (men), i.e. Ha about "
            "Hp; SD an estimate",
        ),
        "L4": (
            1.04,
            0.06,
            "estimate from doi:10.1007/s00586-009-1256-6 (Table 1): L4 body wedging -3.1 deg (women) / -0.7 deg (men); "
            "their mean over a 35 mm deep, 27 mm tall body gives Ha/Hp 1.04; SD an estimate",
        ),
        "L5": (
            1.15,
            0.07,
            "Cook & Baker 2021 (Int J Spine Surg 15:1072, CT, 196 patients): L5 anterior 30.3 mm / "
            "posterior 26.3 mm = 1.15, consistent with doi:10.1007/s00586-009-1256-6 (L5 wedging -7.8 deg "
            "women, -4.6 deg men); SD estimated from their height SDs (1.9 mm each)",
        ),
    },
    "posterior_step": {
        "C3": (0.93, 0.06, "estimate: C3/C2 from the generator's cervical sizes (Panjabi et al. 1991)"),
        "C4": (1.00, 0.06, "estimate: C4/C3 from the generator's cervical sizes (Panjabi et al. 1991)"),
        "C5": (1.00, 0.06, "estimate: C5/C4 from the generator's cervical sizes (Panjabi et al. 1991)"),
        "C6": (1.00, 0.06, "estimate: C6/C5 from the generator's cervical sizes (Panjabi et al. 1991)"),
        "C7": (
            1.07,
            0.06,
            "estimate: C7/C6 from the generator's cervical sizes (Panjabi et al. 1991); the chest CTs "
            "give 1.10 on 13 pairs",
        ),
        "L3": (1.02, 0.05, f"estimate: L3/L2 from {_PANJABI}; {_STEP_SD_NOTE}"),
        "L4": (1.01, 0.05, f"estimate: L4/L3 from {_PANJABI}; {_STEP_SD_NOTE}"),
        "L5": (0.98, 0.05, f"estimate: L5/L4 from {_PANJABI}; {_STEP_SD_NOTE}"),
    },
}
#: Levels whose wedge and concavity come from the pooled lower-cervical data (too few each).
CERVICAL_POOL: tuple[str, ...] = ("C4", "C5", "C6")
CERVICAL_POOLED_LEVELS: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C5", "C6")
#: Levels whose concavity is extrapolated from the pooled thoracolumbar data.
THORACOLUMBAR_POOL: tuple[str, ...] = ("T12", "L1", "L2")
LUMBAR_EXTRAPOLATED: tuple[str, ...] = ("L3", "L4", "L5")

Heights = npt.NDArray[np.float64]  # (3,) Ha, Hm, Hp
Column = dict[str, dict[str, Heights]]  # level -> expert -> heights


# --- reading ---------------------------------------------------------------------------------
def level_name(annotation_type: str) -> str:
    """``"Th7"`` -> ``"T7"``; other names (C7, L1) unchanged."""
    name = annotation_type.replace("Th", "T")
    if name not in LEVEL_INDEX:
        raise ValueError(f"unexpected level name {annotation_type!r} in the annotations")
    return name


def segment_heights(segments: Any, slice_ratio: float = 1.0) -> Heights:
    """Ha, Hm, Hp (voxel units) of one annotated body; z scaled by ``slice_ratio``.

    Each file stores three segments, anterior -> middle -> posterior, each
    ``[[x, y, z], [x, y, z]]`` from the upper to the lower endplate.
    """
    s = np.asarray(segments, dtype=np.float64)
    if s.shape != (3, 2, 3):
        raise ValueError(f"a body needs three [[x, y, z], [x, y, z]] segments, got shape {s.shape}")
    vec = s[:, 1, :] - s[:, 0, :]
    vec[:, 2] *= slice_ratio
    return np.linalg.norm(vec, axis=1)


def load_columns(data_dir: Path, slice_ratio: float = 1.0) -> list[Column]:
    """One column per CT: level -> expert -> heights, for every expert present."""
    files = sorted((data_dir / "annotation").glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no annotation/*.json under {data_dir}")
    columns = []
    for f in files:
        ann = json.loads(f.read_text())["Annotation"]
        col: Column = defaultdict(dict)
        for expert, bodies in ann.items():
            for body in bodies:
                col[level_name(body["type"])][expert] = segment_heights(body["segments"], slice_ratio)
        columns.append(dict(col))
    return columns


def consensus(col: Column) -> dict[str, Heights]:
    """Mean of the two experts' heights for the bodies both annotated."""
    return {lev: 0.5 * (e[EXPERTS[0]] + e[EXPERTS[1]]) for lev, e in col.items() if all(x in e for x in EXPERTS)}


# --- statistics ------------------------------------------------------------------------------
def trimmed_stats(values: Iterable[float], k: float = TRIM_SD) -> dict[str, float]:
    """Iteratively k-SD-trimmed mean and SD (start: median +- k robust SD), with the median and MAD SD."""
    x = np.asarray(list(values), dtype=np.float64)
    med = float(np.median(x))
    mad_sd = float(MAD_TO_SD * np.median(np.abs(x - med)))
    centre, sd = med, mad_sd
    keep = np.ones(x.size, dtype=bool)
    for _ in range(100):
        new = np.abs(x - centre) <= k * sd
        if new.sum() < 3:
            break
        c2, s2 = float(x[new].mean()), float(x[new].std(ddof=1))
        converged = bool((new == keep).all())
        keep, centre, sd = new, c2, s2
        if converged:
            break
    return {
        "center": centre,
        "sd": sd,
        "n": int(x.size),
        "n_kept": int(keep.sum()),
        "median": med,
        "mad_sd": mad_sd,
    }


def ratio_samples(columns: list[dict[str, Heights]]) -> dict[str, dict[str, list[float]]]:
    """ratio -> level -> values over the given (consensus) columns."""
    out: dict[str, dict[str, list[float]]] = {"wedge": defaultdict(list), "concavity": defaultdict(list),
                                              "posterior_step": defaultdict(list)}  # fmt: skip
    for col in columns:
        for lev, h in col.items():
            out["wedge"][lev].append(h[0] / h[2])
            out["concavity"][lev].append(h[1] / max(h[0], h[2]))
            i = LEVEL_INDEX[lev]
            if i > 0 and LEVELS[i - 1] in col:
                out["posterior_step"][lev].append(h[2] / col[LEVELS[i - 1]][2])
    return out


def _shape_factor(w: float) -> float:
    """Hm/max(Ha, Hp) of a body with Hm = c (Ha + Hp) / 2 and Ha/Hp = w, per unit c."""
    return (1.0 + w) / (2.0 * max(w, 1.0))


def build_table(columns: list[Column], source: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The normative table ``{ratio: {level: {center, sd, n, source}}}`` for C1..L5."""
    samples = ratio_samples([consensus(c) for c in columns])
    table: dict[str, dict[str, dict[str, Any]]] = {"wedge": {}, "concavity": {}, "posterior_step": {}}

    def entry(center: float, sd: float, n: int, src: str) -> dict[str, Any]:
        return {"center": round(center, DIGITS), "sd": round(sd, DIGITS), "n": n, "source": src}

    for ratio, by_level in samples.items():
        for lev in LEVELS:
            vals = by_level.get(lev, [])
            if len(vals) >= MIN_VERTEBRAE:
                st = trimmed_stats(vals)
                table[ratio][lev] = entry(st["center"], st["sd"], st["n"], source)
    for ratio in ("wedge", "concavity"):
        pooled = trimmed_stats(v for lev in CERVICAL_POOL for v in samples[ratio].get(lev, []))
        for lev in CERVICAL_POOLED_LEVELS:
            if lev not in table[ratio]:
                table[ratio][lev] = entry(
                    pooled["center"], pooled["sd"], pooled["n"],
                    f"{source}, {'-'.join((CERVICAL_POOL[0], CERVICAL_POOL[-1]))} pooled (too few per level)"
                    + ("; C1 has no body: neutral stand-in" if lev == "C1" else ""),
                )  # fmt: skip
    for ratio, by_level in LITERATURE.items():
        for lev, (center, sd, src) in by_level.items():
            if lev not in table[ratio]:
                table[ratio][lev] = entry(center, sd, 0, src)
    pool = trimmed_stats(v for lev in THORACOLUMBAR_POOL for v in samples["concavity"].get(lev, []))
    pool_w = trimmed_stats(v for lev in THORACOLUMBAR_POOL for v in samples["wedge"].get(lev, []))["center"]
    for lev in LUMBAR_EXTRAPOLATED:
        if lev not in table["concavity"]:
            # Hm ~ c (Ha + Hp) / 2: a lordotic body (Ha > Hp) has a lower Hm / max(Ha, Hp).
            # Never above the pooled value: a higher normal would only add calls.
            w = table["wedge"][lev]["center"]
            factor = min(1.0, _shape_factor(w) / _shape_factor(pool_w))
            table["concavity"][lev] = entry(
                pool["center"] * factor, pool["sd"], 0,
                f"estimate: {'-'.join((THORACOLUMBAR_POOL[0], THORACOLUMBAR_POOL[-1]))} data pooled "
                f"(n={pool['n']}), times {factor:.3f} for this level's normal Ha/Hp {w:.2f} "
                "(Hm taken as proportional to (Ha + Hp) / 2, never above the pooled value)",
            )  # fmt: skip
    # Anything still undefined (a level with too few bodies, e.g. L2 in one half of the
    # cross-validation) takes the nearest defined level's value.
    for ratio, first in (("wedge", 0), ("concavity", 0), ("posterior_step", 2)):
        defined = [lev for lev in LEVELS if lev in table[ratio]]
        for lev in LEVELS[first:]:
            if lev not in table[ratio]:
                near = min(defined, key=lambda d: (abs(LEVEL_INDEX[d] - LEVEL_INDEX[lev]), LEVEL_INDEX[d]))
                table[ratio][lev] = {**table[ratio][near], "n": 0, "source": f"estimate: nearest level {near}"}
    return {r: {lev: table[r][lev] for lev in LEVELS if lev in table[r]} for r in table}


def data_source(n_cts: int) -> str:
    """The ``source`` of the entries derived from the annotations."""
    return f"anchor-free-genant expert keypoints, {n_cts} chest CTs (mean of experts 1 and 2)"


# --- checks on the real columns ---------------------------------------------------------------
def anisotropy_effect(data_dir: Path, ratios: Iterable[float]) -> dict[str, dict[str, float]]:
    """How much a slice spacing ``r`` x the pixel spacing would change the ratios.

    Returns per ``r`` and ratio: the largest shift of a level's median (levels with at least
    :data:`MIN_VERTEBRAE` bodies) and the 95th percentile / maximum relative change per body.
    """
    base = ratio_samples([consensus(c) for c in load_columns(data_dir)])
    out: dict[str, dict[str, float]] = {}
    for r in ratios:
        other = ratio_samples([consensus(c) for c in load_columns(data_dir, r)])
        for ratio in base:
            levels = [lev for lev, v in base[ratio].items() if len(v) >= MIN_VERTEBRAE]
            shift = max(abs(np.median(other[ratio][lev]) - np.median(base[ratio][lev])) for lev in levels)
            rel = np.concatenate(
                [np.abs(np.asarray(other[ratio][lev]) / np.asarray(base[ratio][lev]) - 1.0) for lev in base[ratio]]
            )
            out[f"r={r:g} {ratio}"] = {
                "max_level_median_shift": round(float(shift), DIGITS),
                "p95_relative_change": round(float(np.percentile(rel, 95)), DIGITS),
                "max_relative_change": round(float(rel.max()), DIGITS),
            }
    return out


def expert_spread(columns: list[Column]) -> dict[str, dict[str, float]]:
    """Expert 1 vs expert 2 on each ratio: robust SD of one reading (MAD of the difference / sqrt 2)."""
    diffs: dict[str, list[float]] = defaultdict(list)
    rel_h: list[float] = []
    for col in columns:
        one = {e: {lev: h[e] for lev, h in col.items() if all(x in h for x in EXPERTS)} for e in EXPERTS}
        s1, s2 = ratio_samples([one[EXPERTS[0]]]), ratio_samples([one[EXPERTS[1]]])
        for ratio in s1:
            for lev in s1[ratio]:
                diffs[ratio] += list(np.asarray(s1[ratio][lev]) - np.asarray(s2[ratio][lev]))
        for h in col.values():
            if all(x in h for x in EXPERTS):
                rel_h += list(np.abs(h[EXPERTS[0]] - h[EXPERTS[1]]) / (0.5 * (h[EXPERTS[0]] + h[EXPERTS[1]])))
    out = {
        ratio: {
            "pairs": len(d),
            "one_reading_sd": round(float(MAD_TO_SD * np.median(np.abs(np.asarray(d))) / np.sqrt(2.0)), DIGITS),
            "p95_abs_difference": round(float(np.percentile(np.abs(d), 95)), DIGITS),
        }
        for ratio, d in diffs.items()
    }
    out["height"] = {
        "pairs": len(rel_h),
        "median_relative_difference": round(float(np.median(rel_h)), DIGITS),
        "p95_relative_difference": round(float(np.percentile(rel_h, 95)), DIGITS),
    }
    return out


def old_rule_reductions(labels: list[str], heights: list[Heights]) -> list[float]:
    """Height reductions by the rule before normative grading (for comparison only).

    Own shape against 1 (``1 - Ha/Hp``, ``1 - Hm/max(Ha, Hp)``), crush against the larger
    adjacent neighbour's Hp grown by a fixed 3 % per level.
    """
    growth = 0.03
    out = []
    for i, lab in enumerate(labels):
        ha, hm, hp = heights[i]
        refs = [
            heights[j][2] * (1.0 + growth) ** (LEVEL_INDEX[lab] - LEVEL_INDEX[labels[j]])
            for j in (i - 1, i + 1)
            if 0 <= j < len(labels) and abs(LEVEL_INDEX[labels[j]] - LEVEL_INDEX[lab]) == 1
        ]
        out.append(max(0.0, 1.0 - ha / hp, 1.0 - hm / max(ha, hp), 1.0 - hp / max(refs) if refs else 0.0))
    return out


def _old_rule(labels: list[str], heights: list[Heights]) -> list[int]:
    return [genant_grade(r) for r in old_rule_reductions(labels, heights)]


def _new_rule(norms: Normative) -> Callable[[list[str], list[Heights]], list[int]]:
    def rule(labels: list[str], heights: list[Heights]) -> list[int]:
        hs = [{"anterior": h[0], "middle": h[1], "posterior": h[2]} for h in heights]
        return [g.genant_grade for g in grade_column(labels, hs, normative=norms)]

    return rule


@dataclass
class _Calls:
    grades: dict[str, list[int]]
    patients: dict[str, list[bool]]


def _grade_expert_columns(
    columns: list[Column], rule: Callable[[list[str], list[Heights]], list[int]], experts: tuple[str, ...]
) -> _Calls:
    calls = _Calls({e: [] for e in experts}, {e: [] for e in experts})
    for col in columns:
        labels = [lev for lev in LEVELS if lev in col and all(e in col[lev] for e in experts)]
        if not labels:
            continue
        for e in experts:
            g = rule(labels, [col[lev][e] for lev in labels])
            calls.grades[e] += g
            calls.patients[e].append(any(x > 0 for x in g))
    return calls


def call_rates(columns: list[Column]) -> dict[str, dict[str, Any]]:
    """Genant calls on the real expert columns: old rule vs new rule (2-fold CV over patients)."""
    rng = np.random.default_rng(CV_SEED)
    order = rng.permutation(len(columns))
    folds = np.array_split(order, CV_FOLDS)
    out: dict[str, dict[str, Any]] = {}
    for name in ("old rule", "normative rule (2-fold CV)"):
        calls = _Calls({e: [] for e in EXPERTS}, {e: [] for e in EXPERTS})
        for k, fold in enumerate(folds):
            test = [columns[i] for i in fold]
            if name == "old rule":
                rule = _old_rule
            else:
                train = [columns[i] for f, idx in enumerate(folds) if f != k for i in idx]
                rule = _new_rule(Normative.from_dict(build_table(train, "fold")))
            part = _grade_expert_columns(test, rule, EXPERTS)
            for e in EXPERTS:
                calls.grades[e] += part.grades[e]
                calls.patients[e] += part.patients[e]
        a, b = np.asarray(calls.grades[EXPERTS[0]]), np.asarray(calls.grades[EXPERTS[1]])
        out[name] = {
            "vertebrae": int(a.size),
            "vertebrae_called": {e: round(float(np.mean(np.asarray(calls.grades[e]) > 0)), 4) for e in EXPERTS},
            "patients_called": {e: round(float(np.mean(calls.patients[e])), 4) for e in EXPERTS},
            "kappa_expert1_vs_expert2": round(float(weighted_kappa(a, b) or float("nan")), 4),
            "fracture_agreement": round(float(np.mean((a > 0) == (b > 0))), 4),
        }
    return out


def third_expert_kappa(columns: list[Column], norms: Normative) -> dict[str, Any]:
    """Grade agreement of expert 3 with experts 1 and 2 (normative rule), on the CTs it read."""
    with3 = [c for c in columns if any(EXTRA_EXPERT in h for h in c.values())]
    out: dict[str, Any] = {"cts": len(with3)}
    for other in EXPERTS:
        calls = _grade_expert_columns(with3, _new_rule(norms), (other, EXTRA_EXPERT))
        k = weighted_kappa(np.asarray(calls.grades[other]), np.asarray(calls.grades[EXTRA_EXPERT]))
        out[f"kappa_{other}_vs_{EXTRA_EXPERT}"] = round(float(k), 4) if k is not None else None
        out[f"vertebrae_vs_{other}"] = len(calls.grades[other])
    return out


# --- output ----------------------------------------------------------------------------------
def table_module_source(table: dict[str, Any], provenance: dict[str, Any]) -> str:
    """Python source of :mod:`spinevcf.normative_table` (JSON literals: only str, int, float, list)."""
    return (
        '"""Normal vertebral shape ratios by level (generated: do not edit by hand).\n\n'
        "Written by ``python scripts/normative_morphometry.py --write``; see that script and\n"
        "``docs/normative-morphometry.md`` for the derivation and the sources. Entries with ``n > 0``\n"
        "are derived from the anchor-free-genant expert annotations (Zakharov et al., Medical Image\n"
        "Analysis 2023, doi:10.1016/j.media.2022.102646; CC BY-NC 4.0); ``n == 0`` marks a published\n"
        'value or an estimate, named in ``source``.\n"""\n\n'
        "from typing import Any\n\n"
        f"PROVENANCE: dict[str, Any] = {json.dumps(provenance, indent=4)}\n\n"
        f"NORMATIVE_TABLE: dict[str, dict[str, dict[str, Any]]] = {json.dumps(table, indent=4)}\n"
    )


def markdown_table(table: dict[str, Any]) -> str:
    """Per-level summary for the docs."""
    rows = ["| level | Ha/Hp | Hm/max(Ha,Hp) | Hp / Hp above | n (Ha/Hp) |", "|---|---|---|---|---|"]
    for lev in LEVELS:
        w, c = table["wedge"][lev], table["concavity"][lev]
        s = table["posterior_step"].get(lev)

        def fmt(e: dict[str, Any] | None) -> str:
            if e is None:
                return "-"
            mark = "" if e["n"] else " *"
            return f"{e['center']:.3f} ± {e['sd']:.3f}{mark}"

        rows.append(f"| {lev} | {fmt(w)} | {fmt(c)} | {fmt(s)} | {w['n']} |")
    return "\n".join(rows)


def main() -> int:
    """Derive, report, and optionally write or check the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="anchor-free-genant folder")
    ap.add_argument("--write", action="store_true", help=f"write {TABLE_MODULE.relative_to(REPO)}")
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed table differs")
    ap.add_argument("--report", type=Path, default=None, help="also write the report as JSON here")
    args = ap.parse_args()

    columns = load_columns(args.data)
    table = build_table(columns, data_source(len(columns)))
    provenance = {
        "data": "anchor-free-genant annotations (Zakharov et al., Med Image Anal 2023; Pisov et al., MICCAI 2020), "
        "100 MosMed CTLungCa-500 chest CTs, CC BY-NC 4.0",
        "command": "python scripts/normative_morphometry.py --write",
        "statistic": f"iteratively {TRIM_SD:g}-SD-trimmed mean and SD; data used where n >= {MIN_VERTEBRAE}",
        "grade_thresholds": list(GRADE_THRESHOLDS),
    }
    if args.check:
        expected = table_module_source(table, provenance)
        if TABLE_MODULE.read_text() != expected:
            print(f"{TABLE_MODULE} differs from what the data give; rerun with --write", file=sys.stderr)
            return 1
        print("committed table matches the data")
        return 0
    norms = Normative.from_dict(table)
    report = {
        "anisotropy": anisotropy_effect(args.data, (*PLAUSIBLE_ANISOTROPY, *STRESS_ANISOTROPY)),
        "expert_spread": expert_spread(columns),
        "call_rates": call_rates(columns),
        "third_expert": third_expert_kappa(columns, norms),
    }
    print(markdown_table(table))
    print(json.dumps(report, indent=2))
    if args.report:
        args.report.write_text(json.dumps({"table": table, **report}, indent=2) + "\n")
    if args.write:
        TABLE_MODULE.write_text(table_module_source(table, provenance))
        print(f"written {TABLE_MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
