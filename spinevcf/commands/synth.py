"""``spinevcf synth OUT``: write synthetic CT studies with ground truth.

Case ``k`` (0-based) is made from seed ``S + k`` and written to ``OUT/case_kkkk/``
(``dicom/*.dcm`` and ``truth.json``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from spinevcf.errors import OutputError

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``synth`` subcommand."""
    p = sub.add_parser(
        "synth", help="generate synthetic spine CT studies with ground truth", description=__doc__
    )
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (case_0000, case_0001, ... inside)")
    p.add_argument("--cases", type=int, default=1, help="number of cases (default 1)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the first case; case k uses seed+k (default 0)"
    )
    p.add_argument(
        "--fracture-rate",
        type=float,
        default=None,
        help="probability per eligible vertebra of a grade 1-3 fracture",
    )
    p.add_argument("--fov", choices=["thoracic", "lumbar", "thoracolumbar", "random"], default="random")
    p.add_argument("--slices", type=int, default=None, help="force this number of slices per case")
    p.add_argument(
        "--compress",
        choices=["jpeg2000", "jpegls", "rle"],
        default=None,
        help="lossless compressed transfer syntax",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate and write the cases; prints one summary line per case."""
    from spinevcf.synth import SynthConfig, generate_case, write_case

    if args.cases < 1:
        raise OutputError(f"--cases must be >= 1, got {args.cases}")
    if args.seed < 0:
        raise OutputError(f"--seed must be >= 0, got {args.seed}")
    kw: dict[str, object] = {"fov": args.fov, "n_slices": args.slices}
    if args.fracture_rate is not None:
        kw["fracture_rate"] = args.fracture_rate
    try:
        cfg = SynthConfig(**kw)  # type: ignore[arg-type]
    except ValueError as exc:
        raise OutputError(f"invalid generator settings: {exc}") from exc
    for k in range(args.cases):
        seed = args.seed + k
        case = generate_case(seed, cfg)
        folder = write_case(case, args.out / f"case_{k:04d}", compress=args.compress or "none")
        t = case.truth
        acq = case.acquisition
        fx = [f"{v.label}:g{v.genant_grade}{v.deformity[0]}" for v in t.vertebrae if v.fractured]
        levels = f"{t.vertebrae[0].label}-{t.vertebrae[-1].label}" if t.vertebrae else "none"
        print(
            f"{folder.name} seed={seed} fov={acq.fov_preset} slices={acq.n_slices}x{acq.slice_thickness:g}mm "
            f"levels={levels} n={len(t.vertebrae)} fractured={t.patient_fractured} {' '.join(fx)}".rstrip()
        )
    return 0
