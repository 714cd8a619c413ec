"""The analytic patient phantom: sampling and rendering on any grid.

Example:
    >>> import numpy as np
    >>> ph = sample_phantom(3)
    >>> c = ph.spine.by_level("L1").center
    >>> aff = np.diag([4.0, 4.0, 4.0, 1.0]); aff[:3, 3] = c - 4.0 * 20
    >>> ph.render(aff, (40, 40, 40)).dtype
    dtype('float32')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from spinevcf.schema import LEVELS
from spinevcf.synth import anatomy as A
from spinevcf.synth.body import Table, Torso, sample_body, sample_torso
from spinevcf.synth.config import SynthConfig
from spinevcf.synth.raster import Canvas, Tube
from spinevcf.synth.spine import Spine, Vertebra, canal_half, sample_spine

if TYPE_CHECKING:
    from spinevcf.synth.acquisition import Acquisition

__all__ = ["Phantom", "sample_phantom", "LABEL_NAMES", "GENERATOR_VERSION"]

log = logging.getLogger(__name__)

#: Version of the generator's anatomy and rendering (stored in truth.json ``extra``).
GENERATOR_VERSION: str = "1.4"

#: Names of the label values of :meth:`Phantom.render_labels`.
LABEL_NAMES: dict[int, str] = {
    0: "background",
    **{i + 1: lev for i, lev in enumerate(LEVELS)},
    25: "disc",
    26: "other_bone",
}

#: Slices rendered at once (bounds temporary memory).
_CHUNK_SLICES = 24


class _Drawable(Protocol):
    def draw(self, cv: Canvas) -> None: ...


@dataclass
class Phantom:
    """A synthetic patient in LPS millimetres.

    Attributes:
        seed: seed it was drawn from.
        spine: vertebrae, discs, curve.
        torso: per-z body outline.
        soft: soft-tissue structures in paint order.
        bones: ribs, sternum, scapulae, clavicles, pelvis.
        implants: pedicle screws and rods (metal), possibly empty.
        contrast: intravenous contrast.
        info: sampled patient-level parameters (for the truth file).
        family: anatomy family (:data:`spinevcf.synth.config.FAMILIES`).
        transitional: transitional anatomy of the held-out family (``rib_pairs``,
            ``lumbosacral``); empty for the default family.
    """

    seed: int
    spine: Spine
    torso: Torso
    soft: list[Any]
    bones: list[Any]
    implants: list[Tube] = field(default_factory=list)
    contrast: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    family: str = "default"
    transitional: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ rendering
    def _layers(self, labels: bool, table: Table | None) -> list[_Drawable]:
        sp = self.spine
        out: list[_Drawable] = []
        if not labels:
            if table is not None:
                out.append(table)
            out.extend(self.soft)
            out.append(sp.canal)
        out.extend(self.bones)
        out.extend(sp.extra_bones)
        out.extend(sp.discs)
        for vb in sp.vertebrae:
            out.extend(vb.elements)
        out.extend(_BodyLayer(vb) for vb in sp.vertebrae)
        if not labels:
            out.extend(self.implants)
        return out

    def _table(self, acquisition: Acquisition | None) -> Table:
        prone = acquisition is not None and acquisition.patient_position.endswith("P")
        t = self.torso
        pad = float(self.info.get("table_pad_mm", 20.0))
        body = (t.level > 8.0) & (t.level < 24.0)
        if prone:
            front = float(np.percentile((t.cy - t.ay)[body], 10))
            return Table(cx=float(np.mean(t.cx)), y_top=front - 2.0, direction=-1.0, pad_mm=pad)
        back = float(np.percentile(t.y_back[body], 90))
        return Table(cx=float(np.mean(t.cx)), y_top=back + 1.0, direction=1.0, pad_mm=pad)

    def _render(
        self, affine: npt.ArrayLike, shape: tuple[int, int, int], labels: bool, table: Table | None
    ) -> npt.NDArray[Any]:
        aff = np.asarray(affine, dtype=np.float64)
        if aff.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {aff.shape}")
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be three positive integers, got {shape}")
        out = np.zeros(shape, np.uint8) if labels else np.empty(shape, np.float32)
        layers = self._layers(labels, table)
        for c0 in range(0, shape[0], _CHUNK_SLICES):
            n = min(_CHUNK_SLICES, shape[0] - c0)
            sub = aff.copy()
            sub[:3, 3] = aff[:3, 3] + aff[:3, 0] * c0
            cv = Canvas(sub, (n, shape[1], shape[2]), labels=labels, fill=A.AIR_HU)
            for layer in layers:
                layer.draw(cv)
            out[c0 : c0 + n] = cv.data
        return out

    def render(
        self, affine: npt.ArrayLike, shape: tuple[int, int, int], *, acquisition: Acquisition | None = None
    ) -> npt.NDArray[np.float32]:
        """Noise-free HU image of the phantom on a grid.

        Args:
            affine: 4x4 index->LPS matrix (:class:`spinevcf.volume.Volume` convention).
            shape: grid shape.
            acquisition: decides the table side (prone: anterior); ``None``: supine table.
                Scanner effects (blur, noise, metal streaks) are added by
                :func:`spinevcf.synth.acquisition.simulate`, not here.

        Returns:
            float32 HU array of ``shape`` (air -1000 outside the body).
        """
        return self._render(affine, tuple(int(s) for s in shape), False, self._table(acquisition))  # type: ignore[arg-type]

    def render_labels(self, affine: npt.ArrayLike, shape: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
        """Label map on a grid: 0 background, 1..24 vertebral body of ``LEVELS[k-1]``, 25 disc, 26 other bone."""
        return self._render(affine, tuple(int(s) for s in shape), True, None)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ geometry helpers
    def body_extent(self, z0: float, z1: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """In-plane (x, y) bounding box of the body skin between heights ``z0 < z1``."""
        t = self.torso
        sel = (t.z >= z0) & (t.z <= z1)
        if not sel.any():
            sel = np.abs(t.z - 0.5 * (z0 + z1)) == np.abs(t.z - 0.5 * (z0 + z1)).min()
        lo = np.array([(t.cx - t.ax)[sel].min(), (t.cy - t.ay)[sel].min()])
        hi = np.array([(t.cx + t.ax)[sel].max(), t.y_back[sel].max()])
        return lo, hi

    def level_z(self, f: float) -> float:
        """Height (z, mm) of fractional level index ``f`` (0 = C1 centre, 23 = L5, 24 = S1)."""
        return self.torso.z_of_level(f)

    def metal_points(self) -> npt.NDArray[np.float64]:
        """(n, 3) points along the metal implants (for streak simulation)."""
        if not self.implants:
            return np.zeros((0, 3))
        return np.concatenate([t.points for t in self.implants])


@dataclass
class _BodyLayer:
    vb: Vertebra

    def draw(self, cv: Canvas) -> None:
        self.vb.draw_body(cv)


def _sample_implants(rng: np.random.Generator, spine: Spine) -> list[Tube]:
    """Pedicle screws at 2-4 consecutive levels (T10..L5) joined by two rods."""
    names = [vb.level for vb in spine.vertebrae if vb.level in LEVELS]
    n = int(rng.integers(2, 5))
    start = int(rng.integers(names.index("T10"), names.index("L5") - n + 2))
    levels = names[start : start + n]
    tubes: list[Tube] = []
    heads: dict[float, list[npt.NDArray[np.float64]]] = {-1.0: [], 1.0: []}
    for lev in levels:
        vb = spine.by_level(lev)
        assert vb is not None
        h = vb.rim_sup[1] + vb.rim_inf[1]
        cw, ca = canal_half(lev)
        vpb = vb.half_depth - vb.notch_mm
        for side in (-1.0, 1.0):
            entry = np.array([side * (cw + 6.0), vpb + 1.3 * ca + 6.0, 0.15 * h])
            tipp = np.array([side * 4.0, -0.55 * vb.half_depth, 0.1 * h])
            g = vb.to_global([entry, tipp])
            tubes.append(Tube(g, ra=3.2, rb=3.2, normals=[0.0, 0.0, 1.0], hu=A.METAL_HU))
            head = vb.to_global([entry + [side * 1.0, 6.0, 0.0]])[0]
            tubes.append(Tube(np.array([g[0], head]), ra=6.0, rb=6.0, normals=[0.0, 0.0, 1.0], hu=A.METAL_HU))
            heads[side].append(head + np.array([0.0, 2.0, 0.0]))
    for side in (-1.0, 1.0):
        pts = np.array(heads[side])
        ext = 8.0 * (pts[0] - pts[-1]) / max(np.linalg.norm(pts[0] - pts[-1]), 1e-6)
        pts = np.concatenate([[pts[0] + ext], pts, [pts[-1] - ext]])
        tubes.append(Tube(pts, ra=3.0, rb=3.0, normals=[0.0, 0.0, 1.0], hu=A.METAL_HU))
    return tubes


def sample_phantom(seed: int, config: SynthConfig | None = None) -> Phantom:
    """Draw a synthetic patient.

    The same ``seed`` and ``config`` always give the same phantom.

    Args:
        seed: non-negative integer.
        config: generator settings (defaults: :class:`SynthConfig`).

    Returns:
        The phantom (render it with :meth:`Phantom.render`).
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = config or SynthConfig()
    family = A.FAMILY_TABLES[cfg.family]
    transitional = _transitional(seed, family)
    rng = np.random.default_rng([int(seed), 0x5F1E])
    spine = sample_spine(
        rng,
        fracture_rate=cfg.fracture_rate,
        subthreshold_rate=cfg.subthreshold_rate,
        scoliosis_rate=cfg.scoliosis_rate,
        family=family,
        lumbosacral=str(transitional.get("lumbosacral", "normal")),
    )
    torso = sample_torso(rng, spine)
    contrast = bool(rng.random() < cfg.contrast_rate)
    soft, bones = sample_body(
        rng, spine, torso, contrast=contrast, family=family, rib_pairs=int(transitional.get("rib_pairs", 12))
    )
    implants = _sample_implants(rng, spine) if rng.random() < cfg.metal_rate else []
    info = {
        "bone_density": spine.bone,
        "contrast": contrast,
        "implants": bool(implants),
        "table_pad_mm": float(rng.uniform(3.0, 20.0)),
        "fractures_intended": {
            vb.level: {"deformity": vb.fracture, "reduction": round(vb.target_reduction, 4)}
            for vb in spine.vertebrae
            if vb.fracture != "none" and vb.level in LEVELS
        },
    }
    log.debug("phantom %d: %s", seed, info)
    return Phantom(seed, spine, torso, soft, bones, implants, contrast, info, cfg.family, transitional)


#: Seed-stream tag of the transitional-anatomy draws.
_TRANSITIONAL_STREAM = 0x7A05


def _transitional(seed: int, family: A.AnatomyFamily) -> dict[str, Any]:
    """Transitional anatomy of the patient of ``seed`` (empty for a family without any).

    Rib count (11 / 12 / 13 pairs) and lumbosacral junction (normal, lumbarised S1,
    sacralised L5) are drawn independently, from their own seed stream, at the family's rates.
    """
    rates = (family.p_11_ribs, family.p_13_ribs, family.p_lumbarised_s1, family.p_sacralised_l5)
    if not any(rates):
        return {}
    trng = np.random.default_rng([int(seed), _TRANSITIONAL_STREAM])
    u, v = trng.random(2)
    ribs = 11 if u < family.p_11_ribs else (13 if u < family.p_11_ribs + family.p_13_ribs else 12)
    if v < family.p_lumbarised_s1:
        ls = "lumbarised_s1"
    elif v < family.p_lumbarised_s1 + family.p_sacralised_l5:
        ls = "sacralised_l5"
    else:
        ls = "normal"
    return {"rib_pairs": ribs, "lumbosacral": ls}
