"""``spinevcf run INPUT_DIR OUTPUT_DIR``: process a folder of many studies in-process.

Studies are found in ``INPUT_DIR`` (:func:`discover_studies`): each subfolder is one
study; when ``INPUT_DIR`` holds DICOM files but no subfolder, the files are grouped by
StudyInstanceUID. Each study gets its own output folder under ``OUTPUT_DIR``
(:func:`output_names`), named by its StudyInstanceUID when that is a valid UID and
otherwise by a hash of the study's input path. The models are loaded once; a failed
study is reported and the run goes on. ``OUTPUT_DIR/run_summary.json`` lists every
study with its status.

This is the batch path: it calls :func:`spinevcf.pipeline.process_study` directly,
without Holoscan, so it starts once and runs as fast as the pipeline allows. The
single-study MONAI Deploy application (``python -m app``) runs the same stages.

Exit status: 0 when every study succeeded (including studies without a spine in
view), :data:`EXIT_SOME_FAILED` when at least one failed, the error's exit code when
nothing could start (no studies, models not loadable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError
from tqdm import tqdm

from spinevcf.errors import InputError, NoDicomFilesError, OutputError, SpineVCFError

__all__ = [
    "add_parser",
    "run",
    "StudyInput",
    "StudyOutcome",
    "discover_studies",
    "output_names",
    "is_valid_uid",
    "EXIT_SOME_FAILED",
    "SUMMARY_NAME",
]

log = logging.getLogger(__name__)

#: Exit status when at least one study failed (the others were processed).
EXIT_SOME_FAILED = 1
#: Name of the batch summary written into OUTPUT_DIR.
SUMMARY_NAME = "run_summary.json"

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_UID_MAX_LEN = 64
_HASH_CHARS = 16


@dataclass(frozen=True)
class StudyInput:
    """One study to process.

    Attributes:
        key: how the study was found, relative to INPUT_DIR (a subfolder path, or
            ``"StudyInstanceUID=<uid>"`` for grouped files); used for hashing and the summary.
        folder: the study's folder, or ``None`` for files grouped from a flat folder.
        files: the study's files when grouped from a flat folder (empty otherwise).
        study_instance_uid: StudyInstanceUID read from a header ("" when unknown).
    """

    key: str
    folder: Path | None
    files: tuple[Path, ...] = ()
    study_instance_uid: str = ""


@dataclass
class StudyOutcome:
    """What happened to one study (an entry of ``run_summary.json``)."""

    input: str
    output: str
    status: str
    exit_code: int = 0
    message: str | None = None
    n_vertebrae: int | None = None
    patient_fractured: bool | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without ``None`` values."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def is_valid_uid(uid: str) -> bool:
    """Whether ``uid`` is a DICOM UID safe to use as a folder name (digits and dots, <= 64 chars)."""
    return 0 < len(uid) <= _UID_MAX_LEN and _UID.match(uid) is not None


def _read_study_uid(path: Path) -> str | None:
    """StudyInstanceUID of one file, ``None`` when the file is not readable DICOM."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        log.debug("not a readable DICOM file (%s): %s", type(exc).__name__, path.name)
        return None
    return str(ds.get("StudyInstanceUID", "") or "")


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _first_study_uid(folder: Path) -> str:
    for path in _files(folder):
        uid = _read_study_uid(path)
        if uid is not None:
            return uid
    return ""


def discover_studies(input_dir: Path) -> list[StudyInput]:
    """Find the studies in ``input_dir``.

    Each (non-hidden) subfolder is one study. Without subfolders, the DICOM files
    directly in ``input_dir`` are grouped by StudyInstanceUID (files without one form
    a single group).

    Args:
        input_dir: the folder of studies.

    Returns:
        The studies, in a stable order (subfolder name / UID).

    Raises:
        InputError: ``input_dir`` is not a folder.
        NoDicomFilesError: it holds neither subfolders nor DICOM files.
    """
    if not input_dir.is_dir():
        raise InputError("input folder not found")
    subdirs = sorted(p for p in input_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        return [StudyInput(key=p.name, folder=p, study_instance_uid=_first_study_uid(p)) for p in subdirs]
    groups: dict[str, list[Path]] = {}
    for path in sorted(p for p in input_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
        uid = _read_study_uid(path)
        if uid is not None:
            groups.setdefault(uid, []).append(path)
    if not groups:
        raise NoDicomFilesError("no study subfolders and no DICOM files in the input folder")
    return [
        StudyInput(key=f"StudyInstanceUID={uid}", folder=None, files=tuple(files), study_instance_uid=uid)
        for uid, files in sorted(groups.items())
    ]


def output_names(studies: Sequence[StudyInput]) -> list[str]:
    """One distinct output folder name per study.

    A valid StudyInstanceUID names the folder; otherwise (or when two studies share
    a UID) the folder is ``study-<hash>`` / ``<uid>-<hash>`` with a hash of the
    study's input key, so no free text from the input (which may hold a patient's
    name) ever becomes a path.
    """
    names: list[str] = []
    used: set[str] = set()
    for study in studies:
        digest = hashlib.sha256(study.key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
        uid = study.study_instance_uid
        name = uid if is_valid_uid(uid) else f"study-{digest}"
        if name in used:
            name = f"{name}-{digest}"
        used.add(name)
        names.append(name)
    return names


@contextmanager
def _study_folder(study: StudyInput) -> Iterator[Path]:
    """The study's folder; grouped files are linked into a private temporary folder."""
    if study.folder is not None:
        yield study.folder
        return
    with tempfile.TemporaryDirectory(prefix="spinevcf-study-") as tmp:
        for i, src in enumerate(study.files):
            dst = Path(tmp) / f"{i:06d}.dcm"
            try:
                dst.symlink_to(src.resolve())
            except OSError:
                log.debug("symlink not possible, copying a file instead")
                dst.write_bytes(src.read_bytes())
        yield Path(tmp)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        help="process a folder of studies (one subfolder per study) in-process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input_dir", type=Path, help="folder of studies: one subfolder per study, or DICOM files")
    p.add_argument("output_dir", type=Path, help="one output folder per study is created here")
    p.add_argument(
        "-m", "--model-repository", type=Path, default=None, help="model folder (default: the repository's)"
    )
    p.add_argument("--triton-url", default=None, help="HOST:PORT of a Triton server (default: ONNX Runtime)")
    p.add_argument("--triton-protocol", choices=("grpc", "http"), default="grpc", help="Triton protocol")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (batch jobs, logs)")
    p.set_defaults(func=run)


def _process_one(pipeline: Any, study: StudyInput, out_dir: Path) -> StudyOutcome:
    from spinevcf.pipeline import process_study

    with _study_folder(study) as folder:
        result = process_study(folder, out_dir, pipeline)
    rec = result.record
    return StudyOutcome(
        input=study.key,
        output=out_dir.name,
        status=rec.status,
        message=rec.message,
        n_vertebrae=len(rec.vertebrae),
        patient_fractured=rec.patient_fractured,
        timings_s={k: round(float(v), 4) for k, v in result.timings_s.items()},
    )


def _write_summary(output_dir: Path, outcomes: list[StudyOutcome], wall_s: float) -> Path:
    path = output_dir / SUMMARY_NAME
    doc = {
        "n_studies": len(outcomes),
        "n_failed": sum(1 for o in outcomes if o.status == "failed"),
        "wall_s": round(wall_s, 3),
        "studies": [o.to_dict() for o in outcomes],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path.name}: {exc.strerror or type(exc).__name__}") from exc
    return path


def run(args: argparse.Namespace) -> int:
    """Process every study of ``args.input_dir``; return the exit status."""
    from spinevcf.pipeline import Pipeline

    input_dir = Path(args.input_dir)
    output_dir = Path(args.output_dir)
    studies = discover_studies(input_dir)
    names = output_names(studies)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder: {exc.strerror or type(exc).__name__}") from exc
    log.info("%d studies found", len(studies))

    start = time.perf_counter()
    pipeline = Pipeline(
        args.model_repository, triton_url=args.triton_url, triton_protocol=args.triton_protocol
    )
    outcomes: list[StudyOutcome] = []
    try:
        bar = tqdm(
            list(zip(studies, names, strict=True)),
            desc="studies",
            unit="study",
            disable=args.no_progress,
            file=sys.stderr,
        )
        for i, (study, name) in enumerate(bar, start=1):
            try:
                outcome = _process_one(pipeline, study, output_dir / name)
            except SpineVCFError as exc:
                log.error("study %d/%d (%s) failed: %s", i, len(studies), name, exc)
                outcome = StudyOutcome(study.key, name, "failed", exc.exit_code, str(exc))
            except Exception as exc:  # a bug must not stop the batch; it is logged with its traceback
                log.exception("study %d/%d (%s) failed unexpectedly", i, len(studies), name)
                outcome = StudyOutcome(study.key, name, "failed", 1, f"unexpected {type(exc).__name__}")
            else:
                log.info(
                    "study %d/%d (%s): %s, %d vertebrae",
                    i,
                    len(studies),
                    name,
                    outcome.status,
                    outcome.n_vertebrae,
                )
            outcomes.append(outcome)
    finally:
        pipeline.close()

    wall = time.perf_counter() - start
    summary = _write_summary(output_dir, outcomes, wall)
    failed = [o for o in outcomes if o.status == "failed"]
    log.info(
        "%d studies in %.1f s: %d succeeded, %d failed; summary in %s",
        len(outcomes),
        wall,
        len(outcomes) - len(failed),
        len(failed),
        summary.name,
    )
    if failed:
        sys.stderr.write(f"spinevcf run: {len(failed)} of {len(outcomes)} studies failed:\n")
        for o in failed:
            sys.stderr.write(f"  {o.input} -> {o.output}: {o.message}\n")
        return EXIT_SOME_FAILED
    return 0
