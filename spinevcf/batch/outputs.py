"""Where a batch run writes: staging folders, atomic commits, completeness markers, the lock.

A study is processed into a private staging folder below ``OUTPUT_DIR/.spinevcf-staging/``
(:data:`STAGING_DIR`). Its worker writes a marker (:data:`MARKER_NAME`) listing every
output file and its size last; only the dispatcher then moves the folder to
``OUTPUT_DIR/<name>`` with one ``rename`` (:func:`commit_study`). So a study's final folder
either does not exist or is complete, whatever is killed when; and since one process
commits, no study is ever written twice. :func:`read_complete` is the resume test:
a final folder counts as done only when its marker is readable and every file it lists
is there with the listed size.

:class:`OutputLock` keeps two runs of the same shard off one output folder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from spinevcf.errors import OutputError

__all__ = [
    "STAGING_DIR",
    "MARKER_NAME",
    "MARKER_VERSION",
    "write_marker",
    "read_complete",
    "commit_study",
    "remove_tree",
    "OutputLock",
]

log = logging.getLogger(__name__)

#: Hidden folder of OUTPUT_DIR holding the staging folders of studies in flight.
STAGING_DIR: Final = ".spinevcf-staging"
#: Completeness marker inside a study's output folder (written last, before the commit).
MARKER_NAME: Final = ".spinevcf-complete.json"
#: Version of the marker's layout.
MARKER_VERSION: Final = 1


def _reason(exc: OSError) -> str:
    return f"{exc.strerror or type(exc).__name__} [{errno.errorcode.get(exc.errno or 0, '?')}]"


def write_marker(folder: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write the completeness marker of a finished study folder.

    Args:
        folder: the study's (staging) output folder, with every output already written.
        info: what to record besides the file list (input key, status, timings, attempt id).

    Returns:
        The marker's content.

    Raises:
        OutputError: the marker cannot be written.
    """
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER_NAME
    }
    doc = {"marker_version": MARKER_VERSION, **info, "files": files}
    tmp = folder / f".{MARKER_NAME}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / MARKER_NAME)
    except OSError as exc:
        raise OutputError(f"cannot write the completeness marker: {_reason(exc)}") from exc
    return doc


def read_complete(folder: Path) -> dict[str, Any] | None:
    """The marker of a complete study folder, ``None`` when the folder is absent or incomplete.

    Complete means: the marker parses, has this module's layout, and every file it lists
    exists with the listed size.
    """
    try:
        doc = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("marker_version") != MARKER_VERSION:
        return None
    files = doc.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for rel, size in files.items():
        try:
            if (folder / rel).stat().st_size != size:
                return None
        except OSError:
            return None
    return doc


def remove_tree(path: Path) -> None:
    """Remove a folder (or file) if it exists; failures are logged, never raised."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError as exc:
        log.warning("could not remove a staging folder: %s", _reason(exc))


def commit_study(staging: Path, final: Path) -> None:
    """Move a finished staging folder to its final place in one rename.

    An existing final folder (a ``--force`` redo, or an incomplete folder left by an
    older version) is first moved aside into the staging area and removed after the
    new folder is in place, so ``final`` is never a mix of two runs.

    Raises:
        OutputError: the rename failed (the staging folder is left for the caller to remove).
    """
    old: Path | None = None
    try:
        if final.exists():
            old = staging.parent / f"{staging.name}.replaced-{uuid.uuid4().hex[:8]}"
            os.rename(final, old)
        os.rename(staging, final)
    except OSError as exc:
        raise OutputError(f"cannot move the study's outputs into place: {_reason(exc)}") from exc
    finally:
        if old is not None:
            remove_tree(old)


class OutputLock:
    """An exclusive, non-blocking lock of one shard of an output folder (``flock``).

    The lock file is ``OUTPUT_DIR/.spinevcf-run<suffix>.lock``; the kernel drops the lock
    when the process dies, so a killed run never blocks the next one.

    Args:
        output_dir: the run's output folder (must exist).
        suffix: the shard's tag ("" for an unsharded run).

    Raises:
        OutputError: another live run holds the lock, or the lock file cannot be opened.
    """

    def __init__(self, output_dir: Path, suffix: str = "") -> None:
        self.path = output_dir / f".spinevcf-run{suffix}.lock"
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot open the run lock in the output folder: {_reason(exc)}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OutputError(
                    "another spinevcf run is writing to this output folder (same shard); wait for it or stop it"
                ) from exc
            raise OutputError(f"cannot lock the output folder: {_reason(exc)}") from exc
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
