"""Tests of spinevcf.grading: heights, Genant thresholds, deformity types against the level's
normal shape (normative morphometry), crush references from the neighbours, probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.grading import (
    TALL_POSTERIOR,
    fracture_probability,
    genant_grade,
    grade_column,
    heights_from_keypoints,
    patient_probability,
)
from spinevcf.normative import NormalRange, Normative, default_normative
from spinevcf.schema import LEVELS

NORMS = default_normative()
#: Posterior height of T12 in the synthetic columns below (mm).
T12_HP_MM = 23.0


def heights(a: float, m: float, p: float) -> dict[str, float]:
    return {"anterior": a, "middle": m, "posterior": p}


def normal_body(
    level: str, hp: float, *, wedge: float | None = None, concavity: float | None = None
) -> dict[str, float]:
    """A body of posterior height ``hp`` with the level's normal shape (or the given ratios)."""
    w = NORMS.wedge_ratio(level) if wedge is None else wedge
    c = NORMS.concavity_ratio(level) if concavity is None else concavity
    ha = w * hp
    return heights(ha, c * max(ha, hp), hp)


def normal_column(levels: list[str], hp_at_t12: float = T12_HP_MM) -> list[dict[str, float]]:
    """Bodies of the normal shape whose posterior heights follow the normal level-to-level steps."""
    hp = {"T12": hp_at_t12}
    i12 = LEVELS.index("T12")
    for i in range(i12 + 1, LEVELS.index(levels[-1]) + 1):
        hp[LEVELS[i]] = hp[LEVELS[i - 1]] * NORMS.posterior_step[LEVELS[i]].center
    for i in range(i12 - 1, LEVELS.index(levels[0]) - 1, -1):
        hp[LEVELS[i]] = hp[LEVELS[i + 1]] / NORMS.posterior_step[LEVELS[i + 1]].center
    return [normal_body(lev, hp[lev]) for lev in levels]


def keypoints_from_heights(ha: float, hm: float, hp: float, z0: float = 0.0) -> np.ndarray:
    """Six keypoints of a body in the sagittal plane (anterior = -y), superior first."""
    y = np.array([-15.0, 0.0, 15.0])
    sup = np.c_[np.zeros(3), y, np.full(3, z0)]
    inf = np.c_[np.zeros(3), y, z0 - np.array([ha, hm, hp])]
    return np.vstack([sup, inf])


@pytest.mark.parametrize(
    "reduction, grade",
    [(0.0, 0), (0.199, 0), (0.20, 1), (0.249, 1), (0.25, 2), (0.399, 2), (0.40, 3), (0.9, 3), (-0.1, 0)],
)
def test_genant_thresholds(reduction: float, grade: int) -> None:
    assert genant_grade(reduction) == grade


@pytest.mark.parametrize("loss, grade", [(0.199, 0), (0.20, 1), (0.25, 2), (0.30, 2), (0.40, 3), (0.399, 2)])
def test_genant_thresholds_from_heights(loss: float, grade: int) -> None:
    # Anterior height lowered by ``loss`` from the level's normal Ha: exactly 20 % must be grade 1
    # although the ratio of ratios carries floating-point error.
    w = NORMS.wedge_ratio("T8")
    g = grade_column(["T8"], [normal_body("T8", 20.0, wedge=w * (1.0 - loss))])[0]
    assert g.reductions["wedge"] == pytest.approx(loss)
    assert g.genant_grade == grade


def test_genant_rejects_nan() -> None:
    with pytest.raises(ValueError):
        genant_grade(float("nan"))


def test_heights_from_keypoints() -> None:
    h = heights_from_keypoints(keypoints_from_heights(18.0, 15.0, 21.0))
    assert h == pytest.approx({"anterior": 18.0, "middle": 15.0, "posterior": 21.0})
    with pytest.raises(ValueError):
        heights_from_keypoints(np.zeros((5, 3)))


def test_heights_are_3d_distances() -> None:
    kp = keypoints_from_heights(20.0, 20.0, 20.0)
    kp[3:, 0] += 5.0  # inferior endplate shifted laterally
    assert heights_from_keypoints(kp)["middle"] == pytest.approx(np.hypot(20.0, 5.0))


# --- normal anatomy gets no call ------------------------------------------------------------
def test_normal_column_with_the_normal_t12_l1_step_gets_no_call() -> None:
    labels = [f"T{i}" for i in range(4, 13)] + [f"L{i}" for i in range(1, 6)]
    hs = normal_column(labels)
    i12, il1 = labels.index("T12"), labels.index("L1")
    assert hs[il1]["posterior"] > 1.02 * hs[i12]["posterior"]  # L1 is normally taller than T12
    for lab, g in zip(labels, grade_column(labels, hs), strict=True):
        assert g.genant_grade == 0 and g.deformity == "none", lab
        assert g.reduction == pytest.approx(0.0, abs=1e-9), lab


@pytest.mark.parametrize("sds", [-3.0, 0.0, 3.0])
def test_t12_next_to_a_taller_l1_within_normal_range_gets_no_call(sds: float) -> None:
    # The T12 -> L1 step anywhere within +-3 SD of normal (L1 up to ~17 % taller) is no crush,
    # for T12 as for L1; the old fixed 3 %/level rule expected only 3 % here.
    step = NORMS.posterior_step["L1"]
    labels = ["T11", "T12", "L1", "L2"]
    hs = normal_column(labels)
    scale = (step.center + sds * step.sd) / step.center
    hs[2] = normal_body("L1", hs[2]["posterior"] * scale)
    hs[3] = normal_body("L2", hs[3]["posterior"] * scale)
    grades = grade_column(labels, hs)
    assert [g.genant_grade for g in grades] == [0, 0, 0, 0]
    # Exactly the deviation from the normal step, on the side that is relatively short.
    measured = step.center + sds * step.sd
    expected_t12 = max(0.0, 1.0 - step.center / measured)
    expected_l1 = max(0.0, 1.0 - measured / step.center)
    assert grades[1].reductions["crush"] == pytest.approx(expected_t12, abs=1e-9)
    assert grades[2].reductions["crush"] == pytest.approx(expected_l1, abs=1e-9)


@pytest.mark.parametrize("level", ["T6", "T7", "T8"])
@pytest.mark.parametrize("ratio", [0.85, 0.80, 0.78])
def test_normal_mid_thoracic_wedging_gets_no_call(level: str, ratio: float) -> None:
    # Ha/Hp 0.78 reads as a 22 % wedge against Hp alone; against the level's normal
    # wedging (0.86-0.89 here) it is a loss of at most 12 %, within the normal range.
    labels = ["T5", "T6", "T7", "T8", "T9"]
    hs = normal_column(labels)
    i = labels.index(level)
    hs[i] = normal_body(level, hs[i]["posterior"], wedge=ratio)
    assert 1.0 - ratio > 0.149  # what a rule judging Ha against Hp alone would see
    g = grade_column(labels, hs)[i]
    assert g.genant_grade == 0 and g.deformity == "none"
    assert g.reductions["wedge"] < 0.15


@pytest.mark.parametrize("level, ratio", [("L4", 1.04), ("L4", 1.15), ("L5", 1.15), ("L5", 1.30)])
def test_normal_lordotic_lower_lumbar_shape_gets_no_call(level: str, ratio: float) -> None:
    labels = ["L2", "L3", "L4", "L5"]
    hs = normal_column(labels)
    i = labels.index(level)
    hs[i] = normal_body(level, hs[i]["posterior"], wedge=ratio)
    assert hs[i]["anterior"] > hs[i]["posterior"]
    g = grade_column(labels, hs)[i]
    assert g.genant_grade == 0 and g.deformity == "none"


def test_normal_endplate_concavity_gets_no_call() -> None:
    # Hm 22 % below max(Ha, Hp) is the real endplates' normal concavity plus spread, not a fracture.
    labels = ["T9", "T10", "T11"]
    hs = normal_column(labels)
    hs[1] = normal_body("T10", hs[1]["posterior"], concavity=0.78)
    g = grade_column(labels, hs)[1]
    assert g.genant_grade == 0 and g.reductions["biconcave"] < 0.10


# --- real fractures are still graded -------------------------------------------------------
def test_wedge_against_the_level_normal() -> None:
    labels = ["T6", "T7", "T8"]
    hs = normal_column(labels)
    w = NORMS.wedge_ratio("T7")
    hs[1] = normal_body("T7", hs[1]["posterior"], wedge=0.7 * w)
    g = grade_column(labels, hs)[1]
    assert g.deformity == "wedge"
    assert g.reduction == pytest.approx(0.30)
    assert g.genant_grade == 2


def test_wedge_of_a_lordotic_l5() -> None:
    # Ha/Hp 0.85 would pass as a mild thoracic wedge; at L5 (normal Ha > Hp) it is a 26 % loss.
    labels = ["L3", "L4", "L5"]
    hs = normal_column(labels)
    hs[2] = normal_body("L5", hs[2]["posterior"], wedge=0.85)
    g = grade_column(labels, hs)[2]
    assert g.deformity == "wedge"
    assert g.reduction == pytest.approx(1.0 - 0.85 / NORMS.wedge_ratio("L5"))
    assert g.genant_grade == 2


def test_biconcave_against_the_level_normal() -> None:
    labels = ["T11", "T12", "L1"]
    hs = normal_column(labels)
    c = NORMS.concavity_ratio("T12")
    hs[1] = normal_body("T12", hs[1]["posterior"], concavity=0.75 * c)
    g = grade_column(labels, hs)[1]
    assert g.deformity == "biconcave"
    assert g.reduction == pytest.approx(0.25)
    assert g.genant_grade == 2


def test_crush_judged_against_neighbours_through_the_normal_steps() -> None:
    labels = ["T11", "T12", "L1"]
    hs = normal_column(labels)
    normal_t12 = hs[1]["posterior"]
    hs[1] = {k: 0.6 * v for k, v in hs[1].items()}  # uniformly flattened: own shape is normal
    g = grade_column(labels, hs)[1]
    assert g.reductions["wedge"] == pytest.approx(0.0, abs=1e-9)
    assert g.reductions["biconcave"] == pytest.approx(0.0, abs=1e-9)
    # Both neighbours predict the normal T12 exactly (normal column): a 40 % crush.
    assert hs[0]["posterior"] * NORMS.expected_posterior_ratio("T12", "T11") == pytest.approx(normal_t12)
    assert hs[2]["posterior"] * NORMS.expected_posterior_ratio("T12", "L1") == pytest.approx(normal_t12)
    assert g.reduction == pytest.approx(0.40)
    assert g.deformity == "crush" and g.genant_grade == 3
    # The same vertebra alone has no reference: not gradable as a crush.
    alone = grade_column(["T12"], [hs[1]])[0]
    assert alone.reductions["crush"] == 0.0 and alone.genant_grade == 0


def test_mild_crush_is_graded() -> None:
    labels = ["L1", "L2", "L3"]
    hs = normal_column(labels)
    hs[1] = {k: 0.78 * v for k, v in hs[1].items()}
    g = grade_column(labels, hs)[1]
    assert g.deformity == "crush" and g.genant_grade == 1
    assert g.reduction == pytest.approx(0.22)


def test_crushed_neighbour_does_not_hide_a_crush() -> None:
    labels = ["T11", "T12", "L1", "L2"]
    hs = normal_column(labels)
    hs[1] = {k: 0.65 * v for k, v in hs[1].items()}
    hs[2] = {k: 0.65 * v for k, v in hs[2].items()}
    grades = grade_column(labels, hs)
    # T12: the larger reference (normal T11) is used, not the crushed L1.
    assert grades[1].reduction == pytest.approx(0.35)
    assert grades[1].deformity == "crush" and grades[1].genant_grade == 2
    # L1: judged against normal L2, not against the crushed T12.
    assert grades[2].reduction == pytest.approx(0.35)
    assert grades[2].deformity == "crush" and grades[2].genant_grade == 2
    # The normal neighbours stay normal although a crushed body is next to them.
    assert grades[0].genant_grade == 0 and grades[3].genant_grade == 0


def test_crush_whose_only_neighbour_is_crushed_is_missed() -> None:
    # Documented limitation: with L2 missing, L1's only reference is the crushed T12.
    labels = ["T11", "T12", "L1"]
    hs = normal_column(labels)
    hs[1] = {k: 0.65 * v for k, v in hs[1].items()}
    hs[2] = {k: 0.65 * v for k, v in hs[2].items()}
    grades = grade_column(labels, hs)
    assert grades[1].genant_grade == 2
    assert grades[2].reductions["crush"] == pytest.approx(0.0, abs=1e-9) and grades[2].genant_grade == 0


def test_second_neighbour_grades_a_crush_whose_only_neighbour_is_crushed() -> None:
    # The application's grading: L1's only neighbour T12 is itself graded, so T11 (two normal
    # steps away) gives L1 its reference too.
    labels = ["T11", "T12", "L1"]
    hs = normal_column(labels)
    hs[1] = {k: 0.65 * v for k, v in hs[1].items()}
    hs[2] = {k: 0.65 * v for k, v in hs[2].items()}
    grades = grade_column(labels, hs, second_neighbour=True)
    assert grades[2].reduction == pytest.approx(0.35)
    assert grades[2].deformity == "crush" and grades[2].genant_grade == 2
    assert grades[1].genant_grade == 2 and grades[0].genant_grade == 0
    # A body with both neighbours, or whose only neighbour is normal, is graded as before.
    normal = normal_column(["T10", "T11", "T12", "L1"])
    assert all(
        g.genant_grade == 0 for g in grade_column(["T10", "T11", "T12", "L1"], normal, second_neighbour=True)
    )
    hs = normal_column(["T11", "T12", "L1"])
    hs[2] = {k: 0.65 * v for k, v in hs[2].items()}
    plain = grade_column(["T11", "T12", "L1"], hs)
    assert grade_column(["T11", "T12", "L1"], hs, second_neighbour=True) == plain
    # No reference across a gap: the level beyond the neighbour must be adjacent to it.
    hs = normal_column(["T10", "T12", "L1"])
    hs[1] = {k: 0.65 * v for k, v in hs[1].items()}
    hs[2] = {k: 0.65 * v for k, v in hs[2].items()}
    assert grade_column(["T10", "T12", "L1"], hs, second_neighbour=True)[2].genant_grade == 0


def test_posterior_height_far_above_the_normal_neighbours_does_not_make_a_wedge() -> None:
    # A posterior superior keypoint placed 7 mm too high (real 5 mm chest CT, docs/real-ct.md):
    # T3 reads Hp 1.45 times what T4 predicts, and its normal anterior height looks like a
    # grade-2 wedge against that reading. The application judges T3 against the limit instead.
    labels = ["T2", "T3", "T4", "T5"]
    hs = normal_column(labels, hp_at_t12=19.0)
    hs[1] = dict(hs[1], posterior=1.45 * hs[1]["posterior"])
    assert grade_column(labels, hs)[1].genant_grade == 2
    limited = grade_column(labels, hs, tall_posterior=TALL_POSTERIOR)
    assert limited[1].genant_grade == 0 and limited[1].deformity == "none"
    assert limited[1].reductions["wedge"] == pytest.approx(1 - 1 / TALL_POSTERIOR, abs=1e-6)
    # The reading is reported as measured, the limit beside it; the other bodies are graded as before.
    assert limited[1].heights_mm == pytest.approx(hs[1])
    assert limited[1].posterior_limit_mm == pytest.approx(TALL_POSTERIOR * hs[1]["posterior"] / 1.45)
    assert [g.posterior_limit_mm for g in limited[::2]] == [None, None]
    assert [g.genant_grade for g in limited] == [0, 0, 0, 0]
    # A true wedge keeps its posterior height and is graded as before, and so is a body whose
    # posterior height is within the limit.
    hs = normal_column(labels, hp_at_t12=19.0)
    hs[1] = dict(hs[1], anterior=0.65 * hs[1]["anterior"])
    assert grade_column(labels, hs, tall_posterior=TALL_POSTERIOR) == grade_column(labels, hs)
    assert grade_column(labels, hs)[1].genant_grade == 2
    hs = normal_column(labels, hp_at_t12=19.0)
    hs[1] = dict(hs[1], posterior=1.15 * hs[1]["posterior"])
    assert grade_column(labels, hs, tall_posterior=TALL_POSTERIOR) == grade_column(labels, hs)


def test_tall_posterior_limit_comes_only_from_neighbours_graded_normal() -> None:
    # Between two crushed neighbours a normal body reads far taller than they predict: they
    # give no limit, and the body is not judged against their heights.
    labels = ["T11", "T12", "L1"]
    hs = normal_column(labels)
    hs[1] = dict(hs[1], middle=0.6 * hs[1]["middle"])  # a true biconcave T12
    hs[0] = {k: 0.6 * v for k, v in hs[0].items()}
    hs[2] = {k: 0.6 * v for k, v in hs[2].items()}
    assert grade_column(labels, hs, tall_posterior=TALL_POSTERIOR) == grade_column(labels, hs)
    assert grade_column(labels, hs)[1].deformity == "biconcave"
    # A crush measured just under grade 1 is "graded 0": the limit it sets on its neighbour
    # (here below that neighbour's normal reading) lowers only the neighbour's own shape
    # reductions, never the reference the crush is judged against.
    labels = ["T4", "T5"]
    hs = normal_column(labels, hp_at_t12=19.0)
    hs[1] = {k: 0.82 * v for k, v in hs[1].items()}
    plain = grade_column(labels, hs)
    limited = grade_column(labels, hs, tall_posterior=TALL_POSTERIOR)
    assert plain[1].genant_grade == 0 and plain[1].reductions["crush"] == pytest.approx(0.18)
    assert limited[1] == plain[1]
    assert limited[0].genant_grade == 0
    with pytest.raises(ValueError, match="tall_posterior"):
        grade_column(labels, hs, tall_posterior=0.9)


def test_distant_neighbours_are_ignored() -> None:
    flat = normal_body("L4", 10.0)
    # T12 and L4 are 4 levels apart: no crush reference for either.
    grades = grade_column(["T12", "L4"], [normal_body("T12", 23.0), flat])
    assert grades[1].reductions["crush"] == 0.0 and grades[1].genant_grade == 0
    # A missing level in between (a missed or not assessable body) gives no reference either...
    grades = grade_column(["T12", "L2"], [normal_body("T12", 23.0), normal_body("L2", 10.0)])
    assert grades[1].reductions["crush"] == 0.0
    # ...while the adjacent level does.
    grades = grade_column(["L1", "L2"], [normal_body("L1", 24.0), normal_body("L2", 10.0)])
    assert grades[1].deformity == "crush" and grades[1].genant_grade == 3


def test_atlas_gives_no_crush_reference() -> None:
    # C1 has no body: C2 is never judged against it.
    grades = grade_column(["C1", "C2"], [normal_body("C1", 20.0), normal_body("C2", 8.0)])
    assert grades[1].reductions["crush"] == 0.0


def test_custom_normative_is_used() -> None:
    flat = {"center": 1.0, "sd": 0.05, "n": 0, "source": "test"}
    table = {
        "wedge": {lev: flat for lev in LEVELS},
        "concavity": {lev: flat for lev in LEVELS},
        "posterior_step": {lev: flat for lev in LEVELS[2:]},
    }
    custom = Normative.from_dict(table)
    body = heights(0.78 * 20.0, 20.0, 20.0)
    assert grade_column(["T7"], [body], normative=custom)[0].genant_grade == 1  # against Ha/Hp = 1
    assert grade_column(["T7"], [body])[0].genant_grade == 0  # against the real T7 normal
    assert isinstance(custom.wedge["T7"], NormalRange)


def test_fracture_probability_calibration() -> None:
    assert fracture_probability(0.20) == pytest.approx(0.5)
    values = [fracture_probability(r) for r in (0.0, 0.1, 0.2, 0.3, 0.5)]
    assert values == sorted(values) and values[0] < 1e-4 and values[-1] > 1.0 - 1e-4
    assert fracture_probability(0.3, center=0.3, scale=0.1) == pytest.approx(0.5)


def test_patient_probability_is_that_of_the_most_probable_vertebra() -> None:
    assert patient_probability([0.5, 0.5]) == pytest.approx(0.5)
    # Many sub-threshold bodies do not add up to a fractured patient.
    assert patient_probability([0.1] * 15) == pytest.approx(0.1)
    assert patient_probability([0.1, 0.2, 0.3]) == pytest.approx(0.3)
    assert patient_probability([]) == 0.0
    assert patient_probability([1.5, -0.2]) == 1.0  # clipped to [0, 1]


def test_grade_column_validation() -> None:
    assert grade_column([], []) == []
    with pytest.raises(ValueError, match="same length"):
        grade_column(["T1"], [])
    with pytest.raises(ValueError, match="positive"):
        grade_column(["T1"], [heights(0.0, 20.0, 20.0)])
    with pytest.raises(ValueError, match="level names"):
        grade_column(["T13"], [heights(20.0, 20.0, 20.0)])


def test_short_posterior_height_alone_is_not_a_crush() -> None:
    """A crush lowers the whole body: Hp 30 % short with Ha as the neighbours predict is not
    one (on real scans a posterior keypoint off the endplate, or a mis-measured neighbour)."""
    labels = ["T2", "T3", "T4"]
    hs = normal_column(labels, hp_at_t12=23.0)
    ha, hm, hp = hs[1]["anterior"], hs[1]["middle"], hs[1]["posterior"]
    hs[1] = heights(ha, hm, 0.7 * hp)
    g = grade_column(labels, hs)[1]
    assert g.reductions["crush"] == pytest.approx(0.0, abs=1e-9)
    assert g.deformity != "crush"
    # The same body with its anterior height lowered as much is a 30 % (grade 2) crush.
    hs[1] = heights(0.7 * ha, 0.7 * hm, 0.7 * hp)
    g = grade_column(labels, hs)[1]
    assert g.deformity == "crush" and g.genant_grade == 2
    assert g.reduction == pytest.approx(0.30)
