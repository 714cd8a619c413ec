"""spinevcf.batch.outputs and the error classes of spinevcf.batch.worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from tritonclient.utils import InferenceServerException

from spinevcf.batch.outputs import MARKER_NAME, OutputLock, commit_study, read_complete, write_marker
from spinevcf.batch.worker import RetryPolicy, is_retryable, is_transient
from spinevcf.errors import InferenceServerError, InputError, OutputError
from spinevcf.pacs import PacsError


def _study(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text('{"status": "ok"}')
    (folder / "sr_1.dcm").write_bytes(b"x" * 100)
    return folder


def test_marker_makes_a_folder_complete_and_detects_damage(tmp_path: Path) -> None:
    folder = _study(tmp_path / "s")
    assert read_complete(folder) is None  # no marker yet
    doc = write_marker(folder, {"input": "a", "status": "ok"})
    assert doc["files"] == {"results.json": 16, "sr_1.dcm": 100}
    assert read_complete(folder) == doc
    (folder / "sr_1.dcm").write_bytes(b"x" * 99)  # truncated
    assert read_complete(folder) is None
    (folder / "sr_1.dcm").write_bytes(b"x" * 100)
    (folder / "results.json").unlink()
    assert read_complete(folder) is None
    assert read_complete(tmp_path / "absent") is None


def test_marker_of_another_layout_is_not_complete(tmp_path: Path) -> None:
    folder = _study(tmp_path / "s")
    (folder / MARKER_NAME).write_text(json.dumps({"marker_version": 99, "files": {"results.json": 16}}))
    assert read_complete(folder) is None


def test_commit_replaces_an_old_folder_in_one_step(tmp_path: Path) -> None:
    final = _study(tmp_path / "out" / "s")
    (final / "stale.txt").write_text("old run")
    staging = _study(tmp_path / "out" / ".staging" / "s.abc")
    commit_study(staging, final)
    assert not staging.exists() and not (final / "stale.txt").exists()
    assert sorted(p.name for p in final.iterdir()) == ["results.json", "sr_1.dcm"]
    assert list((tmp_path / "out" / ".staging").iterdir()) == []  # the replaced folder is gone


def test_commit_of_a_missing_staging_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot move"):
        commit_study(tmp_path / "nothing", tmp_path / "final")


def test_lock_is_exclusive_per_shard(tmp_path: Path) -> None:
    with OutputLock(tmp_path):
        with pytest.raises(OutputError, match="another spinevcf run"):
            with OutputLock(tmp_path):
                pass
        with OutputLock(tmp_path, "-shard-00001-of-00002"):
            pass  # another shard may run beside it
    with OutputLock(tmp_path):
        pass  # released


def _triton_error(status: str) -> InferenceServerError:
    cause = InferenceServerException("x", status=status)
    err = InferenceServerError("Triton inference at h:8001 failed: x")
    err.__cause__ = cause
    return err


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        ("StatusCode.UNAVAILABLE", True),
        ("StatusCode.DEADLINE_EXCEEDED", True),
        ("503", True),
        ("StatusCode.INVALID_ARGUMENT", False),
        ("StatusCode.INTERNAL", False),
        ("400", False),
    ],
)
def test_triton_errors_by_status(status: str, transient: bool) -> None:
    assert is_transient(_triton_error(status)) is transient


def test_other_errors() -> None:
    assert is_transient(InferenceServerError("Triton server at h:8001 is not live"))  # restarting
    assert is_transient(InferenceServerError("Triton server at h:8001 is live but not ready"))
    assert not is_transient(InferenceServerError("model m on h:8001 returned no output 'x'"))
    assert not is_transient(InputError("no usable axial CT series"))
    refused = PacsError("PACS at u is unreachable (connection refused or reset)")
    refused.__cause__ = requests.ConnectionError("refused")
    assert is_transient(refused)
    assert not is_transient(PacsError("PACS refused GET studies: HTTP 404"))
    timed_out = InferenceServerError("timed out")
    timed_out.__cause__ = TimeoutError()
    assert is_transient(timed_out)
    assert is_retryable(OutputError("disk full")) and not is_retryable(InputError("MR"))


def test_retry_policy_backs_off_exponentially_with_a_cap() -> None:
    policy = RetryPolicy(attempts=6, base_s=1.0, max_s=5.0)
    assert [policy.delay(a) for a in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
