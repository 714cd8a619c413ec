"""The bad-input corpus (tests/reliability/corpus.py) at the library and application levels.

Library: :func:`spinevcf.io.dicom.load_study` raises exactly the expected error or
returns a sane volume. Application: the Holoscan app, in-process with a model-free
pipeline (always), as a subprocess with a model-free pipeline (a few cases, slow),
and as ``python -m app`` with the committed models (every case, slow; skipped while
the models are not committed, unless CI is set): a one-line error naming the cause
with the error's exit code and no output files, or exit 0 with a valid results.json.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from _reliability import assert_sane_volume, patient_strings, require_models, run_app_subprocess
from corpus import CASES, OBLIQUE_OK_DEG, TILT_OK_DEG, VOLUME, Case, case_by_name

import app.app as app_module
from app.app import SpineVCFApp
from app.settings import AppSettings
from spinevcf.errors import SpineVCFError
from spinevcf.io.dicom import load_study
from spinevcf.report.writer import RESULTS_NAME
from spinevcf.volume import Volume
from tests.fake_pipeline import FakePipeline

#: A file put into OUT before each run: it must be the only one left after a failed run.
PRE_EXISTING = "pre_existing.txt"
#: Statuses a results.json may have after a successful run.
VALID_STATUSES = {"ok", "no_spine"}
#: Cases run through the subprocess with the model-free pipeline (process-level contract).
FAKE_SUBPROCESS_CASES = ("valid", "missing_slice", "empty_folder", "huge_headers", "malicious_uids")
TRACEBACK = "Traceback (most recent call last)"


def _library_outcome(case: Case, folder: Path) -> Volume | SpineVCFError:
    if case.library == VOLUME:
        vol = load_study(folder)
        assert_sane_volume(vol)
        return vol
    assert isinstance(case.library, type)
    with pytest.raises(SpineVCFError) as info:
        load_study(folder)
    assert type(info.value) is case.library, f"{case.name}: {type(info.value).__name__}: {info.value}"
    assert str(info.value) and "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_library_outcome(case: Case, corpus_root: Path) -> None:
    _library_outcome(case, corpus_root / case.name)


def test_library_details(corpus_root: Path) -> None:
    """Case-specific checks beyond the outcome class."""
    tilted = load_study(corpus_root / "tilt_within_limit")
    assert tilted.info.extra["gantry_tilt_deg"] == pytest.approx(TILT_OK_DEG, abs=0.1)
    oblique = load_study(corpus_root / "oblique_within_limit")
    normal = np.cross(oblique.affine[:3, 2], oblique.affine[:3, 1])
    angle = np.degrees(np.arccos(abs(normal[2]) / np.linalg.norm(normal)))
    assert angle == pytest.approx(OBLIQUE_OK_DEG, abs=0.1)
    mixed = load_study(corpus_root / "mixed_series")
    assert (
        mixed.info.series_instance_uid
        == (corpus_root / "mixed_series" / "expected_series.txt").read_text().strip()
    )
    reference = load_study(corpus_root / "valid").array
    for name in ("jpeg2000", "enhanced_ct"):
        np.testing.assert_array_equal(load_study(corpus_root / name).array, reference, err_msg=name)
    rescaled = load_study(corpus_root / "extreme_rescale")
    assert rescaled.array.dtype == np.float32 and float(np.abs(rescaled.array).max()) > 1e5
    with pytest.raises(SpineVCFError, match="limit of max_bytes=1000"):
        load_study(corpus_root / "valid", max_bytes=1000)
    with pytest.raises(SpineVCFError, match=r"2000x4096x4096 int16 volume needs 67108864000 bytes"):
        load_study(corpus_root / "huge_headers")


def test_unreadable_file_via_monkeypatch(corpus_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slice that raises PermissionError on open (root ignores chmod 000) refuses the study."""
    import builtins

    from spinevcf.errors import UnreadableFileError

    victim = sorted((corpus_root / "valid").glob("*.dcm"))[0]
    real_open = builtins.open

    def guarded_open(file: object, *args: object, **kwargs: object) -> object:
        if Path(str(file)) == victim:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", guarded_open)
    with pytest.raises(UnreadableFileError, match="may belong to"):
        load_study(corpus_root / "valid")


# --------------------------------------------------------------------------- application


def _prepare_out(out: Path) -> None:
    out.mkdir(parents=True)
    (out / PRE_EXISTING).write_text("kept\n")


def _check_result_folder(case: Case, out: Path, *, real_models: bool) -> dict[str, object]:
    results = json.loads((out / RESULTS_NAME).read_text())
    assert results["status"] in VALID_STATUSES
    if real_models and case.expect_status is not None:
        assert results["status"] == case.expect_status, results.get("message")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]
    return results


def _check_error_folder(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == [PRE_EXISTING]


def _run_in_process(monkeypatch: pytest.MonkeyPatch, study: Path, out: Path) -> SpineVCFApp:
    monkeypatch.setattr(app_module, "Pipeline", functools.partial(FakePipeline, spine=False))
    app = SpineVCFApp(settings=AppSettings(study, out, Path("unused")))
    app.run()
    return app


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_app_in_process(
    case: Case, corpus_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app graph with a model-free pipeline: the loader's error or a no-spine result."""
    out = tmp_path / "out"
    _prepare_out(out)
    study = corpus_root / case.name
    if case.app == "error":
        with pytest.raises(SpineVCFError) as info:
            _run_in_process(monkeypatch, study, out)
        assert type(info.value) is case.library
        _check_error_folder(out)
    else:
        _run_in_process(monkeypatch, study, out)
        _check_result_folder(case, out, real_models=False)
        for path in out.iterdir():
            assert path.resolve().parent == out.resolve()


def _check_subprocess(case: Case, study: Path, out: Path, *, fake: bool) -> None:
    run = run_app_subprocess(study, out, "-l", "DEBUG", fake=fake)
    assert TRACEBACK not in run.stderr and TRACEBACK not in run.stdout
    for secret in patient_strings():
        assert secret.lower() not in (run.stdout + run.stderr).lower(), (
            f"patient identifier {secret!r} in the output"
        )
    if case.app == "error":
        assert run.returncode == case.exit_code, run.stderr[-2000:]
        errors = [line for line in run.stderr.splitlines() if line.startswith("spinevcf: error:")]
        assert len(errors) == 1, run.stderr[-2000:]
        with pytest.raises(SpineVCFError) as info:
            load_study(study)
        assert errors[0] == f"spinevcf: error: {info.value}"
        _check_error_folder(out)
    else:
        assert run.returncode == 0, run.stderr[-2000:]
        _check_result_folder(case, out, real_models=not fake)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAKE_SUBPROCESS_CASES)
def test_app_subprocess_fake_pipeline(name: str, corpus_root: Path, tmp_path: Path) -> None:
    """The process contract without models: exit code, one-line error, no traceback, no outputs."""
    out = tmp_path / "out"
    _prepare_out(out)
    _check_subprocess(case_by_name(name), corpus_root / name, out, fake=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_app_subprocess_real_models(case: Case, corpus_root: Path, tmp_path: Path) -> None:
    """``python -m app -i IN -o OUT`` with the committed models."""
    require_models()
    out = tmp_path / "out"
    _prepare_out(out)
    _check_subprocess(case, corpus_root / case.name, out, fake=False)
