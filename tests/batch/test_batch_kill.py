"""Kill test: SIGKILL one worker and SIGTERM the run mid-batch, then run the same command again.

The run is a real ``spinevcf run --workers 2`` process (with the model-free
:class:`tests.batch._batch_doubles.ScriptedPipeline`, each study slowed down so that the
signals land mid-batch). Afterwards every study must have complete outputs exactly once,
none partial, and both summaries must say what happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spinevcf.batch.outputs import MARKER_NAME, STAGING_DIR, read_complete
from spinevcf.commands.run import EXIT_INTERRUPTED
from tests.batch._batch_doubles import BUSY_ENV, DELAY_ENV, write_small_study

REPO = Path(__file__).resolve().parents[2]
N_STUDIES = 8
#: Seconds each study sleeps in the first run (8 studies on 2 workers: >= 4 s of work).
DELAY_S = "1.0"
WAIT_S = 60.0


def _cmd(inp: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tests.batch._batch_doubles", "run", str(inp), str(out), "--workers", "2",
            "--no-progress", "--drain-timeout", "0.5"]


def _wait_for(what: str, cond, timeout: float = WAIT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkill_a_worker_and_sigterm_the_run_then_resume(tmp_path: Path) -> None:
    inp, out, busy = tmp_path / "in", tmp_path / "out", tmp_path / "busy"
    busy.mkdir()
    for i in range(N_STUDIES):
        write_small_study(inp / f"s{i}", seed=300 + i)
    env = {**os.environ, DELAY_ENV: DELAY_S, BUSY_ENV: str(busy), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(_cmd(inp, out), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # A worker in the middle of a study: SIGKILL it (what the OOM killer does).
        victim = int(_wait_for("a busy worker", lambda: next((p.name for p in busy.iterdir()), None)))
        assert victim != proc.pid
        os.kill(victim, signal.SIGKILL)
        # Once its replacement has started a study, SIGTERM the whole run.
        _wait_for("a busy replacement", lambda: any(int(p.name) != victim for p in busy.iterdir() if _alive(int(p.name))))
        proc.send_signal(signal.SIGTERM)
        log = proc.communicate(timeout=WAIT_S)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, log

    doc = json.loads((out / "run_summary.json").read_text())
    states = [s["state"] for s in doc["studies"]]
    assert doc["interrupted"] and not doc["complete"] and doc["worker_restarts"] >= 1
    assert states.count("failed") == 1 and states.count("not_started") >= 1
    (killed,) = [s for s in doc["studies"] if s["state"] == "failed"]
    assert "SIGKILL" in killed["message"] and killed["retryable"]
    _check_outputs(out, doc)
    done_before = {s["output"]: read_complete(out / s["output"])["attempt_id"]  # type: ignore[index]
                   for s in doc["studies"] if s["state"] == "done"}

    # The same command again (no delay): everything done, nothing written twice.
    env.pop(DELAY_ENV)
    again = subprocess.run(_cmd(inp, out), cwd=REPO, env=env, capture_output=True, timeout=WAIT_S)
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
    doc2 = json.loads((out / "run_summary.json").read_text())
    assert doc2["complete"] and doc2["n_done"] == N_STUDIES and doc2["n_failed"] == 0
    assert doc2["n_processed"] == N_STUDIES - len(done_before) and doc2["n_from_previous_runs"] == len(done_before)
    _check_outputs(out, doc2)
    for name, attempt in done_before.items():
        assert read_complete(out / name)["attempt_id"] == attempt  # type: ignore[index]


def _check_outputs(out: Path, doc: dict) -> None:  # type: ignore[type-arg]
    """Done studies: one complete folder each; others: no folder; no staging left."""
    assert not (out / STAGING_DIR).exists()
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    done = {s["output"] for s in doc["studies"] if s["state"] == "done"}
    assert folders == done
    for name in done:
        marker = read_complete(out / name)
        assert marker is not None and (out / name / MARKER_NAME).is_file()
        assert "results.json" in marker["files"]


def test_sigterm_lets_the_studies_in_flight_finish(tmp_path: Path) -> None:
    """With a drain timeout longer than a study, SIGTERM loses no work: in flight -> done, rest not started."""
    inp, out, busy = tmp_path / "in", tmp_path / "out", tmp_path / "busy"
    busy.mkdir()
    for i in range(6):
        write_small_study(inp / f"s{i}", seed=400 + i)
    env = {**os.environ, DELAY_ENV: DELAY_S, BUSY_ENV: str(busy), "PYTHONPATH": str(REPO)}
    cmd = [*_cmd(inp, out)[:-2], "--drain-timeout", "30"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for("a busy worker", lambda: any(busy.iterdir()))
        in_flight = len(list(busy.iterdir()))
        proc.send_signal(signal.SIGTERM)
        log = proc.communicate(timeout=WAIT_S)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, log
    doc = json.loads((out / "run_summary.json").read_text())
    states = [s["state"] for s in doc["studies"]]
    assert states.count("failed") == 0 and states.count("done") >= in_flight >= 1
    assert states.count("not_started") >= 1 and doc["worker_restarts"] == 0
    _check_outputs(out, doc)
