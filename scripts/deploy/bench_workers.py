#!/usr/bin/env python3
"""Studies per hour of ``spinevcf run`` for several worker counts (docs/scale-out.md).

Each configuration is one ``spinevcf run STUDIES OUT/<config> --force --no-progress``
subprocess; its throughput is read from its ``run_summary.json`` (studies processed / wall
time of the batch, model loading in the workers included) and the command's own wall time
(interpreter start-up included) is kept beside it, with the CPU time (user + system) of
the command and its workers: CPU seconds per study hardly depend on what else the machine
runs, wall-clock throughput does. The 1-minute load average is recorded
before and after each run (the machine may be shared). Every configuration's
``results.json`` findings (everything but the timings) are compared with the first
configuration's, study by study.

Usage::

    python scripts/deploy/bench_workers.py build/scaleout/studies build/scaleout/runs \\
        --config serial:0 --config w1:1 --config w2:2 [--triton-url 127.0.0.1:8001]

``NAME:N`` runs ``--workers N`` (0 = in the dispatcher's own process). ``--code DIR`` runs
the ``spinevcf/`` and ``model_repository/`` of ``DIR`` (``git archive HEAD spinevcf
model_repository | tar -x -C DIR``), so that edits to the working tree during the
benchmark cannot change the findings between configurations. The report goes to
``OUT/bench.json`` and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: results.json keys that legitimately differ between runs.
VOLATILE_KEYS = ("timings_s",)


def findings(out_dir: Path) -> dict[str, Any]:
    """Each study's results.json without :data:`VOLATILE_KEYS`, by output folder name."""
    found = {}
    for path in sorted(out_dir.glob("*/results.json")):
        doc = json.loads(path.read_text())
        for key in VOLATILE_KEYS:
            doc.pop(key, None)
        found[path.parent.name] = doc
    return found


def cpu_pressure() -> float | None:
    """PSI ``some avg10`` of /proc/pressure/cpu: % of the last 10 s some task waited for a CPU."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(first.split("avg10=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def run_config(studies: Path, out: Path, workers: int, extra: list[str], code: Path = REPO) -> dict[str, Any]:
    """One ``spinevcf run``; its throughput and the load around it."""
    cmd = [sys.executable, "-m", "spinevcf.cli", "run", str(studies), str(out), "--workers", str(workers),
           "--force", "--no-progress", *extra]
    load_before = os.getloadavg()[0]
    psi_before = cpu_pressure()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code, capture_output=True, text=True)
    command_s = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_after = os.getloadavg()[0]
    psi_after = cpu_pressure()
    cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench_workers: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "run_summary.json").read_text())
    return {
        "workers": workers,
        "n_processed": summary["n_processed"],
        "n_failed": summary["n_failed"],
        "batch_wall_s": summary["wall_s"],
        "studies_per_h": summary["throughput_studies_per_h"],
        "command_wall_s": round(command_s, 2),
        "studies_per_h_command": round(summary["n_processed"] / command_s * 3600, 1),
        "stage_totals_s": summary["stage_totals_s"],
        "cpu_s": round(cpu_s, 1),
        "cpu_s_per_study": round(cpu_s / max(1, summary["n_processed"]), 2),
        "load1_before": round(load_before, 2),
        "load1_after": round(load_after, 2),
        "cpu_pressure_before": psi_before,
        "cpu_pressure_after": psi_after,
        "backend": summary["backend"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the configurations in order and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", action="append", required=True, help="NAME:WORKERS (repeatable)")
    parser.add_argument("--triton-url", default=None)
    parser.add_argument("--triton-protocol", default="grpc")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="folder whose spinevcf/ and model_repository/ run (a frozen snapshot: `git archive`)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="output folder of an earlier run to compare the findings with (default: the first config)")
    args = parser.parse_args(argv)
    extra = [] if args.triton_url is None else ["--triton-url", args.triton_url, "--triton-protocol", args.triton_protocol]
    report: dict[str, Any] = {"configs": {}, "findings_identical_to": None}
    reference: dict[str, Any] | None = None if args.reference is None else findings(args.reference)
    if args.reference is not None:
        report["findings_identical_to"] = str(args.reference)
    for spec in args.config:
        name, _, n = spec.partition(":")
        out = args.out / name
        res = run_config(args.studies.resolve(), out.resolve(), int(n), extra, args.code.resolve())
        found = findings(out)
        if reference is None:
            reference = found
            report["findings_identical_to"] = name
            res["findings_identical"] = True
        else:
            res["findings_identical"] = found == reference
            res["differing_studies"] = sorted(k for k in set(found) | set(reference) if found.get(k) != reference.get(k))
        report["configs"][name] = res
        print(
            f"{name:>10}: workers {res['workers']}, {res['n_processed']} studies, batch {res['batch_wall_s']:.1f} s "
            f"= {res['studies_per_h']:.0f} studies/h (command {res['command_wall_s']:.1f} s), "
            f"CPU {res['cpu_s_per_study']} s/study, load {res['load1_before']} -> {res['load1_after']}, "
            f"CPU pressure {res['cpu_pressure_before']} -> {res['cpu_pressure_after']} %, "
            f"findings identical: {res['findings_identical']}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(c["findings_identical"] for c in report["configs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
