"""Tests of the benchmark (spinevcf.bench): statistics helpers, study generation, quick mode.

No test asserts a timing: only that numbers are present and positive.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spinevcf import bench
from spinevcf.volume import Volume

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "model_repository"
MODEL_NAMES = ("spine_localizer_3d", "vertebra_detector_2d")
#: In-plane size of the tiny quick-mode study of the tests.
TINY_SIZE = 128


def _models_available(repo: Path) -> bool:
    return all((repo / n / "1" / "model.onnx").is_file() and (repo / n / "spinevcf.json").is_file() for n in MODEL_NAMES)


# ----------------------------------------------------------------------------- statistics


def test_percentile_interpolates_linearly() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert bench.percentile(values, 50) == pytest.approx(5.5)
    assert bench.percentile(values, 95) == pytest.approx(9.55)  # 9 + 0.55 * (10 - 9)
    assert bench.percentile(values, 0) == 1.0
    assert bench.percentile(values, 100) == 10.0
    assert bench.percentile([3.0], 95) == 3.0


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        bench.percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        bench.percentile([1.0], 101)


def test_summarize() -> None:
    s = bench.summarize([0.4, 0.1, 0.3, 0.2])
    assert s["n"] == 4
    assert s["median_s"] == pytest.approx(0.25)
    assert s["p95_s"] == pytest.approx(0.385)  # 0.3 + 0.85 * 0.1
    assert (s["min_s"], s["max_s"]) == (0.1, 0.4)
    assert s["mean_s"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        bench.summarize([])


def test_linear_fit_exact_and_noisy() -> None:
    fit = bench.linear_fit([150, 300, 600], [0.5 + 0.002 * s for s in (150, 300, 600)])
    assert fit.intercept == pytest.approx(0.5)
    assert fit.slope == pytest.approx(0.002)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.n == 3
    noisy = bench.linear_fit([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0])
    assert noisy.slope == pytest.approx(0.8)
    assert noisy.intercept == pytest.approx(0.5)
    assert noisy.r2 == pytest.approx(0.64)  # 1 - 1.8 / 5
    flat = bench.linear_fit([1, 2], [2.0, 2.0])
    assert (flat.slope, flat.r2) == (pytest.approx(0.0), 1.0)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [([1], [1.0], "two points"), ([1, 1], [1.0, 2.0], "distinct"), ([1, 2], [1.0], "equal length")],
)
def test_linear_fit_rejects(x: list[float], y: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bench.linear_fit(x, y)


def test_growth_ratio_uses_two_largest_sizes() -> None:
    g = bench.growth([600, 150, 300], [6.0, 1.5, 3.0])
    assert g["sizes"] == [150, 300, 600]
    assert g["ratio"] == pytest.approx(2.0)
    assert g["slice_ratio"] == pytest.approx(2.0)
    assert g["fit"]["slope"] == pytest.approx(0.01)
    assert g["fit"]["intercept"] == pytest.approx(0.0, abs=1e-9)


def test_memory_target() -> None:
    n = 300 * 512 * 512
    assert bench.memory_target_bytes(n) == 3 * 2 * n + 2**30


def test_importtime_parsing() -> None:
    text = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |     numpy.core",
            "import time:       200 |        300 |   numpy",
            "import time:        50 |         50 |     torch._C",
            "import time:      1000 |       1050 |   torch",
            "import time:        10 |       1360 | app",
            "not an importtime line",
        ]
    )
    top = bench._importtime_top(text, top=2)
    assert [t["package"] for t in top] == ["torch", "numpy"]
    assert top[0]["self_s"] == pytest.approx(1050e-6)
    assert top[0]["cumulative_s"] == pytest.approx(1050e-6)
    assert top[1]["self_s"] == pytest.approx(300e-6)


def test_importtime_package_without_its_own_line_has_no_cumulative_time() -> None:
    # e.g. a namespace package: only its submodules appear in the output
    text = "\n".join(
        [
            "import time:       400 |        400 |   zope.interface",
            "import time:       100 |        100 |   numpy",
        ]
    )
    top = bench._importtime_top(text, top=2)
    assert [t["package"] for t in top] == ["zope", "numpy"]
    assert top[0]["self_s"] == pytest.approx(400e-6) and top[0]["cumulative_s"] is None
    assert top[1]["cumulative_s"] == pytest.approx(100e-6)


class _FakeBackend:
    closed = False

    def infer(self, model_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"out": inputs["image"] * 2}

    def close(self) -> None:
        self.closed = True


def test_timing_backend_records_and_delegates() -> None:
    inner = _FakeBackend()
    tb = bench.TimingBackend(inner)
    x = np.ones((2, 2), np.float32)
    assert np.array_equal(tb.infer("a", {"image": x})["out"], 2 * x)
    tb.infer("a", {"image": x})
    tb.infer("b", {"image": x})
    taken = tb.take()
    assert set(taken) == {"a", "b"} and all(v >= 0 for v in taken.values())
    assert tb.take() == {}
    assert tb.closed is False  # attribute access goes to the wrapped backend
    tb.close()
    assert inner.closed


def test_machine_info_fields() -> None:
    info = bench.machine_info()
    assert info["python"].startswith("3.")
    assert info["logical_cpus"] >= 1 and info["usable_cpus"] >= 1
    assert info["versions"]["onnxruntime"]
    assert set(info["thread_env"]) >= {"OMP_NUM_THREADS"}


def test_options_validation() -> None:
    with pytest.raises(ValueError, match="slices"):
        bench.BenchOptions(slices=[])
    with pytest.raises(ValueError, match="repeats"):
        bench.BenchOptions(repeats=0)
    with pytest.raises(ValueError, match="concurrency"):
        bench.BenchOptions(concurrency=[0])


# ----------------------------------------------------------------------------- studies and floor


def test_ensure_study_generates_then_reuses(tmp_path: Path) -> None:
    spec = bench.StudySpec(n_slices=8, size=64)
    folder = bench.ensure_study(tmp_path, spec)
    files = sorted(folder.iterdir())
    assert len(files) == 8
    marker = json.loads((folder.parent / bench.STUDY_MARKER).read_text())
    assert marker["spec"] == spec.to_dict()
    mtime = files[0].stat().st_mtime_ns
    assert bench.ensure_study(tmp_path, spec) == folder
    assert files[0].stat().st_mtime_ns == mtime  # reused, not rewritten

    from spinevcf.io.dicom import load_study

    vol = load_study(folder)
    assert vol.shape == (8, 64, 64)
    assert vol.array.max() > 300  # bone is in the field of view
    assert np.allclose(vol.spacing, [bench.SLICE_MM, bench.FOV_MM / 64, bench.FOV_MM / 64])


def test_decode_floor_positive(tmp_path: Path) -> None:
    from spinevcf.io.dicom_write import write_ct_series

    arr = np.random.default_rng(0).integers(-1000, 1000, (5, 32, 32)).astype(np.int16)
    paths = write_ct_series(Volume(arr, np.eye(4)), tmp_path, rng_seed=1)
    assert bench.decode_floor(paths) > 0


# ----------------------------------------------------------------------------- quick mode


def _positive_numbers(obj: Any, path: str = "") -> list[str]:
    """Paths of timing/memory numbers in the report that are missing or not positive."""
    bad: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad += _positive_numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            bad += _positive_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, bool) or obj is None:
        pass
    elif isinstance(obj, int | float) and (path.endswith(("_s", "_bytes")) or "ratio" in path.rsplit(".", 1)[-1]):
        if not (math.isfinite(obj) and obj > 0):
            bad.append(path)
    return bad


def _check_report(report: dict[str, Any], slices: int) -> None:
    assert report["schema"] == bench.REPORT_SCHEMA
    for key in ("machine", "settings", "studies", "in_process", "startup", "app_run", "targets"):
        assert report[key], key
    m = report["machine"]
    for key in ("cpu_model", "logical_cpus", "usable_cpus", "ram_bytes", "os", "python", "versions", "thread_env"):
        assert key in m, key
    (entry,) = report["in_process"]
    assert entry["n_slices"] == slices
    assert entry["shape"] == [slices, TINY_SIZE, TINY_SIZE]
    assert entry["int16_volume_bytes"] == 2 * slices * TINY_SIZE * TINY_SIZE
    for stage in ("load", "localize", "grade", "write"):
        assert entry["stages"][stage]["median_s"] > 0, stage
    assert entry["peak_rss_bytes"] >= entry["rss_after_model_load_bytes"] > 0
    assert entry["memory_target_met"] in (True, False)
    assert set(entry["models"]) >= {"spine_localizer_3d"}
    assert report["startup"]["largest_imports"]
    assert report["app_run"]["wall_s"] > 0
    assert report["app_run"]["decode_process"]["median_s"] > 0
    assert report["app_run"]["ratio_app_to_decode_process"] > 1.0  # the app decodes the same files and more
    assert entry["substages"]["localizer_preprocess"]["median_s"] > 0
    assert {t["name"] for t in report["targets"]} >= {
        "write stage (s)",
        "localizer preprocessing (s)",
        "python -m app / pydicom decode process",
    }
    assert {t["name"] for t in report["targets"]} >= {"end-to-end / decode floor", "peak memory (GiB)", "start-up (s)"}
    assert _positive_numbers(report) == []
    text = bench.format_tables(report)
    assert "In-process latency" in text and "Targets" in text


def _run_quick(tmp_path: Path, models: Path) -> dict[str, Any]:
    from spinevcf.commands import bench as cmd

    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    out = tmp_path / "bench.json"
    args = parser.parse_args(
        ["bench", "--quick", "--size", str(TINY_SIZE), "--workdir", str(tmp_path / "work"), "--out", str(out), "-m", str(models)]
    )
    assert args.func(args) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.skipif(
    not _models_available(MODELS) and not os.environ.get("CI"),
    reason="model_repository/ has no trained ONNX models yet (1/model.onnx + spinevcf.json); CI is not set",
)
def test_quick_mode_report(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, MODELS)
    _check_report(report, bench.QUICK_SLICES[0])
    entry = report["in_process"][0]
    assert entry["status"] == "ok" and entry["n_vertebrae"] > 0  # trained models find the spine
    assert entry["stages_not_run"] == []


@pytest.fixture(scope="module")
def random_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with randomly initialised networks (exercises the machinery only)."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("random_models")
    code = (
        "import sys; from pathlib import Path\n"
        "from export.random_checkpoint import write_random_checkpoint\n"
        "from export.export_onnx import main\n"
        "d = Path(sys.argv[1])\n"
        "a = write_random_checkpoint('spine_localizer_3d', d / 'loc.pt', seed=1)\n"
        "b = write_random_checkpoint('vertebra_detector_2d', d / 'det.pt', seed=2)\n"
        "sys.exit(main([str(a), str(b), '--out', str(d / 'models'), '--no-verify']))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(root)], cwd=REPO, check=True, capture_output=True, timeout=600)
    return root / "models"


@pytest.mark.slow
def test_quick_mode_machinery_with_random_models(tmp_path: Path, random_models: Path) -> None:
    report = _run_quick(tmp_path, random_models)
    _check_report(report, bench.QUICK_SLICES[0])


# ----------------------------------------------------------------------------- issue 15 targets


def _entry(n: int, ratio: float, write_s: float, pre_s: float) -> dict[str, Any]:
    def stat(v: float) -> dict[str, float]:
        return {"median_s": v, "p95_s": v, "min_s": v, "max_s": v, "mean_s": v, "n": 1}

    return {
        "n_slices": n,
        "n_vertebrae": 17,
        "ratio_end_to_end_to_floor": ratio,
        "stages": {"write": stat(write_s)},
        "substages": {"localizer_preprocess": stat(pre_s)},
        "models_total": None,
        "memory_target_bytes": 2**30,
        "peak_rss_bytes": 2**29,
        "memory_target_met": True,
    }


def _target(targets: list[dict[str, Any]], name: str, on: str = "") -> dict[str, Any]:
    (found,) = [t for t in targets if t["name"] == name and on in t["on"]]
    return found


def test_issue15_targets_are_measured_facts() -> None:
    report = {
        "in_process": [_entry(150, 2.0, 0.05, 0.02), _entry(300, 2.4, 0.079, 0.041), _entry(600, 2.45, 0.09, 0.08)],
        "startup": None,
        "app_run": {
            "ratio_app_to_decode_process": 2.6,
            "n_files": 250,
            "app": {"n": 3},
        },
    }
    targets = bench._targets(report)
    floor300 = _target(targets, "end-to-end / decode floor", "300-slice")
    assert floor300["met"] is True and floor300["target"] == "<= 2.5"
    floor600 = _target(targets, "end-to-end / decode floor", "600-slice")
    assert floor600["met"] is False  # under 2.5 but worse than at 300 slices
    write = _target(targets, "write stage (s)")
    assert write["met"] is True and "17 vertebrae" in write["on"] and "300-slice" in write["on"]
    assert _target(targets, "localizer preprocessing (s)")["met"] is False  # 41 ms > 40 ms
    app = _target(targets, "python -m app / pydicom decode process")
    assert app["met"] is False and app["measured"] == 2.6 and "250-slice" in app["on"]

    report["in_process"][2]["ratio_end_to_end_to_floor"] = 2.3
    assert _target(bench._targets(report), "end-to-end / decode floor", "600-slice")["met"] is True


def test_app_slices_option() -> None:
    from spinevcf.commands import bench as cmd

    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    assert parser.parse_args(["bench", "--app-slices", "120"]).app_slices == 120
    with pytest.raises(ValueError, match="app_slices"):
        bench.BenchOptions(app_slices=2)
