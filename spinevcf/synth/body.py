"""Torso, organs, ribs, sternum, pelvis and table of the synthetic patient.

Everything is placed relative to the spine (:mod:`spinevcf.synth.spine`): the torso
cross-section at height ``z`` is an ellipse (flattened at the back) whose size follows
:data:`~spinevcf.synth.anatomy.TORSO_BY_LEVEL` at the spinal level found at that ``z``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spinevcf.synth import anatomy as A
from spinevcf.synth.raster import F32, Canvas, Ellipsoid, Tube, rotation_from_axes
from spinevcf.synth.spine import LABEL_OTHER_BONE, Spine, canal_half

__all__ = ["Torso", "SlabEllipse", "MaskShape", "Table", "sample_body"]

#: Half-width (mm) of the mediastinum / paravertebral strip between the lungs at the spine.
MEDIASTINUM_HALF_MM: float = 18.0
#: Numbers of rib pairs :func:`sample_body` can draw (12 normal; 11 and 13 transitional).
RIB_PAIRS: tuple[int, ...] = (11, 12, 13)
#: Angle (rad along the torso ellipse) where the bone of a 13th (L1) rib ends: a short stub.
RIB13_END_BONE: float = 1.1
#: Shaft size of a 13th rib relative to the family's rib shaft.
RIB13_SCALE: float = 0.8

MaskFn = Callable[
    [npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]], npt.NDArray[np.bool_]
]


@dataclass
class Torso:
    """Per-z torso geometry (z ascending).

    Attributes:
        z: heights (mm).
        cx, cy, ax, ay: outer body ellipse centre and semi-axes.
        y_back: posterior skin (flat back) ``y``.
        fat: subcutaneous fat thickness.
        wall: muscle wall thickness.
        spine_x, spine_y: spinal curve at ``z``.
        level: fractional spinal level index at ``z``.
    """

    z: npt.NDArray[np.float64]
    cx: npt.NDArray[np.float64]
    cy: npt.NDArray[np.float64]
    ax: npt.NDArray[np.float64]
    ay: npt.NDArray[np.float64]
    y_back: npt.NDArray[np.float64]
    fat: npt.NDArray[np.float64]
    wall: npt.NDArray[np.float64]
    spine_x: npt.NDArray[np.float64]
    spine_y: npt.NDArray[np.float64]
    level: npt.NDArray[np.float64]

    def at(self, name: str, z: float) -> float:
        """Interpolate attribute ``name`` at height ``z``."""
        return float(np.interp(z, self.z, getattr(self, name)))

    def z_of_level(self, f: float) -> float:
        """Height of fractional level index ``f`` (levels decrease with z)."""
        return float(np.interp(f, self.level[::-1], self.z[::-1]))


@dataclass
class SlabEllipse:
    """A shape made of per-z ellipses in the axial plane.

    The voxel is inside when it lies in every ellipse of ``ellipses`` (each a tuple of
    per-z arrays ``(cx, cy, ax, ay)``), below ``y_max(z)`` when given, above ``y_min``
    when given, inside ``[z0, z1]`` and inside ``extra`` when given.
    """

    z: npt.NDArray[np.float64]
    ellipses: list[tuple[npt.NDArray[np.float64], ...]]
    hu: float | Callable[[], npt.NDArray[np.float32]]
    z0: float
    z1: float
    y_max: npt.NDArray[np.float64] | None = None
    y_min: npt.NDArray[np.float64] | None = None
    x_min: npt.NDArray[np.float64] | None = None
    x_max: npt.NDArray[np.float64] | None = None
    extra: MaskFn | None = None
    label: int | None = None

    def draw(self, cv: Canvas) -> None:
        """Paint onto ``cv``."""
        sel = (self.z >= self.z0 - 5) & (self.z <= self.z1 + 5)
        if not sel.any():
            return
        cx, cy, ax, ay = self.ellipses[0]
        lo = [float((cx - ax)[sel].min()), float((cy - ay)[sel].min()), self.z0]
        hi = [float((cx + ax)[sel].max()), float((cy + ay)[sel].max()), self.z1]
        sl = cv.box(lo, hi)
        if sl is None:
            return
        x, y, z = cv.coords(sl)

        def zi(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
            return np.interp(z.ravel(), self.z, p).astype(F32).reshape(z.shape)

        mask = (z >= F32(self.z0)) & (z <= F32(self.z1))
        for cx, cy, ax, ay in self.ellipses:
            mask = mask & ((((x - zi(cx)) / zi(ax)) ** 2 + ((y - zi(cy)) / zi(ay)) ** 2) <= 1.0)
        if self.y_max is not None:
            mask &= y <= zi(self.y_max)
        if self.y_min is not None:
            mask &= y >= zi(self.y_min)
        if self.x_min is not None:
            mask &= x >= zi(self.x_min)
        if self.x_max is not None:
            mask &= x <= zi(self.x_max)
        if self.extra is not None:
            mask &= self.extra(x, y, z)
        cv.paint(sl, mask, self.hu, self.label)


@dataclass
class MaskShape:
    """A shape given by a bounding box and a vectorised mask function of (x, y, z)."""

    lo: npt.NDArray[np.float64]
    hi: npt.NDArray[np.float64]
    mask: MaskFn
    hu: float
    label: int | None = None

    def draw(self, cv: Canvas) -> None:
        """Paint onto ``cv``."""
        sl = cv.box(self.lo, self.hi)
        if sl is None:
            return
        cv.paint(sl, self.mask(*cv.coords(sl)), self.hu, self.label)


@dataclass
class Table:
    """The scanner table: a curved carbon shell with a foam core and a mattress, along z.

    Attributes:
        cx: lateral centre.
        y_top: ``y`` of the table surface touching the patient (mattress top).
        direction: +1 for a table posterior to the patient (supine), -1 anterior (prone).
        half_width: half width (mm).
        radius: curvature radius (mm).
        pad_mm: mattress thickness.
        shell_hu: HU of the carbon shells.
    """

    cx: float
    y_top: float
    direction: float = 1.0
    half_width: float = 235.0
    radius: float = 700.0
    pad_mm: float = 20.0
    shell_hu: float = 250.0

    def draw(self, cv: Canvas) -> None:
        """Paint onto ``cv`` (HU only)."""
        if cv.labels:
            return
        d = self.direction
        y0, y1 = self.y_top, self.y_top + d * (self.pad_mm + 60.0)
        zs = cv.affine[2, :3] @ (np.array(cv.shape) - 1) + cv.affine[2, 3], cv.affine[2, 3]
        sl = cv.box(
            [self.cx - self.half_width - 10, min(y0, y1) - 40, min(zs) - 10],
            [self.cx + self.half_width + 10, max(y0, y1) + 40, max(zs) + 10],
        )
        if sl is None:
            return
        x, y, _ = cv.coords(sl)
        dx = x - F32(self.cx)
        # depth below the curved surface (positive into the table)
        sag = dx * dx / F32(2 * self.radius)
        depth = (y - F32(self.y_top)) * F32(d) + sag
        inside = np.abs(dx) <= F32(self.half_width)
        pad = inside & (depth >= 0) & (depth < F32(self.pad_mm))
        cv.paint(sl, pad, -800.0, None)
        t0 = F32(self.pad_mm)
        shell1 = inside & (depth >= t0) & (depth < t0 + 2.5)
        foam = inside & (depth >= t0 + 2.5) & (depth < t0 + 40.0)
        shell2 = inside & (depth >= t0 + 40.0) & (depth < t0 + 43.0)
        cv.paint(sl, shell1 | shell2, self.shell_hu, None)
        cv.paint(sl, foam, -920.0, None)


def _interp_torso(f: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    tab = np.array(A.TORSO_BY_LEVEL)
    return tuple(np.interp(f, tab[:, 0], tab[:, k]) for k in (1, 2, 3))


def sample_torso(rng: np.random.Generator, spine: Spine) -> Torso:
    """Per-z torso profile around ``spine`` with a random habitus."""
    pts = spine.curve_pts
    ztop = spine.point_at(spine.level_s[0])[0, 2] + 80.0
    zbot = spine.point_at(spine.level_s[-1])[0, 2] - 160.0
    z = np.arange(zbot, ztop, 3.0)
    order = np.argsort(pts[:, 2])
    sx = np.interp(z, pts[order, 2], pts[order, 0])
    sy = np.interp(z, pts[order, 2], pts[order, 1])
    f = spine.level_index_at_z(z)
    hw, hd, back = _interp_torso(f)
    wf, df = rng.normal(1.0, 0.07), rng.normal(1.0, 0.08)
    fat0 = rng.uniform(4.0, 35.0)
    abd = np.clip((f - 17.0) / 3.0, 0, 1) * np.clip((27.0 - f) / 2.0, 0, 1)
    neck = np.clip((6.0 - f) / 1.5, 0, 1)
    fat = fat0 * (1 - 0.7 * neck) * (1 + 0.3 * abd)
    ay_extra = abd * fat0 * rng.uniform(0.5, 1.5)
    ax = hw * wf + fat
    ay = hd * df + fat + 0.5 * ay_extra
    y_back = sy + back + 0.7 * fat
    # Lying supine, the back's soft tissue settles onto the table: bring the skin near the
    # most posterior points of the trunk (lordotic gaps keep a few centimetres).
    trunk = (f > 8.0) & (f < 24.0)
    y_ref = float(np.percentile(y_back[trunk], 90)) if trunk.any() else float(y_back.max())
    sag = 0.9 * np.clip(y_ref - y_back - 4.0, 0.0, None) * np.clip(f - 5.5, 0.0, 1.0)
    y_back = y_back + sag
    ay = ay + 0.5 * sag
    cy = y_back - 0.92 * ay
    xm = float(np.mean(sx))
    cx = xm + 0.3 * (sx - xm)
    wall = rng.uniform(8.0, 14.0) * np.ones_like(z)
    return Torso(z, cx, cy, ax, ay, y_back, fat, wall, sx, sy, f)


def _rib_path(
    torso: Torso,
    spine: Spine,
    level: str,
    side: float,
    rng: np.random.Generator,
    *,
    num: int | None = None,
    ribs: A.RibGeometry = A.DEFAULT_FAMILY.ribs,
    end_bone_12: float | None = None,
) -> tuple[npt.NDArray[np.float64], float, float]:
    """Rib centre line (LPS points), index where the bone ends (rest: cartilage), drop.

    Args:
        torso: the torso.
        spine: the spine.
        level: the rib-bearing vertebra (T1..T12, or L1 for a 13th rib).
        side: -1 right, +1 left.
        rng: random generator.
        num: rib number (1..13); ``None``: the thoracic level's number.
        ribs: the family's rib geometry.
        end_bone_12: where the 12th rib's bone ends (rad); ``None``: the family's default.
    """
    vb = spine.by_level(level)
    assert vb is not None  # thoracic levels always exist
    num = int(level[1:]) if num is None else num
    h = vb.rim_sup[1] + vb.rim_inf[1]
    cw, ca = canal_half(level)
    vpb = vb.half_depth - vb.notch_mm
    lat, fwd, up = ribs.head_offset
    head = vb.to_global([[side * (vb.half_width + lat), vpb - fwd * vb.half_depth, up * h]])[0]
    dy = ribs.direction_y
    tp_dir = np.array([side, dy, 0.15]) / np.linalg.norm([1.0, dy, 0.15])
    tp_len = 26.0 - 1.0 * (num - 1)
    tip = vb.to_global(
        [np.array([side * (cw + 3.0), vpb + 1.3 * ca, 0.15 * h]) + tp_len * tp_dir * 0.9 + [0, 4.0, 0]]
    )[0]
    z0 = tip[2]
    cx = torso.at("cx", z0)
    inset = torso.at("fat", z0) + 0.6 * torso.at("wall", z0)
    aa = torso.at("ax", z0) - inset
    y_front = torso.at("cy", z0) - torso.at("ay", z0) + inset
    y_rear = tip[1] + 6.0
    bb, cy = 0.5 * (y_rear - y_front), 0.5 * (y_rear + y_front)
    th0 = float(np.arcsin(np.clip(side * (tip[0] - cx) / aa, 0.0, 0.95)))
    end_bone = {
        1: 2.45,
        2: 2.55,
        3: 2.6,
        4: 2.6,
        5: 2.6,
        6: 2.55,
        7: 2.5,
        8: 2.3,
        9: 2.15,
        10: 2.0,
        11: 1.75,
        12: 1.35 if end_bone_12 is None else end_bone_12,
        13: RIB13_END_BONE,
    }[num]
    end_cart = {
        1: 2.95,
        2: 2.92,
        3: 2.9,
        4: 2.88,
        5: 2.85,
        6: 2.8,
        7: 2.75,
        8: 2.55,
        9: 2.4,
        10: 2.25,
        11: 1.8,
        12: 1.4 if end_bone_12 is None else end_bone_12 + 0.05,
        13: RIB13_END_BONE + 0.05,
    }[num]
    drop = {1: 22.0, 2: 35.0, 11: 35.0, 12: 25.0, 13: 20.0}.get(num, rng.uniform(50.0, 75.0))
    th = np.linspace(th0 + 0.2, end_cart, 16)
    frac = (th - th[0]) / (end_cart - th[0])
    rr = 1.0 + 0.05 * np.sin(np.pi * frac)
    ring = np.stack(
        [cx + side * aa * rr * np.sin(th), cy + bb * rr * np.cos(th), z0 + 4.0 - drop * frac**1.2], axis=1
    )
    path = np.concatenate([[head, tip], ring])
    n_bone = 2 + int(np.searchsorted(th, end_bone))
    return path, n_bone, drop


def sample_body(
    rng: np.random.Generator,
    spine: Spine,
    torso: Torso,
    *,
    contrast: bool,
    family: A.AnatomyFamily = A.DEFAULT_FAMILY,
    rib_pairs: int = 12,
) -> tuple[list[object], list[object]]:
    """Soft-tissue structures and non-spinal bones (each a drawable), in paint order.

    Args:
        rng: random generator.
        spine: the spine.
        torso: the torso.
        contrast: intravenous contrast.
        family: anatomy tables (rib geometry).
        rib_pairs: 12; 11 (no rib on T12) or 13 (a rib on L1).
    """
    if rib_pairs not in RIB_PAIRS:
        raise ValueError(f"rib_pairs must be one of {RIB_PAIRS}, got {rib_pairs}")
    z, f = torso.z, torso.level
    soft: list[object] = []
    bones: list[object] = []
    fat_hu = rng.uniform(*A.FAT_HU)
    muscle_hu = rng.uniform(*A.MUSCLE_HU)
    blood = rng.uniform(*(A.CONTRAST_BLOOD_HU if contrast else A.BLOOD_HU))
    lung_hu = rng.uniform(*A.LUNG_HU)
    cort = float(np.mean([vb.cortical_hu for vb in spine.vertebrae]))
    trab = float(np.mean([vb.trabecular_hu for vb in spine.vertebrae]))
    ztop, zbot = float(z[-1]), float(z[0])
    zl = torso.z_of_level

    outer = (torso.cx, torso.cy, torso.ax, torso.ay)
    soft.append(SlabEllipse(z, [outer], fat_hu, zbot, ztop, y_max=torso.y_back))
    mus = (torso.cx, torso.cy, torso.ax - torso.fat, torso.ay - torso.fat)
    soft.append(SlabEllipse(z, [mus], muscle_hu, zbot, ztop, y_max=torso.y_back - 0.7 * torso.fat))
    # body cavity (thorax + abdomen): from the lung apices to the pelvic floor
    inset = torso.fat + torso.wall
    cav = (torso.cx, torso.cy, torso.ax - inset, torso.ay - inset)
    cav_back = torso.spine_y + 45.0

    def curved_back(offset: float) -> MaskFn:
        """Posterior boundary of the thoracic cavity: a parabola through the rib angles."""

        def fn(
            x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], zz: npt.NDArray[np.float32]
        ) -> npt.NDArray[np.bool_]:
            sx = np.interp(zz.ravel(), z, torso.spine_x).astype(F32).reshape(zz.shape)
            sy = np.interp(zz.ravel(), z, torso.spine_y).astype(F32).reshape(zz.shape)
            return y <= sy + F32(offset) - F32(0.0013) * (x - sx) ** 2

        return fn

    z_cav_top = zl(6.3)
    visceral = rng.uniform(-100.0, -40.0)
    soft.append(
        SlabEllipse(z, [cav], visceral, zbot + 40.0, z_cav_top, y_max=cav_back, extra=curved_back(40.0))
    )
    # muscle around the spine (crura, longus colli, intercostal insertions) and erector spinae
    col = (torso.spine_x, torso.spine_y + 8.0, 34.0 + 0 * z, 30.0 + 0 * z)
    soft.append(SlabEllipse(z, [col], muscle_hu, zbot, ztop))
    for side in (-1.0, 1.0):
        es = (torso.spine_x + side * 32.0, torso.spine_y + 52.0, 30.0 + 0 * z, 32.0 + 0 * z)
        soft.append(
            SlabEllipse(z, [es, mus], muscle_hu + 4.0, zbot, ztop, y_max=torso.y_back - 0.7 * torso.fat)
        )
    # intermuscular fat strands in the back muscles (more with age / fatty infiltration)
    fz = np.linspace(zl(5.0), zl(24.0), 12)
    fx, fy = np.interp(fz, z, torso.spine_x), np.interp(fz, z, torso.spine_y)
    for _ in range(int(rng.integers(4, 16))):
        side = float(rng.choice([-1.0, 1.0]))
        off = np.array([side * rng.uniform(12.0, 55.0), rng.uniform(25.0, 75.0)])
        wob = rng.normal(0.0, 3.0, (len(fz), 2))
        pts = np.stack([fx + off[0] + wob[:, 0], fy + off[1] + wob[:, 1], fz], axis=1)
        r = rng.uniform(1.0, 3.5)
        soft.append(Tube(pts, ra=r, rb=r * rng.uniform(1.0, 3.0), normals=[1.0, 0.0, 0.0], hu=fat_hu))
    # psoas and quadratus lumborum
    lum = np.clip((f - 17.5) / 2.5, 0, 1) * np.clip((26.0 - f) / 1.5, 0, 1)
    ps_r = 4.0 + lum * np.clip((f - 18.0) / 5.0, 0, 1) * 20.0
    for side in (-1.0, 1.0):
        psoas = (
            torso.spine_x + side * (18.0 + 0.9 * ps_r + 6.0),
            torso.spine_y - 4.0,
            ps_r + 1e-3,
            ps_r * 1.1 + 1e-3,
        )
        soft.append(SlabEllipse(z, [psoas], muscle_hu + 3.0, zl(18.0), zl(25.5)))
        ql = (torso.spine_x + side * (45.0 + ps_r), torso.spine_y + 25.0, 14.0 + 0 * z, 12.0 + 0 * z)
        soft.append(SlabEllipse(z, [ql], muscle_hu, zl(19.0), zl(23.5)))

    # diaphragm domes
    z_dome = {-1.0: zl(16.2 + rng.normal(0, 0.6)), 1.0: zl(16.8 + rng.normal(0, 0.6))}
    acx, acy = torso.at("cx", z_dome[-1.0]), torso.at("cy", z_dome[-1.0])
    aax, aay = torso.at("ax", z_dome[-1.0]) - torso.at("fat", z_dome[-1.0]), torso.at("ay", z_dome[-1.0])

    def diaphragm(
        side: float,
    ) -> Callable[[npt.NDArray[np.float32], npt.NDArray[np.float32]], npt.NDArray[np.float32]]:
        xd = acx + side * 0.45 * aax
        yd = acy

        def zfun(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            r2 = ((x - F32(xd)) / F32(0.6 * aax)) ** 2 + ((y - F32(yd)) / F32(0.8 * aay)) ** 2
            return F32(z_dome[side]) - F32(55.0) * r2 - F32(30.0) * (y - F32(yd)) / F32(aay)

        return zfun

    dia = {s: diaphragm(s) for s in (-1.0, 1.0)}

    # lungs
    z_apex = zl(6.2 + rng.normal(0, 0.3))
    taper = np.sqrt(np.clip((z_apex - z) / 45.0, 0.05, 1.0))
    for side in (-1.0, 1.0):
        acav = torso.ax - inset
        lung = (
            torso.cx + side * 0.52 * acav,
            torso.cy + 0.1 * (torso.ay - inset),
            0.47 * acav * taper,
            0.92 * (torso.ay - inset) * taper,
        )
        zf = dia[side]

        back_fn = curved_back(36.0)

        def below(
            x: npt.NDArray[np.float32],
            y: npt.NDArray[np.float32],
            zz: npt.NDArray[np.float32],
            zf: Callable = zf,  # type: ignore[type-arg]
            bf: MaskFn = back_fn,
        ) -> npt.NDArray[np.bool_]:
            # mediastinum: half-width 18 mm beside the spine, widening anteriorly
            sx = np.interp(zz.ravel(), z, torso.spine_x).astype(F32).reshape(zz.shape)
            sy = np.interp(zz.ravel(), z, torso.spine_y).astype(F32).reshape(zz.shape)
            half = F32(MEDIASTINUM_HALF_MM) + F32(0.25) * np.clip(sy - F32(15.0) - y, 0.0, None)
            return (zz > zf(x, y)) & bf(x, y, zz) & (np.abs(x - sx) > half)

        soft.append(
            SlabEllipse(z, [lung, cav], lung_hu, zl(18.5), z_apex, y_max=torso.spine_y + 30.0, extra=below)
        )
    # trachea and main bronchi
    carina = zl(10.5 + rng.normal(0, 0.4))
    ant = lambda zz: np.array([torso.at("spine_x", zz), torso.at("spine_y", zz) - 42.0, zz])  # noqa: E731
    tr_pts = np.array([ant(zl(3.0)), ant(zl(6.0)), ant(0.5 * (zl(6.0) + carina)), ant(carina)])
    soft.append(Tube(tr_pts, ra=10.5, rb=10.5, normals=[0, 0, 1.0], hu=muscle_hu - 10))
    soft.append(Tube(tr_pts, ra=8.5, rb=8.0, normals=[0, 0, 1.0], hu=-990.0))
    oes = tr_pts + np.array([0.0, 17.0, 0.0])
    oes = np.concatenate([oes, [ant(zl(16.5)) + [12.0, 18.0, 0.0]]])
    soft.append(Tube(oes, ra=7.0, rb=6.0, normals=[0, 0, 1.0], hu=muscle_hu - 5))
    hila = {}
    for side in (-1.0, 1.0):
        hil = ant(carina - 15.0) + np.array([side * 45.0, 10.0, 0.0])
        hila[side] = hil
        br = np.array([ant(carina), ant(carina) + np.array([side * 22.0, 4.0, -12.0]), hil])
        soft.append(Tube(br, ra=[8.0, 6.5, 5.0], rb=[8.0, 6.5, 5.0], normals=[0, 0, 1.0], hu=muscle_hu - 10))
        soft.append(Tube(br, ra=[6.5, 5.0, 3.5], rb=[6.5, 5.0, 3.5], normals=[0, 0, 1.0], hu=-990.0))
    # pulmonary vessels radiating from the hila
    for side in (-1.0, 1.0):
        for _ in range(14):
            d = rng.normal(size=3) * np.array([0.6, 1.0, 1.2])
            d[0] = side * abs(d[0]) + side * 0.4
            d /= np.linalg.norm(d)
            length = rng.uniform(50.0, 110.0)
            bend = rng.normal(size=3) * 12.0
            p0 = hila[side]
            pts = np.array([p0, p0 + 0.5 * length * d + bend, p0 + length * d + 2 * bend])
            soft.append(
                Tube(
                    pts,
                    ra=[5.0, 3.0, 1.2],
                    rb=[5.0, 3.0, 1.2],
                    normals=[0, 0, 1.0],
                    hu=blood if contrast else 40.0,
                )
            )
    # heart (myocardium shell, blood pool) and great vessels
    zh = z_dome[1.0] + rng.uniform(30.0, 50.0)
    hc = np.array(
        [torso.at("cx", zh) + rng.uniform(15.0, 35.0), torso.at("cy", zh) - 0.25 * torso.at("ay", zh), zh]
    )
    hrot = rotation_from_axes([0.5, -0.5, -0.7], [0.0, 1.0, 0.0])
    hsize = rng.uniform(0.9, 1.15)
    soft.append(
        Ellipsoid(hc, np.array([50.0, 45.0, 62.0]) * hsize, hrot, hu=blood, shell_mm=9.0, shell_hu=45.0)
    )
    soft.append(
        Ellipsoid(hc + [0, -15.0, 0], np.array([62.0, 58.0, 70.0]) * hsize, hrot, hu=-90.0, shell_mm=0)
    )  # pericardial fat
    soft.append(
        Ellipsoid(hc, np.array([50.0, 45.0, 62.0]) * hsize, hrot, hu=blood, shell_mm=9.0, shell_hu=45.0)
    )
    ao_r = rng.uniform(0.9, 1.2)
    desc = []
    for lev in ("T5", "T6", "T8", "T10", "T12", "L1", "L2", "L3", "L4"):
        vb = spine.by_level(lev)
        assert vb is not None
        desc.append(vb.to_global([[vb.half_width * 0.35 + 6.0, -vb.half_depth - 12.0 * ao_r + 2.0, 0.0]])[0])
    arch_top = zl(8.8)
    asc = [hc + np.array([-12.0, 5.0, 35.0]), np.array([hc[0] - 18.0, hc[1] + 10.0, arch_top - 20.0])]
    arch = [np.array([torso.at("spine_x", arch_top) - 5.0, torso.at("spine_y", arch_top) - 55.0, arch_top]),
            np.array([torso.at("spine_x", arch_top) + 15.0, torso.at("spine_y", arch_top) - 30.0, arch_top - 8.0])]  # fmt: skip
    ao_pts = np.array(asc + arch + desc)
    ao_rad = np.array([14.0, 13.0, 12.0, 11.5] + [11.0] * 4 + [9.5] * 5)[: len(ao_pts)] * ao_r
    soft.append(Tube(ao_pts, ra=ao_rad, rb=ao_rad, normals=[0, 0, 1.0], hu=blood))
    bif = desc[-1]
    for side in (-1.0, 1.0):
        il = np.array([bif, bif + [side * 25.0, -5.0, -40.0], bif + [side * 50.0, 5.0, -90.0]])
        soft.append(Tube(il, ra=7.0 * ao_r, rb=7.0 * ao_r, normals=[0, 0, 1.0], hu=blood))
    # venae cavae
    ivc = []
    for lev in ("T10", "T12", "L1", "L2", "L3", "L4"):
        vb = spine.by_level(lev)
        assert vb is not None
        ivc.append(vb.to_global([[-vb.half_width - 8.0, -vb.half_depth - 12.0, 0.0]])[0])
    ivc.append(hc + [-35.0, 10.0, -20.0])
    ivc_a = np.array(ivc[::-1])
    soft.append(Tube(ivc_a, ra=11.0, rb=9.0, normals=[0, 0, 1.0], hu=blood * 0.7 if contrast else blood))
    svc = np.array([ant(zl(6.5)) + [-25.0, -10.0, 0.0], hc + [-30.0, -10.0, 40.0]])
    soft.append(Tube(svc, ra=9.0, rb=9.0, normals=[0, 0, 1.0], hu=blood))
    # liver, spleen, stomach (below the domes)
    zr = z_dome[-1.0]
    liver_hu = rng.uniform(*A.LIVER_HU) + (45.0 if contrast else 0.0)
    lc = np.array(
        [
            torso.at("cx", zr) - 0.38 * torso.at("ax", zr),
            torso.at("cy", zr) + 0.05 * torso.at("ay", zr),
            zr - 55.0,
        ]
    )
    lr = np.array(
        [
            0.55 * (torso.at("ax", zr) - torso.at("fat", zr)),
            0.8 * (torso.at("ay", zr) - torso.at("fat", zr)),
            95.0,
        ]
    ) * rng.uniform(0.9, 1.1, 3)

    def liver_mask(
        x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], zz: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.bool_]:
        q = (
            ((x - F32(lc[0])) / F32(lr[0])) ** 2
            + ((y - F32(lc[1])) / F32(lr[1])) ** 2
            + ((zz - F32(lc[2])) / F32(lr[2])) ** 2
        )
        return (q <= 1.0) & (zz < dia[-1.0](x, y) - F32(2.0)) & (y < F32(torso.at("spine_y", zr) + 15.0))

    soft.append(MaskShape(lc - lr, lc + lr, liver_mask, liver_hu))
    zs = z_dome[1.0] - 45.0
    spc = np.array(
        [torso.at("cx", zs) + 0.55 * (torso.at("ax", zs) - inset[0]), torso.at("spine_y", zs) - 10.0, zs]
    )
    soft.append(
        Ellipsoid(
            spc,
            np.array([30.0, 45.0, 50.0]) * rng.uniform(0.8, 1.2),
            rotation_from_axes([0, 0, 1.0], [0.4, 1.0, 0]),
            hu=liver_hu - 5,
        )
    )
    stc = np.array(
        [
            torso.at("cx", zs) + 0.3 * torso.at("ax", zs),
            torso.at("cy", zs) - 0.35 * torso.at("ay", zs),
            zs - 10.0,
        ]
    )
    soft.append(Ellipsoid(stc, np.array([45.0, 35.0, 50.0]), np.eye(3), hu=25.0, shell_mm=4.0, shell_hu=45.0))
    soft.append(Ellipsoid(stc + [0, -22.0, 0], np.array([35.0, 14.0, 40.0]), np.eye(3), hu=-990.0))
    # kidneys
    for side in (-1.0, 1.0):
        zk = zl(20.0 + (-0.5 if side > 0 else 0.0) + rng.normal(0, 0.3))
        kc = np.array([torso.at("spine_x", zk) + side * 62.0, torso.at("spine_y", zk) + 8.0, zk])
        krot = rotation_from_axes([side * -0.25, -0.15, 1.0], [0.0, 1.0, 0.0])
        soft.append(
            Ellipsoid(
                kc,
                np.array([27.0, 22.0, 55.0]),
                krot,
                hu=150.0 if contrast else 32.0,
                shell_mm=6.0,
                shell_hu=(190.0 if contrast else 32.0),
            )
        )
        soft.append(Ellipsoid(kc + [-side * 12.0, -4.0, 0], np.array([9.0, 8.0, 28.0]), krot, hu=-60.0))
    # bowel loops with gas
    zb_top, zb_bot = zl(19.5), zl(26.0)
    for _ in range(int(rng.integers(20, 36))):
        zz = rng.uniform(zb_bot, zb_top)
        ang = rng.uniform(0, 2 * np.pi)
        rad = np.sqrt(rng.uniform(0, 1)) * 0.8
        a_c, b_c = (
            torso.at("ax", zz) - torso.at("fat", zz) - 20.0,
            torso.at("ay", zz) - torso.at("fat", zz) - 20.0,
        )
        c = np.array(
            [
                torso.at("cx", zz) + rad * a_c * np.sin(ang),
                torso.at("cy", zz) - abs(rad * b_c * np.cos(ang)) * 0.9,
                zz,
            ]
        )
        if abs(c[0] - torso.at("spine_x", zz)) < 45.0 and c[1] > torso.at("spine_y", zz) - 40.0:
            continue
        r = rng.uniform(10.0, 28.0, 3)
        kind = rng.random()
        hu = rng.uniform(15.0, 45.0) if kind < 0.5 else (-990.0 if kind < 0.78 else rng.uniform(0.0, 20.0))
        rot = rotation_from_axes(rng.normal(size=3) + [0.0, 0.0, 0.5], [0.0, 1.0, 0.0])
        soft.append(Ellipsoid(c, r, rot, hu=hu, shell_mm=3.0 if hu < -500 else 0.0, shell_hu=35.0))

    # ---- bones outside the spine ----------------------------------------------------------
    ribs = family.ribs
    default_ribs = ribs == A.DEFAULT_FAMILY.ribs
    # the held-out family draws how far the 12th rib reaches (the default draws nothing)
    end12 = None if default_ribs else float(rng.uniform(*ribs.end_bone_12))
    for num in range(1, rib_pairs + 1):
        level = f"T{num}" if num <= 12 else "L1"
        for side in (-1.0, 1.0):
            path, n_bone, _ = _rib_path(torso, spine, level, side, rng, num=num, ribs=ribs, end_bone_12=end12)
            if num == 1:
                ra, rb = 3.5, 6.0
            else:
                ra, rb = ribs.half_axes
                if num == 13:
                    ra, rb = ra * RIB13_SCALE, rb * RIB13_SCALE
            nb = max(n_bone, 3)
            normals = np.tile([0.0, 0.0, 1.0], (nb, 1))
            ra_v: float | npt.NDArray[np.float64] = ra
            rb_v: float | npt.NDArray[np.float64] = rb
            if ribs.head_scale != 1.0:  # a bulbous rib head, tapering to the shaft at the tubercle
                taper = np.ones(nb)
                taper[0] = ribs.head_scale
                ra_v, rb_v = ra * taper, rb * taper
            bones.append(
                Tube(
                    path[:nb],
                    ra=ra_v,
                    rb=rb_v,
                    normals=normals,
                    hu=trab + 40.0,
                    label=LABEL_OTHER_BONE,
                    cortex_mm=1.2,
                    cortex_hu=cort * 0.9,
                )
            )
            if nb < len(path):
                cart = path[nb - 1 :]
                bones.append(
                    Tube(
                        cart,
                        ra=ra * 0.9,
                        rb=rb * 1.1,
                        normals=np.tile([0.0, 0.0, 1.0], (len(cart), 1)),
                        hu=rng.uniform(90.0, 200.0),
                    )
                )
    # sternum
    zm, zx = zl(7.8), zl(15.5)
    st = []
    for zz in np.linspace(zm, zx, 6):
        st.append(
            [torso.at("cx", zz), torso.at("cy", zz) - torso.at("ay", zz) + torso.at("fat", zz) + 10.0, zz]
        )
    st_a = np.array(st)
    bones.append(
        Tube(
            st_a,
            ra=np.linspace(22.0, 10.0, 6),
            rb=6.0,
            normals=np.tile([1.0, 0.0, 0.0], (6, 1)),
            hu=trab + 30.0,
            label=LABEL_OTHER_BONE,
            cortex_mm=1.2,
            cortex_hu=cort * 0.8,
        )
    )
    # scapulae and clavicles
    for side in (-1.0, 1.0):
        sc = []
        for fl in (8.0, 10.0, 12.0, 13.5):
            zz = zl(fl)
            sc.append(
                [
                    torso.at("cx", zz) + side * 0.5 * torso.at("ax", zz),
                    torso.at("y_back", zz) - torso.at("fat", zz) - 22.0,
                    zz,
                ]
            )
        sc_a = np.array(sc)
        bones.append(
            Tube(
                sc_a,
                ra=[30.0, 38.0, 25.0, 8.0],
                rb=3.0,
                normals=np.tile([side * 0.9, -0.45, 0.0], (4, 1)),
                hu=trab + 60.0,
                label=LABEL_OTHER_BONE,
                cortex_mm=1.0,
                cortex_hu=cort * 0.9,
            )
        )
        zc = zl(6.8)
        cl = np.array([st_a[0] + [side * 18.0, 0.0, 8.0], [torso.at("cx", zc) + side * 0.45 * torso.at("ax", zc), torso.at("cy", zc) - 0.6 * torso.at("ay", zc), zc + 12.0],
                       [torso.at("cx", zc) + side * 0.8 * torso.at("ax", zc), torso.at("cy", zc) - 0.1 * torso.at("ay", zc), zc + 15.0]])  # fmt: skip
        bones.append(
            Tube(
                cl,
                ra=6.0,
                rb=5.0,
                normals=np.tile([0, 0, 1.0], (3, 1)),
                hu=trab + 60.0,
                label=LABEL_OTHER_BONE,
                cortex_mm=1.5,
                cortex_hu=cort,
            )
        )
    # iliac wings: curved plates from the sacroiliac joints to the anterior superior iliac spines
    s1 = spine.vertebrae[-1]
    for side in (-1.0, 1.0):
        si = s1.to_global([[side * 55.0, 18.0, -5.0]])[0]
        zc = si[2] + 15.0
        ax_b, ay_b = torso.at("ax", zc) - torso.at("fat", zc) - 20.0, torso.at("ay", zc)
        crest = [si + [0, 0, 10.0]]
        for th in np.linspace(0.45, 1.75, 6):
            crest.append(
                np.array(
                    [
                        si[0] + side * ax_b * 0.75 * np.sin(th) * 0.9,
                        si[1] - ay_b * 0.9 * (1 - np.cos(th)) * 0.55 - 5.0,
                        zc + 25.0 * np.sin(th),
                    ]
                )
            )
        crest_a = np.array(crest)
        half_h = np.array([30.0, 38.0, 45.0, 45.0, 38.0, 30.0, 18.0])
        normals = np.tile([0.0, 0.0, 1.0], (len(crest_a), 1))
        bones.append(
            Tube(
                crest_a - [0, 0, 1.0] * half_h[:, None] * 0.8,
                ra=half_h,
                rb=4.5,
                normals=normals,
                hu=trab + 60.0,
                label=LABEL_OTHER_BONE,
                cortex_mm=1.5,
                cortex_hu=cort,
            )
        )
    return soft, bones
