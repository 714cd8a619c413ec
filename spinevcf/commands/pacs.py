"""``spinevcf pacs --url URL --study UID --out DIR``: DICOMweb pull, pipeline, STOW of the SR and SC.

Exit status: 0 on success (also when no vertebra is found); otherwise the error's
exit code with a one-line message (7: PACS unreachable or refusing; 3: invalid UID or
bad input; 4/5: model or Triton errors; 6: outputs not writable).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spinevcf.pacs import DEFAULT_TIMEOUT_S, pacs_round_trip

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``pacs`` subcommand."""
    p = sub.add_parser(
        "pacs",
        help="pull a study from a PACS over DICOMweb, process it, store the SR and image back",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", required=True, help="PACS URL, e.g. http://127.0.0.1:8042 (DICOMweb under /dicom-web)")
    p.add_argument("--study", required=True, help="StudyInstanceUID")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("-m", "--model-repository", type=Path, default=None, help="model folder")
    p.add_argument("--triton-url", default=None, help="HOST:PORT of a Triton server (default: ONNX Runtime)")
    p.add_argument("--triton-protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per-request timeout (s)")
    p.add_argument("--no-store", action="store_true", help="do not store the SR and image back")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the round trip; return the exit status (errors are raised to the dispatcher)."""
    result = pacs_round_trip(
        args.url,
        args.study,
        args.out,
        model_repository=args.model_repository,
        triton_url=args.triton_url,
        triton_protocol=args.triton_protocol,
        timeout_s=args.timeout,
        store=not args.no_store,
    )
    sys.stdout.write(
        f"{result.n_retrieved} instance(s) retrieved, status {result.status}, "
        f"{len(result.stored_sop_instance_uids)} object(s) stored back; outputs in {args.out}\n"
    )
    return 0
