"""Fuzzing: randomly corrupted CT series end in a spinevcf error or a sane volume, quickly.

``pytest tests/reliability --fuzz-cases 5000 [--fuzz-seed S]`` runs more cases. Any
exception other than :class:`spinevcf.errors.SpineVCFError` is a bug (a missing
validation in spinevcf.io), reported with the case index and the mutations applied.
"""

from __future__ import annotations

import functools
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from _reliability import assert_sane_volume
from corpus import make_volume
from fuzz import mutate_series

import app.app as app_module
from app.app import SpineVCFApp
from app.settings import AppSettings
from spinevcf.errors import SpineVCFError
from spinevcf.io.dicom import load_study
from spinevcf.io.dicom_write import write_ct_series
from spinevcf.volume import Volume
from tests.fake_pipeline import FakePipeline

#: Shape of the fuzzed series: tiny, so hundreds of cases run in seconds.
FUZZ_SHAPE = (6, 24, 24)
#: Upper bound (s) for one load_study call on a fuzzed series.
LOAD_TIME_LIMIT_S = 5.0
#: Fuzzed studies pushed through the whole application in-process.
APP_FUZZ_CASES = 10
#: Offset between the load_study and the application fuzz seeds.
_APP_SEED_OFFSET = 10_000_000


@pytest.fixture(scope="module")
def template_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The valid series every fuzz case starts from."""
    folder = tmp_path_factory.mktemp("fuzz_template")
    write_ct_series(make_volume(shape=FUZZ_SHAPE), folder, rng_seed=99)
    return folder


def _fuzzed_copy(template: Path, dest: Path, seed: int) -> list[str]:
    shutil.copytree(template, dest)
    return mutate_series(dest, seed)


def _outcome(folder: Path) -> tuple[Volume | SpineVCFError, float]:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result: Volume | SpineVCFError = load_study(folder)
    except SpineVCFError as exc:
        result = exc
    return result, time.perf_counter() - start


def test_fuzz_load_study(
    fuzz_index: int, template_series: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    seed = int(request.config.getoption("--fuzz-seed")) + fuzz_index
    mutations = _fuzzed_copy(template_series, tmp_path / "study", seed)
    try:
        result, elapsed = _outcome(tmp_path / "study")
    except Exception as exc:  # noqa: BLE001 - reported as the bug it is
        pytest.fail(f"seed {seed} {mutations}: {type(exc).__name__} escaped load_study: {exc}")
    assert elapsed < LOAD_TIME_LIMIT_S, f"seed {seed} {mutations}: load_study took {elapsed:.1f} s"
    if isinstance(result, SpineVCFError):
        assert str(result) and "\n" not in str(result), f"seed {seed}: multi-line or empty message"
    else:
        assert_sane_volume(result)
        assert np.isfinite(result.array.astype(np.float64)).all(), f"seed {seed} {mutations}"


def test_fuzz_counts_are_mixed(template_series: Path, tmp_path: Path) -> None:
    """The fuzzer is not degenerate: some cases load, most are refused, several error classes."""
    kinds: dict[str, int] = {}
    for i in range(40):
        _fuzzed_copy(template_series, tmp_path / str(i), 7_000_000 + i)
        result, _ = _outcome(tmp_path / str(i))
        key = type(result).__name__
        kinds[key] = kinds.get(key, 0) + 1
    assert kinds.get("Volume", 0) >= 2, kinds
    assert sum(v for k, v in kinds.items() if k != "Volume") >= 10, kinds
    assert len(kinds) >= 4, kinds


@pytest.mark.parametrize("index", range(APP_FUZZ_CASES))
def test_fuzz_whole_app(
    index: int, template_series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fuzzed studies through the application graph (model-free pipeline): error or result, never a crash."""
    seed = _APP_SEED_OFFSET + index
    mutations = _fuzzed_copy(template_series, tmp_path / "study", seed)
    out = tmp_path / "out"
    monkeypatch.setattr(app_module, "Pipeline", functools.partial(FakePipeline, spine=False))
    app = SpineVCFApp(settings=AppSettings(tmp_path / "study", out, Path("unused")))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            app.run()
    except SpineVCFError:
        assert not out.exists() or list(out.iterdir()) == [], f"seed {seed} {mutations}: partial outputs"
    except Exception as exc:  # noqa: BLE001 - reported as the bug it is
        pytest.fail(f"seed {seed} {mutations}: {type(exc).__name__} escaped the app: {exc}")
    else:
        assert (out / "results.json").is_file(), f"seed {seed} {mutations}"
