"""Parallel, resumable batch screening of many studies (``spinevcf run --workers N``).

* :mod:`spinevcf.batch.outputs`: staging folders, the atomic commit of a study's outputs,
  the completeness marker and the per-shard lock of an output folder;
* :mod:`spinevcf.batch.worker`: one worker process (models loaded once) and the
  processing of one study with retries of transient Triton / PACS errors;
* :mod:`spinevcf.batch.runner`: the dispatcher (a queue handed out one study at a time),
  crashed-worker replacement, SIGINT / SIGTERM handling, progress and ``run_summary.json``.

The command line is :mod:`spinevcf.commands.run`; docs/scale-out.md describes the design
and the capacity model.
"""

from spinevcf.batch.outputs import MARKER_NAME, STAGING_DIR, OutputLock, commit_study, read_complete
from spinevcf.batch.runner import BatchOptions, BatchReport, BatchRunner, StudyResult
from spinevcf.batch.worker import StudyTask, is_transient

__all__ = [
    "MARKER_NAME",
    "STAGING_DIR",
    "OutputLock",
    "commit_study",
    "read_complete",
    "BatchOptions",
    "BatchReport",
    "BatchRunner",
    "StudyResult",
    "StudyTask",
    "is_transient",
]
