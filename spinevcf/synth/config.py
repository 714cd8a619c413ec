"""Configuration of the synthetic CT generator."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "SynthConfig",
    "FOV_PRESETS",
    "EDGES",
    "FAMILIES",
    "FOV_CENTRES",
    "INPLANE_FOV_RANGE_MM",
    "SLICE_THICKNESS_RANGE_MM",
    "CUT_PRESET_THICKNESSES",
    "cut_preset_config",
]

#: Field-of-view presets: (cranial level range, caudal level range) as level indices
#: (0 = C1 ... 23 = L5, 24 = S1, 25 = S2); the scan starts/ends at a random position
#: between the two indices of each range (fractional positions cut vertebrae).
FOV_PRESETS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "thoracic": ((4.5, 7.0), (18.0, 21.0)),  # C5..T1 -> T12..L3
    "lumbar": ((15.0, 18.0), (23.5, 25.5)),  # T9..T12 -> L5..S2
    "thoracolumbar": ((5.0, 9.0), (22.5, 25.5)),  # C6..T3 -> L4..S2
}
#: Scan ends: ``"margin"`` (the preset's random level positions) or ``"cut"`` (the first
#: and last slice centres fall inside a vertebral body at both ends).
EDGES: tuple[str, ...] = ("margin", "cut")
#: Anatomy families: ``"default"`` (training, calibration, model choice and ``make
#: evaluate``), ``"heldout"`` (generalisation measurement only, never for training) and
#: ``"transitional"`` (the default anatomy with frequent transitional variants: validation
#: of the level naming).
FAMILIES: tuple[str, ...] = ("default", "heldout", "transitional")
#: Centres of a small targeted in-plane reconstruction.
FOV_CENTRES: tuple[str, ...] = ("spine", "aorta")
#: Allowed in-plane reconstruction diameters (mm) of ``inplane_fov_mm``.
INPLANE_FOV_RANGE_MM: tuple[float, float] = (100.0, 500.0)
#: Allowed forced slice thicknesses (mm).
SLICE_THICKNESS_RANGE_MM: tuple[float, float] = (0.5, 10.0)
#: Slice thicknesses (mm) drawn by the ``cut`` preset (:func:`cut_preset_config`).
CUT_PRESET_THICKNESSES: tuple[float, ...] = (1.0, 1.25, 2.0, 2.5, 3.0, 4.0, 5.0)
#: In-plane field of view (mm) drawn uniformly by the ``cut`` preset.
CUT_PRESET_FOV_MM: tuple[float, float] = (150.0, 250.0)
#: Seed-stream tag of the ``cut`` preset's draws (independent of the phantom's draws).
_CUT_PRESET_STREAM = 0xC07


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of :func:`spinevcf.synth.generate_case` and :func:`spinevcf.synth.sample_phantom`.

    The defaults reproduce the generator's output bit for bit (training data, golden
    tests, ``make evaluate`` studies); every new option is off by default.

    Attributes:
        fracture_rate: mean probability that an eligible vertebra (T1..L5, weighted by
            :data:`spinevcf.synth.anatomy.FRACTURE_LEVEL_WEIGHTS`) gets a Genant grade 1-3
            fracture.
        subthreshold_rate: probability per eligible vertebra of a 5-15 % deformity
            (a hard negative).
        fov: ``"thoracic"``, ``"lumbar"``, ``"thoracolumbar"`` or ``"random"``.
        n_slices: force this number of slices (the scan is centred on the preset's range);
            ``None``: the preset's extent decides. Not with ``edge="cut"``.
        scoliosis_rate: probability of a scoliotic spine (lateral curve with rotation).
        metal_rate: probability of posterior instrumentation (pedicle screws and rods).
        contrast_rate: probability of an intravenous contrast phase.
        edge: ``"margin"`` (default) or ``"cut"``: the first and the last slice centres
            fall inside a vertebral body (C2..L5) at a random fraction of its height, so
            both end bodies are cut (listed in truth ``extra["partial"]``).
        slice_thickness: force this slice thickness (mm); the spacing equals it.
            ``None``: drawn from the scanner mix.
        inplane_fov_mm: force a targeted in-plane reconstruction of this diameter (mm,
            512 matrix, so pixel spacing = diameter / 512); ``None``: sized to the body.
        fov_centre: centre of that reconstruction: ``"spine"`` (the vertebral body) or
            ``"aorta"`` (the descending aorta, left-anterior of the column); required
            with ``inplane_fov_mm`` and only allowed with it.
        family: anatomy family, ``"default"`` or ``"heldout"`` (other normative sizes,
            shapes, discs, ribs and transitional anatomy; see docs/synthetic-data.md).
            The held-out family is for measuring generalisation only.
    """

    fracture_rate: float = 0.06
    subthreshold_rate: float = 0.04
    fov: str = "random"
    n_slices: int | None = None
    scoliosis_rate: float = 0.15
    metal_rate: float = 0.05
    contrast_rate: float = 0.5
    edge: str = "margin"
    slice_thickness: float | None = None
    inplane_fov_mm: float | None = None
    fov_centre: str | None = None
    family: str = "default"

    def __post_init__(self) -> None:
        for name in ("fracture_rate", "subthreshold_rate", "scoliosis_rate", "metal_rate", "contrast_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if self.fov not in (*FOV_PRESETS, "random"):
            raise ValueError(f"fov must be one of {(*FOV_PRESETS, 'random')}, got {self.fov!r}")
        if self.n_slices is not None and self.n_slices < 4:
            raise ValueError(f"n_slices must be >= 4, got {self.n_slices}")
        if self.edge not in EDGES:
            raise ValueError(f"edge must be one of {EDGES}, got {self.edge!r}")
        if self.edge == "cut" and self.n_slices is not None:
            raise ValueError("edge='cut' places both ends inside bodies; it cannot be combined with n_slices")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.slice_thickness is not None:
            lo, hi = SLICE_THICKNESS_RANGE_MM
            if not lo <= self.slice_thickness <= hi:
                raise ValueError(
                    f"slice_thickness must be in [{lo:g}, {hi:g}] mm, got {self.slice_thickness!r}"
                )
        if self.inplane_fov_mm is not None:
            lo, hi = INPLANE_FOV_RANGE_MM
            if not lo <= self.inplane_fov_mm <= hi:
                raise ValueError(
                    f"inplane_fov_mm must be in [{lo:g}, {hi:g}] mm, got {self.inplane_fov_mm!r}"
                )
            if self.fov_centre not in FOV_CENTRES:
                raise ValueError(f"inplane_fov_mm needs fov_centre in {FOV_CENTRES}, got {self.fov_centre!r}")
        elif self.fov_centre is not None:
            raise ValueError(f"fov_centre={self.fov_centre!r} needs inplane_fov_mm")

    @property
    def is_default_geometry(self) -> bool:
        """``True`` when none of the edge / thickness / in-plane / family options is set."""
        return (
            self.edge == "margin"
            and self.slice_thickness is None
            and self.inplane_fov_mm is None
            and self.family == "default"
        )

    def options(self) -> dict[str, object]:
        """The edge / thickness / in-plane / family options (recorded in truth ``extra``)."""
        return {
            "edge": self.edge,
            "slice_thickness": self.slice_thickness,
            "inplane_fov_mm": self.inplane_fov_mm,
            "fov_centre": self.fov_centre,
            "family": self.family,
        }


def cut_preset_config(seed: int, base: SynthConfig | None = None) -> SynthConfig:
    """The ``cut`` evaluation preset for the case of ``seed``.

    Both scan ends inside vertebral bodies, a slice thickness drawn from
    :data:`CUT_PRESET_THICKNESSES` (1-5 mm), and a targeted in-plane reconstruction of
    150-250 mm centred on the spine or on the aorta (even odds). The draws come from
    their own seed stream, so the phantom of ``seed`` is the same as without the preset.

    Args:
        seed: case seed (non-negative).
        base: other settings to keep (family, rates); its edge / thickness / in-plane
            options are replaced.

    Returns:
        The case's configuration.
    """
    rng = np.random.default_rng([int(seed), _CUT_PRESET_STREAM])
    thick = float(rng.choice(CUT_PRESET_THICKNESSES))
    fov = float(np.round(rng.uniform(*CUT_PRESET_FOV_MM), 1))
    centre = str(rng.choice(FOV_CENTRES))
    return replace(
        base or SynthConfig(),
        edge="cut",
        n_slices=None,
        slice_thickness=thick,
        inplane_fov_mm=fov,
        fov_centre=centre,
    )
