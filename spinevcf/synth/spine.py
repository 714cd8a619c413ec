"""The synthetic spine: centre curve, vertebral bodies with endplates, discs, posterior elements.

Local vertebra frame (columns of :attr:`Vertebra.rot`): ``u`` patient left, ``v``
posterior, ``w`` superior (minus the caudal curve tangent, with small random tilts and,
in scoliosis, axial rotation). The body is centred at ``u = v = w = 0``; its anterior
wall is at ``v = -half_depth``.

Endplate surfaces (``w`` as a function of ``u, v``): a rim plane interpolated between the
anterior and posterior rim heights, minus a concavity ``c * (1 - rho^2)`` where
``rho`` is the normalised elliptical radius. Keypoints lie exactly on those surfaces in
the plane ``u = 0``, :data:`~spinevcf.synth.anatomy.KEYPOINT_INSET_MM` inside the
anterior and posterior walls and midway between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.normative import default_normative
from spinevcf.schema import LEVELS
from spinevcf.synth import anatomy as A
from spinevcf.synth.raster import F32, Canvas, Tube, local_coords

__all__ = [
    "Vertebra",
    "Disc",
    "Spine",
    "sample_spine",
    "LABEL_DISC",
    "LABEL_OTHER_BONE",
    "canal_half",
]

#: Label of intervertebral discs in :meth:`Phantom.render_labels`.
LABEL_DISC: int = 25
#: Label of bone other than vertebral bodies.
LABEL_OTHER_BONE: int = 26

_UP = np.array([0.0, 0.0, 1.0])


def _region(level: str) -> str:
    return level[0]


@dataclass
class Vertebra:
    """One vertebral body (plus its posterior elements as tubes).

    Attributes:
        level: level name (C2..L5, or "S1" for the sacral body; with a lumbarised S1,
            "S1" is the mobile body and "S2" the sacral body).
        center: LPS centre of the body.
        rot: columns u (left), v (posterior), w (superior).
        half_width: lateral semi-axis (mm).
        half_depth: AP semi-axis (mm).
        notch_mm: depth of the posterior concavity (kidney shape).
        rim_sup: (anterior, posterior) height of the superior rim above the centre.
        rim_inf: (anterior, posterior) depth of the inferior rim below the centre.
        concavity: (superior, inferior) central endplate concavity depth (mm).
        cortical_hu: HU of cortical bone (posterior elements use it as it is).
        trabecular_hu: mean HU of the trabecular core.
        shell_fraction: effective density of the body's 1 mm outer shell (walls and
            endplates) as a fraction of the way from trabecular to cortical HU. A real
            body's shell is 0.2-0.5 mm thick, so at CT resolution it reads as a partial
            volume of cortical bone (about 200-400 HU on the reference chest CT), not
            as a band of solid cortex; 1.0 renders solid cortex.
        fracture: intended deformity ("none", "wedge", "biconcave", "crush").
        target_reduction: intended height reduction (fraction).
        sclerotic_hu: extra HU of a sclerotic band under the superior endplate (0: none).
        texture: periodic unit-variance noise tile (cells of :data:`TEXTURE_CELL_MM`, axes
            u, v, w; smoother along w: vertical trabeculae), shared by a patient's vertebrae.
        texture_offset: this vertebra's integer offset into the tile.
        texture_hu: amplitude of the trabecular texture.
        subchondral_hu: extra density of the trabecular bone next to the endplates.
        elements: posterior elements (tubes, label "other bone").
        cortex_mm: thickness of the wall shell (mm).
        endplate_cortex_mm: thickness of the endplate shell (mm).
        rim_round_mm: height (mm) the endplates lose towards the rim (rounded corners;
            0: sharp), over the outer :data:`RIM_ROUND_START` of the squared radius.
    """

    level: str
    center: npt.NDArray[np.float64]
    rot: npt.NDArray[np.float64]
    half_width: float
    half_depth: float
    notch_mm: float
    rim_sup: tuple[float, float]
    rim_inf: tuple[float, float]
    concavity: tuple[float, float]
    cortical_hu: float
    trabecular_hu: float
    fracture: str = "none"
    target_reduction: float = 0.0
    sclerotic_hu: float = 0.0
    texture: npt.NDArray[np.float32] | None = None
    texture_offset: tuple[int, int, int] = (0, 0, 0)
    texture_hu: float = 0.0
    subchondral_hu: float = 0.0
    shell_fraction: float = 1.0
    elements: list[Tube] = field(default_factory=list)
    cortex_mm: float = A.CORTEX_MM
    endplate_cortex_mm: float = A.ENDPLATE_CORTEX_MM
    rim_round_mm: float = 0.0

    @property
    def shell_hu(self) -> float:
        """HU of the body's outer shell (see ``shell_fraction``)."""
        return self.trabecular_hu + self.shell_fraction * (self.cortical_hu - self.trabecular_hu)

    @property
    def label(self) -> int | None:
        """Label value of the body (1..24), ``LABEL_OTHER_BONE`` for the sacrum."""
        return LEVELS.index(self.level) + 1 if self.level in LEVELS else LABEL_OTHER_BONE

    @property
    def max_half_height(self) -> float:
        """Largest distance of an endplate rim from the centre."""
        return float(max(*self.rim_sup, *self.rim_inf))

    def _tau(self, v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return (v + F32(self.half_depth)) / F32(2.0 * self.half_depth)

    def endplates(
        self, u: npt.NDArray[np.float32], v: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Superior and inferior endplate heights ``w`` (outer surfaces) at ``(u, v)``."""
        tau = self._tau(v)
        rho2 = (u / F32(self.half_width)) ** 2 + (v / F32(self.half_depth)) ** 2
        bowl = np.clip(F32(1.0) - rho2, 0.0, 1.0)
        sup = (
            F32(self.rim_sup[0])
            + tau * F32(self.rim_sup[1] - self.rim_sup[0])
            - F32(self.concavity[0]) * bowl
        )
        inf = (
            -(F32(self.rim_inf[0]) + tau * F32(self.rim_inf[1] - self.rim_inf[0]))
            + F32(self.concavity[1]) * bowl
        )
        if self.rim_round_mm > 0:
            edge = np.clip((rho2 - F32(RIM_ROUND_START)) / F32(1.0 - RIM_ROUND_START), 0.0, 1.0)
            drop = F32(self.rim_round_mm) * edge * edge
            sup = sup - drop
            inf = inf + drop
        return sup, inf

    def section(
        self, u: npt.NDArray[np.float32], v: npt.NDArray[np.float32], shrink: float = 0.0
    ) -> npt.NDArray[np.bool_]:
        """Inside the (kidney-shaped) cross-section shrunk by ``shrink`` mm."""
        au, av = F32(self.half_width - shrink), F32(self.half_depth - shrink)
        ell = (u / au) ** 2 + (v / av) ** 2 <= 1.0
        post = F32(self.half_depth - shrink) - F32(self.notch_mm) * np.clip(
            F32(1.0) - (u / F32(0.6 * self.half_width)) ** 2, 0.0, 1.0
        )
        return ell & (v <= post)

    def keypoint_v(self) -> tuple[float, float, float]:
        """``v`` of the anterior, middle and posterior keypoints (plane ``u = 0``)."""
        front = -self.half_depth
        back = self.half_depth - self.notch_mm
        return (front + A.KEYPOINT_INSET_MM, 0.5 * (front + back), back - A.KEYPOINT_INSET_MM)

    def keypoints_local(self) -> npt.NDArray[np.float64]:
        """(6, 3) keypoints in local (u, v, w) coordinates, spinevcf order."""
        v = np.array(self.keypoint_v(), dtype=np.float32)
        u = np.zeros(3, np.float32)
        sup, inf = self.endplates(u, v)
        top = np.stack([u, v, sup], axis=1)
        bot = np.stack([u, v, inf], axis=1)
        return np.concatenate([top, bot]).astype(np.float64)

    def to_global(self, local: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map (n, 3) local points to LPS."""
        return np.asarray(local, dtype=np.float64) @ self.rot.T + self.center

    def keypoints(self) -> npt.NDArray[np.float64]:
        """(6, 3) keypoints in LPS mm."""
        return self.to_global(self.keypoints_local())

    def local_bounds(self, margin: float = 1.0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Axis-aligned LPS box of the body."""
        ext = np.array([self.half_width, self.half_depth, self.max_half_height]) + margin
        r = np.abs(self.rot) @ ext
        return self.center - r, self.center + r

    def draw_body(self, cv: Canvas) -> None:
        """Paint the body (cortex, trabecular core, texture, sclerosis)."""
        sl = cv.region(*self.local_bounds())
        if sl is None:
            return
        u, v, w = local_coords(*cv.coords(sl), self.center, self.rot)
        sup, inf = self.endplates(u, v)
        inside = self.section(u, v) & (w <= sup) & (w >= inf)
        if cv.labels:
            cv.paint(sl, inside, 0.0, self.label)
            return
        cv.paint(sl, inside, self.shell_hu, None)
        ce = F32(self.endplate_cortex_mm)
        core = self.section(u, v, self.cortex_mm) & (w <= sup - ce) & (w >= inf + ce)

        def trabecular() -> npt.NDArray[np.float32]:
            val = np.full(np.broadcast_shapes(u.shape, v.shape, w.shape), F32(self.trabecular_hu), F32)
            if self.texture is not None and self.texture_hu > 0:
                n = self.texture.shape
                cell = F32(1.0 / TEXTURE_CELL_MM)
                iu = (np.floor(u * cell).astype(np.int32) + self.texture_offset[0]) % n[0]
                iv = (np.floor(v * cell).astype(np.int32) + self.texture_offset[1]) % n[1]
                iw = (np.floor(w * cell).astype(np.int32) + self.texture_offset[2]) % n[2]
                val += F32(self.texture_hu) * self.texture[iu, iv, iw]
            if self.subchondral_hu > 0:
                near = ((sup - w) < F32(SUBCHONDRAL_MM)) | ((w - inf) < F32(SUBCHONDRAL_MM))
                val += F32(self.subchondral_hu) * near
            if self.sclerotic_hu > 0:
                band = (sup - w) < F32(5.0)
                val += F32(self.sclerotic_hu) * band
            return val

        cv.paint(sl, core, trabecular, None)


@dataclass
class Disc:
    """An intervertebral disc between two bodies (upper, lower), filling the gap between endplates.

    A fused junction (sacralised L5) is the same volume drawn as bone (``label``
    :data:`LABEL_OTHER_BONE`, bone ``hu``).
    """

    upper: Vertebra
    lower: Vertebra
    hu: float
    vacuum: bool = False
    bulge_mm: float = 1.0
    label: int = LABEL_DISC

    def draw(self, cv: Canvas) -> None:
        """Paint the disc and, with vacuum phenomenon, a gas cleft inside it."""
        lo = np.minimum(*[np.minimum(*vb.local_bounds(2.0)) for vb in (self.upper, self.lower)])
        hi = np.maximum(*[np.maximum(*vb.local_bounds(2.0)) for vb in (self.upper, self.lower)])
        sl = cv.region(lo, hi)
        if sl is None:
            return
        x, y, z = cv.coords(sl)
        uu, vu, wu = local_coords(x, y, z, self.upper.center, self.upper.rot)
        ul, vl, wl = local_coords(x, y, z, self.lower.center, self.lower.rot)
        _, inf_u = self.upper.endplates(uu, vu)
        sup_l, _ = self.lower.endplates(ul, vl)
        b = self.bulge_mm
        # Cross-section: the average of both bodies, a little bulging.
        au = F32(0.5 * (self.upper.half_width + self.lower.half_width) + b)
        av = F32(0.5 * (self.upper.half_depth + self.lower.half_depth) + b)
        um, vm = 0.5 * (uu + ul), 0.5 * (vu + vl)
        sect = (um / au) ** 2 + (vm / av) ** 2 <= 1.0
        mask = (
            sect
            & (wu < inf_u + F32(0.01))
            & (wl > sup_l - F32(0.01))
            & (wu > F32(-3 * self.upper.max_half_height))
        )
        cv.paint(sl, mask, self.hu, self.label)
        if self.vacuum and not cv.labels:
            gas = (
                (um / (au * F32(0.45))) ** 2 + ((vm + av * F32(0.1)) / (av * F32(0.35))) ** 2 <= 1.0
            ) & mask
            gap = np.abs((wu - inf_u) + (wl - sup_l)) < F32(1.2)  # mid-plane of the disc
            cv.paint(sl, gas & gap, -700.0, None)


@dataclass
class Spine:
    """The sampled spine.

    Attributes:
        vertebrae: bodies C2..L5 then the sacral body S1 (cranial to caudal).
        discs: discs between consecutive bodies (L5-S1 included).
        extra_bones: C1 ring, sacrum below S1, sacral alae (tubes, "other bone").
        curve_s: arc length samples (mm, caudal) of the centre curve.
        curve_pts: (n, 3) LPS points of the centre curve.
        level_s: arc length of each level's centre (C1..L5, S1, S3 extrapolated).
        canal: tube of the spinal canal (CSF).
        bone: patient bone-density class.
    """

    vertebrae: list[Vertebra]
    discs: list[Disc]
    extra_bones: list[Tube]
    curve_s: npt.NDArray[np.float64]
    curve_pts: npt.NDArray[np.float64]
    level_s: npt.NDArray[np.float64]
    canal: Tube
    bone: str

    def by_level(self, level: str) -> Vertebra | None:
        """The vertebra of ``level`` or ``None`` (C1)."""
        for vb in self.vertebrae:
            if vb.level == level:
                return vb
        return None

    def point_at(self, s: float | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Centre-curve point(s) at arc length ``s``."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        return np.stack([np.interp(s, self.curve_s, self.curve_pts[:, k]) for k in range(3)], axis=1)

    def level_index_at_z(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Fractional level index (0 = C1 ... 23 = L5, 24 = S1) of the axial plane at height ``z``."""
        zc = self.point_at(self.level_s)[:, 2]  # descending
        idx = np.arange(len(zc), dtype=np.float64)
        zq = np.asarray(z, dtype=np.float64)
        # extrapolate linearly beyond the ends
        f = np.interp(-zq, -zc, idx)
        top = -zq < -zc[0]
        bot = -zq > -zc[-1]
        f = np.where(top, (zq - zc[0]) / (zc[0] - zc[1]) * -1.0, f)
        f = np.where(bot, idx[-1] + (zc[-1] - zq) / (zc[-2] - zc[-1]), f)
        return f


#: Cell size (mm) and side (cells) of the trabecular texture tile.
TEXTURE_CELL_MM: float = 0.5
TEXTURE_TILE: int = 48
#: Thickness (mm) of the denser subchondral trabecular bone under each endplate.
SUBCHONDRAL_MM: float = 2.5
#: Squared normalised radius beyond which rounded rims (``Vertebra.rim_round_mm``) drop.
RIM_ROUND_START: float = 0.8
#: Sacral body (S1, or S2 below a lumbarised S1): (posterior height, Ha/Hp, half-width,
#: half-depth) before the patient scale.
SACRAL_BODY: tuple[float, float, float, float] = (28.0, 1.05, 25.0, 17.5)


def _texture_tile(rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Periodic smoothed noise, anisotropic (longer along w: vertical trabeculae), unit variance."""
    raw = rng.standard_normal((TEXTURE_TILE,) * 3).astype(np.float32)
    tile = ndimage.gaussian_filter(raw, sigma=(1.1, 1.1, 2.4), mode="wrap")
    tile -= tile.mean()
    tile /= tile.std()
    return tile


def _bump(
    s: npt.NDArray[np.float64], centre: float, width: float, integral: float
) -> npt.NDArray[np.float64]:
    """Gaussian curvature bump whose integral over ``s`` is ``integral``."""
    return integral / (width * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((s - centre) / width) ** 2)


def _level_dims(
    rng: np.random.Generator, scale: float, level: str, family: A.AnatomyFamily = A.DEFAULT_FAMILY
) -> tuple[float, float, float, float]:
    """(posterior height, Ha/Hp ratio, half-width, half-depth) of a normal vertebra."""
    size = family.body_sizes[level]
    hp = size.height_post * scale * (1.0 + rng.normal(0.0, 0.02))
    ratio = family.wedge[level] * (1.0 + rng.normal(0.0, 0.012))
    hw = 0.5 * size.width * scale * (1.0 + rng.normal(0.0, 0.03))
    hd = 0.5 * size.depth * scale * (1.0 + rng.normal(0.0, 0.03))
    return hp, ratio, hw, hd


def _fracture_plan(
    rng: np.random.Generator, rate: float, subthreshold: float, multiplier: float
) -> dict[str, tuple[str, float]]:
    """Choose fractured levels: level -> (deformity, target reduction)."""
    weights = A.FRACTURE_LEVEL_WEIGHTS
    mean_w = float(np.mean(list(weights.values())))
    plan: dict[str, tuple[str, float]] = {}
    for level, wgt in weights.items():
        p = min(0.9, rate * multiplier * wgt / mean_w)
        kind = str(rng.choice(["wedge", "biconcave", "crush"], p=[0.5, 0.3, 0.2]))
        if rng.random() < p:
            grade = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
            r = {1: rng.uniform(0.215, 0.245), 2: rng.uniform(0.27, 0.38), 3: rng.uniform(0.42, 0.62)}[grade]
            plan[level] = (kind, float(r))
        elif rng.random() < subthreshold * wgt / mean_w:
            plan[level] = (kind, float(rng.uniform(0.05, 0.15)))
    return plan


def _frame(
    tangent: npt.NDArray[np.float64], tilt: tuple[float, float], axial: float
) -> npt.NDArray[np.float64]:
    """Vertebra frame from the caudal tangent, small tilts (rad) about u and v, axial rotation (rad)."""
    w = -tangent / np.linalg.norm(tangent)
    base = _rot_frame(w)
    u, v = base[:, 0], base[:, 1]
    w = w + tilt[0] * v + tilt[1] * u
    base = _rot_frame(w)
    u, v, w = base[:, 0], base[:, 1], base[:, 2]
    c, s = np.cos(axial), np.sin(axial)
    u2, v2 = c * u + s * v, c * v - s * u
    return np.stack([u2, v2, w], axis=1)


def _rot_frame(w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    w = w / np.linalg.norm(w)
    v = np.array([0.0, 1.0, 0.0]) - w[1] * w
    v /= np.linalg.norm(v)
    return np.stack([np.cross(v, w), v, w], axis=1)


def sample_spine(
    rng: np.random.Generator,
    *,
    fracture_rate: float,
    subthreshold_rate: float,
    scoliosis_rate: float,
    family: A.AnatomyFamily = A.DEFAULT_FAMILY,
    lumbosacral: str = "normal",
) -> Spine:
    """Draw a spine (curve, bodies, discs, posterior elements) for one patient.

    Args:
        rng: random generator (the only source of randomness).
        fracture_rate: see :class:`~spinevcf.synth.config.SynthConfig`.
        subthreshold_rate: see :class:`~spinevcf.synth.config.SynthConfig`.
        scoliosis_rate: see :class:`~spinevcf.synth.config.SynthConfig`.
        family: anatomy tables (:data:`spinevcf.synth.anatomy.FAMILY_TABLES`).
        lumbosacral: ``"normal"``; ``"lumbarised_s1"``: S1 is a sixth mobile lumbar-type
            body (named "S1", outside LEVELS) with a disc below it and the sacral body is
            S2; ``"sacralised_l5"``: L5 is fused to the sacrum (bony junction, broad
            transverse processes).
    """
    if lumbosacral not in LUMBOSACRAL:
        raise ValueError(f"lumbosacral must be one of {LUMBOSACRAL}, got {lumbosacral!r}")
    bone = str(rng.choice(["healthy", "osteopenic", "osteoporotic"], p=[0.45, 0.35, 0.20]))
    multiplier = {"healthy": 0.6, "osteopenic": 1.0, "osteoporotic": 1.6}[bone]
    scale = rng.uniform(0.88, 1.12)
    trab_lo, trab_hi = A.TRABECULAR_HU_BY_DENSITY[bone]
    trab = rng.uniform(trab_lo, trab_hi)
    cort = rng.uniform(*A.CORTICAL_HU)
    disc_hu = rng.uniform(*A.DISC_HU)
    age_degeneration = rng.uniform(0.0, 0.35)
    plan = _fracture_plan(rng, fracture_rate, subthreshold_rate, multiplier)
    tile = _texture_tile(rng)
    texture_hu = rng.uniform(0.22, 0.35) * max(trab, 60.0) + 10.0
    subchondral = rng.uniform(30.0, 120.0)
    shell_fraction = rng.uniform(*family.shell_fraction)
    # Families with several concavity ranges (flat or deep endplates) draw one per patient;
    # the default family draws nothing here (its random stream is unchanged).
    conc_range = (
        family.concavity[int(rng.integers(len(family.concavity)))]
        if len(family.concavity) > 1
        else family.concavity[0]
    )
    rim_round = float(rng.uniform(*family.rim_round_mm)) if family.rim_round_mm[1] > 0 else 0.0

    # --- per-level dimensions and stacking along the arc length --------------------------
    lumbarised = lumbosacral == "lumbarised_s1"
    sacralised = lumbosacral == "sacralised_l5"
    levels = list(LEVELS[1:]) + (["S1", "S2"] if lumbarised else ["S1"])
    sac = levels[-1]  # the sacral body
    dims: dict[str, dict[str, float]] = {}
    for lev in levels:
        if lev == sac:
            hp0, ratio, hw0, hd0 = SACRAL_BODY
            hp, hw, hd = hp0 * scale, hw0 * scale, hd0 * scale
        else:
            hp, ratio, hw, hd = _level_dims(rng, scale, lev, family)
        ha = hp * ratio
        d = {"hp": hp, "ha": ha, "hw": hw, "hd": hd}
        kind, red = plan.get(lev, ("none", 0.0))
        d["kind"], d["red"] = kind, red  # type: ignore[assignment]
        d["csup"] = rng.uniform(*conc_range) * scale
        d["cinf"] = rng.uniform(*conc_range) * scale
        d["fsup"] = rng.uniform(0.6, 1.0)
        dims[lev] = d
    heights: dict[str, float] = {}
    for lev in levels:
        d = dims[lev]
        heights[lev] = 0.5 * (d["ha"] + d["hp"])
        if d["kind"] == "crush":
            heights[lev] *= 1.0 - d["red"]
        elif d["kind"] == "wedge":
            heights[lev] = 0.5 * (d["hp"] * (1.0 - d["red"]) + d["hp"])
    discs_h: dict[str, float] = {}
    for lev in levels[:-1]:
        h = family.disc_height_below[lev] * scale * rng.uniform(0.85, 1.15)
        p_deg = age_degeneration * (1.6 if lev.startswith("L") else 0.8)
        if rng.random() < p_deg:
            h *= rng.uniform(0.3, 0.6)
        if sacralised and lev == "L5":
            h = float(rng.uniform(*A.SACRALISED_JUNCTION_MM))
        discs_h[lev] = h
    s_centre: dict[str, float] = {"C1": 0.0}
    s = 0.0
    prev_half = 5.0  # atlas anterior arch
    prev = "C1"
    for lev in levels:
        gap = DISC_GAP_C1C2 if prev == "C1" else discs_h[prev]
        s += prev_half + gap + 0.5 * heights[lev]
        s_centre[lev] = s
        prev_half, prev = 0.5 * heights[lev], lev
    s_sacrum_end = s_centre[sac] + 95.0 * scale

    # --- curve: sagittal angle by integrating curvature bumps, lateral displacement ----------
    sig = np.arange(-80.0, s_sacrum_end + 60.0, 1.0)
    kappa = _bump(sig, s_centre["C4"], 25.0, np.radians(rng.uniform(10, 40)))
    kappa += _bump(sig, s_centre["T7"] + rng.normal(0, 12), 55.0, -np.radians(rng.uniform(20, 60)))
    kappa += _bump(sig, 0.5 * (s_centre["L3"] + s_centre["L4"]), 35.0, np.radians(rng.uniform(30, 60)))
    kappa += _bump(sig, s_centre[sac] + 40.0, 25.0, -np.radians(rng.uniform(40, 65)))
    for lev, d in dims.items():
        if d["kind"] == "wedge":
            kappa += _bump(sig, s_centre[lev], 8.0, -np.arctan((d["hp"] * d["red"]) / (2 * d["hd"])))
    phi = np.cumsum(kappa)  # 1 mm steps
    sel = (sig >= s_centre["T1"]) & (sig <= s_centre["L5"])
    phi += np.radians(rng.normal(0.0, 4.0)) - phi[sel].mean()
    scoliotic = rng.random() < scoliosis_rate
    xlat = np.zeros_like(sig)
    if scoliotic:
        apex = str(rng.choice(["T8", "T11", "L2"]))
        amp = rng.uniform(8.0, 35.0) * rng.choice([-1.0, 1.0])
        xlat += amp * np.exp(-0.5 * ((sig - s_centre[apex]) / rng.uniform(45, 70)) ** 2)
        comp = "L3" if apex == "T8" else "T5"
        xlat -= amp * rng.uniform(0.3, 0.7) * np.exp(-0.5 * ((sig - s_centre[comp]) / 50.0) ** 2)
    else:
        xlat += rng.normal(0, 2.0) * np.exp(-0.5 * ((sig - s_centre["T9"]) / 80.0) ** 2)
    pts = np.zeros((sig.size, 3))
    pts[:, 1] = np.cumsum(np.sin(phi))
    pts[:, 2] = -np.cumsum(np.cos(phi))
    pts[:, 0] = xlat
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    arc -= np.interp(0.0, sig, arc)
    # Anchor T12 at a random scanner position.
    t12 = np.array([np.interp(s_centre["T12"], arc, pts[:, k]) for k in range(3)])
    anchor = np.array([rng.uniform(-15, 15), rng.uniform(-20, 80), rng.uniform(-700, 100)])
    pts += anchor - t12
    tang = np.gradient(pts, arc, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)

    def at(sv: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        p = np.array([np.interp(sv, arc, pts[:, k]) for k in range(3)])
        t = np.array([np.interp(sv, arc, tang[:, k]) for k in range(3)])
        return p, t / np.linalg.norm(t)

    vertebrae: list[Vertebra] = []
    for lev in levels:
        d = dims[lev]
        p, t = at(s_centre[lev])
        axial = np.radians(0.45) * np.interp(s_centre[lev], sig, xlat) + np.radians(rng.normal(0, 1.5))
        rot = _frame(t, (np.radians(rng.normal(0, 1.5)), np.radians(rng.normal(0, 1.5))), axial)
        hp, ha, kind, red = d["hp"], d["ha"], str(d["kind"]), d["red"]
        sup = [0.5 * ha, 0.5 * hp]
        inf = [0.5 * ha, 0.5 * hp]
        csup, cinf = d["csup"], d["cinf"]
        if kind == "wedge":
            loss = ha - hp * (1.0 - red)
            sup[0] -= loss * d["fsup"]
            inf[0] -= loss * (1.0 - d["fsup"])
        elif kind == "crush":
            sup = [x * (1.0 - red) for x in sup]
            inf = [x * (1.0 - red) for x in inf]
        elif kind == "biconcave":
            csup, cinf = d["fsup"], 1.0 - d["fsup"]  # unit total concavity, rescaled below
        mobile_s1 = lumbarised and lev == "S1"
        notch = (
            family.notch_fraction * d["hd"] if (lev.startswith(("T", "L")) or mobile_s1) else 0.05 * d["hd"]
        )
        vb = Vertebra(
            level=lev,
            center=p,
            rot=rot,
            half_width=d["hw"],
            half_depth=d["hd"],
            notch_mm=notch,
            rim_sup=(sup[0], sup[1]),
            rim_inf=(inf[0], inf[1]),
            concavity=(csup, cinf),
            cortical_hu=cort * rng.uniform(0.95, 1.05),
            trabecular_hu=trab + rng.normal(0, 12) + (40.0 if lev == sac else 0.0),
            fracture=kind,
            target_reduction=red,
            sclerotic_hu=rng.uniform(100, 250)
            if (kind != "none" and red >= 0.2 and rng.random() < 0.5)
            else 0.0,
            texture=tile,
            texture_offset=tuple(int(x) for x in rng.integers(0, TEXTURE_TILE, 3)),
            texture_hu=texture_hu * rng.uniform(0.85, 1.15),
            subchondral_hu=subchondral * rng.uniform(0.7, 1.3),
            shell_fraction=shell_fraction,
            cortex_mm=family.cortex_mm,
            endplate_cortex_mm=family.endplate_cortex_mm,
            rim_round_mm=rim_round,
        )
        if kind == "biconcave":
            _set_biconcave(vb, red)
        elif kind == "wedge":
            _set_wedge(vb, red, d["fsup"], ha, hp)
        if lev == sac:
            vb.elements = []
        else:
            vb.elements = _posterior_elements(
                rng,
                vb,
                cort,
                trab,
                scale,
                as_level="L5" if mobile_s1 else None,
                broad_tp=sacralised and lev == "L5",
            )
        vertebrae.append(vb)

    discs = []
    for up, lo in zip(vertebrae[:-1], vertebrae[1:], strict=True):
        deg = discs_h[up.level] < family.disc_height_below[up.level] * scale * 0.7
        disc = Disc(up, lo, hu=disc_hu + rng.normal(0, 8), vacuum=bool(deg and rng.random() < 0.15))
        if sacralised and up.level == "L5":  # fused: a bony bridge instead of a disc
            disc.hu, disc.vacuum, disc.label = (
                0.5 * (up.trabecular_hu + lo.trabecular_hu),
                False,
                LABEL_OTHER_BONE,
            )
        discs.append(disc)

    level_s = np.array([s_centre[lev] for lev in LEVELS] + [s_centre["S1"], s_centre["S1"] + 50.0 * scale])
    extra = _atlas_and_sacrum(rng, vertebrae, at, s_centre[sac], cort, trab, scale)
    canal_pts = []
    for vb in vertebrae[:-1]:
        canal_pts.append(vb.to_global([[0.0, vb.half_depth - vb.notch_mm + canal_half(vb.level)[1], 0.0]])[0])
    canal_pts_a = np.array(canal_pts)
    canal_r = np.array([canal_half(vb.level)[0] for vb in vertebrae[:-1]])
    canal_ap = np.array([canal_half(vb.level)[1] for vb in vertebrae[:-1]])
    canal = Tube(
        canal_pts_a,
        ra=canal_ap,
        rb=canal_r,
        normals=np.tile([0.0, 1.0, 0.0], (len(canal_pts_a), 1)),
        hu=rng.uniform(*A.CSF_HU),
    )
    return Spine(vertebrae, discs, extra, arc, pts, level_s, canal, bone)


def _keypoint_heights(vb: Vertebra) -> npt.NDArray[np.float64]:
    kp = vb.keypoints_local()
    return kp[0:3, 2] - kp[3:6, 2]


def _set_biconcave(vb: Vertebra, reduction: float) -> None:
    """Scale the endplate concavities so that Hm = (1 - reduction) * C * max(Ha, Hp) at the keypoints.

    ``C`` is the level's normal Hm / max(Ha, Hp) (:mod:`spinevcf.normative`), so that the
    intended reduction is the one :func:`spinevcf.grading.grade_column` measures.
    Heights are linear in the total concavity ``c`` (fixed superior/inferior split), so
    ``H(c) = H0 - c * B``; the equation is solved for each choice of the larger of Ha, Hp.
    """
    reduction = 1.0 - (1.0 - reduction) * default_normative().concavity_ratio(vb.level)
    split = vb.concavity
    vb.concavity = (0.0, 0.0)
    h0 = _keypoint_heights(vb)
    vb.concavity = split
    b = h0 - _keypoint_heights(vb)  # height loss per unit concavity
    best = 0.0
    for ref in (0, 2):
        c = (h0[1] - (1.0 - reduction) * h0[ref]) / (b[1] - (1.0 - reduction) * b[ref])
        h = h0 - c * b
        if c > 0 and h[ref] >= h[2 - ref] - 1e-9:
            best = c
    vb.concavity = (split[0] * best, split[1] * best)


def _set_wedge(vb: Vertebra, reduction: float, fsup: float, ha: float, hp: float) -> None:
    """Lower the anterior rims so that 1 - (Ha/Hp) / W at the keypoints equals ``reduction`` (bisection).

    ``W`` is the level's normal Ha/Hp (:mod:`spinevcf.normative`), as in :func:`spinevcf.grading.grade_column`.
    """
    normal = default_normative().wedge_ratio(vb.level)

    def apply(loss: float) -> float:
        vb.rim_sup = (0.5 * ha - loss * fsup, 0.5 * hp)
        vb.rim_inf = (0.5 * ha - loss * (1.0 - fsup), 0.5 * hp)
        h = _keypoint_heights(vb)
        return 1.0 - (h[0] / h[2]) / normal

    lo, hi = 0.0, 0.95 * ha
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if apply(mid) < reduction:
            lo = mid
        else:
            hi = mid
    apply(0.5 * (lo + hi))


#: Gap between the atlas anterior arch and the C2 body along the curve (mm).
DISC_GAP_C1C2: float = 3.0
#: Lumbosacral variants of :func:`sample_spine`.
LUMBOSACRAL: tuple[str, ...] = ("normal", "lumbarised_s1", "sacralised_l5")
#: Length and radius (mm, before the patient scale) of the broad transverse processes of a
#: sacralised L5.
BROAD_TP_LENGTH_MM: float = 34.0
BROAD_TP_RADIUS_MM: float = 7.0


def canal_half(level: str) -> tuple[float, float]:
    """(half-width, half-AP) of the spinal canal at a level."""
    if level.startswith("C"):
        return 12.0, 7.0
    if level.startswith("T"):
        return 8.5, 7.5
    if level.startswith("L"):
        return 11.0 + 0.4 * (int(level[1:]) - 1), 8.5
    return 12.0, 6.0


def _posterior_elements(
    rng: np.random.Generator,
    vb: Vertebra,
    cort: float,
    trab: float,
    scale: float,
    *,
    as_level: str | None = None,
    broad_tp: bool = False,
) -> list[Tube]:
    """Pedicles, laminae, spinous and transverse processes, articular processes (local geometry).

    Args:
        rng: random generator.
        vb: the vertebra.
        cort: cortical HU.
        trab: trabecular HU.
        scale: patient scale.
        as_level: shape the elements like this level (a lumbarised S1 is shaped as L5).
        broad_tp: broad transverse processes reaching down towards the sacral alae
            (sacralised L5).
    """
    lev = as_level or vb.level
    region = _region(lev)
    num = int(lev[1:])
    h = vb.rim_sup[1] + vb.rim_inf[1]
    cw, ca = canal_half(lev)
    vpb = vb.half_depth - vb.notch_mm
    pr = {"C": 3.0, "T": 3.8, "L": 5.0}[region] * scale
    ph = {"C": 3.5, "T": 6.0, "L": 7.0}[region] * scale
    wp = 0.15 * h
    core = trab + 60.0
    tubes: list[Tube] = []

    def tube(
        points_local: list[list[float]],
        ra: float | list[float],
        rb: float | list[float],
        normal_local: list[float] | None = None,
    ) -> None:
        pl = np.asarray(points_local, dtype=np.float64)
        nl = np.asarray(normal_local if normal_local is not None else [0.0, 0.0, 1.0])
        tubes.append(
            Tube(
                vb.to_global(pl),
                ra=np.asarray(ra, dtype=np.float64),
                rb=np.asarray(rb, dtype=np.float64),
                normals=np.tile(vb.rot @ nl, (len(pl), 1)),
                hu=core,
                label=LABEL_OTHER_BONE,
                cortex_mm=1.0,
                cortex_hu=cort * 0.9,
            )
        )

    x_ped = cw + pr * 0.8
    v_end = vpb + 1.3 * ca
    j_v = vpb + 2.0 * ca + 2.5
    for side in (-1.0, 1.0):
        # pedicle
        tube([[side * x_ped, vpb - 3.0, wp], [side * x_ped, v_end, wp]], ph, pr)
        # lamina to the midline
        tube(
            [[side * x_ped, v_end, wp - 0.05 * h], [side * 2.0, j_v, wp - 0.15 * h]],
            0.3 * h,
            2.5,
            [0.0, 0.0, 1.0],
        )
        # transverse process
        if region == "T":
            length = (26.0 - 1.0 * (num - 1)) * scale
            direction = np.array([side * 1.0, 0.55, 0.15])
        elif region == "L" and broad_tp:
            length = BROAD_TP_LENGTH_MM * scale
            direction = np.array([side * 1.0, 0.1, -0.35])
        elif region == "L":
            length = {1: 16.0, 2: 20.0, 3: 25.0, 4: 22.0, 5: 18.0}[num] * scale
            direction = np.array([side * 1.0, 0.05, 0.0])
        else:
            length = 9.0 * scale
            direction = np.array([side * 1.0, -0.2, 0.0])
        direction /= np.linalg.norm(direction)
        p0 = np.array([side * x_ped, v_end, wp])
        tip = p0 + length * direction
        tp_r = (BROAD_TP_RADIUS_MM if broad_tp else {"C": 3.0, "T": 4.5, "L": 4.0}[region]) * scale
        tube([p0.tolist(), tip.tolist()], tp_r * 1.1, tp_r * 0.8)
        # articular processes (up and down)
        tube(
            [[side * x_ped, v_end, wp], [side * x_ped, v_end + 2.0, wp + 0.55 * h]], 4.0 * scale, 4.0 * scale
        )
        tube(
            [
                [side * (x_ped - 2.0), v_end + 3.0, wp - 0.1 * h],
                [side * (x_ped - 2.0), v_end + 5.0, -0.6 * h],
            ],
            4.0 * scale,
            4.0 * scale,
        )
    # spinous process
    if region == "T":
        ang = np.radians({True: 60.0, False: 40.0}[4 <= num <= 10] + rng.normal(0, 5))
        length = 38.0 * scale
        rv, rl = 4.5, 3.5
    elif region == "L":
        ang = np.radians(8.0 + rng.normal(0, 4))
        length = 30.0 * scale
        rv, rl = 0.3 * h, 3.5
    else:
        ang = np.radians(20.0)
        length = (36.0 if num == 7 else 22.0) * scale
        rv, rl = 3.5, 3.0
    j = np.array([0.0, j_v, wp - 0.15 * h])
    tip = j + length * np.array([0.0, np.cos(ang), -np.sin(ang)])
    tube([j.tolist(), tip.tolist()], [rv, rv * 0.7], rl, [0.0, 0.0, 1.0])
    return tubes


def _atlas_and_sacrum(
    rng: np.random.Generator,
    vertebrae: list[Vertebra],
    at: Callable[[float], tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    s_sacral: float,
    cort: float,
    trab: float,
    scale: float,
) -> list[Tube]:
    """C1 ring with the dens, and the sacrum below the sacral body (arc length ``s_sacral``) with its alae (tubes)."""
    tubes: list[Tube] = []
    c2 = vertebrae[0]
    s1 = vertebrae[-1]
    at_fn = at
    p1, t1 = at_fn(0.0)  # C1 is the arc length origin
    rot1 = _rot_frame(-t1)
    theta = np.linspace(0, 2 * np.pi, 17)
    ring = np.stack(
        [22.0 * scale * np.sin(theta), 2.0 + 18.0 * scale * (1 - np.cos(theta)) - 6.0, np.zeros_like(theta)],
        axis=1,
    )
    tubes.append(
        Tube(
            ring @ rot1.T + p1,
            ra=4.5,
            rb=3.0,
            normals=np.tile(rot1[:, 2], (17, 1)),
            hu=trab + 60,
            label=LABEL_OTHER_BONE,
            cortex_mm=1.0,
            cortex_hu=cort,
        )
    )
    dens = c2.to_global([[0.0, -2.0, c2.rim_sup[1]], [0.0, -3.0, c2.rim_sup[1] + 14.0 * scale]])
    tubes.append(
        Tube(
            dens,
            ra=5.0,
            rb=5.0,
            normals=np.tile(c2.rot[:, 2], (2, 1)),
            hu=trab + 60,
            label=LABEL_OTHER_BONE,
            cortex_mm=1.0,
            cortex_hu=cort,
        )
    )
    # sacrum: S1 body drawn as a Vertebra; S2..S5 as a tapering tube along the curve
    ss = np.linspace(s_sacral + 14.0 * scale, s_sacral + 95.0 * scale, 8)
    pts = np.stack([at_fn(sv)[0] for sv in ss])
    normals = np.tile([1.0, 0.0, 0.0], (len(ss), 1))
    tubes.append(
        Tube(
            pts,
            ra=np.linspace(24.0, 8.0, 8) * scale,
            rb=np.linspace(16.0, 5.0, 8) * scale,
            normals=normals,
            hu=trab + 40,
            label=LABEL_OTHER_BONE,
            cortex_mm=1.2,
            cortex_hu=cort,
        )
    )
    for side in (-1.0, 1.0):
        ala = s1.to_global([[side * 20.0 * scale, 8.0, 0.0], [side * 50.0 * scale, 12.0, -10.0 * scale]])
        tubes.append(
            Tube(
                ala,
                ra=[16.0 * scale, 22.0 * scale],
                rb=[12.0 * scale, 14.0 * scale],
                normals=np.tile(s1.rot[:, 2], (2, 1)),
                hu=trab + 40,
                label=LABEL_OTHER_BONE,
                cortex_mm=1.2,
                cortex_hu=cort,
            )
        )
    return tubes
