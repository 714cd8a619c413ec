"""One batch worker: models loaded once, studies processed one at a time on request.

:func:`worker_main` is the body of a worker process. It ignores SIGINT (a Ctrl-C in a
terminal reaches the whole process group; the dispatcher decides what stops) and keeps
the default SIGTERM action (the dispatcher ends a worker only when aborting). It loads the
pipeline (retrying transient Triton errors), says ``ready``, then answers each study
message with one result message.

:func:`process_task` processes one :class:`StudyTask` into its staging folder and writes
the completeness marker. Transient errors (:func:`is_transient`: Triton unavailable or
timing out, PACS unreachable) are retried with exponential back-off, with the pipeline
made anew (a restarted Triton server needs a new client and its models checked again);
every other error fails the study at once.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from spinevcf.batch.outputs import remove_tree, write_marker
from spinevcf.errors import InferenceServerError, OutputError, SpineVCFError

__all__ = [
    "StudyTask",
    "RetryPolicy",
    "TaskResult",
    "PipelineFactory",
    "is_transient",
    "is_retryable",
    "process_task",
    "worker_main",
    "MSG_READY",
    "MSG_INIT_FAILED",
    "MSG_RESULT",
]

log = logging.getLogger(__name__)

#: Worker -> dispatcher message kinds.
MSG_READY: Final = "ready"
MSG_INIT_FAILED: Final = "init_failed"
MSG_RESULT: Final = "result"

#: gRPC / HTTP statuses of a Triton error that are worth retrying (nothing was computed).
TRANSIENT_TRITON_STATUSES: Final = frozenset(
    {
        "StatusCode.UNAVAILABLE",
        "StatusCode.DEADLINE_EXCEEDED",
        "StatusCode.RESOURCE_EXHAUSTED",
        "502",
        "503",
        "504",
    }
)
#: Phrases of :class:`~spinevcf.errors.InferenceServerError` messages raised without a cause
#: by the Triton backend's start-up checks while a server (re)starts.
_NOT_READY_PHRASES: Final = ("is not live", "but not ready", "is not ready")

PipelineFactory = Callable[[], Any]


@dataclass(frozen=True)
class StudyTask:
    """One study as a worker gets it (picklable).

    Attributes:
        index: position in the run's study list.
        key: how the study was found (subfolder path, ``StudyInstanceUID=<uid>`` or
            ``dicomweb:<uid>``).
        name: output folder name under OUTPUT_DIR.
        folder: the study's folder (folder input).
        files: the study's files (files grouped from a flat folder).
        dicomweb_uid: StudyInstanceUID to retrieve from the DICOMweb server (``None`` otherwise).
    """

    index: int
    key: str
    name: str
    folder: str | None = None
    files: tuple[str, ...] = ()
    dicomweb_uid: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient errors.

    Attributes:
        attempts: most attempts per study (1 = no retry).
        base_s: first back-off delay; doubles per attempt.
        max_s: largest back-off delay.
    """

    attempts: int = 8
    base_s: float = 1.0
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not (0 < self.base_s <= self.max_s):
            raise ValueError(f"need 0 < base_s <= max_s, got {self.base_s}, {self.max_s}")

    def delay(self, attempt: int) -> float:
        """Back-off before attempt ``attempt + 1`` (``attempt`` >= 1)."""
        return min(self.base_s * 2 ** (attempt - 1), self.max_s)


@dataclass
class WorkerOptions:
    """What every study of a run shares (picklable).

    Attributes:
        staging_root: folder of the staging folders.
        dicomweb_url: DICOMweb server to retrieve studies from.
        store_url: DICOMweb server to store the SR and secondary capture on (``None``: keep them local).
        pacs_timeout_s: per-request timeout of the DICOMweb client.
        retry: transient-error policy.
        run_id: identifier of this run (recorded in each marker).
    """

    staging_root: Path
    dicomweb_url: str | None = None
    store_url: str | None = None
    pacs_timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    run_id: str = ""


@dataclass
class TaskResult:
    """A worker's answer for one study (picklable)."""

    index: int
    ok: bool
    staging: str | None = None
    status: str = "failed"
    exit_code: int = 0
    message: str | None = None
    n_vertebrae: int | None = None
    patient_fractured: bool | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    attempts: int = 1
    worker_pid: int = 0
    retryable: bool = False


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying later (the server was away, not the request wrong).

    Transient: a Triton error whose cause is a gRPC/HTTP status in
    :data:`TRANSIENT_TRITON_STATUSES`, a refused / reset connection or a timeout
    (Triton or PACS), and the Triton start-up checks' "not live / not ready" while a
    server restarts. Everything else (bad input, a model's own error, a PACS that
    refuses a request) is permanent.
    """
    import requests

    for e in _cause_chain(exc):
        if isinstance(e, (ConnectionError, TimeoutError, requests.ConnectionError, requests.Timeout)):
            return True
        status = getattr(e, "status", None)
        if callable(status) and type(e).__name__ == "InferenceServerException":
            if str(status() or "") in TRANSIENT_TRITON_STATUSES:
                return True
    if isinstance(exc, InferenceServerError) and exc.__cause__ is None:
        return any(p in str(exc) for p in _NOT_READY_PHRASES)
    return False


def is_retryable(exc: BaseException) -> bool:
    """Whether a study that failed with ``exc`` is redone by a plain re-run of the batch.

    Retryable: transient errors that outlasted the retries (:func:`is_transient`) and
    outputs that could not be written (a full disk); the study itself may be fine. Input
    errors and the like are permanent: only ``--redo-failed`` redoes them.
    """
    return is_transient(exc) or isinstance(exc, OutputError)


@contextmanager
def _input_folder(task: StudyTask, options: WorkerOptions) -> Iterator[Path]:
    """The study's DICOM folder: its own, linked grouped files, or retrieved over DICOMweb."""
    if task.folder is not None:
        yield Path(task.folder)
        return
    with tempfile.TemporaryDirectory(prefix="spinevcf-study-") as tmp:
        if task.dicomweb_uid is not None:
            from spinevcf.pacs import DicomWebClient

            if options.dicomweb_url is None:
                raise ValueError("a DICOMweb study needs WorkerOptions.dicomweb_url")
            with DicomWebClient(options.dicomweb_url, timeout_s=options.pacs_timeout_s) as client:
                client.retrieve_study(task.dicomweb_uid, Path(tmp))
        else:
            for i, src in enumerate(task.files):
                dst = Path(tmp) / f"{i:06d}.dcm"
                try:
                    dst.symlink_to(Path(src).resolve())
                except OSError:
                    dst.write_bytes(Path(src).read_bytes())
        yield Path(tmp)


def _store(staging: Path, study_uid: str, options: WorkerOptions) -> int:
    from spinevcf.pacs import DicomWebClient, _outputs_of

    assert options.store_url is not None
    paths = sorted(p for p in staging.iterdir() if p.name.startswith(("sr_", "sc_")) and p.suffix == ".dcm")
    mine = _outputs_of(paths, study_uid)
    with DicomWebClient(options.store_url, timeout_s=options.pacs_timeout_s) as client:
        return len(client.store(mine))


def _attempt(pipeline: Any, task: StudyTask, staging: Path, options: WorkerOptions) -> TaskResult:
    from spinevcf.pipeline import process_study

    with _input_folder(task, options) as folder:
        result = process_study(folder, staging, pipeline)
    rec = result.record
    timings = {k: round(float(v), 4) for k, v in result.timings_s.items()}
    if options.store_url is not None:
        t = time.perf_counter()
        n = _store(staging, rec.study_instance_uid, options)
        timings["store"] = round(time.perf_counter() - t, 4)
        log.debug("%d object(s) stored on the PACS", n)
    out = TaskResult(
        index=task.index,
        ok=True,
        staging=str(staging),
        status=rec.status,
        message=rec.message,
        n_vertebrae=len(rec.vertebrae),
        patient_fractured=rec.patient_fractured,
        timings_s=timings,
    )
    write_marker(
        staging,
        {
            "input": task.key,
            "status": rec.status,
            "message": rec.message,
            "n_vertebrae": out.n_vertebrae,
            "patient_fractured": rec.patient_fractured,
            "timings_s": timings,
            "run_id": options.run_id,
            "attempt_id": uuid.uuid4().hex,
        },
    )
    return out


class _PipelineHolder:
    """The worker's pipeline, made on first use and again after a transient error."""

    def __init__(self, factory: PipelineFactory) -> None:
        self.factory = factory
        self.pipeline: Any = None

    def get(self) -> Any:
        if self.pipeline is None:
            self.pipeline = self.factory()
        return self.pipeline

    def reset(self) -> None:
        if self.pipeline is not None:
            try:
                self.pipeline.close()
            except Exception as exc:  # closing a broken client must not mask the study's error
                log.debug("closing the pipeline failed: %s", type(exc).__name__)
            self.pipeline = None


def _with_retry(what: str, fn: Callable[[], Any], policy: RetryPolicy, holder: _PipelineHolder) -> tuple[Any, int]:
    """``fn()`` retried on transient errors; returns (value, attempts). Raises the last error."""
    attempt = 1
    while True:
        try:
            return fn(), attempt
        except SpineVCFError as exc:
            if not is_transient(exc) or attempt >= policy.attempts:
                exc.attempts = attempt  # type: ignore[attr-defined]
                raise
            delay = policy.delay(attempt)
            log.warning("%s: transient error (%s); attempt %d/%d in %.1f s", what, exc, attempt + 1, policy.attempts, delay)
            holder.reset()
            time.sleep(delay)
            attempt += 1


def process_task(holder: _PipelineHolder, task: StudyTask, options: WorkerOptions) -> TaskResult:
    """Process one study into a fresh staging folder (retrying transient errors).

    Never raises for a study's own failure: a failed study gives ``ok=False`` with its
    one-line reason, and its staging folder is removed.
    """
    staging = options.staging_root / f"{task.name}.{uuid.uuid4().hex[:12]}"

    def once() -> TaskResult:
        remove_tree(staging)
        return _attempt(holder.get(), task, staging, options)

    try:
        result, attempts = _with_retry(f"study {task.name}", once, options.retry, holder)
    except SpineVCFError as exc:
        remove_tree(staging)
        return TaskResult(
            index=task.index,
            ok=False,
            exit_code=exc.exit_code,
            message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            attempts=int(getattr(exc, "attempts", 1)),
            worker_pid=os.getpid(),
            retryable=is_retryable(exc),
        )
    except Exception as exc:  # a bug must not stop the batch; it is logged with its traceback
        log.exception("study %s failed unexpectedly", task.name)
        remove_tree(staging)
        return TaskResult(
            index=task.index, ok=False, exit_code=1, message=f"unexpected {type(exc).__name__}", worker_pid=os.getpid()
        )
    result.attempts = attempts
    result.worker_pid = os.getpid()
    return result


def worker_main(conn: Connection, factory: PipelineFactory, options: WorkerOptions) -> None:
    """Body of a worker process: load the models, then process studies until told to stop.

    Protocol (tuples over ``conn``): the worker sends ``(MSG_READY, pid)`` or
    ``(MSG_INIT_FAILED, exit_code, message)``; the dispatcher sends a :class:`StudyTask`
    or ``None`` (stop); for each task the worker sends ``(MSG_RESULT, TaskResult)``. The
    staging folder of a task is ``staging_root/<name>.<random>``, so the dispatcher can
    remove what a killed worker left without being told its path.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    holder = _PipelineHolder(factory)
    try:
        _with_retry("loading the models", holder.get, options.retry, holder)
    except SpineVCFError as exc:
        conn.send((MSG_INIT_FAILED, exc.exit_code, str(exc).splitlines()[0]))
        return
    except Exception as exc:
        log.exception("loading the models failed unexpectedly")
        conn.send((MSG_INIT_FAILED, 1, f"unexpected {type(exc).__name__} while loading the models"))
        return
    conn.send((MSG_READY, os.getpid()))
    try:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                break
            if task is None:
                break
            conn.send((MSG_RESULT, process_task(holder, task, options)))
    finally:
        holder.reset()
