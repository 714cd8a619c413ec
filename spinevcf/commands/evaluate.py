"""``spinevcf evaluate TRUTH_DIR RESULTS_DIR [--json OUT]``: compare results with ground truth."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from spinevcf.errors import OutputError
from spinevcf.evaluate import evaluate

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` subcommand."""
    p = sub.add_parser(
        "evaluate",
        help="detection, level and fracture metrics of results.json against truth.json",
        description="Match TRUTH_DIR/<case>/truth.json with RESULTS_DIR/<case>/results.json "
        "and print detection, localisation, level and fracture-grading metrics.",
    )
    p.add_argument("truth_dir", type=Path, help="folder of <case>/truth.json")
    p.add_argument("results_dir", type=Path, help="folder of <case>/results.json")
    p.add_argument("--json", dest="json_out", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, optionally write JSON; returns 0."""
    report = evaluate(args.truth_dir, args.results_dir)
    print(report.format_table())
    if args.json_out is not None:
        try:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(report.to_dict(), indent=2))
        except OSError as exc:
            raise OutputError(f"cannot write {args.json_out}: {exc}") from exc
        log.info("wrote %s", args.json_out)
    return 0
