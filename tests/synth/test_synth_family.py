"""The held-out anatomy family: other normative tables and transitional anatomy (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.schema import LEVELS
from spinevcf.synth import SynthConfig, generate_case, sample_phantom
from spinevcf.synth import anatomy as A
from spinevcf.synth.body import sample_body, sample_torso
from spinevcf.synth.phantom import _transitional
from spinevcf.synth.spine import LABEL_OTHER_BONE, sample_spine

HELDOUT = SynthConfig(family="heldout")
SPINE_KW = {"fracture_rate": 0.0, "subthreshold_rate": 0.0, "scoliosis_rate": 0.0}


def _first_seed(key: str, value: object) -> int:
    """Smallest seed whose held-out patient has ``transitional[key] == value``."""
    for seed in range(2000):
        if _transitional(seed, A.HELDOUT_FAMILY)[key] == value:
            return seed
    raise AssertionError(f"no seed with {key}={value}")


def test_default_family_has_no_transitional_anatomy_and_heldout_differs() -> None:
    a, b = sample_phantom(3), sample_phantom(3, HELDOUT)
    assert a.family == "default" and a.transitional == {}
    assert b.family == "heldout" and set(b.transitional) == {"rib_pairs", "lumbosacral"}
    assert [vb.level for vb in a.spine.vertebrae] == [*LEVELS[1:], "S1"]
    la, lb = a.spine.by_level("L3"), b.spine.by_level("L3")
    assert la is not None and lb is not None
    assert la.cortex_mm == A.CORTEX_MM and lb.cortex_mm == A.HELDOUT_FAMILY.cortex_mm
    assert la.rim_round_mm == 0.0 and lb.rim_round_mm > 0.0


def test_heldout_tables_are_other_tables() -> None:
    d, h = A.DEFAULT_FAMILY, A.HELDOUT_FAMILY
    for lev in LEVELS[1:]:
        assert lev in h.body_sizes and lev in h.wedge and lev in h.disc_height_below
    assert sum(h.body_sizes[lev] != d.body_sizes[lev] for lev in LEVELS[1:]) >= 20
    step = {f.name: f.body_sizes["L1"].height_post - f.body_sizes["T12"].height_post for f in (d, h)}
    assert step["heldout"] >= step["default"] + 2.0  # a larger T12 -> L1 step
    assert all(h.body_sizes[f"L{i}"].height_post > d.body_sizes[f"L{i}"].height_post for i in range(1, 6))
    assert h.ribs != d.ribs and h.disc_height_below != d.disc_height_below


def test_transitional_rates() -> None:
    draws = [_transitional(s, A.HELDOUT_FAMILY) for s in range(4000)]
    for key, value in (("rib_pairs", 11), ("rib_pairs", 13)):
        rate = np.mean([t[key] == value for t in draws])
        assert 0.035 < rate < 0.065, (key, value, rate)
    for value in ("lumbarised_s1", "sacralised_l5"):
        rate = np.mean([t["lumbosacral"] == value for t in draws])
        assert 0.035 < rate < 0.065, (value, rate)
    assert _transitional(5, A.DEFAULT_FAMILY) == {}


def test_lumbarised_s1_is_a_mobile_body_outside_levels() -> None:
    rng = np.random.default_rng(1)
    spine = sample_spine(rng, family=A.HELDOUT_FAMILY, lumbosacral="lumbarised_s1", **SPINE_KW)
    names = [vb.level for vb in spine.vertebrae]
    assert names[-3:] == ["L5", "S1", "S2"]
    s1 = spine.by_level("S1")
    assert s1 is not None and s1.elements  # posterior elements: a lumbar-type body
    assert ("S1", "S2") in [(d.upper.level, d.lower.level) for d in spine.discs]
    seed = _first_seed("lumbosacral", "lumbarised_s1")
    case = generate_case(seed, SynthConfig(family="heldout", fov="lumbar"))
    extra = case.truth.extra
    assert extra["family"] == "heldout" and extra["transitional"]["lumbosacral"] == "lumbarised_s1"
    assert [u["label"] for u in extra["unnamed"]] == ["S1"]
    assert "S1" not in [v.label for v in case.truth.vertebrae]
    assert "L5" in [v.label for v in case.truth.vertebrae]  # labels count from C1


def test_sacralised_l5_is_fused() -> None:
    rng = np.random.default_rng(2)
    spine = sample_spine(rng, family=A.HELDOUT_FAMILY, lumbosacral="sacralised_l5", **SPINE_KW)
    junction = [d for d in spine.discs if d.upper.level == "L5"][0]
    assert junction.label == LABEL_OTHER_BONE and junction.hu > 100.0

    def reach(level: str) -> float:
        """Largest lateral distance (mm) of the level's posterior elements from its body centre."""
        vb = spine.by_level(level)
        assert vb is not None
        return max(float(np.abs((t.points - vb.center) @ vb.rot[:, 0]).max()) for t in vb.elements)

    # broad transverse processes: L5 reaches further out than L4 (normally it is shorter)
    assert reach("L5") > reach("L4") + 5.0
    normal = sample_spine(np.random.default_rng(2), family=A.HELDOUT_FAMILY, **SPINE_KW)
    assert [d for d in normal.discs if d.upper.level == "L5"][0].label != LABEL_OTHER_BONE


@pytest.mark.parametrize("pairs", [11, 13])
def test_rib_pairs(pairs: int) -> None:
    def rib_heads(n: int) -> list[float]:
        rng = np.random.default_rng(4)
        spine = sample_spine(rng, family=A.HELDOUT_FAMILY, **SPINE_KW)
        torso = sample_torso(rng, spine)
        _, bones = sample_body(rng, spine, torso, contrast=False, family=A.HELDOUT_FAMILY, rib_pairs=n)
        vbs = [vb for vb in spine.vertebrae if vb.level in LEVELS]
        heads = []
        for b in bones:
            p0 = b.points[0]
            vb = min(vbs, key=lambda v: abs(v.center[2] - p0[2]))
            if b.label == LABEL_OTHER_BONE and np.linalg.norm(p0 - vb.center) < 45.0:  # a rib head
                heads.append(float(p0[2]))
        return heads, spine  # type: ignore[return-value]

    base, spine = rib_heads(12)
    other, _ = rib_heads(pairs)
    assert len(other) - len(base) == 2 * (pairs - 12)
    lowest = min(other)
    t12, l1 = spine.by_level("T12"), spine.by_level("L1")
    assert t12 is not None and l1 is not None
    if pairs == 13:  # a rib head beside L1
        assert abs(lowest - l1.center[2]) < 20.0
    else:  # the lowest rib head is beside T11, above T12
        assert lowest > t12.center[2] + 5.0
    with pytest.raises(ValueError, match="rib_pairs"):
        sample_body(
            np.random.default_rng(0),
            spine,
            sample_torso(np.random.default_rng(0), spine),
            contrast=False,
            rib_pairs=10,
        )


def test_cli_family_choices_are_the_generator_families() -> None:
    from spinevcf.commands.synth import FAMILY_CHOICES
    from spinevcf.synth.config import FAMILIES

    assert FAMILY_CHOICES == FAMILIES
