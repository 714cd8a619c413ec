"""spinevcf run --workers N: queue, resume, failures, crashes, a flaky Triton, shards, summary."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import spinevcf.pipeline as pipeline_module
from spinevcf.batch.outputs import STAGING_DIR, read_complete
from spinevcf.batch.runner import BatchOptions, BatchRunner, format_eta
from spinevcf.batch.worker import RetryPolicy, StudyTask
from spinevcf.commands import run as run_command
from spinevcf.commands.run import EXIT_SOME_FAILED, shard_of
from spinevcf.errors import ModelError, SpineVCFError
from tests.batch._batch_doubles import (
    BAD_REQUEST_SLICES,
    CRASH_SLICES,
    DELAY_ENV,
    DOWN_ENV,
    ScriptedPipeline,
    write_small_study,
)

#: The real class (the autouse fixture replaces it with the stand-in).
REAL_PIPELINE = pipeline_module.Pipeline
#: Fast retries for the tests (the command's default starts at 1 s).
FAST_RETRY = RetryPolicy(attempts=40, base_s=0.05, max_s=0.2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spinevcf")
    run_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpineVCFError as exc:
        return exc.exit_code


@pytest.fixture(autouse=True)
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "Pipeline", ScriptedPipeline)
    for env in (DELAY_ENV, DOWN_ENV):
        monkeypatch.delenv(env, raising=False)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four normal studies, one that crashes its worker, one with a permanent Triton error."""
    root = tmp_path_factory.mktemp("in")
    for i in range(4):
        write_small_study(root / f"n{i}", seed=100 + i)
    write_small_study(root / "crash", seed=200, slices=CRASH_SLICES)
    write_small_study(root / "bad", seed=201, slices=BAD_REQUEST_SLICES)
    return root


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "run_summary.json").read_text())


def _by_input(out: Path) -> dict[str, dict[str, Any]]:
    return {s["input"]: s for s in _summary(out)["studies"]}


def _attempt_ids(out: Path) -> dict[str, str]:
    ids = {}
    for folder in out.iterdir():
        marker = read_complete(folder) if folder.is_dir() else None
        if marker is not None:
            ids[folder.name] = marker["attempt_id"]
    return ids


def test_crash_and_permanent_error_reported_then_resumed(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", str(studies), str(out), "--workers", "2", "--no-progress"]) == EXIT_SOME_FAILED
    doc = _summary(out)
    by = _by_input(out)
    assert (doc["n_studies"], doc["n_done"], doc["n_failed"], doc["n_not_started"]) == (6, 4, 2, 0)
    assert doc["worker_restarts"] == 1 and doc["complete"] and not doc["interrupted"]
    assert "died" in by["crash"]["message"] and "SIGKILL" in by["crash"]["message"] and by["crash"]["retryable"]
    assert by["bad"]["exit_code"] == 5 and by["bad"]["attempts"] == 1 and not by["bad"]["retryable"]
    assert set(doc["stage_totals_s"]) >= {"load", "write"} and doc["throughput_studies_per_h"] > 0
    for key in ("crash", "bad"):
        assert not (out / by[key]["output"]).exists()
    assert not (out / STAGING_DIR).exists()
    first = _attempt_ids(out)
    assert len(first) == 4

    # The same command again: complete studies are skipped (not rewritten), the crash
    # (retryable) is redone (and crashes again), the permanent failure is carried over.
    assert main(["run", str(studies), str(out), "--workers", "2", "--no-progress"]) == EXIT_SOME_FAILED
    doc2 = _summary(out)
    by2 = _by_input(out)
    assert doc2["n_processed"] == 1 and doc2["n_from_previous_runs"] == 5
    assert by2["bad"]["previous_run"] and by2["bad"]["message"] == by["bad"]["message"]
    assert _attempt_ids(out) == first

    # --redo-failed retries the permanent failure too; --force redoes everything.
    assert main(["run", str(studies), str(out), "--workers", "1", "--no-progress", "--redo-failed"]) == 1
    assert _summary(out)["n_processed"] == 2
    assert main(["run", str(studies), str(out), "--workers", "2", "--no-progress", "--force"]) == 1
    doc4 = _summary(out)
    assert doc4["n_processed"] == 6 and doc4["n_done"] == 4
    again = _attempt_ids(out)
    assert set(again) == set(first) and all(again[k] != first[k] for k in first)


def test_in_process_mode_matches(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "list.txt").write_text("# two studies\nn0\n\nn1\n")
    code = main(["run", str(studies), str(out), "--workers", "0", "--no-progress", "--study-list",
                 str(tmp_path / "list.txt")])
    assert code == 0
    doc = _summary(out)
    assert doc["workers"] == 0 and doc["n_done"] == 2 and [s["input"] for s in doc["studies"]] == ["n0", "n1"]


def test_study_list_must_stay_inside_the_input(studies: Path, tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("../etc\n")
    assert main(["run", str(studies), str(tmp_path / "o"), "--study-list", str(tmp_path / "list.txt")]) == 3


def test_triton_away_mid_batch_then_back(studies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake server goes away after the first study and comes back 1.5 s later: all done."""
    flag = tmp_path / "triton-down"
    monkeypatch.setenv(DOWN_ENV, str(flag))
    monkeypatch.setenv(DELAY_ENV, "0.2")
    names = [f"n{i}" for i in range(4)]
    tasks = [StudyTask(index=i, key=n, name=n, folder=str(studies / n)) for i, n in enumerate(names)]
    out = tmp_path / "out"
    runner = BatchRunner(tasks, out, ScriptedPipeline, BatchOptions(workers=2, progress=False, retry=FAST_RETRY))
    real_finish = runner._finish
    timers: list[threading.Timer] = []

    def finish(*args: Any) -> None:  # the first committed study stops the server
        real_finish(*args)
        if not timers:
            flag.touch()
            timers.append(threading.Timer(1.5, flag.unlink))
            timers[0].start()

    runner._finish = finish  # type: ignore[method-assign]
    report = runner.run()
    timers[0].join()
    assert [r.state for r in report.results] == ["done"] * 4
    assert max(r.attempts or 0 for r in report.results) > 1  # some study waited for the server
    assert all(read_complete(out / n) is not None for n in names)


def test_triton_away_for_good_fails_the_studies_as_retryable(studies: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "triton-down"
    monkeypatch.setenv(DOWN_ENV, str(flag))
    tasks = [StudyTask(index=0, key="n0", name="n0", folder=str(studies / "n0"))]
    pipe = ScriptedPipeline()
    flag.touch()  # away after the models were loaded

    def factory() -> ScriptedPipeline:
        return pipe

    options = BatchOptions(workers=0, progress=False, retry=RetryPolicy(attempts=3, base_s=0.01, max_s=0.01))
    report = BatchRunner(tasks, tmp_path / "out", factory, options).run()
    (r,) = report.results
    assert r.state == "failed" and r.attempts == 3 and r.retryable and "not reachable" in (r.message or "")


def test_models_not_loadable_is_the_models_exit_code(studies: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "Pipeline", REAL_PIPELINE)
    out = tmp_path / "o"
    code = main(["run", str(studies), str(out), "--workers", "2", "--no-progress", "-m", str(tmp_path / "none")])
    assert code == ModelError.exit_code
    doc = _summary(out)
    assert doc["n_not_started"] == 6 and not doc["complete"]


def test_shards_partition_the_studies(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    keys = sorted(p.name for p in studies.iterdir())
    for index in range(2):
        main(["run", str(studies), str(out), "--workers", "1", "--no-progress", "--shards", "2",
              "--shard-index", str(index)])
    docs = [json.loads((out / f"run_summary-shard-{i:05d}-of-00002.json").read_text()) for i in range(2)]
    inputs = [[s["input"] for s in d["studies"]] for d in docs]
    assert sorted(inputs[0] + inputs[1]) == keys and not set(inputs[0]) & set(inputs[1])
    assert all(shard_of(k, 2) == i for i in range(2) for k in inputs[i])


def test_eta_format() -> None:
    assert format_eta(3725.4) == "1:02:05" and format_eta(None) == "?"


@pytest.mark.parametrize(("text", "want"), [("200000 100000\n", 2), ("150000 100000", 2), ("max 100000", None)])
def test_cgroup_quota_caps_the_default_workers(tmp_path: Path, text: str, want: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert run_command._cgroup_cpu_limit(path) == want
    assert run_command._cgroup_cpu_limit(tmp_path / "absent") is None


def test_dicomweb_study_list_retrieves_processes_and_stores(studies: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """UIDs from a list, each retrieved (WADO-RS) by its worker and its SR + capture stored (STOW-RS)."""
    import pydicom

    from spinevcf.pacs import DicomWebClient

    by_uid = {}
    for name in ("n0", "n1"):
        first = next(p for p in sorted((studies / name).rglob("*")) if p.is_file())
        by_uid[str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)] = studies / name
    stored: list[str] = []

    def retrieve(self: DicomWebClient, uid: str, dest: Path) -> int:
        files = [p for p in sorted(by_uid[uid].rglob("*")) if p.is_file()]
        for i, src in enumerate(files):
            (dest / f"{i:06d}.dcm").write_bytes(src.read_bytes())
        return len(files)

    def store(self: DicomWebClient, paths: list[Path]) -> list[str]:
        stored.extend(p.name for p in paths)
        return [p.name for p in paths]

    monkeypatch.setattr(DicomWebClient, "retrieve_study", retrieve)
    monkeypatch.setattr(DicomWebClient, "store", store)
    uids = tmp_path / "uids.txt"
    uids.write_text("\n".join(by_uid) + "\n")
    out = tmp_path / "out"
    code = main(["run", str(uids), str(out), "--workers", "0", "--no-progress", "--dicomweb", "http://pacs:8042",
                 "--store-dicomweb", "http://pacs:8042"])
    assert code == 0
    doc = _summary(out)
    assert sorted(s["output"] for s in doc["studies"]) == sorted(by_uid)
    assert all(s["input"].startswith("dicomweb:") and "store" in s["timings_s"] for s in doc["studies"])
    assert len([n for n in stored if n.startswith("sr_")]) == 2  # one SR per study went back
    assert all(read_complete(out / uid) is not None for uid in by_uid)
    uids.write_text("not-a-uid\n")
    assert main(["run", str(uids), str(tmp_path / "o2"), "--dicomweb", "http://pacs:8042"]) == 3
