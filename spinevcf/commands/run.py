"""``spinevcf run INPUT_DIR OUTPUT_DIR``: screen many studies with N worker processes.

Studies are found in ``INPUT_DIR`` (:func:`discover_studies`): each subfolder is one
study; when ``INPUT_DIR`` holds DICOM files but no subfolder, the files are grouped by
StudyInstanceUID. ``--study-list FILE`` names the subfolders to screen instead (one
path relative to ``INPUT_DIR`` per line). With ``--dicomweb URL``, ``INPUT_DIR`` is a
text file of StudyInstanceUIDs, each retrieved over WADO-RS by the worker that processes
it; ``--store-dicomweb URL`` stores each study's SR and secondary capture back (STOW-RS).

Each study gets its own output folder under ``OUTPUT_DIR`` (:func:`output_names`), named
by its StudyInstanceUID when that is a valid UID and otherwise by a hash of the study's
input path. ``--workers N`` (default: the usable CPUs) worker processes each load the
models once (ONNX Runtime in-process, or one shared Triton server with
``--triton-url``) and take studies from a queue one at a time (:mod:`spinevcf.batch`);
``--workers 0`` processes in this process (no crash isolation; for debugging).

Resumable and exact: a study's folder appears in one rename when all its outputs are
written, so re-running the same command skips complete studies and redoes interrupted
ones and those that failed for a retryable reason (the worker died, Triton or the PACS
stayed away longer than the retries, outputs not writable); ``--redo-failed`` also redoes
the permanent failures (bad input and the like), ``--force`` redoes everything. SIGINT / SIGTERM stop handing out studies and let those in flight
finish for ``--drain-timeout`` seconds; a second signal stops at once. A worker that dies
(killed, out of memory) is replaced and its study reported failed. Transient Triton or
PACS errors are retried with back-off (``--retries``). ``OUTPUT_DIR/run_summary.json``
lists every study as done, failed (with the one-line reason) or not started, with
per-stage time totals and the throughput.

``--shards N --shard-index I`` (default ``$JOB_COMPLETION_INDEX``, set by a Kubernetes
Indexed Job) screens only the studies whose key hashes to shard ``I``; each shard writes
its own summary ``run_summary-shard-<I>-of-<N>.json`` into the shared output folder.

Exit status: 0 when every study succeeded (including studies without a spine in
view), :data:`EXIT_SOME_FAILED` when at least one failed, :data:`EXIT_INTERRUPTED` when
a signal stopped the run before every study was done, the error's exit code when
nothing could start (no studies, models not loadable).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from spinevcf.batch.runner import STATE_NOT_STARTED, BatchOptions, BatchRunner
from spinevcf.batch.worker import RetryPolicy, StudyTask
from spinevcf.errors import InputError, ModelError, NoDicomFilesError

__all__ = [
    "add_parser",
    "run",
    "StudyInput",
    "discover_studies",
    "read_study_list",
    "output_names",
    "is_valid_uid",
    "shard_of",
    "default_workers",
    "EXIT_SOME_FAILED",
    "EXIT_INTERRUPTED",
    "SUMMARY_NAME",
    "SHARD_INDEX_ENV",
]

log = logging.getLogger(__name__)

#: Exit status when at least one study failed (the others were processed).
EXIT_SOME_FAILED = 1
#: Exit status when SIGINT / SIGTERM stopped the run with studies not started (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: Name of the batch summary written into OUTPUT_DIR (unsharded runs).
SUMMARY_NAME = "run_summary.json"
#: Environment variable holding the shard index in a Kubernetes Indexed Job.
SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"
#: Key prefix of studies retrieved over DICOMweb.
DICOMWEB_KEY_PREFIX = "dicomweb:"
#: cgroup v2 CPU quota of this process's container.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
#: Default seconds the studies in flight may finish after the first signal.
DEFAULT_DRAIN_TIMEOUT_S = 20.0

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




def _list_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the study list: {exc.strerror or type(exc).__name__}") from exc
    except UnicodeDecodeError as exc:
        raise InputError("the study list is not UTF-8 text") from exc
    lines = [ln.strip() for ln in text.splitlines()]
    entries = [ln for ln in lines if ln and not ln.startswith("#")]
    if not entries:
        raise InputError("the study list names no study")
    if len(set(entries)) != len(entries):
        raise InputError("the study list names a study twice")
    return entries


def read_study_list(path: Path, input_dir: Path | None) -> list[StudyInput]:
    """Studies named by a study list (one entry a line; blank lines and ``#`` comments skipped).

    Args:
        path: the list.
        input_dir: for folder input, the folder the entries are relative to; ``None``
            when the entries are StudyInstanceUIDs to retrieve over DICOMweb.

    Raises:
        InputError: unreadable list, no entry, a duplicate, an entry that leaves
            ``input_dir`` or is not a folder, or (DICOMweb) an invalid UID.
    """
    entries = _list_lines(path)
    if input_dir is None:
        bad = sum(1 for e in entries if not is_valid_uid(e))
        if bad:
            raise InputError(f"{bad} entries of the study list are not valid StudyInstanceUIDs")
        return [StudyInput(key=f"{DICOMWEB_KEY_PREFIX}{uid}", folder=None, study_instance_uid=uid) for uid in entries]
    root = input_dir.resolve()
    studies = []
    for n, entry in enumerate(entries, start=1):
        folder = (input_dir / entry).resolve()
        if folder != root and root not in folder.parents:
            raise InputError(f"line {n} of the study list leaves the input folder")
        if not folder.is_dir():
            raise InputError(f"line {n} of the study list is not a folder in the input folder")
        studies.append(StudyInput(key=entry, folder=folder, study_instance_uid=_first_study_uid(folder)))
    return studies


def shard_of(key: str, count: int) -> int:
    """The shard (0..count-1) of a study: a hash of its key, so it never depends on the list's order."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_CHARS], 16) % count


def _cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs allowed by the cgroup v2 quota (``cpu.max``: "QUOTA PERIOD" or "max PERIOD"), rounded up."""
    try:
        quota, period = path.read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def default_workers() -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (containers)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(cpus, limit) if limit is not None else cpus)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        help="screen a folder (or a DICOMweb study list) of studies with N worker processes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input_dir",
        type=Path,
        help="folder of studies (one subfolder per study, or DICOM files); with --dicomweb: a file of StudyInstanceUIDs",
    )
    p.add_argument("output_dir", type=Path, help="one output folder per study is created here")
    p.add_argument(
        "-m", "--model-repository", type=Path, default=None, help="model folder (default: the repository's)"
    )
    p.add_argument("--triton-url", default=None, help="HOST:PORT of a Triton server (default: ONNX Runtime)")
    p.add_argument("--triton-protocol", choices=("grpc", "http"), default="grpc", help="Triton protocol")
    p.add_argument(
        "-j", "--workers", type=_non_negative_int, default=None,
        help=f"worker processes (default: the usable CPUs, here {default_workers()}); 0: in this process",
    )
    p.add_argument(
        "--redo-failed", action="store_true",
        help="also redo studies that failed permanently last time (retryable failures are always redone)",
    )
    p.add_argument("--force", action="store_true", help="redo every study, complete ones included")
    p.add_argument("--study-list", type=Path, default=None, help="file of subfolders of INPUT_DIR to screen")
    p.add_argument("--dicomweb", default=None, metavar="URL", help="retrieve studies from this DICOMweb server")
    p.add_argument("--store-dicomweb", default=None, metavar="URL", help="store SR + capture on this DICOMweb server")
    p.add_argument("--pacs-timeout", type=float, default=60.0, help="per-request DICOMweb timeout (s)")
    p.add_argument("--shards", type=_positive_int, default=None, help="number of shards (Kubernetes Job completions)")
    p.add_argument(
        "--shard-index", type=_non_negative_int, default=None,
        help=f"this run's shard (default: ${SHARD_INDEX_ENV})",
    )
    p.add_argument(
        "--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT_S,
        help="after SIGINT/SIGTERM, seconds the studies in flight may finish (default %(default)s)",
    )
    p.add_argument(
        "--retries", type=_positive_int, default=RetryPolicy().attempts,
        help="attempts per study on transient Triton/PACS errors (default %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line per study (batch jobs)")
    p.set_defaults(func=run)


def _with_sampling_threads(threads: int, factory: Callable[[], Any]) -> Any:
    """``factory()`` in a process whose volume sampling uses ``threads`` threads."""
    from spinevcf.geometry import sampling

    sampling.set_threads(threads)
    return factory()


def _onnx_pipeline(model_repository: Path | None, intra_op_threads: int) -> Any:
    """A pipeline whose ONNX Runtime sessions use ``intra_op_threads`` threads each."""
    import spinevcf.pipeline as pipeline_module
    from spinevcf.inference.onnx_backend import OnnxRuntimeBackend

    repo = Path(model_repository) if model_repository is not None else pipeline_module.default_model_repository()
    if not repo.is_dir():
        raise ModelError(f"model repository not found: {repo}")
    return pipeline_module.Pipeline(repo, backend=OnnxRuntimeBackend(repo, intra_op_threads=intra_op_threads))


def _shard(args: argparse.Namespace) -> tuple[int, int] | None:
    if args.shards is None:
        if args.shard_index is not None:
            raise InputError("--shard-index needs --shards")
        return None
    index = args.shard_index
    if index is None:
        env = os.environ.get(SHARD_INDEX_ENV)
        if env is None or not env.isdigit():
            raise InputError(f"--shards needs --shard-index or ${SHARD_INDEX_ENV}")
        index = int(env)
    if index >= args.shards:
        raise InputError(f"shard index {index} is not below --shards {args.shards}")
    return index, args.shards


def _tasks(studies: Sequence[StudyInput], shard: tuple[int, int] | None) -> list[StudyTask]:
    names = output_names(studies)  # over the whole list, so every shard agrees on every name
    picked = [
        (study, name)
        for study, name in zip(studies, names, strict=True)
        if shard is None or shard_of(study.key, shard[1]) == shard[0]
    ]
    return [
        StudyTask(
            index=i,
            key=study.key,
            name=name,
            folder=None if study.folder is None else str(study.folder),
            files=tuple(str(f) for f in study.files),
            dicomweb_uid=study.study_instance_uid if study.key.startswith(DICOMWEB_KEY_PREFIX) else None,
        )
        for i, (study, name) in enumerate(picked)
    ]


def run(args: argparse.Namespace) -> int:
    """Screen every study of ``args.input_dir``; return the exit status."""
    import spinevcf.pipeline as pipeline_module

    input_dir = Path(args.input_dir)
    if args.dicomweb is not None:
        studies = read_study_list(input_dir, None)
    elif args.study_list is not None:
        if not input_dir.is_dir():
            raise InputError("input folder not found")
        studies = read_study_list(args.study_list, input_dir)
    else:
        studies = discover_studies(input_dir)
    shard = _shard(args)
    tasks = _tasks(studies, shard)
    summary_name = SUMMARY_NAME if shard is None else f"run_summary-shard-{shard[0]:05d}-of-{shard[1]:05d}.json"
    workers = default_workers() if args.workers is None else args.workers
    log.info(
        "%d studies found%s; %d worker(s), models on %s",
        len(studies),
        "" if shard is None else f", {len(tasks)} in shard {shard[0]} of {shard[1]}",
        workers,
        args.triton_url or "ONNX Runtime",
    )
    # Each worker gets its share of the CPUs, for ONNX Runtime and for the volume sampling of
    # the CPR and the anchors (spinevcf.geometry.sampling), instead of every worker using all.
    threads = max(1, default_workers() // max(1, workers))
    if args.triton_url is None:
        inner: Callable[[], Any] = functools.partial(_onnx_pipeline, args.model_repository, threads)
    else:
        inner = functools.partial(
            pipeline_module.Pipeline, args.model_repository, triton_url=args.triton_url,
            triton_protocol=args.triton_protocol,
        )
    factory: Callable[[], Any] = functools.partial(_with_sampling_threads, threads, inner)
    options = BatchOptions(
        workers=workers,
        redo_failed=args.redo_failed,
        force=args.force,
        drain_timeout_s=args.drain_timeout,
        progress=not args.no_progress,
        shard=shard,
        summary_name=summary_name,
        backend=f"triton {args.triton_protocol}://{args.triton_url}" if args.triton_url else "onnxruntime",
        retry=RetryPolicy(attempts=args.retries),
        dicomweb_url=args.dicomweb,
        store_url=args.store_dicomweb,
        pacs_timeout_s=args.pacs_timeout,
    )
    report = BatchRunner(tasks, Path(args.output_dir), factory, options).run()
    failed = report.failed
    n_not = report.count(STATE_NOT_STARTED)
    rate = report.n_processed / report.wall_s * 3600 if report.wall_s > 0 else 0.0
    log.info(
        "%d studies processed in %.1f s (%.0f studies/h): %d done, %d failed, %d not started; summary in %s",
        report.n_processed, report.wall_s, rate, report.count("done"), len(failed), n_not,
        report.summary_path.name,
    )
    if failed:
        sys.stderr.write(f"spinevcf run: {len(failed)} of {len(report.results)} studies failed:\n")
        for r in failed:
            sys.stderr.write(f"  {r.input} -> {r.output}: {r.message}\n")
    if n_not:
        sys.stderr.write(f"spinevcf run: stopped; {n_not} studies not started (run the same command again)\n")
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if failed else 0
