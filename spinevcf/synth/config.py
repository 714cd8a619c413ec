"""Configuration of the synthetic CT generator."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SynthConfig", "FOV_PRESETS"]

#: Field-of-view presets: (cranial level range, caudal level range) as level indices
#: (0 = C1 ... 23 = L5, 24 = S1, 25 = S2); the scan starts/ends at a random position
#: between the two indices of each range (fractional positions cut vertebrae).
FOV_PRESETS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "thoracic": ((4.5, 7.0), (18.0, 21.0)),  # C5..T1 -> T12..L3
    "lumbar": ((15.0, 18.0), (23.5, 25.5)),  # T9..T12 -> L5..S2
    "thoracolumbar": ((5.0, 9.0), (22.5, 25.5)),  # C6..T3 -> L4..S2
}


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of :func:`spinevcf.synth.generate_case` and :func:`spinevcf.synth.sample_phantom`.

    Attributes:
        fracture_rate: mean probability that an eligible vertebra (T1..L5, weighted by
            :data:`spinevcf.synth.anatomy.FRACTURE_LEVEL_WEIGHTS`) gets a Genant grade 1-3
            fracture.
        subthreshold_rate: probability per eligible vertebra of a 5-15 % deformity
            (a hard negative).
        fov: ``"thoracic"``, ``"lumbar"``, ``"thoracolumbar"`` or ``"random"``.
        n_slices: force this number of slices (the scan is centred on the preset's range);
            ``None``: the preset's extent decides.
        scoliosis_rate: probability of a scoliotic spine (lateral curve with rotation).
        metal_rate: probability of posterior instrumentation (pedicle screws and rods).
        contrast_rate: probability of an intravenous contrast phase.
    """

    fracture_rate: float = 0.06
    subthreshold_rate: float = 0.04
    fov: str = "random"
    n_slices: int | None = None
    scoliosis_rate: float = 0.15
    metal_rate: float = 0.05
    contrast_rate: float = 0.5

    def __post_init__(self) -> None:
        for name in ("fracture_rate", "subthreshold_rate", "scoliosis_rate", "metal_rate", "contrast_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if self.fov not in (*FOV_PRESETS, "random"):
            raise ValueError(f"fov must be one of {(*FOV_PRESETS, 'random')}, got {self.fov!r}")
        if self.n_slices is not None and self.n_slices < 4:
            raise ValueError(f"n_slices must be >= 4, got {self.n_slices}")
