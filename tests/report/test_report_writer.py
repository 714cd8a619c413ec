"""Atomic output writer: complete sets, clean failures, refused UIDs."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

import spinevcf.report.sr as sr_module
from spinevcf.errors import OutputError
from spinevcf.pipeline import PipelineResult, write_study_outputs
from spinevcf.report import writer
from spinevcf.report.capture import build_secondary_capture
from spinevcf.report.sr import build_sr, read_sr_measurements
from spinevcf.schema import StudyRecord
from spinevcf.volume import SeriesInfo, Volume


@pytest.fixture
def outputs(record: StudyRecord, ct_header: Dataset) -> dict[str, object]:
    rgb = np.zeros((40, 30, 3), np.uint8)
    rgb[10:20, 5:15] = (255, 0, 0)
    return {
        "sr": build_sr(record, ct_header),
        "capture": build_secondary_capture(rgb, ct_header),
        "png": rgb,
    }


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_writes_complete_set(tmp_path: Path, record: StudyRecord, outputs: dict[str, object]) -> None:
    out = tmp_path / "out"
    paths = writer.write_outputs(out, record, **outputs)  # type: ignore[arg-type]
    sr_uid = outputs["sr"].SOPInstanceUID  # type: ignore[attr-defined]
    sc_uid = outputs["capture"].SOPInstanceUID  # type: ignore[attr-defined]
    assert _listing(out) == sorted(
        ["results.json", "spine_report.png", f"sr_{sr_uid}.dcm", f"sc_{sc_uid}.dcm"]
    )
    assert set(paths) == {"results", "sr", "capture", "png"}
    assert json.loads(paths["results"].read_text()) == record.to_dict()
    assert list(read_sr_measurements(paths["sr"])) == ["T11", "T12", "L1"]


def test_results_only(tmp_path: Path, record: StudyRecord) -> None:
    paths = writer.write_outputs(tmp_path, record, sr=None, capture=None, png=None)
    assert list(paths) == ["results"] and _listing(tmp_path) == ["results.json"]


def test_failure_after_first_rename_leaves_nothing(
    tmp_path: Path, record: StudyRecord, outputs: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", flaky_replace)
    with pytest.raises(OutputError, match="disk full"):
        writer.write_outputs(tmp_path, record, **outputs)  # type: ignore[arg-type]
    assert calls["n"] == 2
    assert _listing(tmp_path) == []


def test_failure_while_staging_leaves_nothing(
    tmp_path: Path, record: StudyRecord, outputs: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(path: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(writer, "_fsync_file", denied)
    with pytest.raises(OutputError, match="not writable"):
        writer.write_outputs(tmp_path, record, **outputs)  # type: ignore[arg-type]
    assert _listing(tmp_path) == []


def test_output_path_is_a_file(tmp_path: Path, record: StudyRecord) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(OutputError):
        writer.write_outputs(target, record, sr=None, capture=None, png=None)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI", "ignore:The value length")
@pytest.mark.parametrize("uid", ["../../evil", "1.2.3/../../x", "1.2." + "3" * 70, ""])
def test_uid_path_traversal_is_refused(
    tmp_path: Path, record: StudyRecord, outputs: dict[str, object], uid: str
) -> None:
    outputs["sr"].SOPInstanceUID = uid  # type: ignore[attr-defined]
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="not a valid UID"):
        writer.write_outputs(out, record, **outputs)  # type: ignore[arg-type]
    assert _listing(out) == [] and _listing(tmp_path) == ([] if not out.exists() else ["out"])


def test_concurrent_runs_into_one_folder(tmp_path: Path, record: StudyRecord, ct_header: Dataset) -> None:
    srs = [build_sr(record, ct_header) for _ in range(2)]
    errors: list[BaseException] = []

    def run(sr: Dataset) -> None:
        try:
            writer.write_outputs(tmp_path, record, sr=sr, capture=None, png=None)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(sr,)) for sr in srs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    names = _listing(tmp_path)
    assert names == sorted(["results.json", *(f"sr_{sr.SOPInstanceUID}.dcm" for sr in srs)])
    assert json.loads((tmp_path / "results.json").read_text()) == record.to_dict()


@pytest.mark.parametrize("error", [ValueError, TypeError])
def test_study_outputs_builder_error_is_an_output_error(
    tmp_path: Path,
    record: StudyRecord,
    ct_header: Dataset,
    series_uids: list[str],
    monkeypatch: pytest.MonkeyPatch,
    error: type[Exception],
) -> None:
    """An unexpected error of the SR builder: OutputError naming its type only, no file written."""

    def failing_build_sr(*args: object, **kwargs: object) -> Dataset:
        raise error(f"invalid value {ct_header.PatientName} of Patient's Name")

    monkeypatch.setattr(sr_module, "build_sr", failing_build_sr)
    volume = Volume(
        np.zeros((2, 2, 2), np.int16),
        np.eye(4),
        SeriesInfo(dataset=ct_header, sop_instance_uids=tuple(series_uids)),
    )
    out = tmp_path / "out"
    with pytest.raises(OutputError) as info:
        write_study_outputs(out, volume, PipelineResult(record=record, cpr=None))
    assert str(info.value) == f"could not build the DICOM outputs: {error.__name__}"
    assert "Spine" not in str(info.value)
    assert isinstance(info.value.__cause__, error)
    assert _listing(tmp_path) == []
