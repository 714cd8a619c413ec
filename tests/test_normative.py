"""Tests of spinevcf.normative and the committed normal table (scripts/normative_morphometry.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from spinevcf.normative import RATIO_NAMES, NormalRange, Normative, default_normative
from spinevcf.normative_table import NORMATIVE_TABLE
from spinevcf.schema import LEVELS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "normative_morphometry.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("normative_morphometry", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_table_covers_every_level_with_a_source() -> None:
    norms = default_normative()
    for lev in LEVELS:
        for part in (norms.wedge, norms.concavity):
            entry = part[lev]
            assert entry.source and entry.sd > 0.0
    assert set(norms.posterior_step) == set(LEVELS[2:])  # no step between C1 (no body) and C2
    data_levels = [lev for lev in LEVELS if norms.wedge[lev].n > 0]
    assert "T1" in data_levels and "L1" in data_levels
    for lev in ("L3", "L4", "L5"):  # not in chest CTs: published values or estimates, said so
        assert norms.wedge[lev].n == 0 and norms.wedge[lev].source


def test_normal_anatomy_is_level_specific() -> None:
    n = default_normative()
    # Physiological mid-thoracic wedging, strongest around T7.
    assert n.wedge_ratio("T7") < 0.9
    assert n.wedge_ratio("T7") < n.wedge_ratio("T4") and n.wedge_ratio("T7") < n.wedge_ratio("T11")
    # Lumbar lordotic shape: Ha > Hp at L4-L5, increasing caudally.
    assert 1.0 < n.wedge_ratio("L4") < n.wedge_ratio("L5")
    # Concave endplates: Hm well below the rim heights at every level.
    assert all(0.75 < n.concavity_ratio(lev) < 0.95 for lev in LEVELS)
    # Cranio-caudal increase of posterior height T9 -> L1 (about 6 %/level in CT: Palm et al. 2025).
    steps = [n.posterior_step[lev].center for lev in ("T10", "T11", "T12", "L1")]
    assert all(s > 1.02 for s in steps)
    assert 1.04 < (steps[0] * steps[1] * steps[2] * steps[3]) ** 0.25 < 1.08


def test_expected_posterior_ratio() -> None:
    n = default_normative()
    up = n.expected_posterior_ratio("L1", "T12")
    down = n.expected_posterior_ratio("T12", "L1")
    assert up == pytest.approx(n.posterior_step["L1"].center)
    assert up is not None and down is not None and up * down == pytest.approx(1.0)
    assert n.expected_posterior_ratio("T12", "L2") is None  # not adjacent
    assert n.expected_posterior_ratio("C2", "C1") is None  # the atlas has no body
    with pytest.raises(ValueError, match="C1..L5"):
        n.expected_posterior_ratio("T13", "L1")


def test_validation() -> None:
    with pytest.raises(ValueError, match="center"):
        NormalRange(0.0, 0.1, 1, "x")
    with pytest.raises(ValueError, match="sd"):
        NormalRange(1.0, -0.1, 1, "x")
    with pytest.raises(ValueError, match="unknown ratios"):
        Normative.from_dict({**NORMATIVE_TABLE, "height": {}})
    partial = {r: dict(NORMATIVE_TABLE[r]) for r in RATIO_NAMES}
    del partial["wedge"]["T7"]
    with pytest.raises(ValueError, match="missing"):
        Normative.from_dict(partial)
    bad = {r: dict(NORMATIVE_TABLE[r]) for r in RATIO_NAMES}
    bad["concavity"]["T13"] = bad["concavity"]["T12"]
    with pytest.raises(ValueError, match="unknown levels"):
        Normative.from_dict(bad)


def test_trimmed_statistics_resist_fractured_bodies() -> None:
    script = load_script()
    normal = [0.90 + 0.01 * ((i * 7) % 11 - 5) for i in range(95)]
    fractured = [0.45, 0.5, 0.55, 0.6, 0.62]
    st = script.trimmed_stats(normal + fractured)
    assert st["n"] == 100 and st["n_kept"] == 95
    assert st["center"] == pytest.approx(sum(normal) / len(normal))


def test_segment_heights_and_anisotropy() -> None:
    script = load_script()
    # Vertical segments: a slice-spacing change scales all heights alike, ratios unchanged.
    seg = [[[0, 0, 0], [0, 0, 18]], [[10, 0, 0], [10, 0, 16]], [[20, 0, 0], [20, 0, 20]]]
    h1 = script.segment_heights(seg)
    h2 = script.segment_heights(seg, slice_ratio=1.25)
    assert list(h1) == pytest.approx([18.0, 16.0, 20.0])
    assert h2[0] / h2[2] == pytest.approx(h1[0] / h1[2])
    with pytest.raises(ValueError, match="three"):
        script.segment_heights(seg[:2])


@pytest.mark.skipif(
    not (load_script().DEFAULT_DATA / "annotation").is_dir(),
    reason="anchor-free-genant annotations (../shared/data) not on this machine",
)
def test_committed_table_is_what_the_data_give() -> None:
    script = load_script()
    columns = script.load_columns(script.DEFAULT_DATA)
    assert script.build_table(columns, script.data_source(len(columns))) == NORMATIVE_TABLE
