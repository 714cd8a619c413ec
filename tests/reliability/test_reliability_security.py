"""Security: no patient identifiers in logs or messages; output names come from validated UIDs.

Every corpus study carries :data:`corpus.PATIENT`. For every corpus case the library
and the application (in-process, with all output writers running) are run with
logging at DEBUG; stdout, stderr (file-descriptor level, so Holoscan's C++ logger is
included), the Python log records and the exception messages must not contain the
patient's name, its parts or the patient ID. The subprocess runs in
test_reliability_corpus.py check the same on the process output.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import pydicom
import pytest
from _reliability import patient_strings
from corpus import CASES, Case, build_malicious_uids, write_valid

import app.app as app_module
from app.app import SpineVCFApp
from app.settings import AppSettings
from spinevcf.commands.run import is_valid_uid, output_names
from spinevcf.errors import InputError, OutputError, SpineVCFError
from spinevcf.io.dicom import load_study
from spinevcf.report.writer import dicom_file_name
from tests.fake_pipeline import FakePipeline

FORBIDDEN = patient_strings()


def _assert_clean(text: str, where: str) -> None:
    for s in FORBIDDEN:
        assert s.lower() not in text.lower(), f"patient identifier {s!r} found in {where}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_patient_data_library(case: Case, corpus_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_study(corpus_root / case.name)
    except SpineVCFError as exc:
        _assert_clean(str(exc), "the exception message")
        _assert_clean(repr(exc.args), "the exception arguments")
    _assert_clean(caplog.text, "the log")
    _assert_clean(" ".join(str(r.args) for r in caplog.records), "the log arguments")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_patient_data_app(
    case: Case,
    corpus_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(app_module, "Pipeline", functools.partial(FakePipeline, spine=True))
    app = SpineVCFApp(settings=AppSettings(corpus_root / case.name, tmp_path / "out", Path("unused")))
    message = ""
    try:
        app.run()
    except SpineVCFError as exc:
        message = str(exc)
    out, err = capfd.readouterr()
    _assert_clean(message, "the exception message")
    _assert_clean(out, "stdout")
    _assert_clean(err, "stderr")
    _assert_clean(caplog.text, "the log")


def test_patient_data_does_reach_the_outputs(corpus_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanity check of the test itself: the identifiers are in the study and are copied into the SR."""
    monkeypatch.setattr(app_module, "Pipeline", functools.partial(FakePipeline, spine=True))
    app = SpineVCFApp(settings=AppSettings(corpus_root / "valid", tmp_path / "out", Path("unused")))
    app.run()
    sr = pydicom.dcmread(app.state.outputs["sr"])
    assert str(sr.PatientID) in FORBIDDEN


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_malicious_uids_write_nothing_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'../../etc'-style UIDs: refused at loading, nothing written inside or outside OUT."""
    work = tmp_path / "a" / "b" / "c"
    study = build_malicious_uids(work / "study")
    before = _tree(tmp_path)
    monkeypatch.setattr(app_module, "Pipeline", functools.partial(FakePipeline, spine=True))
    app = SpineVCFApp(settings=AppSettings(study, work / "out", Path("unused")))
    with pytest.raises(InputError, match="invalid StudyInstanceUID"):
        app.run()
    assert _tree(tmp_path) - before <= {work / "out"}
    assert not (work / "out").exists() or list((work / "out").iterdir()) == []


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"])
def test_each_malicious_uid_is_refused(tmp_path: Path, keyword: str) -> None:
    study = write_valid(tmp_path / "s")
    for path in sorted(study.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        setattr(ds, keyword, "../../etc/x")
        if keyword == "SOPInstanceUID":
            ds.file_meta.MediaStorageSOPInstanceUID = f"../{path.stem}"
            ds.SOPInstanceUID = f"../{path.stem}"
        ds.save_as(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=f"invalid {keyword}") as info:
            load_study(study)
    assert "../" not in str(info.value)


@pytest.mark.parametrize("uid", ["../../etc", "1.2/../../x", "/etc/passwd", "1.2.3\\x", "", "1" * 65])
def test_output_file_names_need_valid_uids(uid: str) -> None:
    ds = pydicom.Dataset()
    ds.SOPInstanceUID = uid
    with pytest.raises(OutputError, match="not a valid UID"):
        dicom_file_name("sr_", ds)
    assert not is_valid_uid(uid)


def test_batch_output_folder_names_are_hashed_for_bad_uids() -> None:
    from spinevcf.commands.run import StudyInput

    names = output_names([StudyInput(key="x", folder=None, study_instance_uid="../../etc")])
    assert names[0].startswith("study-") and "/" not in names[0] and ".." not in names[0]
