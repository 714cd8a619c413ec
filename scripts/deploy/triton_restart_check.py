#!/usr/bin/env python3
"""Manual check: stop the local Triton server in the middle of a batch, start it again.

Starts the python-backend server of ``make triton`` (``scripts/triton/start.sh``) on its own
ports and state folder, runs ``spinevcf run --workers N --triton-url ...`` on a folder of
studies, stops the server (``scripts/triton/stop.sh``) as soon as the first study is
complete, waits ``--down`` seconds, starts it again and waits for the run to end. Passes
(exit 0) when the summary lists every study as done or failed, none missing and none
"not started"; prints how many studies needed more than one attempt.

Usage::

    python scripts/deploy/triton_restart_check.py STUDIES OUT [--workers 2] [--down 10]

Needs ``.triton-venv`` (``scripts/triton/setup_venv.sh``) and the python-backend model
repository (``scripts/triton/make_python_repo.py``, as ``make triton`` builds it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from spinevcf.batch.outputs import read_complete  # noqa: E402


def _server(action: str, args: argparse.Namespace) -> None:
    if action == "start":
        cmd = [str(REPO / "scripts/triton/start.sh"), str(args.python_repo), "--http-port", str(args.http_port),
               "--grpc-port", str(args.grpc_port), "--state-dir", str(args.state_dir), "--timeout", "120"]
    else:
        cmd = [str(REPO / "scripts/triton/stop.sh"), "--state-dir", str(args.state_dir)]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    print(f"server {action}: {time.perf_counter() - t:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit 0 when no study is missing."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--down", type=float, default=10.0, help="seconds the server stays stopped")
    parser.add_argument("--python-repo", type=Path, default=REPO / "build/triton_python_repo")
    parser.add_argument("--state-dir", type=Path, default=REPO / "build/scaleout/triton")
    parser.add_argument("--http-port", type=int, default=8100)
    parser.add_argument("--grpc-port", type=int, default=8101)
    parser.add_argument("--study-list", type=Path, default=None)
    args = parser.parse_args(argv)

    _server("start", args)
    cmd = [sys.executable, "-m", "spinevcf.cli", "run", str(args.studies), str(args.out), "--force",
           "--workers", str(args.workers), "--triton-url", f"127.0.0.1:{args.grpc_port}", "--no-progress"]
    if args.study_list is not None:
        cmd += ["--study-list", str(args.study_list)]
    t0 = time.perf_counter()
    run = subprocess.Popen(cmd, cwd=REPO)
    try:
        while not any(read_complete(p) for p in args.out.glob("*") if p.is_dir()):
            if run.poll() is not None:
                print("the run ended before the server could be stopped", file=sys.stderr)
                return 2
            time.sleep(0.2)
        print(f"first study complete after {time.perf_counter() - t0:.1f} s; stopping the server", flush=True)
        _server("stop", args)
        time.sleep(args.down)
        _server("start", args)
        code = run.wait(timeout=1800)
    finally:
        if run.poll() is None:
            run.kill()
        _server("stop", args)
    doc = json.loads((args.out / "run_summary.json").read_text())
    retried = sum(1 for s in doc["studies"] if (s.get("attempts") or 1) > 1)
    print(
        f"run exit {code}: {doc['n_studies']} studies, {doc['n_done']} done, {doc['n_failed']} failed, "
        f"{doc['n_not_started']} not started; {retried} needed more than one attempt; wall {doc['wall_s']:.0f} s"
    )
    for s in doc["studies"]:
        if s["state"] != "done":
            print(f"  {s['input']}: {s['state']}: {s.get('message')}")
    ok = doc["n_not_started"] == 0 and doc["n_done"] + doc["n_failed"] == doc["n_studies"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
