"""The Holoscan application graph, run in-process with a fake pipeline (no models needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

import app.app as app_module
from app.app import SpineVCFApp
from app.settings import AppSettings
from spinevcf.errors import NoCTSeriesError
from tests.dicom_tools import dciodvfy_errors
from tests.fake_pipeline import FakePipeline

STAGES = ("load", "localize", "cpr", "detect", "grade")


def _run(
    monkeypatch: pytest.MonkeyPatch, study: Path, out: Path, *, spine: bool
) -> tuple[SpineVCFApp, FakePipeline]:
    fake = FakePipeline(spine=spine)
    monkeypatch.setattr(app_module, "Pipeline", lambda *a, **k: fake)
    app = SpineVCFApp(settings=AppSettings(study, out, Path("unused")))
    app.run()
    return app, fake



def test_graph_writes_all_outputs(
    monkeypatch: pytest.MonkeyPatch, studies: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    app, fake = _run(monkeypatch, studies["ct"], out, spine=True)
    assert fake.calls == ["localize", "reformat", "detect", "grade"]
    assert fake.closed
    assert set(app.state.outputs) == {"sr", "capture", "png", "results"}
    for path in app.state.outputs.values():
        assert path.is_file() and path.parent == out.resolve()
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "no_spine"  # the double finds no vertebra (real Pipeline.grade)
    assert set(STAGES) <= set(results["timings_s"])
    sr = pydicom.dcmread(app.state.outputs["sr"])
    source = pydicom.dcmread(next(p for p in sorted(studies["ct"].rglob("*")) if p.is_file()))
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.Modality == "SR"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_sr_and_capture_pass_dciodvfy(
    monkeypatch: pytest.MonkeyPatch, studies: dict[str, Path], tmp_path: Path
) -> None:
    app, _ = _run(monkeypatch, studies["ct"], tmp_path / "out", spine=True)
    for kind in ("sr", "capture"):
        assert dciodvfy_errors(app.state.outputs[kind])[0] == [], kind


def test_no_spine_gives_valid_empty_report(
    monkeypatch: pytest.MonkeyPatch, studies: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    app, fake = _run(monkeypatch, studies["water"], out, spine=False)
    assert fake.calls == ["localize", "grade"]
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "no_spine"
    assert results["vertebrae"] == []
    assert "sr" in app.state.outputs and app.state.outputs["sr"].is_file()
    if shutil.which("dciodvfy"):
        assert dciodvfy_errors(app.state.outputs["sr"])[0] == []


def test_no_ct_raises_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, studies: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    fake = FakePipeline(spine=True)
    monkeypatch.setattr(app_module, "Pipeline", lambda *a, **k: fake)
    app = SpineVCFApp(settings=AppSettings(studies["mr"], out, Path("unused")))
    with pytest.raises(NoCTSeriesError):
        app.run()
    assert fake.calls == []
    assert fake.closed
    assert not out.exists() or list(out.iterdir()) == []
