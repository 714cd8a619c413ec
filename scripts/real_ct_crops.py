"""The LIDC chest cut at the edges: the real-anatomy check of assessability, names and calls.

The one labelled real chest CT (``lidc_chest`` of ``scripts/fetch_real_ct.py``: 133 slices
of 2.5 mm, C7-L3 in view, TotalSegmentator label map) is cut along the scan axis at fixed
positions (:data:`CROPS`: both ends moving inwards, then one end at a time), so that the
scan starts and stops inside vertebral bodies of real anatomy at many levels. Each crop
runs through the pipeline in-process (NIfTI voxels as loaded; the same models and rules
as the application), and is compared with the label map cropped the same way
(:func:`validate_real_ct.body_centres`: a body whose mask touches the first or last slice
is cut):

* **cut bodies assessed**: must be none (a cut body is never graded);
* **complete bodies assessed**, and which are not (at a scan end with no disc in view,
  or whose heights are not reproduced);
* **names**: right / all, and names that are wrong *and* stated confident (must be none);
* **fracture calls** with the true level: the full scan has none, so a call on a crop is
  a call the full scan does not support.

Nothing here was used to choose a rule: it is a check. Usage (after ``make real-ct-fetch``)::

    python scripts/real_ct_crops.py [--root build/real_ct] [--doc docs/real-ct.md]

``--doc`` writes the table between ``<!-- real-ct:crops:begin/end -->`` in that file.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_ct_run import replace_section  # noqa: E402
from validate_real_ct import body_centres, compare_with_label_map  # noqa: E402

from spinevcf.io.nifti import load_nifti  # noqa: E402
from spinevcf.pipeline import Pipeline  # noqa: E402
from spinevcf.volume import Volume  # noqa: E402

#: (first slice, end slice) of each crop of the 133-slice scan; (0, 133) is the whole scan.
CROPS: tuple[tuple[int, int], ...] = (
    (0, 133),
    (5, 128),
    (9, 121),
    (14, 117),
    (18, 112),
    (23, 106),
    (28, 101),
    (33, 97),
    (37, 93),
    (41, 88),
    (46, 84),
    (3, 70),
    (60, 130),
    (50, 110),
)


def crop(volume: Volume, first: int, end: int) -> Volume:
    """Slices ``first:end`` of ``volume`` (slice axis first), at their patient positions."""
    return volume.crop((first, 0, 0), (end, volume.shape[1], volume.shape[2]))


def check_crop(pipe: Pipeline, ct: Volume, labels: Volume, first: int, end: int) -> dict[str, Any]:
    """Run one crop and compare it with the cropped label map."""
    cut: dict[str, np.ndarray] = {}
    refs = body_centres(crop(labels, first, end), cut)
    record = pipe.run(crop(ct, first, end)).record
    comp = compare_with_label_map(record.vertebrae, refs, cut)
    rows = comp["vertebrae"]
    truth = [row.get("reference") for row in rows]
    wrong_confident = [
        v.label
        for v, t in zip(record.vertebrae, truth, strict=True)
        if t and t != v.label and v.level_status != "uncertain"
    ]
    calls = [
        f"{v.label} (true {t or 'none'}) G{v.genant_grade} {v.deformity} p={v.fracture_probability:.2f}"
        for v, t in zip(record.vertebrae, truth, strict=True)
        if v.fractured
    ]
    return {
        "crop": f"{first}:{end}",
        "slices": end - first,
        "cut": comp["cut_bodies"],
        "cut_assessed": comp["cut_bodies_assessed"],
        "complete_assessed": comp["required_assessed"],
        "complete_not_assessed": comp["required_not_assessed"],
        "names": comp["levels_correct"],
        "wrong_and_confident": wrong_confident,
        "level_confidence": sorted({round(float(v.level_confidence), 2) for v in record.vertebrae}),
        "calls": calls,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table and its totals."""
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (`python scripts/real_ct_crops.py`).",
        "",
        "| crop (slices) | cut bodies | cut assessed | complete assessed (not) | names right | wrong and confident | level confidence | fracture calls |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['crop']} ({r['slices']}) | {', '.join(r['cut']) or '-'} | {', '.join(r['cut_assessed']) or 'none'} "
            f"| {r['complete_assessed']} ({', '.join(r['complete_not_assessed']) or '-'}) | {r['names']} "
            f"| {', '.join(r['wrong_and_confident']) or 'none'} | {', '.join(map(str, r['level_confidence']))} "
            f"| {'; '.join(r['calls']) or 'none'} |"
        )
    n_cut_assessed = sum(len(r["cut_assessed"]) for r in rows)
    n_wrong_conf = sum(len(r["wrong_and_confident"]) for r in rows)
    n_calls = sum(len(r["calls"]) for r in rows)
    n_right = sum(r["names"] == f"{r['names'].split('/')[1]}/{r['names'].split('/')[1]}" for r in rows)
    lines += [
        "",
        f"- {len(rows)} crops: cut bodies assessed {n_cut_assessed}; names all right in {n_right}, "
        f"wrong and stated confident {n_wrong_conf}; fracture calls {n_calls} "
        f"(in {sum(bool(r['calls']) for r in rows)} crops; the whole scan has none)",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("build/real_ct"))
    ap.add_argument("--doc", type=Path, default=None, help="markdown file to write the table into")
    args = ap.parse_args()
    folder = args.root / "extracted" / "lidc_chest"
    ct_path, mask_path = folder / "image__cxr.nii.gz", folder / "totalseg__mask.nii.gz"
    if not ct_path.is_file() or not mask_path.is_file():
        sys.stderr.write(f"real_ct_crops: {folder} lacks the LIDC chest: run `make real-ct-fetch` first\n")
        return 2
    ct, labels = load_nifti(ct_path), load_nifti(mask_path)
    if ct.shape != labels.shape or not np.allclose(ct.affine, labels.affine):
        sys.stderr.write("real_ct_crops: the CT and its label map are not on the same grid\n")
        return 2
    pipe = Pipeline()
    try:
        rows = [check_crop(pipe, ct, labels, a, b) for a, b in CROPS if b <= ct.shape[0]]
    finally:
        pipe.close()
    text = markdown(rows)
    print(text)
    if args.doc is not None:
        args.doc.write_text(replace_section(args.doc.read_text(), "crops", text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
