"""Per-scan figures of ``make real-ct``: what the application said, and how it compares with labels.

Pure functions on the application's ``results.json`` (schema 1.1) and on label maps:

* :func:`summarise_results` -- vertebrae detected, assessed, not assessable (with reasons),
  fracture calls (level, grade, deformity, probability), the patient call and the level
  names with their confidences.
* :func:`verse_body_heights` -- anterior, middle and posterior heights of one vertebral body
  measured on a VerSe/TPTBox body mask (subregions 49 + 50), independently of spinevcf's
  keypoints.
* :func:`compare_with_verse` -- the application's vertebrae against the VerSe masks: level
  names, assessability of complete and cut bodies, heights against :func:`verse_body_heights`
  and against spinevcf's own VerSe ground truth (:func:`spinevcf.io.verse.vertebra_geometry`).
* :func:`markdown_table` -- one row per scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.grading import heights_from_keypoints
from spinevcf.io.verse import vertebra_geometry
from spinevcf.schema import LEVEL_INDEX, VertebraRecord
from spinevcf.synth.anatomy import KEYPOINT_INSET_MM
from spinevcf.volume import Volume

__all__ = [
    "summarise_results",
    "verse_body_heights",
    "verse_references",
    "compare_with_verse",
    "markdown_table",
    "format_levels",
    "call_rates",
    "HEIGHT_KEYS",
]

#: Height names of the schema, anterior to posterior.
HEIGHT_KEYS: tuple[str, str, str] = ("anterior", "middle", "posterior")
#: Sampling step (mm) along the measuring lines of :func:`verse_body_heights`.
LINE_STEP_MM = 0.25
#: Half-length (mm) of the measuring lines (longer than any vertebral body is high or deep).
LINE_HALF_MM = 60.0
#: TPTBox subregion labels of the vertebral body (cortical border and inner corpus).
VERSE_BODY_LABELS: tuple[int, ...] = (49, 50)
#: VerSe vertebra labels used by TPTBox's sample (L1-L5).
VERSE_LUMBAR: dict[str, int] = {f"L{i}": 19 + i for i in range(1, 6)}
#: Largest distance between an app vertebra and the body centroid it is matched to.
MATCH_RADIUS_MM = 15.0


def _level_key(v: Mapping[str, Any]) -> int:
    return LEVEL_INDEX.get(str(v.get("label")), len(LEVEL_INDEX))


def summarise_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one ``results.json`` the report lists.

    Returns:
        ``status``, ``message``, ``detected`` (count), ``assessed`` (levels),
        ``not_assessable`` (``[{"level", "reason"}]``), ``fracture_calls`` (``[{"level",
        "grade", "deformity", "probability"}]``, grade >= 1), ``patient_fractured``,
        ``patient_fracture_probability``, ``levels`` (``[{"level", "confidence", "status"}]``)
        and ``heights_mm`` per assessed level.
    """
    verts = sorted(results.get("vertebrae", []), key=_level_key)
    recs = [VertebraRecord.from_dict(v) for v in verts]
    return {
        "status": results.get("status", "ok"),
        "message": results.get("message"),
        "detected": len(recs),
        "assessed": [r.label for r in recs if r.assessed],
        "not_assessable": [{"level": r.label, "reason": r.assessment_reason} for r in recs if not r.assessed],
        "fracture_calls": [
            {
                "level": r.label,
                "grade": r.genant_grade,
                "deformity": r.deformity,
                "probability": None if r.fracture_probability is None else round(r.fracture_probability, 3),
            }
            for r in recs
            if r.fractured
        ],
        "patient_fractured": results.get("patient_fractured"),
        "patient_fracture_probability": results.get("patient_fracture_probability"),
        "levels": [
            {
                "level": r.label,
                "confidence": None if r.level_confidence is None else round(r.level_confidence, 3),
                "status": r.level_status,
            }
            for r in recs
        ],
        "heights_mm": {
            r.label: {k: round(float(r.heights_mm[k]), 1) for k in HEIGHT_KEYS} for r in recs if r.assessed
        },
    }


def _run_through_zero(
    t: npt.NDArray[np.float64], inside: npt.NDArray[np.bool_]
) -> tuple[float, float] | None:
    """Ends of the run of ``inside`` samples that contains (or is nearest to) ``t == 0``."""
    if not inside.any():
        return None
    runs, n = ndimage.label(inside)
    best = min(range(1, n + 1), key=lambda r: float(np.abs(t[runs == r]).min()))
    sel = t[runs == best]
    return float(sel.min()), float(sel.max())


def verse_body_heights(body: Volume, *, inset_mm: float = KEYPOINT_INSET_MM) -> dict[str, Any]:
    """Heights of one vertebral body from its mask (1 inside), measured on its mid-sagittal plane.

    The body's superior axis ``w`` is the principal axis of the mask's voxels nearest to LPS
    ``z``; its posterior axis ``v`` is LPS ``+y`` made orthogonal to ``w``. On the plane
    through the centroid spanned by ``v`` and ``w``, the anterior and posterior walls are
    where the line along ``v`` through the centroid leaves the mask (linear interpolation,
    0.5 level); the three heights are the mask's extents along ``w`` on lines ``inset_mm``
    inside the anterior wall, half-way, and ``inset_mm`` inside the posterior wall (the
    generator's keypoint convention, :data:`~spinevcf.synth.anatomy.KEYPOINT_INSET_MM`).

    Args:
        body: the body mask with its affine.
        inset_mm: distance of the anterior and posterior lines from the walls.

    Returns:
        ``{"anterior", "middle", "posterior"}`` in mm, ``"depth_mm"`` (wall to wall) and
        ``"axis"`` (``w``, LPS).

    Raises:
        ValueError: the mask is empty or a line finds no body.
    """
    m = np.asarray(body.array) > 0
    idx = np.argwhere(m)
    if len(idx) == 0:
        raise ValueError("the body mask is empty")
    pts = body.index_to_lps(idx)
    centre = pts.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((pts - centre).T))
    w = vecs[:, int(np.argmax(np.abs(vecs[2])))]
    w = w if w[2] > 0 else -w
    v = np.array([0.0, 1.0, 0.0]) - w[1] * w
    v /= np.linalg.norm(v)
    field = m.astype(np.float32)
    t = np.arange(-LINE_HALF_MM, LINE_HALF_MM + LINE_STEP_MM / 2, LINE_STEP_MM)

    def extent(origin: npt.NDArray[np.float64], d: npt.NDArray[np.float64]) -> tuple[float, float]:
        line = origin[None] + t[:, None] * d[None]
        vals = ndimage.map_coordinates(field, body.lps_to_index(line).T, order=1, mode="constant", cval=0.0)
        run = _run_through_zero(t, vals >= 0.5)
        if run is None:
            raise ValueError(
                f"no body on the line through {origin.round(1).tolist()} along {d.round(3).tolist()}"
            )
        return run

    front, back = extent(centre, v)
    positions = (front + inset_mm, 0.5 * (front + back), back - inset_mm)
    heights = {}
    for key, s in zip(HEIGHT_KEYS, positions, strict=True):
        lo, hi = extent(centre + s * v, w)
        heights[key] = round(hi - lo, 2)
    return {**heights, "depth_mm": round(back - front, 2), "axis": w.round(4).tolist()}


def _touches_border(mask: npt.NDArray[np.bool_]) -> bool:
    return any(mask.take(0, axis=a).any() or mask.take(-1, axis=a).any() for a in range(mask.ndim))


def verse_references(
    vert: Volume, subreg: Volume, levels: Mapping[str, int] = VERSE_LUMBAR
) -> dict[str, dict[str, Any]]:
    """Per level in the VerSe mask: the body centroid, whether the scan cuts it, and its heights.

    The body is the level's vertebra mask restricted to subregions 49/50. A body touching
    the volume's border is ``"cut"`` and has no heights. Also lists spinevcf's own
    VerSe ground truth (:func:`~spinevcf.io.verse.vertebra_geometry` keypoints of the whole
    vertebra mask) as ``"spinevcf_truth_heights_mm"`` (``None`` where it calls the body partial).
    """
    va, sa = np.asarray(vert.array), np.asarray(subreg.array)
    truth = {g.name: g for g in vertebra_geometry(vert, case_id="tptbox")}
    out: dict[str, dict[str, Any]] = {}
    for name, lab in levels.items():
        body = (va == lab) & np.isin(sa, VERSE_BODY_LABELS)
        if not body.any():
            continue
        centre = vert.index_to_lps(np.argwhere(body).mean(axis=0)[None])[0]
        cut = _touches_border(body)
        ref: dict[str, Any] = {"centre_lps_mm": centre.round(2).tolist(), "cut": cut, "heights_mm": None}
        if not cut:
            ref["heights_mm"] = verse_body_heights(Volume(body.astype(np.uint8), vert.affine))
        g = truth.get(name)
        ref["spinevcf_truth_heights_mm"] = (
            {k: round(x, 2) for k, x in heights_from_keypoints(g.keypoints_lps_mm).items()}
            if g is not None and g.keypoints_lps_mm is not None and not g.partial
            else None
        )
        out[name] = ref
    return out


def compare_with_verse(
    vertebrae: Sequence[VertebraRecord], refs: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The application's vertebrae against :func:`verse_references` (nearest body within 15 mm).

    Returns:
        ``rows`` (per reference level: the app's label, whether it is right, its assessment
        and reason, its heights and the differences app - mask and app - spinevcf truth),
        ``names_correct`` (``"k/n"`` over matched levels), ``complete_assessed`` and
        ``cut_not_assessable`` (``"k/n"``) and ``unmatched_detections``.
    """
    used: set[int] = set()
    rows = []
    for name, ref in refs.items():
        c = np.asarray(ref["centre_lps_mm"], dtype=np.float64)
        d = [(float(np.linalg.norm(v.center - c)), i) for i, v in enumerate(vertebrae) if i not in used]
        d = [x for x in d if x[0] <= MATCH_RADIUS_MM]
        row: dict[str, Any] = {"reference": name, "cut": ref["cut"], "detected": None}
        if d:
            dist, i = min(d)
            used.add(i)
            v = vertebrae[i]
            row.update(
                detected=v.label,
                name_correct=v.label == name,
                centre_error_mm=round(dist, 2),
                assessment=v.assessment,
                assessment_reason=v.assessment_reason,
                genant_grade=v.genant_grade,
                level_confidence=v.level_confidence,
            )
            if v.assessed:
                app_h = {k: round(float(v.heights_mm[k]), 2) for k in HEIGHT_KEYS}
                row["app_heights_mm"] = app_h
                for key, tag in (
                    ("heights_mm", "minus_mask_mm"),
                    ("spinevcf_truth_heights_mm", "minus_spinevcf_truth_mm"),
                ):
                    if ref.get(key):
                        row[f"app_{tag}"] = {k: round(app_h[k] - float(ref[key][k]), 2) for k in HEIGHT_KEYS}
        row["mask_heights_mm"] = {k: ref["heights_mm"][k] for k in HEIGHT_KEYS} if ref["heights_mm"] else None
        row["spinevcf_truth_heights_mm"] = ref.get("spinevcf_truth_heights_mm")
        rows.append(row)
    matched = [r for r in rows if r["detected"] is not None]
    complete = [r for r in rows if not r["cut"]]
    cut = [r for r in rows if r["cut"]]
    return {
        "rows": rows,
        "names_correct": f"{sum(bool(r.get('name_correct')) for r in matched)}/{len(matched)}",
        "complete_assessed": f"{sum(r.get('assessment') == 'assessed' for r in complete)}/{len(complete)}",
        "cut_not_assessable": f"{sum(r.get('assessment') != 'assessed' for r in cut)}/{len(cut)}",
        "cut_detected_and_assessed": [r["reference"] for r in cut if r.get("assessment") == "assessed"],
        "unmatched_detections": [v.label for i, v in enumerate(vertebrae) if i not in used],
    }


def _fmt_calls(calls: Sequence[Mapping[str, Any]]) -> str:
    return (
        ", ".join(f"{c['level']} G{c['grade']} {c['deformity']} p={c['probability']:.2f}" for c in calls)
        or "none"
    )


def format_levels(levels: Sequence[Mapping[str, Any]]) -> str:
    """Level names in runs of consecutive levels that share confidence and status.

    Example: ``C7-L2 (0.87?)`` for 15 consecutive names, all uncertain at 0.87; a gap in the
    names (a missed body) or a change of confidence starts a new run.
    """
    runs: list[list[Mapping[str, Any]]] = []
    for x in levels:
        prev = runs[-1][-1] if runs else None
        if (
            prev is not None
            and LEVEL_INDEX.get(x["level"], -9) == LEVEL_INDEX.get(prev["level"], -9) + 1
            and (x.get("confidence"), x.get("status")) == (prev.get("confidence"), prev.get("status"))
        ):
            runs[-1].append(x)
        else:
            runs.append([x])
    out = []
    for run in runs:
        conf, status = run[0].get("confidence"), run[0].get("status")
        tag = (f"{conf:.2f}" if conf is not None else "") + ("?" if status == "uncertain" else "")
        names = run[0]["level"] if len(run) == 1 else f"{run[0]['level']}-{run[-1]['level']}"
        out.append(names + (f" ({tag})" if tag else ""))
    return ", ".join(out) or "-"


def call_rates(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals over scans (``summarise_results`` outputs): bodies, assessed, not assessable,
    fracture calls, the calls' share of assessed bodies, and patients called fractured."""
    assessed = sum(len(s["assessed"]) for s in summaries)
    calls = sum(len(s["fracture_calls"]) for s in summaries)
    return {
        "scans": len(summaries),
        "bodies": sum(s["detected"] for s in summaries),
        "assessed": assessed,
        "not_assessable": sum(len(s["not_assessable"]) for s in summaries),
        "fracture_calls": calls,
        "calls_per_assessed_body": round(calls / assessed, 3) if assessed else None,
        "patients_fractured": sum(bool(s["patient_fractured"]) for s in summaries),
    }


def markdown_table(scans: Sequence[Mapping[str, Any]]) -> str:
    """One markdown row per scan (``scans``: the ``summary.json`` scan entries)."""
    head = (
        "| scan | series | app | detected | assessed | not assessable (reason) | fracture calls | patient p | levels (confidence; ? uncertain) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for s in scans:
        r = s.get("results")
        series = s.get("series", "")
        if r is None:
            lines.append(
                f"| {s['name']} | {series} | {s.get('app_error', 'failed')} | - | - | - | - | - | - |"
            )
            continue
        na = ", ".join(f"{x['level']} ({x['reason']})" for x in r["not_assessable"]) or "none"
        p = r["patient_fracture_probability"]
        lines.append(
            f"| {s['name']} | {series} | {r['status']} | {r['detected']} | {len(r['assessed'])} | {na} | "
            f"{_fmt_calls(r['fracture_calls'])} | {'-' if p is None else f'{p:.2f}'} | {format_levels(r['levels'])} |"
        )
    return head + "\n".join(lines) + "\n"
