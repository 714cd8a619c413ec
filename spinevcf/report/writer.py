"""Atomic writing of a study's output files.

Files written into ``out_dir`` (see ``docs/sr.md``):

* ``results.json``: :meth:`spinevcf.schema.StudyRecord.to_json`, written last;
* ``sr_<SOPInstanceUID>.dcm``: the TID 1500 Comprehensive 3D SR;
* ``sc_<SOPInstanceUID>.dcm``: the Secondary Capture of the annotated picture;
* ``spine_report.png``: the annotated picture.

The DICOM file names come from the objects' SOP Instance UIDs after checking
that each is a valid UID (digits and dots, at most 64 characters), so a
crafted UID cannot name a path outside ``out_dir``; every final path is also
resolved and checked to lie inside ``out_dir``.

Atomicity: everything is first written into a private temporary folder
``out_dir/.tmp-<uuid4>`` and fsynced; then each file is renamed into place
with :func:`os.replace` (atomic on one file system), results.json last, and
the folder entry is fsynced. Any failure removes the temporary folder and the
files of this call already renamed into place, and raises
:class:`spinevcf.errors.OutputError` naming the cause. Concurrent calls on the
same folder use different temporary folders; each file appears whole or not
at all (for the fixed names, the last call to rename wins).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from spinevcf.errors import OutputError
from spinevcf.report.capture import save_png
from spinevcf.report.sr import UID_PATTERN
from spinevcf.schema import StudyRecord

__all__ = [
    "RESULTS_NAME",
    "PNG_NAME",
    "SR_PREFIX",
    "SC_PREFIX",
    "TMP_PREFIX",
    "dicom_file_name",
    "write_outputs",
]

logger = logging.getLogger(__name__)

RESULTS_NAME: Final = "results.json"
PNG_NAME: Final = "spine_report.png"
SR_PREFIX: Final = "sr_"
SC_PREFIX: Final = "sc_"
TMP_PREFIX: Final = ".tmp-"
_UID_MAX_LEN: Final = 64


def dicom_file_name(prefix: str, dataset: Dataset) -> str:
    """``<prefix><SOPInstanceUID>.dcm`` after validating the UID.

    Raises:
        OutputError: the dataset has no SOP Instance UID or it is not a valid UID
            (which also refuses any path separator or ``..``).
    """
    uid = str(dataset.get("SOPInstanceUID", ""))
    if not uid or len(uid) > _UID_MAX_LEN or not UID_PATTERN.match(uid):
        raise OutputError(
            f"refusing to name an output file: SOPInstanceUID of the {prefix.rstrip('_')} object is not a valid UID"
        )
    return f"{prefix}{uid}.dcm"


def _save_dicom(dataset: Dataset, path: Path) -> None:
    dataset.save_as(path, enforce_file_format=True)


def _save_text(text: str, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _log_rmtree_error(
    _func: object, path: str, exc_info: tuple[type[BaseException], BaseException, object]
) -> None:
    logger.error("could not remove temporary output %s: %s", Path(path).name, exc_info[1])


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inside(path: Path, root: Path) -> Path:
    resolved = path.resolve()
    if resolved.parent != root:
        raise OutputError(f"refusing to write {path.name!r}: it would land outside the output folder")
    return resolved


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "disk full (no space left on device)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"output folder is not writable ({reason})"
    return f"{reason}{f' [{name}]' if name else ''}"


def write_outputs(
    out_dir: str | Path,
    record: StudyRecord,
    *,
    sr: Dataset | None,
    capture: Dataset | None,
    png: npt.NDArray[np.uint8] | None,
) -> dict[str, Path]:
    """Write a study's outputs into ``out_dir`` atomically.

    Args:
        out_dir: output folder (created if missing).
        record: findings, written as ``results.json``.
        sr: the SR from :func:`spinevcf.report.sr.build_sr`, or ``None``.
        capture: the Secondary Capture from
            :func:`spinevcf.report.capture.build_secondary_capture`, or ``None``.
        png: the picture from :func:`spinevcf.report.capture.render_annotated_cpr`, or ``None``.

    Returns:
        The final paths by kind: ``"results"`` always, ``"sr"``, ``"capture"``
        and ``"png"`` when given.

    Raises:
        OutputError: the folder cannot be created or written (permissions,
            disk full, ...), a UID cannot name a file, or an object cannot be
            encoded. No output file of this call is left behind.
    """
    if not isinstance(record, StudyRecord):
        raise TypeError(f"record must be a StudyRecord, got {type(record).__name__}")
    for name, obj in (("sr", sr), ("capture", capture)):
        if obj is not None and not isinstance(obj, Dataset):
            raise TypeError(f"{name} must be a pydicom Dataset or None, got {type(obj).__name__}")
    # Names first: a bad UID fails before anything touches the disk.
    jobs: dict[str, tuple[str, Callable[[Path], object]]] = {}
    if sr is not None:
        jobs["sr"] = (dicom_file_name(SR_PREFIX, sr), partial(_save_dicom, sr))
    if capture is not None:
        jobs["capture"] = (dicom_file_name(SC_PREFIX, capture), partial(_save_dicom, capture))
    if png is not None:
        jobs["png"] = (PNG_NAME, partial(save_png, png))
    # results.json last: its presence means the set is complete.
    jobs["results"] = (RESULTS_NAME, partial(_save_text, record.to_json() + "\n"))
    names = {kind: name for kind, (name, _) in jobs.items()}

    try:
        root = Path(out_dir)
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        if not root.is_dir():
            raise OutputError("the output path exists and is not a folder")
        tmp = root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot prepare the output folder: {_describe(exc)}") from exc

    finals = {kind: _inside(root / name, root) for kind, name in names.items()}
    placed: list[Path] = []
    current = ""
    try:
        for name, save in jobs.values():
            current = name
            save(tmp / name)
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        for kind, name in names.items():
            current = name
            os.replace(tmp / name, finals[kind])
            placed.append(finals[kind])
        _fsync_dir(root)
    except BaseException as exc:
        for path in placed:
            try:
                path.unlink()
            except OSError as cleanup_exc:
                logger.error("could not remove partial output %s: %s", path.name, cleanup_exc.strerror)
        shutil.rmtree(tmp, onerror=_log_rmtree_error)
        if isinstance(exc, OSError):
            raise OutputError(f"writing {current} failed: {_describe(exc)}") from exc
        if isinstance(exc, (ValueError, TypeError)):
            raise OutputError(f"writing {current} failed: {exc}") from exc
        raise
    try:
        tmp.rmdir()
    except OSError as exc:
        logger.warning("could not remove the empty temporary folder %s: %s", tmp.name, exc.strerror)
    logger.info("wrote %d output files", len(finals))
    return finals
