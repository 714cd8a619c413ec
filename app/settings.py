"""Command line and environment settings of the spinevcf MONAI Deploy application.

The SDK's own options are parsed by the SDK's parser
(:func:`monai.deploy.core.arg_parser.parse_args`: ``-i/--input``, ``-m/--model``,
``-w/--workdir``, ``-l/--log-level``, ``-t/--triton-server-netloc``) and
fall back, like the SDK's ``AppContext``, to the MAP environment variables
``HOLOSCAN_INPUT_PATH``, ``HOLOSCAN_OUTPUT_PATH``, ``HOLOSCAN_MODEL_PATH`` and
``TRITON_SERVER_NETLOC``. spinevcf adds ``--triton-url`` (an alias of the SDK's
``--triton-server-netloc``) and ``--triton-protocol``, parsed first so that the SDK's
parser sees only its own options.

``-o/--output`` is parsed here too and never reaches the SDK's parser: that parser
creates the folder while it parses (``valid_dir_path``), so an output path under a
regular file escaped as ``NotADirectoryError`` and a run that failed later still left
an empty output folder behind. :func:`check_output_folder` validates the path without
creating anything; the output writer creates the folder when it writes the outputs.

The SDK's ``AppContext`` is not used on purpose: it would also load the model folder
into the SDK's own model objects (and open SDK Triton clients), which spinevcf does
not use; models are loaded once by :class:`spinevcf.pipeline.Pipeline`.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from monai.deploy.core import RuntimeEnv, parse_args
from monai.deploy.core.arg_parser import set_up_logging

from spinevcf.errors import InputError, OutputError
from spinevcf.pipeline import default_model_repository

__all__ = ["AppSettings", "parse_settings", "check_output_folder", "TRITON_PROTOCOL_ENV", "EXTRA_HELP"]

#: Environment variable for the Triton protocol (``grpc`` or ``http``).
TRITON_PROTOCOL_ENV = "SPINEVCF_TRITON_PROTOCOL"

_NETLOC = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:[0-9]{1,5}$")

EXTRA_HELP = """spinevcf options (besides the MONAI Deploy SDK options below):
  --triton-url HOST:PORT      run the models on this Triton server (alias of -t/--triton-server-netloc;
                              environment: TRITON_SERVER_NETLOC). Default: in-process ONNX Runtime.
  --triton-protocol {grpc,http}
                              Triton protocol (environment: SPINEVCF_TRITON_PROTOCOL; default grpc).
  -m MODEL_REPOSITORY         default: HOLOSCAN_MODEL_PATH, else the repository's model_repository/.
"""


@dataclass(frozen=True)
class AppSettings:
    """Resolved settings of one application run.

    Attributes:
        input_folder: the study's DICOM folder.
        output_folder: where the outputs go.
        model_repository: the model folder (``spine_localizer_3d/``, ``vertebra_detector_2d/``).
        triton_url: ``HOST:PORT`` of a Triton server, or ``None`` for ONNX Runtime.
        triton_protocol: ``"grpc"`` or ``"http"``.
    """

    input_folder: Path
    output_folder: Path
    model_repository: Path
    triton_url: str | None = None
    triton_protocol: str = "grpc"


def _extra_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--triton-url", dest="triton_url", default=None)
    parser.add_argument("--triton-protocol", dest="triton_protocol", default=None)
    # Kept from the SDK's parser, which would create the folder while parsing.
    parser.add_argument("-o", "--output", dest="output", default=None)
    return parser


def check_output_folder(path: Path) -> Path:
    """Check that the outputs can go to ``path`` without creating anything.

    ``path`` must be a folder, or not exist yet below a folder (possibly several
    levels up) that this process can write into. The message of the error never
    contains the path (a folder name may hold a patient identifier).

    Args:
        path: the output folder.

    Returns:
        ``path`` made absolute.

    Raises:
        OutputError: the path, or one of its parents, is not a folder, the nearest
            existing folder is not writable, or the file system refuses the check.
    """
    path = path.absolute()
    probe = path
    try:
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            what = "the output path" if probe == path else "a parent of the output path"
            raise OutputError(f"cannot use the output folder: {what} exists and is not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            if probe == path:
                raise OutputError("the output folder is not writable (permission denied)")
            raise OutputError("cannot create the output folder: its nearest existing parent is not writable")
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"cannot use the output folder: {reason} [{code}]") from exc
    return path


def parse_settings(argv: list[str] | None = None) -> AppSettings:
    """Resolve the settings from ``argv`` (``argv[0]`` is the program) and the environment.

    Command-line values override environment variables. Sets up the SDK's logging.

    Args:
        argv: the application's arguments; ``sys.argv`` when ``None``.

    Returns:
        The resolved settings.

    Raises:
        InputError: an invalid Triton URL or protocol, or a missing input folder.
        OutputError: the output folder cannot be used (:func:`check_output_folder`);
            nothing is created here.
        SystemExit: from the SDK's argument parser (``--help``, unknown option).
    """
    argv = list(sys.argv if argv is None else argv)
    extra, rest = _extra_parser().parse_known_args(argv[1:])
    if "-h" in rest or "--help" in rest:
        sys.stdout.write(EXTRA_HELP + "\n")
    args = parse_args([argv[0], *rest])
    set_up_logging(args.log_level)

    env = RuntimeEnv(defaults={"model": ("HOLOSCAN_MODEL_PATH", "")})
    input_folder = Path(args.input or env.input).absolute()
    output_folder = Path(extra.output or env.output)
    model_repository = Path(args.model or env.model or default_model_repository()).absolute()

    triton_url = extra.triton_url or args.triton_server_netloc or env.triton_server_netloc or None
    if triton_url is not None and not _NETLOC.match(triton_url):
        raise InputError(f"invalid Triton URL {triton_url!r}: expected HOST:PORT")
    protocol = (extra.triton_protocol or os.environ.get(TRITON_PROTOCOL_ENV) or "grpc").lower()
    if protocol not in ("grpc", "http"):
        raise InputError(f"invalid Triton protocol {protocol!r}: expected grpc or http")

    if not input_folder.is_dir():
        raise InputError(f"input folder not found: {input_folder}")
    return AppSettings(
        input_folder=input_folder,
        output_folder=check_output_folder(output_folder),
        model_repository=model_repository,
        triton_url=triton_url,
        triton_protocol=protocol,
    )
