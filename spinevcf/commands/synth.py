"""``spinevcf synth OUT``: write synthetic CT studies with ground truth.

Case ``k`` (0-based) is made from seed ``S + k`` and written to ``OUT/case_kkkk/``
(``dicom/*.dcm`` and ``truth.json``). ``--preset cut`` draws, per case, a slice thickness of
1-5 mm and a 150-250 mm in-plane reconstruction centred on the spine or the aorta, with both
scan ends inside vertebral bodies (:func:`spinevcf.synth.config.cut_preset_config`).
``--family heldout`` is the held-out anatomy family: for measuring generalisation only.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from spinevcf.errors import OutputError

#: ``spinevcf.synth.config.FAMILIES``, written out so that building the parser does not
#: import the generator (tests/synth/test_synth_family.py checks that they agree).
FAMILY_CHOICES: tuple[str, ...] = ("default", "heldout", "transitional")

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
        "--edge",
        choices=["margin", "cut"],
        default="margin",
        help="scan ends: margin (default) or cut (first and last slice inside a vertebral body)",
    )
    p.add_argument(
        "--slice-thickness",
        type=float,
        default=None,
        metavar="MM",
        help="force this slice thickness (= spacing)",
    )
    p.add_argument(
        "--inplane-fov",
        type=float,
        default=None,
        metavar="MM",
        help="targeted in-plane reconstruction diameter (needs --fov-centre)",
    )
    p.add_argument(
        "--fov-centre", choices=["spine", "aorta"], default=None, help="centre of the targeted reconstruction"
    )
    p.add_argument(
        "--family",
        choices=list(FAMILY_CHOICES),
        default="default",
        help=(
            "anatomy family; heldout is for measuring generalisation only, never for training; "
            "transitional (15%% transitional lumbosacral anatomy) is for validating the level rules"
        ),
    )
    p.add_argument(
        "--preset",
        choices=["cut"],
        default=None,
        help="cut: per case, both ends cut, slice thickness 1-5 mm, in-plane FOV 150-250 mm "
        "centred on the spine or the aorta (overrides --edge, --slice-thickness, --inplane-fov, --fov-centre)",
    )
    p.add_argument(
        "--compress",
        choices=["jpeg2000", "jpegls", "rle"],
        default=None,
        help="lossless compressed transfer syntax",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate and write the cases; prints one summary line per case."""
    from spinevcf.synth import SynthConfig, cut_preset_config, generate_case, write_case

    if args.cases < 1:
        raise OutputError(f"--cases must be >= 1, got {args.cases}")
    if args.seed < 0:
        raise OutputError(f"--seed must be >= 0, got {args.seed}")
    kw: dict[str, object] = {"fov": args.fov, "n_slices": args.slices, "family": args.family}
    if args.fracture_rate is not None:
        kw["fracture_rate"] = args.fracture_rate
    if args.preset is None:
        kw.update(
            edge=args.edge,
            slice_thickness=args.slice_thickness,
            inplane_fov_mm=args.inplane_fov,
            fov_centre=args.fov_centre,
        )
    try:
        cfg = SynthConfig(**kw)  # type: ignore[arg-type]
    except ValueError as exc:
        raise OutputError(f"invalid generator settings: {exc}") from exc
    for k in range(args.cases):
        seed = args.seed + k
        try:
            case_cfg = cut_preset_config(seed, cfg) if args.preset == "cut" else cfg
        except ValueError as exc:
            raise OutputError(f"invalid generator settings: {exc}") from exc
        case = generate_case(seed, case_cfg)
        folder = write_case(case, args.out / f"case_{k:04d}", compress=args.compress or "none")
        t = case.truth
        acq = case.acquisition
        fx = [f"{v.label}:g{v.genant_grade}{v.deformity[0]}" for v in t.vertebrae if v.fractured]
        levels = f"{t.vertebrae[0].label}-{t.vertebrae[-1].label}" if t.vertebrae else "none"
        extra = t.extra or {}
        opts = ""
        if not case_cfg.is_default_geometry:
            cut = ",".join(str(p["label"]) for p in extra.get("partial", [])) or "none"
            opts = f" edge={case_cfg.edge} partial={cut} inplane={acq.pixel_spacing * acq.matrix:.0f}mm"
            if case_cfg.fov_centre is not None:
                opts += f"@{case_cfg.fov_centre}"
            if case_cfg.family != "default":
                tr = extra.get("transitional", {})
                opts += f" family={case_cfg.family} ribs={tr.get('rib_pairs')} lumbosacral={tr.get('lumbosacral')}"
        print(
            f"{folder.name} seed={seed} fov={acq.fov_preset} slices={acq.n_slices}x{acq.slice_thickness:g}mm "
            f"levels={levels} n={len(t.vertebrae)} fractured={t.patient_fractured}{opts} {' '.join(fx)}".rstrip()
        )
    return 0
