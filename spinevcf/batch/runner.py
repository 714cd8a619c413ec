"""The batch dispatcher: a queue of studies, N worker processes, exact accounting.

:class:`BatchRunner` hands studies out one at a time to whichever worker is free (a
queue, not a pre-split list, so one slow study never stalls a share). It is the only
process that commits outputs (:func:`spinevcf.batch.outputs.commit_study`), so a study is
written at most once, and it knows which study each worker holds, so a worker that dies
(SIGKILL, the kernel's OOM killer) has its study reported failed, its staging folder
removed and is replaced.

Resuming: a study whose final folder is complete (:func:`~spinevcf.batch.outputs.read_complete`)
is skipped; one that failed permanently in the previous run (``run_summary.json``: bad
input and the like) keeps its failure unless ``redo_failed``; ``force`` redoes everything.
Studies interrupted, never started, or failed for a retryable reason (the worker died,
Triton stayed away longer than the retries, outputs not writable) are always redone.

Signals: the first SIGINT / SIGTERM stops handing out studies and lets the studies in
flight finish for up to ``drain_timeout_s`` (then they are ended and reported not
started); a second signal ends them at once. Either way the summary is written and no
partial output stays.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from types import FrameType
from typing import Any, Final

from spinevcf.batch.outputs import STAGING_DIR, OutputLock, commit_study, read_complete, remove_tree
from spinevcf.batch.worker import (
    MSG_INIT_FAILED,
    MSG_READY,
    MSG_RESULT,
    PipelineFactory,
    RetryPolicy,
    StudyTask,
    TaskResult,
    WorkerOptions,
    _PipelineHolder,
    _with_retry,
    process_task,
    worker_main,
)
from spinevcf.errors import OutputError, SpineVCFError

__all__ = [
    "BatchOptions",
    "BatchReport",
    "BatchRunner",
    "BatchStartError",
    "StudyResult",
    "STATE_DONE",
    "STATE_FAILED",
    "STATE_NOT_STARTED",
    "SUMMARY_VERSION",
    "format_eta",
]

log = logging.getLogger(__name__)

STATE_DONE: Final = "done"
STATE_FAILED: Final = "failed"
STATE_NOT_STARTED: Final = "not_started"
#: Layout version of run_summary.json.
SUMMARY_VERSION: Final = 2
#: Longest wait of the dispatcher loop before it looks at the signal flags again (s).
POLL_S: Final = 0.25
#: The summary is rewritten at least this often during a run (s), for monitoring.
SUMMARY_EVERY_S: Final = 60.0
#: Worker deaths while loading the models (per worker slot) before the run gives up.
MAX_INIT_DEATHS_PER_WORKER: Final = 3
#: How long a finishing worker may take to exit before it is killed (s).
JOIN_TIMEOUT_S: Final = 10.0
SECONDS_PER_HOUR: Final = 3600.0
#: Modules imported once in the dispatcher before the workers fork, so that no worker
#: pays for them again (the loader, the writers and the in-process backend import lazily).
PRELOAD_MODULES: Final = (
    "spinevcf.pipeline",
    "spinevcf.io.dicom",
    "spinevcf.report.sr",
    "spinevcf.report.capture",
    "spinevcf.report.writer",
    "spinevcf.inference.onnx_backend",
)


class BatchStartError(SpineVCFError):
    """The workers could not load the models; carries the workers' own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Abort(BaseException):
    """Raised by the second signal in in-process mode (not an ``Exception``: nothing swallows it)."""


@dataclass
class StudyResult:
    """One entry of ``run_summary.json``.

    ``state`` is ``done``, ``failed`` or ``not_started``; ``status`` is the study's own
    status when done (``ok``, ``no_spine``...), else equal to ``state``.
    """

    input: str
    output: str
    state: str
    status: str
    exit_code: int | None = None
    message: str | None = None
    n_vertebrae: int | None = None
    patient_fractured: bool | None = None
    timings_s: dict[str, float] | None = None
    attempts: int | None = None
    retryable: bool | None = None
    previous_run: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without ``None`` values."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class BatchOptions:
    """How to run a batch.

    Attributes:
        workers: worker processes; 0 processes in this process (no crash isolation).
        redo_failed: redo studies the previous run reported failed.
        force: redo every study, complete ones included.
        drain_timeout_s: after the first SIGINT/SIGTERM, how long studies in flight may finish.
        progress: show a progress bar on stderr (else a log line per study).
        shard: ``(index, count)`` of this run's shard, or ``None``.
        summary_name: file name of the summary in the output folder.
        backend: what runs the models, for the summary (``onnxruntime`` or the Triton URL).
        retry: retries of transient errors.
        dicomweb_url: DICOMweb server to retrieve ``dicomweb:`` studies from.
        store_url: DICOMweb server to store the SR and secondary capture on.
        pacs_timeout_s: per-request timeout of the DICOMweb client.
    """

    workers: int = 1
    redo_failed: bool = False
    force: bool = False
    drain_timeout_s: float = 20.0
    progress: bool = True
    shard: tuple[int, int] | None = None
    summary_name: str = "run_summary.json"
    backend: str = "onnxruntime"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dicomweb_url: str | None = None
    store_url: str | None = None
    pacs_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")


@dataclass
class BatchReport:
    """What a run did (also written as ``run_summary.json``)."""

    results: list[StudyResult]
    wall_s: float
    workers: int
    interrupted: bool
    worker_restarts: int
    summary_path: Path
    n_processed: int

    def count(self, state: str) -> int:
        """Number of studies in ``state``."""
        return sum(1 for r in self.results if r.state == state)

    @property
    def failed(self) -> list[StudyResult]:
        """The failed studies."""
        return [r for r in self.results if r.state == STATE_FAILED]


def format_eta(seconds: float | None) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory, or killed)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"it exited with status {code}"


class _Worker:
    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self.ready = False
        self.retiring = False
        self.task: StudyTask | None = None
        self.started = 0.0


class _Progress:
    """Counts, studies per hour and ETA, on a tqdm bar or as log lines."""

    def __init__(self, total: int, show: bool) -> None:
        from tqdm import tqdm

        self.total = total
        self.done = 0
        self.failed = 0
        self.t0 = time.monotonic()
        self.bar = tqdm(total=total, desc="studies", unit="study", disable=not show, file=sys.stderr)
        self.show = show

    def rate_per_h(self) -> float | None:
        elapsed = time.monotonic() - self.t0
        n = self.done + self.failed
        return n / elapsed * SECONDS_PER_HOUR if n and elapsed > 0 else None

    def eta_s(self) -> float | None:
        rate = self.rate_per_h()
        left = self.total - self.done - self.failed
        return left / rate * SECONDS_PER_HOUR if rate else None

    def line(self) -> str:
        rate = self.rate_per_h()
        return (
            f"done {self.done}, failed {self.failed}, of {self.total}; "
            f"{'?' if rate is None else f'{rate:.0f}'} studies/h; ETA {format_eta(self.eta_s())}"
        )

    def update(self, result: StudyResult) -> None:
        if result.state == STATE_DONE:
            self.done += 1
        else:
            self.failed += 1
        rate = self.rate_per_h()
        self.bar.set_postfix_str(
            f"done={self.done} failed={self.failed} {'?' if rate is None else f'{rate:.0f}'}/h", refresh=False
        )
        self.bar.update(1)
        level = logging.DEBUG if self.show else logging.INFO
        what = result.status if result.state == STATE_DONE else f"failed: {result.message}"
        log.log(level, "study %s: %s [%s]", result.output, what, self.line())

    def close(self) -> None:
        self.bar.close()


class BatchRunner:
    """Run many studies through worker processes into one output folder.

    Args:
        tasks: the studies (distinct ``name`` values, ``index`` = position).
        output_dir: where each study's folder and the summary go (created if needed).
        factory: makes a pipeline (called once in each worker; must be picklable only
            with a non-fork start method, the fork context is used on Linux).
        options: see :class:`BatchOptions`.

    Example:
        >>> report = BatchRunner(tasks, Path("out"), functools.partial(Pipeline, repo), BatchOptions(workers=2)).run()  # doctest: +SKIP
    """

    def __init__(
        self, tasks: Sequence[StudyTask], output_dir: Path, factory: PipelineFactory, options: BatchOptions
    ) -> None:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError("every study needs its own output folder name")
        if [t.index for t in tasks] != list(range(len(tasks))):
            raise ValueError("task indices must be 0..n-1 in order")
        self.tasks = list(tasks)
        self.output_dir = Path(output_dir)
        self.factory = factory
        self.options = options
        self.run_id = uuid.uuid4().hex
        self._signals = 0
        self._results: dict[int, StudyResult] = {}
        self._restarts = 0
        self._processed = 0
        self._t0 = 0.0
        self._last_summary = 0.0

    # ------------------------------------------------------------------ helpers

    @property
    def _shard_tag(self) -> str:
        if self.options.shard is None:
            return ""
        index, count = self.options.shard
        return f"-shard-{index:05d}-of-{count:05d}"

    def _summary_path(self) -> Path:
        return self.output_dir / self.options.summary_name

    def _previous_failures(self) -> dict[str, dict[str, Any]]:
        """Permanent failures of the previous summary, by output name (an unreadable summary gives none).

        Retryable failures (a worker that died, Triton away for longer than the retries)
        are not listed: a plain re-run redoes them.
        """
        path = self._summary_path()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("the previous %s is unreadable; its failures are redone", path.name)
            return {}
        out: dict[str, dict[str, Any]] = {}
        for entry in doc.get("studies", []) if isinstance(doc, dict) else []:
            if (
                isinstance(entry, dict)
                and entry.get("status") == STATE_FAILED
                and not entry.get("retryable")
                and "output" in entry
            ):
                out[str(entry["output"])] = entry
        return out

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.warning(
                "%s: no new studies; studies in flight may finish for %.0f s (again to stop now)",
                name,
                self.options.drain_timeout_s,
            )
        else:
            log.warning("%s again: stopping the studies in flight now", name)
            if self.options.workers == 0:
                raise _Abort

    def _record(self, task: StudyTask, result: StudyResult, progress: _Progress | None) -> None:
        self._results[task.index] = result
        if progress is not None:
            progress.update(result)
        if time.monotonic() - self._last_summary > SUMMARY_EVERY_S:
            self._write_summary(interrupted=False, final=False)

    def _finish(self, task: StudyTask, r: TaskResult, progress: _Progress) -> None:
        """Commit a worker's result (only this process moves outputs into place)."""
        self._processed += 1
        if r.ok and r.staging is not None:
            try:
                commit_study(Path(r.staging), self.output_dir / task.name)
            except OutputError as exc:
                remove_tree(Path(r.staging))
                r = TaskResult(
                    index=r.index, ok=False, exit_code=exc.exit_code, message=str(exc), attempts=r.attempts,
                    retryable=True,
                )
        self._clean_staging_of(task)
        if r.ok:
            res = StudyResult(
                task.key, task.name, STATE_DONE, r.status, message=r.message, n_vertebrae=r.n_vertebrae,
                patient_fractured=r.patient_fractured, timings_s=r.timings_s, attempts=r.attempts,
            )
        else:
            res = StudyResult(
                task.key, task.name, STATE_FAILED, STATE_FAILED, exit_code=r.exit_code, message=r.message,
                attempts=r.attempts, retryable=r.retryable,
            )
        self._record(task, res, progress)

    def _clean_staging_of(self, task: StudyTask) -> None:
        for p in self._staging_root.glob(f"{task.name}.*"):
            remove_tree(p)

    # ------------------------------------------------------------------ run

    def run(self) -> BatchReport:
        """Process the studies; returns the report (the summary is written in every case).

        Raises:
            OutputError: the output folder cannot be created or locked.
            BatchStartError: the workers cannot load the models (nothing else was lost:
                the summary lists the studies not started).
        """
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder: {exc.strerror or type(exc).__name__}") from exc
        with OutputLock(self.output_dir, self._shard_tag):
            return self._run_locked()

    def _run_locked(self) -> BatchReport:
        self._t0 = time.monotonic()
        self._last_summary = self._t0
        self._staging_root = self.output_dir / STAGING_DIR / (self._shard_tag.lstrip("-") or "run")
        remove_tree(self._staging_root)  # what a killed run left; the lock says no live run owns it
        self._staging_root.mkdir(parents=True, exist_ok=True)

        previous = {} if self.options.force or self.options.redo_failed else self._previous_failures()
        queue: deque[StudyTask] = deque()
        for task in self.tasks:
            marker = None if self.options.force else read_complete(self.output_dir / task.name)
            if marker is not None:
                self._results[task.index] = StudyResult(
                    task.key, task.name, STATE_DONE, str(marker.get("status", "ok")),
                    message=marker.get("message"), n_vertebrae=marker.get("n_vertebrae"),
                    patient_fractured=marker.get("patient_fractured"), previous_run=True,
                )
            elif task.name in previous:
                old = previous[task.name]
                self._results[task.index] = StudyResult(
                    task.key, task.name, STATE_FAILED, STATE_FAILED, exit_code=old.get("exit_code"),
                    message=old.get("message"), retryable=False, previous_run=True,
                )
            else:
                queue.append(task)
        n_skip = len(self.tasks) - len(queue)
        log.info("%d studies: %d to process, %d already done or failed before", len(self.tasks), len(queue), n_skip)

        handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        progress = _Progress(len(queue), self.options.progress)
        error: BatchStartError | None = None
        try:
            if self.options.workers == 0:
                self._run_in_process(queue, progress)
            else:
                error = self._run_workers(queue, progress)
        finally:
            progress.close()
            for sig, old in handlers.items():
                signal.signal(sig, old)
            remove_tree(self._staging_root)
            try:
                self._staging_root.parent.rmdir()  # stays while another shard still stages here
            except OSError:
                pass
        interrupted = self._signals > 0
        path = self._write_summary(interrupted=interrupted, final=True)
        if error is not None:
            raise error
        return self._report(interrupted, path)

    def _run_in_process(self, queue: deque[StudyTask], progress: _Progress) -> None:
        wopts = self._worker_options()
        holder = _PipelineHolder(self.factory)
        try:
            _with_retry("loading the models", holder.get, wopts.retry, holder)
            while queue and self._signals == 0:
                task = queue.popleft()
                try:
                    r = process_task(holder, task, wopts)
                except _Abort:
                    self._clean_staging_of(task)
                    break
                self._finish(task, r, progress)
        except _Abort:
            pass
        finally:
            holder.reset()

    def _worker_options(self) -> WorkerOptions:
        return WorkerOptions(
            staging_root=self._staging_root,
            dicomweb_url=self.options.dicomweb_url,
            store_url=self.options.store_url,
            pacs_timeout_s=self.options.pacs_timeout_s,
            retry=self.options.retry,
            run_id=self.run_id,
        )

    def _run_workers(self, queue: deque[StudyTask], progress: _Progress) -> BatchStartError | None:
        for module in PRELOAD_MODULES:
            importlib.import_module(module)
        ctx = multiprocessing.get_context("fork")
        wopts = self._worker_options()
        workers: list[_Worker] = []
        init_deaths = 0
        max_init_deaths = MAX_INIT_DEATHS_PER_WORKER * self.options.workers
        fatal: BatchStartError | None = None
        drain_deadline: float | None = None

        def spawn() -> None:
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=worker_main, args=(child, self.factory, wopts), daemon=True)
            proc.start()
            child.close()
            workers.append(_Worker(proc, parent))

        def send(w: _Worker, msg: Any) -> bool:
            try:
                w.conn.send(msg)
                return True
            except (OSError, ValueError):
                return False  # the worker is dying; its sentinel reports it

        def retire(w: _Worker) -> None:
            if not w.retiring:
                w.retiring = True
                send(w, None)

        def on_message(w: _Worker, msg: tuple[Any, ...]) -> None:
            nonlocal init_deaths, fatal
            kind = msg[0]
            if kind == MSG_READY:
                w.ready = True
                init_deaths = 0
            elif kind == MSG_INIT_FAILED:
                fatal = BatchStartError(str(msg[2]), int(msg[1]))
            elif kind == MSG_RESULT and w.task is not None:
                task, w.task = w.task, None
                self._finish(task, msg[1], progress)

        def on_death(w: _Worker) -> None:
            nonlocal init_deaths
            workers.remove(w)
            code = w.proc.exitcode
            w.conn.close()
            if w.task is not None:
                task, w.task = w.task, None
                self._clean_staging_of(task)
                self._restarts += 1
                self._processed += 1
                reason = f"the worker process died while processing this study: {_describe_exit(code)}"
                log.error("study %s: %s", task.name, reason)
                self._record(task, StudyResult(task.key, task.name, STATE_FAILED, STATE_FAILED, exit_code=1,
                                               message=reason, attempts=1, retryable=True), progress)
            elif not w.ready and fatal is None:
                init_deaths += 1
                self._restarts += 1
                log.error("a worker died while loading the models: %s", _describe_exit(code))
            elif not w.retiring:
                self._restarts += 1
                log.warning("an idle worker died (%s); replacing it", _describe_exit(code))

        try:
            while True:
                if self._signals and drain_deadline is None:
                    drain_deadline = time.monotonic() + self.options.drain_timeout_s
                stopping = bool(self._signals) or fatal is not None
                if init_deaths >= max_init_deaths and fatal is None:
                    fatal = BatchStartError("worker processes keep dying while loading the models", 1)
                    stopping = True
                busy = [w for w in workers if w.task is not None]
                if stopping and busy and (
                    self._signals > 1 or fatal is not None or time.monotonic() >= (drain_deadline or 0.0)
                ):
                    for w in busy:
                        w.proc.kill()
                        w.proc.join(JOIN_TIMEOUT_S)
                        assert w.task is not None
                        self._clean_staging_of(w.task)
                        queue.appendleft(w.task)  # reported not started (redone next time)
                        w.task = None
                    log.warning("%d studies in flight were stopped; they are redone by the next run", len(busy))
                    busy = []
                if stopping:
                    for w in workers:
                        if w.task is None:
                            retire(w)
                    if not busy:
                        break
                else:
                    want = min(self.options.workers, len(queue) + len(busy))
                    while len(workers) < want:
                        spawn()
                    for w in workers:
                        if w.ready and w.task is None and not w.retiring:
                            if queue:
                                task = queue.popleft()
                                if send(w, task):
                                    w.task = task
                                    w.started = time.monotonic()
                                else:
                                    queue.appendleft(task)
                            else:
                                retire(w)
                    if not queue and not any(w.task is not None for w in workers):
                        break
                objs = wait([w.conn for w in workers] + [w.proc.sentinel for w in workers], timeout=POLL_S)
                for w in list(workers):
                    if w.conn in objs or w.proc.sentinel in objs:
                        while True:
                            try:
                                if not w.conn.poll():
                                    break
                                msg = w.conn.recv()
                            except (EOFError, OSError):
                                break
                            on_message(w, msg)
                        if not w.proc.is_alive():
                            w.proc.join()
                            on_death(w)
        finally:
            for w in workers:
                retire(w)
            for w in workers:
                w.proc.join(JOIN_TIMEOUT_S)
                if w.proc.is_alive():
                    w.proc.kill()
                    w.proc.join()
                w.conn.close()
        for task in queue:
            self._results.setdefault(task.index, StudyResult(task.key, task.name, STATE_NOT_STARTED, STATE_NOT_STARTED))
        return fatal

    # ------------------------------------------------------------------ summary

    def _entries(self) -> list[StudyResult]:
        return [
            self._results.get(t.index) or StudyResult(t.key, t.name, STATE_NOT_STARTED, STATE_NOT_STARTED)
            for t in self.tasks
        ]

    def _write_summary(self, *, interrupted: bool, final: bool) -> Path:
        entries = self._entries()
        wall = time.monotonic() - self._t0
        totals: dict[str, float] = {}
        for e in entries:
            if not e.previous_run:
                for k, v in (e.timings_s or {}).items():
                    totals[k] = totals.get(k, 0.0) + float(v)
        n = {s: sum(1 for e in entries if e.state == s) for s in (STATE_DONE, STATE_FAILED, STATE_NOT_STARTED)}
        doc = {
            "summary_version": SUMMARY_VERSION,
            "run_id": self.run_id,
            "final": final,
            "complete": n[STATE_NOT_STARTED] == 0,
            "interrupted": interrupted,
            "shard": None if self.options.shard is None else {
                "index": self.options.shard[0], "count": self.options.shard[1]
            },
            "workers": self.options.workers,
            "backend": self.options.backend,
            "n_studies": len(entries),
            "n_done": n[STATE_DONE],
            "n_failed": n[STATE_FAILED],
            "n_not_started": n[STATE_NOT_STARTED],
            "n_from_previous_runs": sum(1 for e in entries if e.previous_run),
            "n_processed": self._processed,
            "worker_restarts": self._restarts,
            "wall_s": round(wall, 3),
            "throughput_studies_per_h": round(self._processed / wall * SECONDS_PER_HOUR, 1) if wall > 0 else None,
            "stage_totals_s": {k: round(v, 3) for k, v in totals.items()},
            "studies": [e.to_dict() for e in entries],
        }
        path = self._summary_path()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path.name}: {exc.strerror or type(exc).__name__}") from exc
        self._last_summary = time.monotonic()
        return path

    def _report(self, interrupted: bool, path: Path) -> BatchReport:
        return BatchReport(
            results=self._entries(),
            wall_s=time.monotonic() - self._t0,
            workers=self.options.workers,
            interrupted=interrupted,
            worker_restarts=self._restarts,
            summary_path=path,
            n_processed=self._processed,
        )

