"""``python -m app`` as a user runs it: exit status, messages, outputs, and logs without patient data.

The ``*_fake`` tests run the real ``app.__main__.main`` in a subprocess with the fake
pipeline patched in (no models needed); the others run ``python -m app`` itself with the
trained models and are skipped until ``model_repository/`` holds them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _app_studies import PATIENT, REPO, needs_models

from tests.dicom_tools import dciodvfy_errors
from tests.fake_pipeline import FAKE_SPINE_ENV


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOSCAN_", "TRITON_", "SPINEVCF_"))}
    env.update(extra)
    return env


def _app(
    args: list[str], *, fake: bool | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if fake is None:
        cmd = [sys.executable, "-m", "app", *args]
    else:
        cmd = [sys.executable, "-m", "tests.fake_pipeline", *args]
        env = {**(env or _env()), FAKE_SPINE_ENV: "1" if fake else "0"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env or _env())


def _assert_no_patient_data(proc: subprocess.CompletedProcess[str]) -> None:
    logs = proc.stdout + proc.stderr
    for key in ("PatientName", "PatientID"):
        value = PATIENT[key]
        assert value not in logs, f"{key} leaked into the logs"
        assert value.split("^")[0] not in logs, f"part of {key} leaked into the logs"


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "At:" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("spinevcf: error:")]
    assert len(errors) == 1 and text in errors[0], proc.stderr[-2000:]



def test_study_fake(studies: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _app(["-i", str(studies["ct"]), "-o", str(out)], fake=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "results.json").is_file() and (out / "spine_report.png").is_file()
    assert len(list(out.glob("sr_*.dcm"))) == 1 and len(list(out.glob("sc_*.dcm"))) == 1
    assert "stage load:" in proc.stderr + proc.stdout  # each operator logs its stage time
    _assert_no_patient_data(proc)


def test_no_ct_fake(studies: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _app(["-i", str(studies["mr"]), "-o", str(out)], fake=True)
    _assert_one_line_error(proc, 3, "no usable axial CT series")
    assert not out.exists() or list(out.iterdir()) == []
    _assert_no_patient_data(proc)


def test_env_conventions_and_missing_models(studies: dict[str, Path], tmp_path: Path) -> None:
    env = _env(
        HOLOSCAN_INPUT_PATH=str(studies["ct"]),
        HOLOSCAN_OUTPUT_PATH=str(tmp_path / "out"),
        HOLOSCAN_MODEL_PATH=str(tmp_path / "no-models"),
    )
    proc = _app([], env=env)
    _assert_one_line_error(proc, 4, "model repository not found")


def test_missing_input(tmp_path: Path) -> None:
    env = _env(HOLOSCAN_INPUT_PATH=str(tmp_path / "nope"), HOLOSCAN_OUTPUT_PATH=str(tmp_path / "out"))
    _assert_one_line_error(_app([], env=env), 3, "input folder not found")


@needs_models
def test_study_with_models(studies: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _app(["-i", str(studies["ct"]), "-o", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert {"load", "localize", "grade"} <= set(results["timings_s"])
    srs = list(out.glob("sr_*.dcm"))
    assert len(srs) == 1
    _assert_no_patient_data(proc)
    if shutil.which("dciodvfy"):
        for path in [*srs, *out.glob("sc_*.dcm")]:
            assert dciodvfy_errors(path)[0] == [], path.name


@needs_models
def test_no_spine_with_models(studies: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _app(["-i", str(studies["water"]), "-o", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["vertebrae"] == [] and results["status"] == "no_spine"
    assert len(list(out.glob("sr_*.dcm"))) == 1
    _assert_no_patient_data(proc)


@needs_models
def test_no_ct_with_models(studies: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _app(["-i", str(studies["mr"]), "-o", str(out)])
    _assert_one_line_error(proc, 3, "no usable axial CT series")
    assert not out.exists() or list(out.iterdir()) == []
