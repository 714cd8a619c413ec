"""The ``spinevcf`` console script: a thin dispatcher over :mod:`spinevcf.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from spinevcf import __version__
from spinevcf.errors import SpineVCFError

__all__ = ["main", "COMMANDS"]

#: Subcommand modules under spinevcf.commands, in help order.
COMMANDS: tuple[str, ...] = ("inspect", "synth", "train", "evaluate", "run", "bench", "pacs")

log = logging.getLogger("spinevcf")


def build_parser() -> argparse.ArgumentParser:
    """Create the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="spinevcf", description=__doc__)
    parser.add_argument("--version", action="version", version=f"spinevcf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"spinevcf.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except SpineVCFError as exc:
        print(f"spinevcf: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("spinevcf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
