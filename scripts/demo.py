"""The README's demo: make a synthetic study with fractures, run the app on it, show the findings.

Usage: ``python scripts/demo.py --out out/demo`` (``make demo`` does the set-up first).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

#: Seed of the demo study (outside the training and evaluation seed ranges).
DEMO_SEED = 777
#: Fracture rate of the demo study, high so that the demo shows fractures.
DEMO_FRACTURE_RATE = 0.3


def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        sys.exit(f"demo: command failed with exit status {proc.returncode}")


def main() -> int:
    """Generate, run, print."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("out/demo"))
    ap.add_argument("--seed", type=int, default=DEMO_SEED)
    args = ap.parse_args()
    synth = args.out / "synth"
    case = synth / "case_0000"
    out = args.out / "app"
    if not (case / "truth.json").exists():
        _run(
            [
                sys.executable, "-m", "spinevcf.cli", "synth", str(synth), "--cases", "1",
                "--seed", str(args.seed), "--fracture-rate", str(DEMO_FRACTURE_RATE), "--fov", "thoracolumbar",
            ]
        )
    if out.exists():
        for p in out.iterdir():
            if p.is_file():
                p.unlink()
    t = time.perf_counter()
    _run([sys.executable, "-m", "app", "-i", str(case / "dicom"), "-o", str(out)])
    wall = time.perf_counter() - t
    res = json.loads((out / "results.json").read_text())
    truth = {v["label"]: v for v in json.loads((case / "truth.json").read_text())["vertebrae"]}
    print()
    print(f"spinevcf findings ({res.get('model_version')}), app wall time {wall:.1f} s")
    hdr = f"{'level':<6}{'Ha':>7}{'Hm':>7}{'Hp':>7}  {'grade':>5}  {'deformity':<10}{'P(fx)':>7}   {'truth':<14}"
    print(hdr)
    print("-" * len(hdr))
    for v in res["vertebrae"]:
        h = v["heights_mm"]
        t_v = truth.get(v["label"])
        tt = f"g{t_v['genant_grade']} {t_v['deformity']}" if t_v else "(not in truth)"
        level = v["label"] + ("?" if v.get("level_status") == "uncertain" else "")
        if v.get("assessment", "assessed") != "assessed":
            print(f"{level:<6}{'not assessable: ' + str(v.get('assessment_reason')):<50}{tt:<14}")
            continue
        print(
            f"{level:<6}{h['anterior']:>7.1f}{h['middle']:>7.1f}{h['posterior']:>7.1f}  "
            f"{v['genant_grade']:>5}  {v['deformity']:<10}{v['fracture_probability']:>7.2f}   {tt:<14}"
        )
    print(f"patient fracture probability: {res['patient_fracture_probability']:.2f}")
    print()
    print("outputs:")
    for p in sorted(out.iterdir()):
        if p.is_file():
            print(f"  {p}")
    print(f"ground truth: {case / 'truth.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
