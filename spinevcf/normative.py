"""Level-specific normal vertebral body shape (normative morphometry) for Genant grading.

A fracture is a height loss against what the body *should* measure, and a normal body's
shape depends on its level: mid-thoracic bodies are physiologically wedged (Ha/Hp about
0.86 at T7), lumbar bodies in lordosis have Ha > Hp (about 1.15 at L5), the endplates are
concave at every level (Hm about 0.85 of the taller rim height where the annotators place
the middle points), and the posterior height grows from one level to the next by 1-8 %
(about 6 % per level from T9 to L1). This module holds those normal values by level, as in
the morphometric methods of Eastell et al. (J Bone Miner Res 1991) and McCloskey et al.
(Osteoporos Int 1993): normal Ha/Hp, Hm/Hp-type and posterior-height-to-neighbour ratios
per level, as a trimmed mean and SD.

The values (:mod:`spinevcf.normative_table`) are derived by ``scripts/normative_morphometry.py``
from the expert keypoints of 100 real chest CTs (anchor-free-genant annotations, Zakharov et
al. MedIA 2023, CC BY-NC 4.0) where at least :data:`spinevcf.normative_table` says so, and
from published values or stated estimates elsewhere (lumbar L3-L5, cervical spine); every
entry names its source. See ``docs/normative-morphometry.md``.

Ratios (all dimensionless, so independent of the unknown voxel spacing of the source data
up to the small anisotropy error quantified in the docs):

* ``wedge``: Ha / Hp.
* ``concavity``: Hm / max(Ha, Hp).
* ``posterior_step``: Hp of the level / Hp of the level directly above it (cranial).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from spinevcf.schema import LEVEL_INDEX, LEVELS

__all__ = [
    "RATIO_NAMES",
    "NormalRange",
    "Normative",
    "default_normative",
]

#: The three normal ratios kept per level.
RATIO_NAMES: tuple[str, ...] = ("wedge", "concavity", "posterior_step")


@dataclass(frozen=True)
class NormalRange:
    """Normal value of one ratio at one level.

    Attributes:
        center: trimmed mean of the ratio in normal bodies.
        sd: trimmed standard deviation (between patients plus one reading's measurement spread).
        n: number of vertebrae it was derived from (0 for a published value or an estimate).
        source: where it comes from (``"anchor-free-genant ..."``, a citation, or ``"estimate: ..."``).
    """

    center: float
    sd: float
    n: int
    source: str

    def __post_init__(self) -> None:
        if not (self.center > 0.0):
            raise ValueError(f"center must be positive, got {self.center!r}")
        if not (self.sd >= 0.0):
            raise ValueError(f"sd must be non-negative, got {self.sd!r}")
        if self.n < 0:
            raise ValueError(f"n must be non-negative, got {self.n!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NormalRange:
        """From ``{"center", "sd", "n", "source"}``."""
        return cls(float(d["center"]), float(d["sd"]), int(d["n"]), str(d["source"]))


@dataclass(frozen=True)
class Normative:
    """Normal shape ratios by level (C1..L5 names as in :data:`spinevcf.schema.LEVELS`).

    Attributes:
        wedge: level -> normal Ha/Hp.
        concavity: level -> normal Hm/max(Ha, Hp).
        posterior_step: level -> normal Hp(level) / Hp(level above); absent where the level
            above has no body to compare with (C1/C2).
    """

    wedge: Mapping[str, NormalRange]
    concavity: Mapping[str, NormalRange]
    posterior_step: Mapping[str, NormalRange]

    def __post_init__(self) -> None:
        for name in ("wedge", "concavity", "posterior_step"):
            unknown = sorted(set(getattr(self, name)) - set(LEVELS))
            if unknown:
                raise ValueError(f"{name} has unknown levels {unknown}")
        missing = [lev for lev in LEVELS if lev not in self.wedge or lev not in self.concavity]
        if missing:
            raise ValueError(f"wedge and concavity need every level; missing {missing}")

    @classmethod
    def from_dict(cls, table: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Normative:
        """From ``{ratio: {level: {"center", "sd", "n", "source"}}}`` (the generated table)."""
        unknown = sorted(set(table) - set(RATIO_NAMES))
        if unknown:
            raise ValueError(f"unknown ratios {unknown}; expected {list(RATIO_NAMES)}")
        parts = {
            name: {lev: NormalRange.from_dict(v) for lev, v in table.get(name, {}).items()}
            for name in RATIO_NAMES
        }
        return cls(parts["wedge"], parts["concavity"], parts["posterior_step"])

    def wedge_ratio(self, level: str) -> float:
        """Normal Ha/Hp at ``level``."""
        return self.wedge[_check_level(level)].center

    def concavity_ratio(self, level: str) -> float:
        """Normal Hm/max(Ha, Hp) at ``level``."""
        return self.concavity[_check_level(level)].center

    def expected_posterior_ratio(self, level: str, neighbour: str) -> float | None:
        """Normal Hp(level) / Hp(neighbour) for two adjacent levels.

        Returns:
            The ratio, or ``None`` when the levels are not adjacent or no normal step is
            known between them (then the neighbour gives no crush reference).
        """
        i, j = LEVEL_INDEX[_check_level(level)], LEVEL_INDEX[_check_level(neighbour)]
        if abs(i - j) != 1:
            return None
        lower = LEVELS[max(i, j)]
        step = self.posterior_step.get(lower)
        if step is None:
            return None
        return step.center if i > j else 1.0 / step.center


def _check_level(level: str) -> str:
    if level not in LEVEL_INDEX:
        raise ValueError(f"level must be one of C1..L5, got {level!r}")
    return level


@lru_cache(maxsize=1)
def default_normative() -> Normative:
    """The committed normal ranges (:mod:`spinevcf.normative_table`)."""
    from spinevcf.normative_table import NORMATIVE_TABLE

    return Normative.from_dict(NORMATIVE_TABLE)
