"""Tests of spinevcf.grading: heights, Genant thresholds, deformity types, probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.grading import (
    LEVEL_GROWTH_PER_LEVEL,
    fracture_probability,
    genant_grade,
    grade_column,
    heights_from_keypoints,
    patient_probability,
)

NORMAL_MM = 20.0


def heights(a: float = NORMAL_MM, m: float = NORMAL_MM, p: float = NORMAL_MM) -> dict[str, float]:
    return {"anterior": a, "middle": m, "posterior": p}


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


@pytest.mark.parametrize("ha, grade", [(16.02, 0), (16.0, 1), (15.0, 2), (12.0, 3), (12.02, 2)])
def test_genant_thresholds_from_heights(ha: float, grade: int) -> None:
    # 1 - 16/20 is 0.19999999999999996 in floating point: exactly 20 % must still be grade 1.
    g = grade_column(["T8"], [heights(a=ha)])[0]
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


def grade_middle(middle: dict[str, float], labels=("T11", "T12", "L1")):
    hs = [heights() for _ in labels]
    hs[1] = middle
    return grade_column(list(labels), hs)[1]


def test_wedge() -> None:
    g = grade_middle(heights_from_keypoints(keypoints_from_heights(14.0, 18.0, 20.0)))
    assert g.deformity == "wedge"
    assert g.reduction == pytest.approx(0.30)
    assert g.genant_grade == 2


def test_biconcave() -> None:
    g = grade_middle(heights(a=20.0, m=15.0, p=19.0))
    assert g.deformity == "biconcave"
    assert g.reduction == pytest.approx(0.25)
    assert g.genant_grade == 2


def test_crush_judged_against_neighbours() -> None:
    g = grade_middle(heights(11.0, 11.0, 11.0))  # uniformly flattened: own shape is normal
    assert g.reductions["wedge"] == 0.0 and g.reductions["biconcave"] == 0.0
    expected = 1.0 - 11.0 / (NORMAL_MM * (1.0 + LEVEL_GROWTH_PER_LEVEL))  # larger ref: cranial, scaled up
    assert g.reduction == pytest.approx(expected)
    assert g.deformity == "crush" and g.genant_grade == 3
    # The same vertebra alone has no reference: not gradable as a crush.
    assert grade_column(["T12"], [heights(11.0, 11.0, 11.0)])[0].genant_grade == 0


def test_crushed_neighbour_does_not_hide_a_crush() -> None:
    hs = [heights(), heights(12.0, 12.0, 12.0), heights(12.0, 12.0, 12.0)]
    grades = grade_column(["T11", "T12", "L1"], hs)
    # T12: the larger reference (normal T11) is used, not the crushed L1.
    assert grades[1].reduction == pytest.approx(1.0 - 12.0 / (NORMAL_MM * (1.0 + LEVEL_GROWTH_PER_LEVEL)))
    assert grades[1].deformity == "crush" and grades[1].genant_grade == 3
    # L1's only neighbour is crushed too: documented limitation, judged against T12.
    assert grades[2].reductions["crush"] == pytest.approx(
        max(0.0, 1.0 - 1.0 / (1.0 + LEVEL_GROWTH_PER_LEVEL))
    )
    assert grades[2].genant_grade == 0


def test_level_growth_is_not_a_crush() -> None:
    labels = ["T10", "T11", "T12", "L1"]
    hs = [heights(*(3 * [NORMAL_MM * (1.0 + LEVEL_GROWTH_PER_LEVEL) ** i])) for i in range(4)]
    for g in grade_column(labels, hs):
        assert g.reductions["crush"] == pytest.approx(0.0, abs=1e-12)
        assert g.genant_grade == 0 and g.deformity == "none"


def test_distant_neighbours_are_ignored() -> None:
    # T12 and L4 are 4 levels apart: no crush reference for either.
    grades = grade_column(["T12", "L4"], [heights(), heights(10.0, 10.0, 10.0)])
    assert grades[1].reductions["crush"] == 0.0 and grades[1].genant_grade == 0
    # A missing level in between (a missed body) gives no reference either...
    grades = grade_column(["T12", "L2"], [heights(), heights(10.0, 10.0, 10.0)])
    assert grades[1].reductions["crush"] == 0.0
    # ...while the adjacent level does.
    grades = grade_column(["L1", "L2"], [heights(), heights(10.0, 10.0, 10.0)])
    assert grades[1].deformity == "crush" and grades[1].genant_grade == 3


def test_fracture_probability_calibration() -> None:
    assert fracture_probability(0.20) == pytest.approx(0.5)
    values = [fracture_probability(r) for r in (0.0, 0.1, 0.2, 0.3, 0.5)]
    assert values == sorted(values) and values[0] < 1e-4 and values[-1] > 1.0 - 1e-4
    assert fracture_probability(0.3, center=0.3, scale=0.1) == pytest.approx(0.5)


def test_patient_noisy_or() -> None:
    assert patient_probability([0.5, 0.5]) == pytest.approx(0.75)
    assert patient_probability([0.1, 0.2, 0.3]) == pytest.approx(1.0 - 0.9 * 0.8 * 0.7)
    assert patient_probability([]) == 0.0
    assert patient_probability([1.5, -0.2]) == 1.0  # clipped to [0, 1]


def test_grade_column_validation() -> None:
    assert grade_column([], []) == []
    with pytest.raises(ValueError, match="same length"):
        grade_column(["T1"], [])
    with pytest.raises(ValueError, match="positive"):
        grade_column(["T1"], [heights(a=0.0)])
