"""Training data made from the synthetic generator, cached as ``.npz`` files by seed.

Both datasets go through the same code as inference wherever it matters:

* localizer: the phantom is rendered on a fine LPS-aligned grid (``render_oversample`` x
  finer than the model grid), scanner blur and noise are added, and the result is
  resampled by :func:`spinevcf.localizer.preprocess` exactly as a real CT is; the target is
  the vertebral-body column (bodies and discs) rendered on the model grid.
* detector: a band around the spine is rendered at sub-millimetre in-plane spacing and
  averaged into thick slices (partial volume of 1-5 mm slices), noise is added, and a CPR
  is made with :func:`spinevcf.geometry.cpr.make_cpr` along a *jittered* copy of the true
  centre curve (simulated localizer error). Keypoints are mapped into the CPR with
  ``lps_to_pixel``. Vertebrae cut by the field of view are marked "ignore".

Every item is a pure function of its seed and the config, so the cache is reproducible.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.schema import LEVEL_INDEX
from spinevcf.volume import Volume

__all__ = [
    "DetectorItem",
    "build_cache",
    "cache_dir",
    "make_localizer_item",
    "make_detector_items",
    "load_localizer_item",
    "load_detector_items",
    "sample_fov",
    "GRID_DIRECTIONS",
]

log = logging.getLogger(__name__)

#: Columns of the LPS-aligned training grid: axis 0 superior->inferior, axis 1 A->P, axis 2 R->L.
GRID_DIRECTIONS = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).T
#: Body labels 1..24 and disc label 25 form the column.
COLUMN_LABEL_MAX = 25
#: Margin (mm) a vertebra's keypoints must keep from the field-of-view edge to be annotated.
FOV_EDGE_MARGIN_MM = 2.0


@dataclass
class DetectorItem:
    """One training CPR: HU image (C, H, W), keypoints per vertebra (6, 2) px, level indices."""

    image: npt.NDArray[np.float32]
    keypoints_px: list[npt.NDArray[np.float64]]
    levels: list[int]
    ignore_centers_px: list[npt.NDArray[np.float64]]


def _grid_affine(origin_lps: npt.ArrayLike, spacing: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    aff = np.eye(4)
    aff[:3, :3] = GRID_DIRECTIONS * np.asarray(spacing)[None, :]
    aff[:3, 3] = origin_lps
    return aff


def sample_fov(phantom: Any, rng: np.random.Generator) -> tuple[float, float]:
    """A random cranio-caudal field of view (z_top, z_bottom) in mm: thoracic, lumbar or both."""
    from spinevcf.synth.config import FOV_PRESETS

    name = str(rng.choice(sorted(FOV_PRESETS)))
    (a0, a1), (b0, b1) = FOV_PRESETS[name]
    top = phantom.level_z(float(rng.uniform(a0, a1)))
    bottom = phantom.level_z(float(rng.uniform(b0, b1)))
    return float(top), float(bottom)


def _scanner_effects(img: npt.NDArray[np.float32], rng: np.random.Generator, spacing: npt.ArrayLike) -> None:
    """In-place blur (reconstruction kernel) and correlated noise, in HU."""
    sp = np.asarray(spacing, dtype=np.float64)
    blur_mm = rng.uniform(0.3, 1.0)
    ndimage.gaussian_filter(img, sigma=tuple(blur_mm / sp), output=img)
    noise = rng.normal(0.0, rng.uniform(5.0, 35.0), img.shape).astype(np.float32)
    ndimage.gaussian_filter(noise, sigma=0.6, output=noise)
    img += noise * 1.8


def make_localizer_item(seed: int, cfg: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """Localizer input (D, H, W) float32 normalised and column target (D, H, W) uint8 for one seed."""
    from spinevcf.localizer import LocalizerConfig, preprocess
    from spinevcf.synth.config import SynthConfig
    from spinevcf.synth.phantom import sample_phantom

    rng = np.random.default_rng([seed, 1])
    phantom = sample_phantom(seed, SynthConfig(fracture_rate=0.15))
    z_top, z_bot = sample_fov(phantom, rng)
    lo, hi = phantom.body_extent(z_bot, z_top)
    margin = rng.uniform(5.0, 60.0, size=4)
    x0, x1 = lo[0] - margin[0], hi[0] + margin[1]
    y0, y1 = lo[1] - margin[2], hi[1] + margin[3]
    mc = cfg["model_config"]
    fine = float(mc["spacing_mm"]) / int(cfg.get("render_oversample", 2))
    shape = (
        int((z_top - z_bot) / fine) + 1,
        int((y1 - y0) / fine) + 1,
        int((x1 - x0) / fine) + 1,
    )
    aff = _grid_affine([x0, y0, z_top], (fine, fine, fine))
    img = phantom.render(aff, shape)
    _scanner_effects(img, rng, (fine, fine, fine))
    vol = Volume(img, aff)
    lcfg = LocalizerConfig.from_dict(mc)
    x, grid_aff = preprocess(vol, lcfg)
    labels = phantom.render_labels(grid_aff, x.shape[2:])
    target = ((labels >= 1) & (labels <= COLUMN_LABEL_MAX)).astype(np.uint8)
    return {"image": x[0, 0].astype(np.float16), "target": target}


def _jittered_curve(phantom: Any, z_top: float, z_bot: float, rng: np.random.Generator, jitter_mm: float):
    """The true centre curve within the field of view, with smooth random error."""
    from spinevcf.geometry.curve import SpineCurve

    pts = np.asarray(phantom.spine.curve_pts, dtype=np.float64)
    pts = pts[(pts[:, 2] <= z_top + 5.0) & (pts[:, 2] >= z_bot - 5.0)]
    if len(pts) < 4:
        return None
    n = len(pts)
    t = np.linspace(0.0, 1.0, n)
    err = np.zeros((n, 3))
    for k in range(2):  # lateral (x) and AP (y) errors, low frequency
        amp = rng.normal(0.0, jitter_mm, size=3)
        err[:, k] = amp[0] + amp[1] * np.sin(np.pi * t * rng.uniform(0.5, 2.0) + rng.uniform(0, 6.3)) + amp[2] * t
    # Endpoints: the localizer's curve starts/stops within a few mm of the FOV edges.
    keep = (pts[:, 2] <= z_top - rng.uniform(0, 8)) & (pts[:, 2] >= z_bot + rng.uniform(0, 8))
    if keep.sum() < 4:
        return None
    return SpineCurve.fit(pts[keep] + err[keep], smoothing_mm=30.0, extend_mm=float(rng.uniform(0, 10)))


def make_detector_items(seed: int, cfg: dict[str, Any]) -> list[DetectorItem]:
    """``cprs_per_case`` training CPRs of one synthetic patient."""
    from spinevcf.detector import DetectorConfig
    from spinevcf.geometry.cpr import make_cpr
    from spinevcf.synth.config import SynthConfig
    from spinevcf.synth.phantom import sample_phantom

    rng = np.random.default_rng([seed, 2])
    phantom = sample_phantom(
        seed,
        SynthConfig(
            fracture_rate=float(cfg.get("synth_fracture_rate", 0.15)),
            subthreshold_rate=float(cfg.get("synth_subthreshold_rate", 0.08)),
        ),
    )
    z_top, z_bot = sample_fov(phantom, rng)
    pts = np.asarray(phantom.spine.curve_pts)
    sel = (pts[:, 2] <= z_top) & (pts[:, 2] >= z_bot)
    if sel.sum() < 2:
        return []
    c = pts[sel]
    sx, sy, _ = cfg["render_spacing_mm"]
    thick = float(rng.choice([1.0, 1.25, 2.0, 2.5, 3.0, 5.0], p=[0.2, 0.15, 0.2, 0.2, 0.1, 0.15]))
    fine_z = min(1.0, thick)
    x0, x1 = c[:, 0].min() - 70.0, c[:, 0].max() + 70.0
    y0, y1 = c[:, 1].min() - 75.0, c[:, 1].max() + 80.0
    shape = (int((z_top - z_bot) / fine_z) + 1, int((y1 - y0) / sy) + 1, int((x1 - x0) / sx) + 1)
    aff = _grid_affine([x0, y0, z_top], (fine_z, sy, sx))
    img = phantom.render(aff, shape)
    # Thick slices: average fine_z slices into `thick` mm slabs and keep one per slab.
    k = max(1, int(round(thick / fine_z)))
    if k > 1:
        n = (img.shape[0] // k) * k
        img = img[:n].reshape(n // k, k, *img.shape[1:]).mean(axis=1).astype(np.float32)
        aff = aff.copy()
        aff[:3, 3] = aff[:3, 3] + aff[:3, 0] * (k - 1) / 2.0
        aff[:3, 0] = aff[:3, 0] * k
    _scanner_effects(img, rng, np.linalg.norm(aff[:3, :3], axis=0))
    vol = Volume(img, aff)
    z_lo_vol = vol.index_to_lps([[img.shape[0] - 1, 0, 0]])[0, 2]
    z_hi_vol = vol.index_to_lps([[0, 0, 0]])[0, 2]
    dcfg = DetectorConfig.from_dict(cfg["model_config"])
    items: list[DetectorItem] = []
    for _ in range(int(cfg.get("cprs_per_case", 2))):
        curve = _jittered_curve(phantom, z_hi_vol, z_lo_vol, rng, float(cfg["curve_jitter_mm"]))
        if curve is None:
            continue
        cpr = make_cpr(vol, curve, **dcfg.cpr_kwargs())
        kps, levels, ignore = [], [], []
        for vb in phantom.spine.vertebrae:
            kp3 = np.asarray(vb.keypoints(), dtype=np.float64)
            px = cpr.lps_to_pixel(kp3)
            inside_fov = (kp3[:, 2] <= z_hi_vol - FOV_EDGE_MARGIN_MM).all() and (
                kp3[:, 2] >= z_lo_vol + FOV_EDGE_MARGIN_MM
            ).all()
            in_image = (px[:, 0] >= 0).all() and (px[:, 0] < cpr.valid_rows).all()
            if vb.level in LEVEL_INDEX and inside_fov and in_image:
                kps.append(px)
                levels.append(LEVEL_INDEX[vb.level])
            elif (px[:, 0] > -20).any() and (px[:, 0] < cpr.valid_rows + 20).any() and vb.level in LEVEL_INDEX:
                ignore.append(px.mean(axis=0))
        items.append(DetectorItem(cpr.image.astype(np.float32), kps, levels, ignore))
    return items


def cache_dir(cfg: dict[str, Any]) -> Path:
    """The config's cache folder for the current generator version (old caches are never reused)."""
    from spinevcf.synth import GENERATOR_VERSION

    return Path(cfg["cache_dir"]) / f"generator-{GENERATOR_VERSION}"


def _cache_path(cache: Path, kind: str, seed: int) -> Path:
    return cache / f"{kind}_{seed:07d}.npz"


def _build_one(args: tuple[str, str, int, dict[str, Any]]) -> int:
    kind, cache_s, seed, cfg = args
    cache = Path(cache_s)
    path = _cache_path(cache, kind, seed)
    if path.exists():
        return seed
    if kind == "localizer":
        item = make_localizer_item(seed, cfg)
        np.savez_compressed(path.with_suffix(".tmp.npz"), **item)
    else:
        items = make_detector_items(seed, cfg)
        arrays: dict[str, Any] = {"n": np.array(len(items))}
        for i, it in enumerate(items):
            arrays[f"image{i}"] = it.image.astype(np.float16)
            arrays[f"kp{i}"] = np.array(it.keypoints_px, dtype=np.float32).reshape(-1, 6, 2)
            arrays[f"lev{i}"] = np.array(it.levels, dtype=np.int64)
            arrays[f"ign{i}"] = np.array(it.ignore_centers_px, dtype=np.float32).reshape(-1, 2)
        np.savez_compressed(path.with_suffix(".tmp.npz"), **arrays)
    path.with_suffix(".tmp.npz").replace(path)
    return seed


def build_cache(kind: str, cache: Path, seeds: list[int], cfg: dict[str, Any], *, workers: int = 2) -> None:
    """Make every missing cache file for ``seeds`` (deterministic per seed)."""
    cache.mkdir(parents=True, exist_ok=True)
    todo = [s for s in seeds if not _cache_path(cache, kind, s).exists()]
    if not todo:
        return
    log.info("building %s cache: %d items with %d workers", kind, len(todo), workers)
    jobs = [(kind, str(cache), s, cfg) for s in todo]
    if workers <= 1:
        for i, j in enumerate(jobs):
            _build_one(j)
            log.info("%s cache %d/%d", kind, i + 1, len(jobs))
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        for i, _ in enumerate(pool.imap_unordered(_build_one, jobs)):
            if (i + 1) % 10 == 0 or i + 1 == len(jobs):
                log.info("%s cache %d/%d", kind, i + 1, len(jobs))


def load_localizer_item(cache: Path, seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """(image, target) of one cached localizer item."""
    with np.load(_cache_path(cache, "localizer", seed)) as z:
        return z["image"].astype(np.float32), z["target"]


def load_detector_items(cache: Path, seeds: list[int]) -> list[DetectorItem]:
    """All cached CPRs of ``seeds``."""
    out: list[DetectorItem] = []
    for s in seeds:
        with np.load(_cache_path(cache, "detector", s)) as z:
            for i in range(int(z["n"])):
                out.append(
                    DetectorItem(
                        z[f"image{i}"].astype(np.float32),
                        list(z[f"kp{i}"].astype(np.float64)),
                        [int(v) for v in z[f"lev{i}"]],
                        list(z[f"ign{i}"].astype(np.float64)),
                    )
                )
    return out
