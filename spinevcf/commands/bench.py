"""``spinevcf bench``: latency, memory and start-up benchmark (docs/performance.md).

Generates (or reuses from ``--workdir``) synthetic 512 x 512 CT studies with the given
numbers of slices, measures every pipeline stage in a fresh process per study size
(median and p95 over ``--repeats`` passes after one warm-up), the pydicom decode floor,
peak memory, start-up of the MONAI Deploy application and one ``python -m app`` run,
and, with ``--triton-url``, latency and throughput against a Triton server. Writes a
JSON report and prints tables. Timings are facts of the machine they ran on: run the
full benchmark on a quiet machine.

Examples::

    spinevcf bench                                   # 150, 300, 600 slices, 5 repeats
    spinevcf bench --quick                           # smoke test: one 96-slice study, 1 repeat
    spinevcf bench --triton-url 127.0.0.1:8001       # plus the Triton part (make triton first)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from spinevcf.errors import InputError, OutputError

__all__ = ["add_parser", "run", "DEFAULT_WORKDIR", "DEFAULT_OUT_NAME"]

log = logging.getLogger(__name__)

#: Where studies are generated and reused.
DEFAULT_WORKDIR = Path("build/bench")
#: Report file name inside the work folder when ``--out`` is not given.
DEFAULT_OUT_NAME = "bench.json"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``bench`` subcommand."""
    # Defaults are repeated from spinevcf.bench lazily in run(), so that `spinevcf --help`
    # does not import numpy-heavy modules; keep the help strings in sync.
    p = sub.add_parser(
        "bench",
        help="latency / memory / start-up benchmark (docs/performance.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--slices", type=int, nargs="+", default=None, help="study sizes in slices (default: 150 300 600)")
    p.add_argument("--repeats", type=int, default=None, help="timed passes per size after one warm-up (default: 5)")
    p.add_argument("--size", type=int, default=None, help="rows and columns of the synthetic slices (default: 512)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="studies are generated / reused here (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON report (default: WORKDIR/{DEFAULT_OUT_NAME})")
    p.add_argument("-m", "--model-repository", type=Path, default=None, help="model folder (default: the repository's)")
    p.add_argument("--triton-url", default=None, help="HOST:PORT of a Triton server: also measure the Triton path")
    p.add_argument("--triton-protocol", choices=("grpc", "http"), default="grpc", help="Triton protocol (default: grpc)")
    p.add_argument("--concurrency", type=int, nargs="+", default=None, help="Triton client threads (default: 1 2 4)")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up and `python -m app` measurements")
    p.add_argument("--quick", action="store_true", help="smoke test: one 96-slice study, 1 repeat")
    p.add_argument(
        "--app-slices",
        type=int,
        default=None,
        help="slices of the study of the `python -m app` vs pydicom-decode-process comparison "
        "(default: 250; --quick: the quick study)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, write the JSON report, print the tables; return the exit status."""
    from spinevcf import bench

    quick = bool(args.quick)
    slices = args.slices or (bench.QUICK_SLICES if quick else bench.DEFAULT_SLICES)
    repeats = args.repeats or (1 if quick else bench.DEFAULT_REPEATS)
    workdir = Path(args.workdir)
    out = Path(args.out) if args.out is not None else workdir / DEFAULT_OUT_NAME
    try:
        opts = bench.BenchOptions(
            slices=slices,
            repeats=repeats,
            workdir=workdir,
            model_repository=args.model_repository,
            size=args.size or bench.DEFAULT_SIZE,
            triton_url=args.triton_url,
            triton_protocol=args.triton_protocol,
            concurrency=args.concurrency or bench.DEFAULT_CONCURRENCY,
            startup=not args.no_startup,
            quick=quick,
            app_slices=args.app_slices or (slices[0] if quick else bench.APP_SLICES),
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    report = bench.run_benchmark(opts)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(bench.format_tables(report))
    print(f"\nreport: {out}")
    return 0
