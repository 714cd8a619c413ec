"""``spinevcf train localizer|detector --config FILE``: train a network on synthetic and/or VerSe-format data."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``train`` subcommand."""
    p = sub.add_parser("train", help="train the localizer or the detector (synthetic data; VerSe-format data with verse_root, docs/retraining.md)")
    p.add_argument("model", choices=("localizer", "detector"))
    p.add_argument("--config", required=True, help="YAML training config (configs/*.yaml)")
    p.add_argument("--out", default="runs", help="folder for the checkpoint (default: runs/)")
    p.add_argument("--workers", type=int, default=2, help="processes generating the data cache")
    p.add_argument("--iterations", type=int, default=None, help="override the config's iterations")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="override the config's seed (initialisation, batches, augmentation; the data stay the same), "
        "e.g. to measure run-to-run variation",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train and save the checkpoint."""
    from spinevcf.training.common import load_config

    cfg = load_config(args.config)
    if args.iterations is not None:
        cfg["iterations"] = int(args.iterations)
    if args.seed is not None:
        cfg["seed"] = int(args.seed)
    out = Path(args.out)
    if args.model == "localizer":
        from spinevcf.training.train_localizer import train_localizer

        ckpt = train_localizer(cfg, args.config, out, workers=args.workers)
    else:
        from spinevcf.training.train_detector import train_detector

        ckpt = train_detector(cfg, args.config, out, workers=args.workers)
    print(f"checkpoint: {ckpt}")
    return 0
