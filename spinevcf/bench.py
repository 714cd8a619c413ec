"""Latency, memory and start-up benchmark of the spinevcf pipeline (issue 7).

What is measured (see docs/performance.md for the targets and how to read the tables):

* **In-process stages**, per study size, each in a *fresh child process*
  (``python -m spinevcf.bench --child inprocess ...``) so that the peak resident memory
  (``VmHWM``) is that study's own: load and decode (:func:`spinevcf.io.dicom.load_study`),
  localize, CPR, detect, grade (the timers of :meth:`spinevcf.pipeline.Pipeline.run`) and
  writing the outputs (:func:`spinevcf.pipeline.write_study_outputs` into a temporary
  folder); one warm-up pass, then ``repeats`` timed passes. The model calls are timed on
  their own by wrapping the backend (:class:`TimingBackend`).
* **The decode floor**: the same files read with pydicom alone (``dcmread`` +
  ``pixel_array`` into one preallocated array) in the same warm process.
* **Growth with the slice count**: a least-squares line ``t = a + b * slices`` per stage
  (:func:`linear_fit`) and the ratio of the two largest sizes.
* **Start-up** (child processes): importing the application, constructing the MONAI
  Deploy (Holoscan) ``Application``, loading both models; and the wall time of
  ``python -m app -i STUDY -o OUT`` on the middle-sized study.
* **Triton** (with ``triton_url``): per-study latency and studies per minute at several
  concurrencies on a volume held in memory, and the model-only latency per request.

Studies are synthetic (no patient data): :func:`spinevcf.synth.generate_case` with the
slice count forced (512 x 512), written with :func:`spinevcf.synth.write_case` and reused
from the work folder; other in-plane sizes (tests) render the phantom directly.

Example:
    >>> summarize([1.0, 2.0, 3.0])["median_s"]
    2.0
    >>> round(linear_fit([1, 2, 3], [2.0, 4.0, 6.0]).slope, 6)
    2.0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from spinevcf import __version__
from spinevcf.errors import SpineVCFError

__all__ = [
    "BenchOptions",
    "LinearFit",
    "TimingBackend",
    "DEFAULT_SLICES",
    "QUICK_SLICES",
    "DEFAULT_REPEATS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_SIZE",
    "STAGES",
    "REPORT_SCHEMA",
    "percentile",
    "summarize",
    "linear_fit",
    "growth",
    "memory_target_bytes",
    "machine_info",
    "peak_rss_bytes",
    "ensure_study",
    "decode_floor",
    "measure_inprocess",
    "measure_startup",
    "measure_app_run",
    "measure_triton",
    "run_benchmark",
    "check_models",
    "format_tables",
    "BenchmarkError",
]

log = logging.getLogger(__name__)

#: Report format identifier (bump when fields change meaning).
REPORT_SCHEMA = "spinevcf-bench/1"
#: Study sizes (number of axial slices) of a full run.
DEFAULT_SLICES: tuple[int, ...] = (150, 300, 600)
#: The single small study of ``--quick``: 96 mm at 1 mm slices, so that at least one
#: vertebral body lies wholly inside the scan (bodies within EDGE_MARGIN_MM of its ends are
#: treated as cut by the field of view).
QUICK_SLICES: tuple[int, ...] = (96,)
#: Timed passes per study size (after the warm-up).
DEFAULT_REPEATS = 5
#: Untimed passes before timing (first model call, page cache, allocator).
WARMUP_PASSES = 1
#: Triton client concurrencies.
DEFAULT_CONCURRENCY: tuple[int, ...] = (1, 2, 4)
#: Studies processed by each Triton client thread per concurrency level (at least).
TRITON_STUDIES_PER_THREAD = 3
#: Requests per model for the model-only Triton latency.
TRITON_MODEL_REQUESTS = 10
#: Rows and columns of the synthetic CT slices.
DEFAULT_SIZE = 512
#: Slice spacing of the synthetic studies (mm); the scanned length grows with the slice count.
SLICE_MM = 1.0
#: In-plane field of view of the synthetic studies (mm); pixel size = FOV / size.
FOV_MM = 400.0
#: Standard deviation of the Gaussian noise added to the phantom (HU).
NOISE_HU = 20.0
#: Fractional level index the scan is centred on (18.5 = between T12 and L1).
CENTRE_LEVEL = 18.5
#: Seed of the synthetic patient (one patient for every size, so sizes differ only in extent).
STUDY_SEED = 7
#: Slices rendered at once while generating a study (bounds memory).
RENDER_CHUNK = 64
#: Stage names of the in-process measurement, in pipeline order.
STAGES: tuple[str, ...] = ("load", "localize", "cpr", "detect", "grade", "write")
#: Memory target: peak RSS <= MEMORY_FACTOR * int16 volume + MEMORY_OVERHEAD_BYTES.
MEMORY_FACTOR = 3.0
#: Fixed part of the memory target (1 GiB: interpreter, libraries, models).
MEMORY_OVERHEAD_BYTES = 1 << 30
#: Target: in-process end-to-end / decode floor on the 300-slice study (issue 15; issue 7's
#: 1.5 was withdrawn: it left no room for the models on two cores), and at the largest size.
TARGET_FLOOR_RATIO = 2.5
#: Target: the write stage (SR, secondary capture, PNG, results.json), seconds (issue 15).
TARGET_WRITE_S = 0.080
#: Target: localizer preprocessing (resampling to the 4 mm grid, window, pad), seconds (issue 15).
TARGET_PREPROCESS_S = 0.040
#: Target: ``python -m app`` process wall / a process that only decodes the study with pydicom.
TARGET_APP_TO_DECODE_PROCESS = 2.5
#: Slices of the study of the whole-process comparison (512 x 512 x 250 in issue 15).
APP_SLICES = 250
#: Runs of ``python -m app`` and of the decode-only process (the median of each is compared).
APP_REPEATS = 3
#: Sub-stage timings measured beside the stages (not part of the end-to-end total).
SUBSTAGES: tuple[str, ...] = ("localizer_preprocess",)
#: Target: both models together on CPU, seconds (300-slice study).
TARGET_MODELS_CPU_S = 1.0
#: Target: process start-up (imports, Holoscan, models), seconds.
TARGET_STARTUP_S = 3.0
#: R^2 of the line fit at or above which a stage's growth counts as linear.
LINEAR_R2_MIN = 0.95
#: Study size the single-size targets refer to.
REFERENCE_SLICES = 300
#: Marker file written after a study was generated completely.
STUDY_MARKER = "bench_study.json"
#: Number of largest imports reported from ``python -X importtime``.
IMPORTTIME_TOP = 12
#: Timeout of each child process (seconds).
CHILD_TIMEOUT_S = 3600

#: Relative tolerance below which sums of squares count as zero in :func:`linear_fit`.
_FIT_REL_TOL = 1e-12

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "ORT_NUM_THREADS")


class BenchmarkError(SpineVCFError):
    """A benchmark step could not run (a child process failed, no study, bad options)."""


# ----------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics.

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside 0..100.
    """
    if len(values) == 0:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Median, 95th percentile, min, max, mean and count of timings in seconds.

    Raises:
        ValueError: ``values`` is empty.
    """
    if len(values) == 0:
        raise ValueError("summary of an empty sequence")
    arr = np.asarray(values, dtype=np.float64)
    return {
        "n": int(arr.size),
        "median_s": float(np.median(arr)),
        "p95_s": percentile(values, 95.0),
        "min_s": float(arr.min()),
        "max_s": float(arr.max()),
        "mean_s": float(arr.mean()),
    }


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``y = intercept + slope * x`` and its coefficient of determination.

    Attributes:
        intercept: ``a``.
        slope: ``b``.
        r2: 1 - SS_res / SS_tot (1.0 when ``y`` is constant and fitted exactly).
        n: number of points.
    """

    intercept: float
    slope: float
    r2: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return {"intercept": self.intercept, "slope": self.slope, "r2": self.r2, "n": self.n}


def linear_fit(x: Sequence[float], y: Sequence[float]) -> LinearFit:
    """Fit ``y = a + b x`` by least squares.

    With two points the fit is exact (R^2 = 1): it says nothing about linearity.

    Raises:
        ValueError: fewer than two points, lengths differ, or all ``x`` are equal.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1D of equal length, got {xa.shape} and {ya.shape}")
    if xa.size < 2:
        raise ValueError("a line fit needs at least two points")
    if np.ptp(xa) == 0:
        raise ValueError("a line fit needs at least two distinct x values")
    slope, intercept = np.polyfit(xa, ya, 1)
    resid = ya - (intercept + slope * xa)
    ss_res = float(resid @ resid)
    ss_tot = float(((ya - ya.mean()) ** 2).sum())
    scale = float(ya @ ya) or 1.0
    if ss_tot <= _FIT_REL_TOL * scale:  # constant y: R^2 is undefined; 1 when fitted exactly
        r2 = 1.0 if ss_res <= _FIT_REL_TOL * scale else 0.0
    else:
        r2 = 1.0 - ss_res / ss_tot
    return LinearFit(float(intercept), float(slope), float(r2), int(xa.size))


def growth(slices: Sequence[int], medians: Sequence[float]) -> dict[str, Any]:
    """How one stage's median time grows with the slice count.

    Returns:
        ``fit`` (:class:`LinearFit` as a dict), ``ratio`` = t(largest) / t(second largest)
        and ``slice_ratio`` = the ratio of those slice counts (a linear stage without a
        fixed part has ``ratio == slice_ratio``).
    """
    order = np.argsort(np.asarray(slices))
    s = [int(slices[i]) for i in order]
    t = [float(medians[i]) for i in order]
    fit = linear_fit(s, t)
    ratio = t[-1] / t[-2] if t[-2] > 0 else float("nan")
    return {"fit": fit.to_dict(), "ratio": ratio, "slice_ratio": s[-1] / s[-2], "sizes": s}


def memory_target_bytes(n_voxels: int) -> int:
    """The memory target for a volume of ``n_voxels``: 3 x its int16 size + 1 GiB."""
    return int(MEMORY_FACTOR * 2 * n_voxels) + MEMORY_OVERHEAD_BYTES


# ----------------------------------------------------------------------------- machine


def _proc_value(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``VmHWM``, else ``ru_maxrss``)."""
    hwm = _proc_value("/proc/self/status", "VmHWM")
    if hwm is not None:
        return int(hwm.split()[0]) * 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def current_rss_bytes() -> int:
    """Current resident set size of this process (``VmRSS``; 0 when unknown)."""
    rss = _proc_value("/proc/self/status", "VmRSS")
    return int(rss.split()[0]) * 1024 if rss is not None else 0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Description of the machine and software the benchmark runs on (no host names)."""
    mem = _proc_value("/proc/meminfo", "MemTotal")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu_model": _proc_value("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "ram_bytes": int(mem.split()[0]) * 1024 if mem else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("spinevcf", "numpy", "onnxruntime", "pydicom", "scipy", "monai-deploy-app-sdk", "holoscan-cu13", "tritonclient")
        },
        "thread_env": {k: os.environ.get(k) for k in _THREAD_ENV},
        "onnxruntime_intra_op_threads": "onnxruntime default (spinevcf sets none; inter-op 1)",
        "load_average": load,
    }


# ----------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class StudySpec:
    """A synthetic benchmark study.

    Attributes:
        n_slices: axial slices.
        size: rows and columns.
        seed: phantom seed.
    """

    n_slices: int
    size: int = DEFAULT_SIZE
    seed: int = STUDY_SEED

    @property
    def name(self) -> str:
        """Folder name inside the work folder."""
        return f"study-{self.n_slices}x{self.size}-seed{self.seed}"

    @property
    def n_voxels(self) -> int:
        """Voxels of the volume."""
        return self.n_slices * self.size * self.size

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"n_slices": self.n_slices, "size": self.size, "seed": self.seed}


def _study_affine(phantom: Any, spec: StudySpec) -> npt.NDArray[np.float64]:
    """Axial grid (rows +y, columns +x, slices +z) centred on the spine at :data:`CENTRE_LEVEL`."""
    pixel = FOV_MM / spec.size
    length = (spec.n_slices - 1) * SLICE_MM
    zc = float(phantom.level_z(CENTRE_LEVEL))
    lo, hi = phantom.body_extent(zc - 0.5 * length, zc + 0.5 * length)
    cx, cy = 0.5 * (lo + hi)
    aff = np.zeros((4, 4))
    aff[:3, 0] = (0.0, 0.0, SLICE_MM)
    aff[:3, 1] = (0.0, pixel, 0.0)
    aff[:3, 2] = (pixel, 0.0, 0.0)
    half = 0.5 * (spec.size - 1) * pixel
    aff[:3, 3] = (cx - half, cy - half, zc - 0.5 * length)
    aff[3, 3] = 1.0
    return aff


def _generate_study(spec: StudySpec, dicom_dir: Path) -> dict[str, Any]:
    """Write the study's DICOM series into ``dicom_dir`` (``<study folder>/dicom``).

    512 x 512 studies come from :func:`spinevcf.synth.generate_case` (phantom plus scanner
    simulation, ``n_slices`` forced, slice thickness as the generator samples it) and
    :func:`spinevcf.synth.write_case`; other sizes (tests) from the phantom rendered
    directly on a 1 mm grid with Gaussian noise (:func:`_render_study`).
    """
    if spec.size != DEFAULT_SIZE:
        return _render_study(spec, dicom_dir)
    from spinevcf.synth import GENERATOR_VERSION, SynthConfig, generate_case, write_case

    config = SynthConfig(fov="thoracolumbar", n_slices=spec.n_slices, metal_rate=0.0, scoliosis_rate=0.0)
    case = generate_case(spec.seed, config)
    write_case(case, dicom_dir.parent)
    return {
        "generator": "spinevcf.synth.generate_case",
        "generator_version": GENERATOR_VERSION,
        "spacing_mm": [float(v) for v in case.volume.spacing],
    }


def _render_study(spec: StudySpec, dicom_dir: Path) -> dict[str, Any]:
    """Render the phantom, add noise and write the DICOM series into ``dicom_dir``."""
    from spinevcf.io.dicom_write import write_ct_series
    from spinevcf.synth.config import SynthConfig
    from spinevcf.synth.phantom import GENERATOR_VERSION, sample_phantom
    from spinevcf.volume import Volume

    phantom = sample_phantom(spec.seed, SynthConfig(fov="thoracolumbar", metal_rate=0.0, scoliosis_rate=0.0))
    aff = _study_affine(phantom, spec)
    rng = np.random.default_rng(spec.seed)
    arr = np.empty((spec.n_slices, spec.size, spec.size), np.int16)
    for c0 in range(0, spec.n_slices, RENDER_CHUNK):
        n = min(RENDER_CHUNK, spec.n_slices - c0)
        sub = aff.copy()
        sub[:3, 3] = aff[:3, 3] + aff[:3, 0] * c0
        hu = phantom.render(sub, (n, spec.size, spec.size))
        hu += rng.normal(0.0, NOISE_HU, hu.shape).astype(np.float32)
        arr[c0 : c0 + n] = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    write_ct_series(
        Volume(arr, aff),
        dicom_dir,
        series_description=f"spinevcf benchmark {spec.n_slices} slices",
        rng_seed=spec.seed,
    )
    return {"generator": "spinevcf.synth.phantom", "generator_version": GENERATOR_VERSION, "spacing_mm": [SLICE_MM, FOV_MM / spec.size, FOV_MM / spec.size]}


def ensure_study(workdir: Path, spec: StudySpec) -> Path:
    """The DICOM folder of ``spec`` in ``workdir``, generated unless already there.

    A study counts as present when its marker file (written last) matches ``spec``; a
    partly written study is removed and generated again.
    """
    root = workdir / spec.name
    dicom_dir = root / "dicom"
    marker = root / STUDY_MARKER
    if marker.is_file():
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("spec") == spec.to_dict() and dicom_dir.is_dir():
            log.info("reusing %s", root)
            return dicom_dir
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    log.info("generating a %d-slice %dx%d synthetic study in %s", spec.n_slices, spec.size, spec.size, root)
    t0 = time.perf_counter()
    meta = _generate_study(spec, dicom_dir)
    meta.update(spec=spec.to_dict(), generate_s=time.perf_counter() - t0)
    marker.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return dicom_dir


# ----------------------------------------------------------------------------- in-process


class TimingBackend:
    """Wraps an inference backend and records the wall time of each model call.

    Args:
        inner: the backend doing the work.

    Attributes:
        calls: ``(model_name, seconds)`` per call, in order.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def infer(self, model_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on the wrapped backend and record its time."""
        t0 = time.perf_counter()
        out = self.inner.infer(model_name, inputs)
        dt_s = time.perf_counter() - t0
        with self._lock:
            self.calls.append((model_name, dt_s))
        return out

    def take(self) -> dict[str, float]:
        """Seconds per model since the last call (summed over calls), then forget them."""
        with self._lock:
            calls, self.calls = self.calls, []
        out: dict[str, float] = {}
        for name, sec in calls:
            out[name] = out.get(name, 0.0) + sec
        return out

    def close(self) -> None:
        """Close the wrapped backend."""
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _study_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def decode_floor(files: Sequence[Path]) -> float:
    """Seconds to decode ``files`` with pydicom alone into one preallocated int16 array.

    The files must be single-frame slices of equal size (as the benchmark writes them).
    """
    import pydicom

    t0 = time.perf_counter()
    first = pydicom.dcmread(files[0])
    arr = np.empty((len(files), int(first.Rows), int(first.Columns)), dtype=first.pixel_array.dtype)
    arr[0] = first.pixel_array
    for i, path in enumerate(files[1:], start=1):
        arr[i] = pydicom.dcmread(path).pixel_array
    return time.perf_counter() - t0


def _force_model_load(pipeline: Any) -> None:
    """Create the ONNX Runtime sessions now (they are otherwise created on first use)."""
    from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL

    backend = getattr(pipeline.backend, "inner", pipeline.backend)
    session = getattr(backend, "session", None)
    if callable(session):
        for name in (LOCALIZER_MODEL, DETECTOR_MODEL):
            session(name)


def measure_inprocess(study: Path, model_repository: Path | None, repeats: int, warmup: int = WARMUP_PASSES) -> dict[str, Any]:
    """Stage timings, model timings, decode floor and peak memory for one study, in this process.

    Meant to run in a fresh process (:func:`run_child`), so that the peak memory is this
    study's. Every pass loads the study from disk, runs the pipeline and writes the outputs
    into a temporary folder.

    Returns:
        ``stages`` (stage -> list of seconds), ``models`` (model -> list), ``floor`` (list),
        ``shape``, ``n_vertebrae``, ``status``, ``rss_*`` bytes.
    """
    from spinevcf.inference.factory import make_backend
    from spinevcf.io.dicom import load_study
    from spinevcf.localizer import preprocess as localizer_preprocess
    from spinevcf.pipeline import Pipeline, default_model_repository, write_study_outputs

    repo = Path(model_repository) if model_repository is not None else default_model_repository()
    rss_start = current_rss_bytes()
    timing = TimingBackend(make_backend(repo))
    pipeline = Pipeline(repo, backend=timing)
    _force_model_load(pipeline)
    rss_models = current_rss_bytes()
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    substages: dict[str, list[float]] = {s: [] for s in SUBSTAGES}
    models: dict[str, list[float]] = {}
    shape: tuple[int, ...] = ()
    n_vertebrae = 0
    status = ""
    try:
        for i in range(warmup + repeats):
            timed = i >= warmup
            t0 = time.perf_counter()
            volume = load_study(study, block_sums_mm=pipeline.localizer_config.spacing_mm)
            t_load = time.perf_counter() - t0
            # Localizer preprocessing alone (what `localize` spends before the model call),
            # timed on its own call: not counted in the end-to-end total.
            t0 = time.perf_counter()
            localizer_preprocess(volume, pipeline.localizer_config)
            t_pre = time.perf_counter() - t0
            timing.take()
            result = pipeline.run(volume)
            model_s = timing.take()
            with tempfile.TemporaryDirectory(prefix="spinevcf-bench-out-") as tmp:
                t0 = time.perf_counter()
                write_study_outputs(tmp, volume, result)
                t_write = time.perf_counter() - t0
            shape = volume.shape
            n_vertebrae = len(result.record.vertebrae)
            status = result.record.status
            if timed:
                stages["load"].append(t_load)
                for name in ("localize", "cpr", "detect", "grade"):
                    if name in result.timings_s:
                        stages[name].append(float(result.timings_s[name]))
                stages["write"].append(t_write)
                substages["localizer_preprocess"].append(t_pre)
                for name, sec in model_s.items():
                    models.setdefault(name, []).append(sec)
            del volume, result
    finally:
        pipeline.close()
    files = _study_files(study)
    decode_floor(files)  # warm-up (page cache, decoder imports)
    floor = [decode_floor(files) for _ in range(repeats)]
    return {
        "study": str(study),
        "shape": list(shape),
        "n_files": len(files),
        "stages": stages,
        "substages": substages,
        "models": models,
        "floor": floor,
        "n_vertebrae": n_vertebrae,
        "status": status,
        "rss_start_bytes": rss_start,
        "rss_after_model_load_bytes": rss_models,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def _run_python(args: Sequence[str], *, cwd: Path | None = None, timeout: float = CHILD_TIMEOUT_S) -> tuple[float, str, str]:
    """Run ``python ARGS`` with this interpreter; return wall seconds, stdout, stderr.

    Raises:
        BenchmarkError: non-zero exit status (with the tail of stderr) or timeout.
    """
    cmd = [sys.executable, *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"child process timed out after {timeout:.0f} s: {' '.join(cmd[:4])} ...") from exc
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise BenchmarkError(f"child process failed (exit {proc.returncode}): {' '.join(cmd[:5])} ...\n{tail}")
    return wall, proc.stdout, proc.stderr


def _summarize_inprocess(raw: dict[str, Any], spec: StudySpec) -> dict[str, Any]:
    """Turn a child's raw timings into the report entry of one study size."""
    stages = {k: (summarize(v) if v else None) for k, v in raw["stages"].items()}
    models = {k: summarize(v) for k, v in raw["models"].items()}
    n_timed = len(raw["stages"]["load"])
    totals = [sum(v[i] for v in raw["stages"].values() if len(v) == n_timed) for i in range(n_timed)]
    model_totals = [sum(v[i] for v in raw["models"].values()) for i in range(n_timed)] if raw["models"] else []
    floor = summarize(raw["floor"])
    end_to_end = summarize(totals)
    n_vox = int(np.prod(raw["shape"])) if raw["shape"] else spec.n_voxels
    target = memory_target_bytes(n_vox)
    missing = [k for k, v in stages.items() if v is None]
    return {
        "n_slices": spec.n_slices,
        "shape": raw["shape"],
        "n_files": raw["n_files"],
        "status": raw["status"],
        "n_vertebrae": raw["n_vertebrae"],
        "stages_not_run": missing,
        "stages": stages,
        "substages": {k: (summarize(v) if v else None) for k, v in raw.get("substages", {}).items()},
        "end_to_end": end_to_end,
        "models": models,
        "models_total": summarize(model_totals) if model_totals else None,
        "decode_floor": floor,
        "ratio_end_to_end_to_floor": end_to_end["median_s"] / floor["median_s"],
        "ratio_load_to_floor": stages["load"]["median_s"] / floor["median_s"] if stages["load"] else None,
        "int16_volume_bytes": 2 * n_vox,
        "rss_start_bytes": raw["rss_start_bytes"],
        "rss_after_model_load_bytes": raw["rss_after_model_load_bytes"],
        "peak_rss_bytes": raw["peak_rss_bytes"],
        "memory_target_bytes": target,
        "memory_target_met": raw["peak_rss_bytes"] <= target,
        "peak_over_int16_volume": raw["peak_rss_bytes"] / (2 * n_vox),
    }


def _inprocess_child(study: Path, model_repository: Path | None, repeats: int, scratch: Path) -> dict[str, Any]:
    out = scratch / f"inprocess-{study.parent.name}.json"
    args = ["-m", "spinevcf.bench", "--child", "inprocess", "--study", str(study), "--repeats", str(repeats), "--out", str(out)]
    if model_repository is not None:
        args += ["--model-repository", str(model_repository)]
    _run_python(args)
    return json.loads(out.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- start-up

_STARTUP_CODE = """
import json, sys, time
t0 = time.perf_counter()
from app.app import SpineVCFApp
from app.settings import AppSettings
t1 = time.perf_counter()
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.pipeline import Pipeline
repo = sys.argv[1]
app = SpineVCFApp(settings=AppSettings(input_folder=repo, output_folder=repo, model_repository=repo))
t2 = time.perf_counter()
pipe = Pipeline(repo)
for name in (LOCALIZER_MODEL, DETECTOR_MODEL):
    getattr(pipe.backend, "session", lambda n: None)(name)
t3 = time.perf_counter()
print("BENCH_STARTUP " + json.dumps({"import_s": t1 - t0, "application_s": t2 - t1, "models_s": t3 - t2}))
"""


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _importtime_top(stderr: str, top: int = IMPORTTIME_TOP) -> list[dict[str, Any]]:
    """The top-level packages that cost most in ``python -X importtime`` output.

    Returns:
        Per package, ranked by ``self_s``: ``self_s`` = the summed self time of all its
        modules (time spent in that package alone), ``cumulative_s`` = the cumulative time
        of importing the package itself the first time (with what it pulls in), ``None``
        when the output has no line for the package itself (a namespace package, or one
        only its submodules were imported from): not measured, rather than 0.
    """
    self_us: dict[str, int] = {}
    cum_us: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields_ = line[len("import time:") :].split("|")
        if len(fields_) != 3 or not fields_[0].strip().isdigit():
            continue
        name = fields_[2].strip()
        pkg = name.split(".")[0]
        self_us[pkg] = self_us.get(pkg, 0) + int(fields_[0])
        if name == pkg and pkg not in cum_us:
            cum_us[pkg] = int(fields_[1])
    ranked = sorted(self_us.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [
        {"package": k, "self_s": v / 1e6, "cumulative_s": cum_us[k] / 1e6 if k in cum_us else None}
        for k, v in ranked
    ]


def measure_startup(model_repository: Path | None, repeats: int) -> dict[str, Any]:
    """Start-up cost of the MONAI Deploy application, in fresh processes.

    Each run: interpreter start, ``import app.app`` (MONAI Deploy SDK, Holoscan, spinevcf),
    constructing the ``Application``, loading both models (ONNX Runtime sessions). Plus
    one ``python -X importtime -c 'import app.app'`` for the largest imports.
    """
    from spinevcf.pipeline import default_model_repository

    repo = str(model_repository or default_model_repository())
    root = _repo_root()
    walls: list[float] = []
    parts: dict[str, list[float]] = {"import_s": [], "application_s": [], "models_s": []}
    for _ in range(repeats):
        wall, out, _err = _run_python(["-c", _STARTUP_CODE, repo], cwd=root)
        line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_STARTUP "))
        for k, v in json.loads(line.split(" ", 1)[1]).items():
            parts[k].append(v)
        walls.append(wall)
    bare, _, _ = _run_python(["-c", "pass"])
    _, _, err = _run_python(["-X", "importtime", "-c", "import app.app"], cwd=root)
    return {
        "process_wall": summarize(walls),
        "parts": {k: summarize(v) for k, v in parts.items()},
        "bare_interpreter_s": bare,
        "largest_imports": _importtime_top(err),
    }


_DECODE_PROCESS_CODE = """
import sys
from pathlib import Path
import numpy as np
import pydicom
files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file() and not p.name.startswith("."))
first = pydicom.dcmread(files[0])
arr = np.empty((len(files), int(first.Rows), int(first.Columns)), dtype=first.pixel_array.dtype)
arr[0] = first.pixel_array
for i, path in enumerate(files[1:], start=1):
    arr[i] = pydicom.dcmread(path).pixel_array
print(arr.shape)
"""


def measure_app_run(study: Path, model_repository: Path | None, repeats: int = 1) -> dict[str, Any]:
    """``python -m app -i STUDY -o OUT -m MODELS`` against a process that only decodes STUDY.

    Both are fresh processes run from the repository root, ``repeats`` times each,
    alternating (so that a change in the machine's load hits both); the decode-only process
    starts the interpreter, imports numpy and pydicom and decodes every file into one
    preallocated array (:func:`decode_floor` as a whole process). The page cache is warmed
    by one untimed decode process first.

    Returns:
        ``wall_s`` (median app run), ``app`` and ``decode_process`` summaries,
        ``ratio_app_to_decode_process`` (medians) and ``ratio_min`` (minima), the study, its
        slice count and the files the app wrote.
    """
    from spinevcf.pipeline import default_model_repository

    repo = str(model_repository or default_model_repository())
    root = _repo_root()
    _run_python(["-c", _DECODE_PROCESS_CODE, str(study)])  # warm-up: page cache
    app_walls: list[float] = []
    decode_walls: list[float] = []
    written: list[str] = []
    for _ in range(max(1, repeats)):
        wall, _out, _err = _run_python(["-c", _DECODE_PROCESS_CODE, str(study)], cwd=root)
        decode_walls.append(wall)
        with tempfile.TemporaryDirectory(prefix="spinevcf-bench-app-") as tmp:
            wall, _out, _err = _run_python(["-m", "app", "-i", str(study), "-o", tmp, "-m", repo], cwd=root)
            written = sorted(p.name for p in Path(tmp).iterdir())
        app_walls.append(wall)
    app, decode = summarize(app_walls), summarize(decode_walls)
    return {
        "wall_s": app["median_s"],
        "app": app,
        "decode_process": decode,
        "ratio_app_to_decode_process": app["median_s"] / decode["median_s"],
        "ratio_min": app["min_s"] / decode["min_s"],
        "study": str(study),
        "n_files": len(_study_files(study)),
        "outputs": written,
    }


# ----------------------------------------------------------------------------- Triton


def measure_triton(
    study: Path,
    model_repository: Path | None,
    triton_url: str,
    concurrency: Sequence[int],
    repeats: int,
    protocol: str = "grpc",
) -> dict[str, Any]:
    """Latency and throughput with the models on a Triton server; the volume stays in memory.

    Each client thread has its own :class:`~spinevcf.pipeline.Pipeline` (and so its own
    Triton client); all threads share one read-only :class:`~spinevcf.volume.Volume`. CPR,
    pre- and post-processing run in the client threads (they hold the GIL part of the time),
    the models on the server.
    """
    from spinevcf.detector import preprocess_cpr
    from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
    from spinevcf.io.dicom import load_study
    from spinevcf.localizer import preprocess as localizer_preprocess
    from spinevcf.pipeline import Pipeline

    volume = load_study(study)

    def make() -> Pipeline:
        return Pipeline(model_repository, triton_url=triton_url, triton_protocol=protocol)

    first = make()
    try:
        warm = first.run(volume)  # warm-up: connections, server-side first call
        x_loc, _ = localizer_preprocess(volume, first.localizer_config)
        requests = {LOCALIZER_MODEL: {"image": x_loc}}
        if warm.cpr is not None:
            requests[DETECTOR_MODEL] = {"image": preprocess_cpr(warm.cpr, first.detector_config)}
        model_only: dict[str, Any] = {}
        for name, inputs in requests.items():
            times = []
            for _ in range(TRITON_MODEL_REQUESTS):
                t0 = time.perf_counter()
                first.backend.infer(name, inputs)
                times.append(time.perf_counter() - t0)
            model_only[name] = summarize(times) | {"input_shape": list(inputs["image"].shape)}
    finally:
        first.close()

    levels = []
    per_thread = max(repeats, TRITON_STUDIES_PER_THREAD)
    for c in concurrency:
        pipes = [make() for _ in range(c)]
        latencies: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(c + 1)

        def work(
            pipe: Pipeline,
            latencies: list[float] = latencies,
            errors: list[BaseException] = errors,
            lock: threading.Lock = lock,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            for _ in range(per_thread):
                t0 = time.perf_counter()
                try:
                    pipe.run(volume)
                except Exception as exc:  # recorded and re-raised after the threads joined
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    latencies.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in pipes]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        for p in pipes:
            p.close()
        if errors:
            raise BenchmarkError(f"Triton run at concurrency {c} failed: {errors[0]}") from errors[0]
        levels.append(
            {
                "concurrency": c,
                "studies": len(latencies),
                "wall_s": wall,
                "latency": summarize(latencies),
                "studies_per_minute": 60.0 * len(latencies) / wall,
            }
        )
    return {
        "url": triton_url,
        "protocol": protocol,
        "study": str(study),
        "shape": list(volume.shape),
        "clients": "one Pipeline (own Triton client) per thread; one shared in-memory volume",
        "model_only": model_only,
        "concurrency": levels,
    }


# ----------------------------------------------------------------------------- orchestration


@dataclass
class BenchOptions:
    """Settings of one benchmark run.

    Attributes:
        slices: study sizes (axial slices).
        repeats: timed passes per size.
        workdir: where studies are generated / reused.
        model_repository: model folder (``None``: the repository's).
        size: rows/columns of the synthetic slices.
        triton_url: ``HOST:PORT`` of a Triton server, or ``None`` to skip that part.
        triton_protocol: ``grpc`` or ``http``.
        concurrency: Triton client concurrencies.
        startup: measure start-up and the ``python -m app`` runs.
        quick: the smoke-test mode (recorded in the report).
        app_slices: slices of the study of the ``python -m app`` / decode-process comparison.
    """

    slices: Sequence[int] = DEFAULT_SLICES
    repeats: int = DEFAULT_REPEATS
    workdir: Path = Path("build/bench")
    model_repository: Path | None = None
    size: int = DEFAULT_SIZE
    triton_url: str | None = None
    triton_protocol: str = "grpc"
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY
    startup: bool = True
    quick: bool = False
    app_slices: int = APP_SLICES
    progress: Callable[[str], None] = field(default=lambda msg: log.info("%s", msg))

    def __post_init__(self) -> None:
        if not self.slices or any(int(s) < 4 for s in self.slices):
            raise ValueError(f"slices must be a non-empty list of counts >= 4, got {list(self.slices)}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.size < 32:
            raise ValueError(f"size must be >= 32, got {self.size}")
        if int(self.app_slices) < 4:
            raise ValueError(f"app_slices must be >= 4, got {self.app_slices}")
        if any(int(c) < 1 for c in self.concurrency):
            raise ValueError(f"concurrency values must be >= 1, got {list(self.concurrency)}")


def _reference(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry closest to :data:`REFERENCE_SLICES` slices."""
    return min(entries, key=lambda e: abs(e["n_slices"] - REFERENCE_SLICES))


def _targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with its measured value and whether it was met (a measured fact)."""
    out: list[dict[str, Any]] = []
    entries = report["in_process"]
    ref = _reference(entries)
    note = f"{ref['n_slices']}-slice study"
    out.append(
        {
            "name": "end-to-end / decode floor",
            "target": f"<= {TARGET_FLOOR_RATIO}",
            "measured": ref["ratio_end_to_end_to_floor"],
            "met": ref["ratio_end_to_end_to_floor"] <= TARGET_FLOOR_RATIO,
            "on": note,
        }
    )
    largest = max(entries, key=lambda e: e["n_slices"])
    if largest is not ref:
        r = largest["ratio_end_to_end_to_floor"]
        out.append(
            {
                "name": "end-to-end / decode floor",
                "target": f"<= {TARGET_FLOOR_RATIO} and <= the {ref['n_slices']}-slice ratio",
                "measured": r,
                "met": r <= TARGET_FLOOR_RATIO and r <= ref["ratio_end_to_end_to_floor"],
                "on": f"{largest['n_slices']}-slice study",
            }
        )
    if ref["stages"].get("write"):
        w = ref["stages"]["write"]["median_s"]
        out.append(
            {
                "name": "write stage (s)",
                "target": f"<= {TARGET_WRITE_S}",
                "measured": w,
                "met": w <= TARGET_WRITE_S,
                "on": f"{note}, {ref['n_vertebrae']} vertebrae",
            }
        )
    pre = (ref.get("substages") or {}).get("localizer_preprocess")
    if pre:
        out.append(
            {
                "name": "localizer preprocessing (s)",
                "target": f"<= {TARGET_PREPROCESS_S}",
                "measured": pre["median_s"],
                "met": pre["median_s"] <= TARGET_PREPROCESS_S,
                "on": note,
            }
        )
    if ref["models_total"] is not None:
        m = ref["models_total"]["median_s"]
        out.append(
            {"name": "both models, CPU (s)", "target": f"<= {TARGET_MODELS_CPU_S}", "measured": m, "met": m <= TARGET_MODELS_CPU_S, "on": note}
        )
    for e in entries:
        out.append(
            {
                "name": "peak memory (GiB)",
                "target": f"<= {MEMORY_FACTOR:g} x int16 volume + 1 GiB = {e['memory_target_bytes'] / 2**30:.2f}",
                "measured": e["peak_rss_bytes"] / 2**30,
                "met": e["memory_target_met"],
                "on": f"{e['n_slices']}-slice study",
            }
        )
    if report.get("startup"):
        s = report["startup"]["process_wall"]["median_s"]
        out.append({"name": "start-up (s)", "target": f"<= {TARGET_STARTUP_S}", "measured": s, "met": s <= TARGET_STARTUP_S, "on": "fresh process"})
    app = report.get("app_run")
    if app and "ratio_app_to_decode_process" in app:
        r = app["ratio_app_to_decode_process"]
        out.append(
            {
                "name": "python -m app / pydicom decode process",
                "target": f"<= {TARGET_APP_TO_DECODE_PROCESS}",
                "measured": r,
                "met": r <= TARGET_APP_TO_DECODE_PROCESS,
                "on": f"{app['n_files']}-slice study, medians of {app['app']['n']} runs each",
            }
        )
    g = report.get("growth") or {}
    if "end_to_end" in g:
        r2 = g["end_to_end"]["fit"]["r2"]
        out.append(
            {
                "name": "linear growth, end-to-end (R^2)",
                "target": f">= {LINEAR_R2_MIN} (3+ sizes)",
                "measured": r2,
                "met": r2 >= LINEAR_R2_MIN if g["end_to_end"]["fit"]["n"] >= 3 else None,
                "on": "all sizes",
            }
        )
    return out


def check_models(model_repository: Path | None) -> Path:
    """The model folder, checked before any long step: both ``spinevcf.json`` and ONNX files.

    Raises:
        ModelError: a file is missing.
    """
    from spinevcf.errors import ModelError
    from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
    from spinevcf.inference.onnx_backend import MODEL_CONFIG_FILENAME, onnx_model_path
    from spinevcf.pipeline import default_model_repository

    repo = Path(model_repository) if model_repository is not None else default_model_repository()
    for name in (LOCALIZER_MODEL, DETECTOR_MODEL):
        for path in (repo / name / MODEL_CONFIG_FILENAME, onnx_model_path(repo, name)):
            if not path.is_file():
                raise ModelError(f"benchmark needs the trained models: {path} not found")
    return repo


def run_benchmark(opts: BenchOptions) -> dict[str, Any]:
    """Run every part of the benchmark and return the report (JSON-ready dict).

    Raises:
        ModelError: the model repository lacks a model file.
        BenchmarkError: a child process failed.
    """
    check_models(opts.model_repository)
    started = dt.datetime.now(dt.UTC)
    machine = machine_info()
    workdir = Path(opts.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    specs = [StudySpec(int(n), opts.size) for n in sorted(set(int(s) for s in opts.slices))]
    studies: dict[int, Path] = {}
    study_meta = []
    for spec in specs:
        opts.progress(f"study: {spec.n_slices} slices of {spec.size}x{spec.size}")
        studies[spec.n_slices] = ensure_study(workdir, spec)
        marker = json.loads((studies[spec.n_slices].parent / STUDY_MARKER).read_text(encoding="utf-8"))
        study_meta.append(
            {**spec.to_dict(), "path": str(studies[spec.n_slices]), "generator": marker.get("generator"), "spacing_mm": marker.get("spacing_mm")}
        )

    entries = []
    with tempfile.TemporaryDirectory(prefix="spinevcf-bench-") as scratch:
        for spec in specs:
            opts.progress(f"in-process: {spec.n_slices} slices, 1 warm-up + {opts.repeats} timed passes (fresh process)")
            raw = _inprocess_child(studies[spec.n_slices], opts.model_repository, opts.repeats, Path(scratch))
            entries.append(_summarize_inprocess(raw, spec))

    growth_report: dict[str, Any] | None = None
    if len(entries) >= 2:
        sl = [e["n_slices"] for e in entries]
        growth_report = {}
        for stage in STAGES:
            if all(e["stages"][stage] is not None for e in entries):
                growth_report[stage] = growth(sl, [e["stages"][stage]["median_s"] for e in entries])
        growth_report["end_to_end"] = growth(sl, [e["end_to_end"]["median_s"] for e in entries])
        growth_report["decode_floor"] = growth(sl, [e["decode_floor"]["median_s"] for e in entries])

    ref_slices = _reference(entries)["n_slices"]
    startup = app_run = None
    if opts.startup:
        opts.progress("start-up: fresh processes importing the app and loading the models")
        startup = measure_startup(opts.model_repository, max(1, min(opts.repeats, 3)))
        app_spec = StudySpec(int(opts.app_slices), opts.size)
        app_study = studies.get(app_spec.n_slices) or ensure_study(workdir, app_spec)
        opts.progress(f"python -m app vs a pydicom-only decode process on the {app_spec.n_slices}-slice study")
        app_run = measure_app_run(app_study, opts.model_repository, APP_REPEATS)

    triton = None
    if opts.triton_url:
        opts.progress(f"Triton at {opts.triton_url}: concurrency {list(opts.concurrency)}")
        triton = measure_triton(
            studies[ref_slices], opts.model_repository, opts.triton_url, opts.concurrency, opts.repeats, opts.triton_protocol
        )

    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "spinevcf_version": __version__,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "settings": {
            "slices": [s.n_slices for s in specs],
            "size": opts.size,
            "repeats": opts.repeats,
            "warmup_passes": WARMUP_PASSES,
            "slice_mm": SLICE_MM,
            "fov_mm": FOV_MM,
            "model_repository": str(opts.model_repository) if opts.model_repository else "(repository default)",
            "quick": opts.quick,
            "reference_slices": ref_slices,
            "app_slices": int(opts.app_slices),
        },
        "studies": study_meta,
        "in_process": entries,
        "growth": growth_report,
        "startup": startup,
        "app_run": app_run,
        "triton": triton,
    }
    report["targets"] = _targets(report)
    return report


# ----------------------------------------------------------------------------- tables


def _ms(s: dict[str, Any] | None, key: str = "median_s") -> str:
    return "-" if s is None else f"{1000 * s[key]:.0f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, sep, *body])


def format_tables(report: dict[str, Any]) -> str:
    """Human-readable tables of a report (what ``spinevcf bench`` prints)."""
    m = report["machine"]
    ram = f"{m['ram_bytes'] / 2**30:.1f} GiB" if m.get("ram_bytes") else "?"
    parts = [
        f"machine: {m['cpu_model']}, {m['usable_cpus']} usable CPUs, {ram} RAM, {m['os']}, Python {m['python']}, "
        f"onnxruntime {m['versions'].get('onnxruntime')}; load average at start {m.get('load_average')}",
        "",
        "In-process latency, ms (median / p95), fresh process per size:",
    ]
    rows = []
    for e in report["in_process"]:
        rows.append(
            [str(e["n_slices"]), *(f"{_ms(e['stages'][s])}/{_ms(e['stages'][s], 'p95_s')}" for s in STAGES),
             f"{_ms(e['end_to_end'])}/{_ms(e['end_to_end'], 'p95_s')}", _ms(e["decode_floor"]),
             f"{e['ratio_end_to_end_to_floor']:.2f}", _ms(e["models_total"]), e["status"], str(e["n_vertebrae"])]
        )
    parts.append(_table(["slices", *STAGES, "total", "floor", "tot/floor", "models", "status", "vert"], rows))
    rows = [
        [str(e["n_slices"]), name, _ms(v), _ms(v, "p95_s")]
        for e in report["in_process"]
        for name, v in (e.get("substages") or {}).items()
        if v
    ]
    if rows:
        parts += ["", "Sub-stages, ms (median / p95; timed on their own call, not in the total):"]
        parts.append(_table(["slices", "sub-stage", "median", "p95"], rows))
    parts += ["", "Models, ms (median / p95):"]
    rows = [[str(e["n_slices"]), name, _ms(s), _ms(s, "p95_s")] for e in report["in_process"] for name, s in e["models"].items()]
    parts.append(_table(["slices", "model", "median", "p95"], rows))
    parts += ["", "Memory:"]
    rows = [
        [str(e["n_slices"]), f"{e['int16_volume_bytes'] / 2**20:.0f}", f"{e['rss_after_model_load_bytes'] / 2**20:.0f}",
         f"{e['peak_rss_bytes'] / 2**20:.0f}", f"{e['memory_target_bytes'] / 2**20:.0f}", "yes" if e["memory_target_met"] else "NO"]
        for e in report["in_process"]
    ]
    parts.append(_table(["slices", "int16 vol MiB", "RSS models MiB", "peak MiB", "target MiB", "met"], rows))
    if report.get("growth"):
        parts += ["", "Growth with the slice count (t = a + b * slices):"]
        rows = [
            [k, f"{1000 * g['fit']['intercept']:.1f}", f"{1000 * g['fit']['slope']:.3f}", f"{g['fit']['r2']:.3f}",
             f"{g['ratio']:.2f} (slices x{g['slice_ratio']:.2f})"]
            for k, g in report["growth"].items()
        ]
        parts.append(_table(["stage", "a ms", "b ms/slice", "R^2", "t_max/t_prev"], rows))
    if report.get("startup"):
        s = report["startup"]
        parts += ["", "Start-up, s (median of fresh processes):"]
        rows = [["process wall", f"{s['process_wall']['median_s']:.2f}"], ["bare interpreter", f"{s['bare_interpreter_s']:.2f}"]]
        rows += [[k, f"{v['median_s']:.2f}"] for k, v in s["parts"].items()]
        app = report.get("app_run")
        if app:
            rows.append([f"python -m app (whole run, {app.get('n_files', '?')} slices)", f"{app['wall_s']:.2f}"])
            if "decode_process" in app:
                rows.append(["pydicom-only decode process", f"{app['decode_process']['median_s']:.2f}"])
                rows.append(["app / decode process (medians; minima)", f"{app['ratio_app_to_decode_process']:.2f}; {app['ratio_min']:.2f}"])
        parts.append(_table(["part", "s"], rows))
        parts += ["", "Largest imports of `import app.app` (-X importtime; one run, its own overhead included):"]
        rows = [
            [i["package"], f"{i['self_s']:.2f}", "-" if i["cumulative_s"] is None else f"{i['cumulative_s']:.2f}"]
            for i in s["largest_imports"]
        ]
        parts.append(_table(["package", "self s", "cumulative s"], rows))
    if report.get("triton"):
        t = report["triton"]
        parts += ["", f"Triton {t['url']} ({t['protocol']}), {t['shape'][0]}-slice volume in memory:"]
        rows = [[name, _ms(s), _ms(s, "p95_s")] for name, s in t["model_only"].items()]
        parts.append(_table(["model only", "median ms", "p95 ms"], rows))
        rows = [
            [str(c["concurrency"]), str(c["studies"]), _ms(c["latency"]), _ms(c["latency"], "p95_s"), f"{c['studies_per_minute']:.1f}"]
            for c in t["concurrency"]
        ]
        parts.append(_table(["concurrency", "studies", "median ms", "p95 ms", "studies/min"], rows))
    parts += ["", "Targets (measured facts, not assertions):"]
    rows = [
        [t["name"], t["target"], f"{t['measured']:.3f}", {True: "yes", False: "NO", None: "n/a"}[t["met"]], t["on"]]
        for t in report["targets"]
    ]
    parts.append(_table(["target", "bound", "measured", "met", "on"], rows))
    return "\n".join(parts)


# ----------------------------------------------------------------------------- child entry point


@contextmanager
def _quiet_logging() -> Iterator[None]:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    yield


def run_child(argv: Sequence[str] | None = None) -> int:
    """Entry point of the benchmark's child processes (``python -m spinevcf.bench --child ...``)."""
    p = argparse.ArgumentParser(prog="python -m spinevcf.bench", description="benchmark child process (internal)")
    p.add_argument("--child", choices=("inprocess",), required=True)
    p.add_argument("--study", type=Path, required=True)
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    p.add_argument("--model-repository", type=Path, default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    with _quiet_logging():
        raw = measure_inprocess(args.study, args.model_repository, args.repeats)
    args.out.write_text(json.dumps(raw) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(run_child())
