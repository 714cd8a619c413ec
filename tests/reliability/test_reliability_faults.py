"""Faults around a run: unwritable output, disk full, concurrent runs, Triton down at start.

A Triton server going down mid-study is tested against a real server in
tests/inference/test_triton_pipeline.py; a missing model on the server and a wrong output
shape in tests/inference/test_triton_backend.py (see docs/reliability.md).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import socket
import threading
import time
from pathlib import Path

import pydicom
import pytest
from _reliability import require_models, run_app_subprocess
from corpus import write_valid
from PIL import Image

import app.app as app_module
import spinevcf.report.writer as writer
from app.app import SpineVCFApp
from app.settings import AppSettings
from spinevcf.errors import InferenceServerError, OutputError
from spinevcf.pipeline import process_study
from tests.fake_pipeline import FAKE_SPINE_ENV, FakePipeline

PRE_EXISTING = "pre_existing.txt"
#: Files the fake pipeline with a spine makes the writer produce.
KINDS = ("sr", "capture", "png", "results")
#: Upper bound (s) for giving up on a Triton server that is down.
TRITON_DOWN_LIMIT_S = 30.0
TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_valid(tmp_path_factory.mktemp("fault_study") / "s", seed=21)


@pytest.fixture(scope="module")
def study_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_valid(tmp_path_factory.mktemp("fault_study_b") / "s", seed=22)


def _app(monkeypatch: pytest.MonkeyPatch, study: Path, out: Path) -> SpineVCFApp:
    monkeypatch.setattr(app_module, "Pipeline", functools.partial(FakePipeline, spine=True))
    return SpineVCFApp(settings=AppSettings(study, out, Path("unused")))


def _prepared(out: Path) -> Path:
    out.mkdir(parents=True)
    (out / PRE_EXISTING).write_text("kept\n")
    return out


def _only_pre_existing(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == [PRE_EXISTING]


def test_all_outputs_without_faults(monkeypatch: pytest.MonkeyPatch, study: Path, tmp_path: Path) -> None:
    """Baseline for the fault tests: the fake pipeline with a spine gives all four outputs."""
    out = _prepared(tmp_path / "out")
    app = _app(monkeypatch, study, out)
    app.run()
    assert set(app.state.outputs) == set(KINDS)


@pytest.mark.parametrize(
    ("where", "err", "words"),
    [
        ("save", errno.ENOSPC, "disk full"),
        ("fsync", errno.ENOSPC, "disk full"),
        ("replace", errno.EACCES, "not writable"),
        ("replace", errno.EROFS, "not writable"),
    ],
)
def test_write_failure_leaves_no_partial_files(
    monkeypatch: pytest.MonkeyPatch, study: Path, tmp_path: Path, where: str, err: int, words: str
) -> None:
    """The third file written (or the second renamed) fails: nothing of this run stays in OUT."""
    out = _prepared(tmp_path / "out")
    calls = {"n": 0}

    def failing(real: object, fail_at: int) -> object:
        def wrapper(*args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError(err, os.strerror(err))
            return real(*args, **kwargs)  # type: ignore[operator]

        return wrapper

    if where == "save":
        monkeypatch.setattr(writer, "save_png", failing(writer.save_png, 1))
    elif where == "fsync":
        monkeypatch.setattr(writer, "_fsync_file", failing(writer._fsync_file, 3))
    else:
        monkeypatch.setattr(writer.os, "replace", failing(os.replace, 2))
    app = _app(monkeypatch, study, out)
    with pytest.raises(OutputError, match=words):
        app.run()
    monkeypatch.undo()
    _only_pre_existing(out)


def test_output_path_is_a_file(monkeypatch: pytest.MonkeyPatch, study: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    app = _app(monkeypatch, study, blocker / "out")
    with pytest.raises(OutputError, match="output folder"):
        app.run()
    assert blocker.read_text() == "a file, not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


@pytest.mark.slow
def test_unwritable_output_subprocess(study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a process: exit code 6, one line naming the cause, no traceback."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x\n")
    monkeypatch.setenv(FAKE_SPINE_ENV, "1")
    run = run_app_subprocess(study, blocker / "out", fake=True)
    assert run.returncode == OutputError.exit_code, run.stderr[-2000:]
    assert TRACEBACK not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("spinevcf: error:")]
    assert len(lines) == 1 and "output folder" in lines[0]


def _check_complete(out: Path, sources: list[Path]) -> None:
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(writer.TMP_PREFIX)], names
    srs = [out / n for n in names if n.startswith(writer.SR_PREFIX)]
    scs = [out / n for n in names if n.startswith(writer.SC_PREFIX)]
    assert len(srs) == len(sources) and len(scs) == len(sources), names
    studies = set()
    for path in srs + scs:
        ds = pydicom.dcmread(path)
        assert path.name.endswith(f"{ds.SOPInstanceUID}.dcm")
        studies.add(ds.StudyInstanceUID)
    expected = {
        pydicom.dcmread(next(s.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID for s in sources
    }
    assert studies == expected
    results = json.loads((out / writer.RESULTS_NAME).read_text())
    assert results["study_instance_uid"] in expected
    with Image.open(out / writer.PNG_NAME) as img:
        img.load()


def test_two_runs_into_one_folder_threads(study: Path, study_b: Path, tmp_path: Path) -> None:
    """Two studies processed concurrently into the same OUT: both SRs and SCs whole, no temp left."""
    out = tmp_path / "out"
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(src: Path) -> None:
        try:
            barrier.wait(timeout=30)
            process_study(src, out, FakePipeline(spine=True))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in (study, study_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a run hung"
    assert errors == []
    _check_complete(out, [study, study_b])


@pytest.mark.slow
def test_two_app_processes_into_one_folder(
    study: Path, study_b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ``python -m app`` processes at once into the same OUT."""
    out = tmp_path / "out"
    monkeypatch.setenv(FAKE_SPINE_ENV, "1")
    runs: dict[Path, object] = {}

    def work(src: Path) -> None:
        runs[src] = run_app_subprocess(src, out, fake=True)

    threads = [threading.Thread(target=work, args=(s,)) for s in (study, study_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for run in runs.values():
        assert run.returncode == 0, run.stderr[-2000:]  # type: ignore[attr-defined]
    _check_complete(out, [study, study_b])


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_down_backend(protocol: str) -> None:
    """The Triton backend on a closed loopback port: a clear InferenceServerError, quickly."""
    pytest.importorskip("tritonclient")
    from spinevcf.inference.triton_backend import TritonBackend

    start = time.perf_counter()
    with pytest.raises(InferenceServerError) as info:
        TritonBackend(f"127.0.0.1:{_closed_port()}", protocol=protocol, timeout_s=5.0, retries=1)
    assert time.perf_counter() - start < TRITON_DOWN_LIMIT_S
    assert "127.0.0.1" in str(info.value)


@pytest.mark.slow
def test_triton_down_app(study: Path, tmp_path: Path) -> None:
    """``python -m app --triton-url 127.0.0.1:<closed>``: exit 5, one line, no outputs."""
    require_models()
    out = _prepared(tmp_path / "out")
    run = run_app_subprocess(study, out, "--triton-url", f"127.0.0.1:{_closed_port()}")
    assert run.returncode == InferenceServerError.exit_code, run.stderr[-2000:]
    assert TRACEBACK not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("spinevcf: error:")]
    assert len(lines) == 1 and "127.0.0.1" in lines[0]
    _only_pre_existing(out)
