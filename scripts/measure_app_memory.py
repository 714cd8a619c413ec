#!/usr/bin/env python3
"""Measure the peak memory (max RSS) and wall time of ``python -m app`` on one study.

Writes a synthetic 400 x 512 x 512 CT series (0.7 mm pixels, 1 mm slices: a typical
thoraco-lumbar study) unless ``--study`` already holds one, runs the application in a
subprocess under ``/usr/bin/time -v`` and prints the peak resident set size. This is the
number behind ``resources.memory`` in ``app.yaml`` (see docs/deploy.md, "Resources").
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("measure_app_memory")


def write_study(folder: Path, shape: tuple[int, int, int]) -> None:
    """A water cylinder with a bone column, written as a CT series."""
    from spinevcf.io import write_ct_series
    from spinevcf.volume import Volume

    n0, n1, n2 = shape
    arr = np.full(shape, -1000, dtype=np.int16)
    r, c = np.mgrid[0:n1, 0:n2]
    arr[:, (r - n1 / 2) ** 2 + (c - n2 / 2) ** 2 <= (0.4 * n1) ** 2] = 0
    arr[:, (r - 0.62 * n1) ** 2 + (c - n2 / 2) ** 2 <= (0.06 * n1) ** 2] = 700
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2] = (0, 0, -1.0), (0, 0.7, 0), (0.7, 0, 0)
    aff[:3, 3] = (-n2 * 0.35, -n1 * 0.35, 0.0)
    write_ct_series(Volume(arr, aff), folder, rng_seed=1)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=REPO / "out" / "mem-study")
    parser.add_argument("--shape", type=int, nargs=3, default=(400, 512, 512))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not any(args.study.glob("*")):
        log.info("writing a %s study into %s", tuple(args.shape), args.study)
        write_study(args.study, tuple(args.shape))
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, "-m", "app", "-i", str(args.study), "-o", out],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", proc.stderr)
    if proc.returncode != 0 or rss is None:
        sys.stderr.write(proc.stderr[-3000:])
        return proc.returncode or 1
    log.info("peak RSS %.2f GiB, wall %s", int(rss.group(1)) / 2**20, wall.group(1) if wall else "?")
    return 0


if __name__ == "__main__":
    sys.exit(main())
