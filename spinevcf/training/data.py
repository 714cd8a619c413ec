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

VerSe-format data (optional, :mod:`spinevcf.io.verse`): with ``verse_root`` in the config,
items are also (with ``synthetic: false``: only) made from real CTs with vertebra masks.
They are keyed ``"verse/<tag>/<case>"`` (:func:`item_keys`; ``tag`` identifies the root and
the loader version) and cached under ``<cache>/verse/<tag>/``. The localizer item is the CT
through the same :func:`spinevcf.localizer.preprocess` with the column target (bodies, and
the convex hull of each pair of adjacent bodies for the disc between them) sampled at the
grid's voxel centres; the detector items are CPRs along a jittered curve through the
derived body centres, exactly as for phantoms, with the keypoints derived from the masks.
Configs without ``verse_root`` make exactly the items (same random draws, same cache files)
they made before.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import zlib
from collections.abc import Iterable, Sequence
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
    "ItemKey",
    "item_keys",
    "verse_split",
    "make_verse_localizer_item",
    "make_verse_detector_items",
    "verse_column_target",
]

log = logging.getLogger(__name__)

#: Columns of the LPS-aligned training grid: axis 0 superior->inferior, axis 1 A->P, axis 2 R->L.
GRID_DIRECTIONS = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).T
#: Body labels 1..24 and disc label 25 form the column.
COLUMN_LABEL_MAX = 25
#: Margin (mm) a vertebra's keypoints must keep from the field-of-view edge to be annotated.
FOV_EDGE_MARGIN_MM = 2.0
#: A training item: a synthetic seed (int) or a VerSe case key ``"verse/<tag>/<case>"`` (str).
ItemKey = int | str
_VERSE_KEY = "verse"
#: The curve through VerSe body centres is extended by this (mm) beyond the end bodies
#: before the field-of-view trimming of :func:`_jittered_curve_through`.
VERSE_CURVE_EXTEND_MM = 40.0
#: Default share of VerSe subjects used for validation when ``verse_val`` is not given.
VERSE_VAL_FRACTION = 0.2


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
    return _jittered_curve_through(phantom.spine.curve_pts, z_top, z_bot, rng, jitter_mm)


def _jittered_curve_through(
    curve_pts: npt.ArrayLike, z_top: float, z_bot: float, rng: np.random.Generator, jitter_mm: float
):
    """A curve through dense centre points (1 mm apart) within the field of view, with smooth random error."""
    from spinevcf.geometry.curve import SpineCurve

    pts = np.asarray(curve_pts, dtype=np.float64)
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
    bodies = []
    for vb in phantom.spine.vertebrae:
        if vb.level not in LEVEL_INDEX:
            continue
        kp3 = np.asarray(vb.keypoints(), dtype=np.float64)
        inside_fov = (kp3[:, 2] <= z_hi_vol - FOV_EDGE_MARGIN_MM).all() and (
            kp3[:, 2] >= z_lo_vol + FOV_EDGE_MARGIN_MM
        ).all()
        bodies.append((kp3, LEVEL_INDEX[vb.level], bool(inside_fov)))
    jitter = float(cfg["curve_jitter_mm"])
    curves = (
        _jittered_curve(phantom, z_hi_vol, z_lo_vol, rng, jitter) for _ in range(int(cfg.get("cprs_per_case", 2)))
    )
    return _cpr_items(vol, curves, bodies, DetectorConfig.from_dict(cfg["model_config"]))


def _cpr_items(
    vol: Volume,
    curves: Iterable[Any],
    bodies: list[tuple[npt.NDArray[np.float64], int, bool]],
    dcfg: Any,
    ignore_lps: Sequence[npt.NDArray[np.float64]] = (),
) -> list[DetectorItem]:
    """One training item per curve (``None`` curves are skipped), synthetic or VerSe.

    Args:
        vol: the CT the CPRs are made from.
        curves: the (jittered) curves, made lazily in the caller's random order.
        bodies: as for :func:`_cpr_annotations`.
        dcfg: the detector's :class:`~spinevcf.detector.DetectorConfig` (CPR parameters).
        ignore_lps: further "ignore" centres (LPS; bodies without keypoints), kept where
            they fall on the CPR or within 20 rows of it.
    """
    from spinevcf.geometry.cpr import make_cpr

    items: list[DetectorItem] = []
    for curve in curves:
        if curve is None:
            continue
        cpr = make_cpr(vol, curve, **dcfg.cpr_kwargs())
        rows = int(cpr.valid_rows if cpr.valid_rows is not None else cpr.image.shape[1])
        kps, levels, ignore = _cpr_annotations(cpr, rows, bodies)
        for c in ignore_lps:
            px = cpr.lps_to_pixel(c[None])[0]
            if -20 < px[0] < rows + 20:
                ignore.append(px)
        items.append(DetectorItem(cpr.image.astype(np.float32), kps, levels, ignore))
    return items


def _cpr_annotations(
    cpr: Any, rows: int, bodies: list[tuple[npt.NDArray[np.float64], int, bool]]
) -> tuple[list[npt.NDArray[np.float64]], list[int], list[npt.NDArray[np.float64]]]:
    """Detector annotations of one training CPR.

    Args:
        cpr: the CPR.
        rows: its valid rows.
        bodies: per vertebral body its (6, 3) LPS keypoints, level index and whether it lies
            inside the scanned field of view (with the margin).

    Returns:
        ``(keypoints_px, levels, ignore_centres_px)``: bodies inside the field of view and
        the image are annotated; others near the image are "ignore" centres.
    """
    kps, levels, ignore = [], [], []
    for kp3, level, inside_fov in bodies:
        px = cpr.lps_to_pixel(kp3)
        in_image = (px[:, 0] >= 0).all() and (px[:, 0] < rows).all()
        if inside_fov and in_image:
            kps.append(px)
            levels.append(level)
        elif (px[:, 0] > -20).any() and (px[:, 0] < rows + 20).any():
            ignore.append(px.mean(axis=0))
    return kps, levels, ignore


# --------------------------------------------------------------------------- VerSe items
def _verse_tag(cfg: dict[str, Any]) -> str:
    """Short digest of the VerSe root and the loader version: VerSe cache entries are keyed by it."""
    from spinevcf.io.verse import LOADER_VERSION

    root = str(Path(cfg["verse_root"]).expanduser().resolve())
    return hashlib.sha1(f"{root}|{LOADER_VERSION}".encode()).hexdigest()[:10]


def _take(spec: Any, pool: list[str], n_all: int, what: str) -> list[str]:
    """The first ``spec * n_all`` subjects of ``pool`` (``spec``: a fraction)."""
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        if not 0.0 <= float(spec) <= 1.0:
            raise ValueError(f"{what} must be a fraction in [0, 1] or a list of subject ids, got {spec!r}")
        return pool[: int(round(float(spec) * n_all))]
    raise ValueError(f"{what} must be a fraction in [0, 1] or a list of subject ids, got {spec!r}")


def verse_split(cfg: dict[str, Any]) -> tuple[list[str], list[str]]:
    """VerSe case ids for training and validation from ``verse_root``, ``verse_train``, ``verse_val``.

    ``verse_train`` / ``verse_val`` are lists of subject ids (``sub-gl003``) or case ids
    (``sub-gl003_dir-ax``), or fractions of all subjects. Lists are taken as given; fractions
    take subjects from a fixed shuffle (``verse_split_seed``, default 0) of the remaining
    ones; ``verse_val`` defaults to :data:`VERSE_VAL_FRACTION`, ``verse_train`` to all
    subjects not used for validation. All cases of a subject go to the same side.

    Raises:
        ValueError: an unknown id, a subject on both sides, or a bad value.
        spinevcf.errors.InputError: the root holds no VerSe case.
    """
    from spinevcf.io.verse import find_verse_cases

    cases = find_verse_cases(cfg["verse_root"])
    by_subject: dict[str, list[str]] = {}
    for c in cases:
        by_subject.setdefault(c.subject, []).append(c.case_id)
    case_subject = {c.case_id: c.subject for c in cases}
    subjects = sorted(by_subject)

    def resolve(ids: list[Any], what: str) -> list[str]:
        out, unknown = [], []
        for i in ids:
            key = str(i)
            if key in by_subject:
                out.append(key)
            elif key in case_subject:
                out.append(case_subject[key])
            else:
                unknown.append(key)
        if unknown:
            raise ValueError(f"{what}: unknown VerSe subject or case id(s): {', '.join(unknown[:5])}")
        return list(dict.fromkeys(out))

    order = [subjects[i] for i in np.random.default_rng(int(cfg.get("verse_split_seed", 0))).permutation(len(subjects))]
    val_spec = cfg.get("verse_val")
    if val_spec is None:
        val_spec = VERSE_VAL_FRACTION
    train_spec = cfg.get("verse_train")
    val = resolve(val_spec, "verse_val") if isinstance(val_spec, list) else None
    train = resolve(train_spec, "verse_train") if isinstance(train_spec, list) else None
    if val is None:
        val = _take(val_spec, [x for x in order if x not in set(train or [])], len(subjects), "verse_val")
    if train is None:
        rest = [x for x in order if x not in set(val)]
        train = rest if train_spec is None else _take(train_spec, rest, len(subjects), "verse_train")
    both = sorted(set(train) & set(val))
    if both:
        raise ValueError(f"VerSe subject(s) in both verse_train and verse_val: {', '.join(both[:5])}")
    return (
        [c for x in sorted(train) for c in by_subject[x]],
        [c for x in sorted(val) for c in by_subject[x]],
    )


def item_keys(cfg: dict[str, Any]) -> tuple[list[ItemKey], list[ItemKey]]:
    """Training and validation item keys of a config.

    Synthetic seeds ``range(*train_seeds)`` / ``range(*val_seeds)`` (unless
    ``synthetic: false``), then, with ``verse_root``, the VerSe cases of :func:`verse_split`
    as ``"verse/<tag>/<case>"``. Without ``verse_root`` this is exactly the two seed ranges.
    """
    synthetic = bool(cfg.get("synthetic", True))
    train: list[ItemKey] = list(range(*cfg["train_seeds"])) if synthetic else []
    val: list[ItemKey] = list(range(*cfg["val_seeds"])) if synthetic else []
    if cfg.get("verse_root"):
        tag = _verse_tag(cfg)
        vt, vv = verse_split(cfg)
        train += [f"{_VERSE_KEY}/{tag}/{c}" for c in vt]
        val += [f"{_VERSE_KEY}/{tag}/{c}" for c in vv]
    if not train:
        raise ValueError("the config selects no training item (synthetic: false and no VerSe training case)")
    return train, val


_VERSE_CASES: dict[str, dict[str, Any]] = {}


def _verse_study(cfg: dict[str, Any], case_id: str) -> Any:
    """The :class:`spinevcf.io.verse.VerseStudy` of a case of ``cfg["verse_root"]``."""
    from spinevcf.io.verse import find_verse_cases, read_verse_study

    root = str(cfg["verse_root"])
    if root not in _VERSE_CASES:
        _VERSE_CASES[root] = {c.case_id: c for c in find_verse_cases(root)}
    case = _VERSE_CASES[root].get(case_id)
    if case is None:
        raise ValueError(f"VerSe case {case_id} not found under {root}")
    return read_verse_study(case)


def verse_column_target(study: Any, grid_affine: npt.ArrayLike, shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """Column target (bodies and discs) of a VerSe study sampled at a grid's voxel centres.

    Bodies are the mask's body regions (:func:`spinevcf.io.verse.vertebra_geometry`; C1,
    which has none, is left out as in the phantoms); the disc between two adjacent bodies is
    the convex hull of both bodies' voxels (it also fills their concave walls, a little).
    """
    from scipy.spatial import ConvexHull, QhullError

    from spinevcf.io.verse import adjacent_pairs

    gaff = np.asarray(grid_affine, dtype=np.float64)
    ginv = np.linalg.inv(gaff)
    shp = np.asarray(shape[:3])
    target = np.zeros(tuple(int(x) for x in shp), np.uint8)
    maff = study.mask.affine
    minv = np.linalg.inv(maff)
    geo = {g.label: g for g in study.vertebrae if g.label != 1}
    pts = {lab: g.body_points_lps(maff) for lab, g in geo.items()}

    def candidates(p: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Grid indices inside the grid whose centres lie in the LPS bounding box of ``p``."""
        lo, hi = p.min(axis=0), p.max(axis=0)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        idx = corners @ ginv[:3, :3].T + ginv[:3, 3]
        a = np.clip(np.floor(idx.min(axis=0)).astype(int), 0, shp)
        b = np.clip(np.ceil(idx.max(axis=0)).astype(int) + 1, 0, shp)
        if np.any(b <= a):
            return np.zeros((0, 3), np.int64)
        g = np.meshgrid(*[np.arange(a[k], b[k]) for k in range(3)], indexing="ij")
        return np.stack([x.ravel() for x in g], axis=1)

    for lab, g in geo.items():
        cand = candidates(pts[lab])
        if not len(cand):
            continue
        lps = cand @ gaff[:3, :3].T + gaff[:3, 3]
        mi = np.rint(lps @ minv[:3, :3].T + minv[:3, 3]).astype(int) - np.array([s.start for s in g.body_slices])
        ok = np.all((mi >= 0) & (mi < np.array(g.body_mask.shape)), axis=1)
        hit = np.zeros(len(cand), bool)
        hit[ok] = g.body_mask[mi[ok, 0], mi[ok, 1], mi[ok, 2]]
        target[tuple(cand[hit].T)] = 1
    for a, b in adjacent_pairs(list(geo)):
        p = np.concatenate([pts[a], pts[b]])
        try:
            hull = ConvexHull(p)
        except (QhullError, ValueError):
            continue
        cand = candidates(p)
        if not len(cand):
            continue
        lps = cand @ gaff[:3, :3].T + gaff[:3, 3]
        inside = np.all(lps @ hull.equations[:, :3].T + hull.equations[:, 3] <= 1e-6, axis=1)
        target[tuple(cand[inside].T)] = 1
    return target


def make_verse_localizer_item(study: Any, cfg: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """Localizer input (D, H, W) float16 normalised and column target (D, H, W) uint8 of a VerSe study."""
    from spinevcf.localizer import LocalizerConfig, preprocess

    lcfg = LocalizerConfig.from_dict(cfg["model_config"])
    x, grid_aff = preprocess(study.ct, lcfg)
    target = verse_column_target(study, grid_aff, x.shape[2:])
    return {"image": x[0, 0].astype(np.float16), "target": target}


def make_verse_detector_items(study: Any, cfg: dict[str, Any]) -> list[DetectorItem]:
    """``cprs_per_case`` training CPRs of a VerSe study.

    As :func:`make_detector_items` without the rendering: the curve through the derived
    body centres (all bodies, cut ones too, extended by :data:`VERSE_CURVE_EXTEND_MM`) gets
    the same simulated localizer error, the CPR is made from the CT as it is, and the truth's
    keypoints are mapped into it; bodies listed in ``truth.extra["partial"]`` (cut by the
    image, unmeasured, T13 and L6) are "ignore" centres.
    """
    from spinevcf.detector import DetectorConfig
    from spinevcf.geometry.curve import SpineCurve

    rng = np.random.default_rng([zlib.crc32(study.case.case_id.encode()), 2])
    vol: Volume = study.ct
    centres = np.array([g.keypoint_center for g in study.vertebrae if g.label != 1])
    if len(centres) < 2:
        return []
    base = SpineCurve.fit(centres, smoothing_mm=0.0, extend_mm=VERSE_CURVE_EXTEND_MM)
    dense = base.position(np.arange(0.0, base.length, 1.0))
    n = np.array(vol.shape, dtype=np.float64) - 1.0
    corners = vol.index_to_lps(np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])]))
    z_lo_vol, z_hi_vol = float(corners[:, 2].min()), float(corners[:, 2].max())
    margin_idx = FOV_EDGE_MARGIN_MM / vol.spacing
    truth = study.truth
    ignore_lps = [np.asarray(p["center_lps_mm"], dtype=np.float64) for p in (truth.extra or {}).get("partial", [])]
    bodies = []
    for rec in truth.vertebrae:
        idx = vol.lps_to_index(rec.keypoints)
        inside_fov = bool(np.all(idx >= margin_idx) and np.all(idx <= n - margin_idx))
        bodies.append((rec.keypoints, LEVEL_INDEX[rec.label], inside_fov))
    jitter = float(cfg["curve_jitter_mm"])
    curves = (
        _jittered_curve_through(dense, z_hi_vol, z_lo_vol, rng, jitter)
        for _ in range(int(cfg.get("cprs_per_case", 2)))
    )
    return _cpr_items(vol, curves, bodies, DetectorConfig.from_dict(cfg["model_config"]), ignore_lps)


def cache_dir(cfg: dict[str, Any]) -> Path:
    """The config's cache folder for the current generator version (old caches are never reused)."""
    from spinevcf.synth import GENERATOR_VERSION

    return Path(cfg["cache_dir"]) / f"generator-{GENERATOR_VERSION}"


def _cache_path(cache: Path, kind: str, seed: ItemKey) -> Path:
    if isinstance(seed, str):
        _, tag, case_id = seed.split("/", 2)
        return cache / _VERSE_KEY / tag / f"{kind}_{case_id}.npz"
    return cache / f"{kind}_{seed:07d}.npz"


def _build_one(args: tuple[str, str, ItemKey, dict[str, Any]]) -> ItemKey:
    kind, cache_s, seed, cfg = args
    cache = Path(cache_s)
    path = _cache_path(cache, kind, seed)
    if path.exists():
        return seed
    path.parent.mkdir(parents=True, exist_ok=True)
    study = _verse_study(cfg, seed.split("/", 2)[2]) if isinstance(seed, str) else None
    if kind == "localizer":
        item = make_verse_localizer_item(study, cfg) if study is not None else make_localizer_item(int(seed), cfg)
        np.savez_compressed(path.with_suffix(".tmp.npz"), **item)
    else:
        items = make_verse_detector_items(study, cfg) if study is not None else make_detector_items(int(seed), cfg)
        arrays: dict[str, Any] = {"n": np.array(len(items))}
        for i, it in enumerate(items):
            arrays[f"image{i}"] = it.image.astype(np.float16)
            arrays[f"kp{i}"] = np.array(it.keypoints_px, dtype=np.float32).reshape(-1, 6, 2)
            arrays[f"lev{i}"] = np.array(it.levels, dtype=np.int64)
            arrays[f"ign{i}"] = np.array(it.ignore_centers_px, dtype=np.float32).reshape(-1, 2)
        np.savez_compressed(path.with_suffix(".tmp.npz"), **arrays)
    path.with_suffix(".tmp.npz").replace(path)
    return seed


def build_cache(kind: str, cache: Path, seeds: list[ItemKey], cfg: dict[str, Any], *, workers: int = 2) -> None:
    """Make every missing cache file for ``seeds`` (synthetic seeds or VerSe keys, :func:`item_keys`)."""
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


def load_localizer_item(cache: Path, seed: ItemKey) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """(image, target) of one cached localizer item (a synthetic seed or a VerSe key)."""
    with np.load(_cache_path(cache, "localizer", seed)) as z:
        return z["image"].astype(np.float32), z["target"]


def load_detector_items(cache: Path, seeds: list[ItemKey]) -> list[DetectorItem]:
    """All cached CPRs of ``seeds`` (synthetic seeds or VerSe keys)."""
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
