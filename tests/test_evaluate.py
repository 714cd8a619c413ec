"""Tests of spinevcf.evaluate and the ``spinevcf evaluate`` command on hand-made folders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from spinevcf.commands import evaluate as evaluate_command
from spinevcf.errors import InputError
from spinevcf.evaluate import evaluate, is_fracture_call, roc_auc, specificity_at_sensitivity, weighted_kappa
from spinevcf.schema import LEVELS, StudyRecord, VertebraRecord

LEVELS_T1_L5 = LEVELS[7:]  # 17 levels
HEIGHT_MM = 20.0  # match radius 10 mm


def vertebra(
    label: str, z: float, grade: int = 0, prob: float | None = None, shift=(0.0, 0.0, 0.0)
) -> VertebraRecord:
    kp = np.array(
        [[x, y, z + dz] for dz in (HEIGHT_MM / 2, -HEIGHT_MM / 2) for x, y in ((0, -15), (0, 0), (0, 15))],
        dtype=float,
    ) + np.asarray(shift)
    return VertebraRecord(
        label=label,
        keypoints_lps_mm=kp.tolist(),
        heights_mm={"anterior": HEIGHT_MM, "middle": HEIGHT_MM, "posterior": HEIGHT_MM},
        genant_grade=grade,
        deformity="none" if grade == 0 else "wedge",
        fracture_probability=prob,
    )


def column(
    grades: dict[str, int] | None = None, probs: dict[str, float] | None = None, *, truth: bool
) -> list[VertebraRecord]:
    grades, probs = grades or {}, probs or {}
    out = []
    for i, lab in enumerate(LEVELS_T1_L5):
        p = None if truth else probs.get(lab, 0.05)
        out.append(vertebra(lab, -25.0 * i, grades.get(lab, 0), p))
    return out


def write(folder: Path, case: str, name: str, rec: StudyRecord) -> None:
    (folder / case).mkdir(parents=True, exist_ok=True)
    (folder / case / name).write_text(rec.to_json())


def study(vertebrae: list[VertebraRecord], **kw) -> StudyRecord:
    return StudyRecord("1.2.3", "1.2.3.4", vertebrae, **kw)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "truth", tmp_path / "results"


def test_perfect_except_one_missed(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    write(tdir, "case1", "truth.json", study(column(truth=True)))
    pred = column(truth=False)
    del pred[5]
    write(rdir, "case1", "results.json", study(pred))
    r = evaluate(tdir, rdir)
    assert r.metrics["recall"] == pytest.approx(16 / 17)
    assert r.metrics["precision"] == 1.0
    assert r.metrics["mean_center_error_mm"] == pytest.approx(0.0, abs=1e-9)
    assert r.metrics["level_accuracy"] == 1.0
    assert r.counts["false_negatives"] == 1 and r.counts["true_positives"] == 16
    assert r.metrics["vertebra_auc"] is None and r.metrics["patient_auc"] is None
    assert any("vertebra AUC undefined" in n for n in r.notes)


def test_shift_mislabel_and_false_positive(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    write(tdir, "case1", "truth.json", study(column(truth=True)))
    pred = column(truth=False)
    pred[2] = vertebra(pred[2].label, -50.0, prob=0.05, shift=(3.0, 4.0, 0.0))  # 5 mm off
    pred[3] = vertebra("L5", -75.0, prob=0.05)  # wrong label, right place
    pred.append(vertebra("L5", -600.0, prob=0.05))  # far below everything: false positive
    pred.append(vertebra("L5", -25.0 * 8 + 12.0, prob=0.05))  # 12 mm from T9 (already matched): FP
    write(rdir, "case1", "results.json", study(pred))
    r = evaluate(tdir, rdir)
    assert r.counts["true_positives"] == 17 and r.counts["false_positives"] == 2
    assert r.metrics["precision"] == pytest.approx(17 / 19)
    assert r.metrics["mean_center_error_mm"] == pytest.approx(5.0 / 17)
    assert r.metrics["mean_keypoint_error_mm"] == pytest.approx(5.0 / 17)
    assert r.metrics["level_accuracy"] == pytest.approx(16 / 17)


def test_prediction_beyond_half_height_is_not_a_match(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    write(tdir, "c", "truth.json", study(column(truth=True)[:3]))
    pred = column(truth=False)[:3]
    pred[1] = vertebra(pred[1].label, -25.0, prob=0.05, shift=(0.0, 0.0, -10.5))  # 10.5 mm > 10 mm
    write(rdir, "c", "results.json", study(pred))
    r = evaluate(tdir, rdir)
    assert r.counts["true_positives"] == 2 and r.counts["false_positives"] == 1


def test_partial_vertebra_is_neither_tp_nor_fp(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    partial = [{"label": "C7", "center_lps_mm": [0.0, 0.0, 25.0]}]
    write(tdir, "c", "truth.json", study(column(truth=True), extra={"partial": partial}))
    pred = [vertebra("C7", 23.0, prob=0.05), *column(truth=False)]
    write(rdir, "c", "results.json", study(pred))
    r = evaluate(tdir, rdir)
    assert r.counts["ignored_partial"] == 1 and r.counts["false_positives"] == 0
    assert r.metrics["precision"] == 1.0 and r.metrics["recall"] == 1.0


def test_fracture_metrics(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    # Case a: T12 grade 2, predicted 0.9; L1 grade 1, missed (counts as probability 0).
    write(tdir, "a", "truth.json", study(column({"T12": 2, "L1": 1}, truth=True), patient_fractured=True))
    pred = column({"T12": 2}, {"T12": 0.9}, truth=False)
    del pred[LEVELS_T1_L5.index("L1")]
    write(rdir, "a", "results.json", study(pred, patient_fractured=True, patient_fracture_probability=0.9))
    # Case b: no fracture; T8 wrongly predicted 0.6 (grade 1).
    write(tdir, "b", "truth.json", study(column(truth=True), patient_fractured=False))
    write(
        rdir,
        "b",
        "results.json",
        study(column({"T8": 1}, {"T8": 0.6}, truth=False), patient_fracture_probability=0.6),
    )
    # Case c: no fracture, results missing altogether.
    write(tdir, "c", "truth.json", study(column(truth=True), patient_fractured=False))
    r = evaluate(tdir, rdir)
    assert r.counts["missing_results"] == 1 and r.counts["studies"] == 3
    # Vertebrae: positives {0.9, 0.0}; 49 negatives = 0.6 once, 0.05 x 31, 0.0 x 17.
    neg = np.r_[0.6, np.full(31, 0.05), np.zeros(17)]
    expected = (np.sum(0.9 > neg) + np.sum(0.0 > neg) + 0.5 * np.sum(0.0 == neg)) / (2 * 49)
    assert r.metrics["vertebra_auc"] == pytest.approx(expected)
    assert r.metrics["vertebra_sensitivity"] == 0.5
    assert r.metrics["vertebra_specificity"] == pytest.approx(48 / 49)
    assert r.metrics["patient_auc"] == 1.0  # 0.9 vs {0.6, 0.0}
    assert r.metrics["patient_sensitivity"] == 1.0 and r.metrics["patient_specificity"] == 0.5
    # Grades of the 33 matched pairs: one 2-2, one 0-1, the rest 0-0.
    t = [2, 0] + [0] * 31
    p = [2, 1] + [0] * 31
    assert r.metrics["grade_kappa_linear"] == pytest.approx(weighted_kappa(t, p))
    assert 0.0 < r.metrics["grade_kappa_linear"] < 1.0


def test_roc_auc_and_kappa_helpers() -> None:
    assert roc_auc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(0.875)
    assert roc_auc([1, 1], [0.2, 0.3]) is None
    assert weighted_kappa([0, 0], [0, 0]) is None
    assert weighted_kappa([], []) is None
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert weighted_kappa(a, b) == pytest.approx(sklearn_metrics.cohen_kappa_score(a, b, weights="linear"))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        evaluate(tmp_path / "nope", tmp_path)
    (tmp_path / "t").mkdir()
    with pytest.raises(InputError, match="no <case>/truth.json"):
        evaluate(tmp_path / "t", tmp_path)
    (tmp_path / "t" / "x").mkdir()
    (tmp_path / "t" / "x" / "truth.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        evaluate(tmp_path / "t", tmp_path)


def test_cli(dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    tdir, rdir = dirs
    write(tdir, "case1", "truth.json", study(column(truth=True)))
    write(rdir, "case1", "results.json", study(column(truth=False)))
    out = tdir.parent / "report.json"
    # The command module alone (spinevcf.cli imports every registered command).
    parser = argparse.ArgumentParser()
    evaluate_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", str(tdir), str(rdir), "--json", str(out)])
    assert args.func(args) == 0
    assert "recall" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["metrics"]["recall"] == 1.0 and data["metrics"]["vertebra_auc"] is None
    assert data["studies"] == [
        {
            "case": "case1",
            "tp": 17,
            "fn": 0,
            "fp": 0,
            "ignored_partial": 0,
            "ignored_unnamed": 0,
            "fracture_calls_on_cut_bodies": 0,
        }
    ]
    assert data["counts"]["fracture_calls_on_cut_bodies"] == 0
    assert "patient_specificity_at_sens90" in data["metrics"]
    args = parser.parse_args(["evaluate", str(tdir / "missing"), str(rdir)])
    with pytest.raises(InputError):
        args.func(args)


def not_assessable(label: str, z: float, shift=(0.0, 0.0, 0.0)) -> VertebraRecord:
    v = vertebra(label, z, shift=shift)
    return VertebraRecord(
        label=label,
        keypoints_lps_mm=v.keypoints_lps_mm,
        heights_mm={},
        genant_grade=None,
        deformity="none",
        assessment="not_assessable",
        assessment_reason="cut by the field of view",
    )


def test_fracture_calls_on_cut_bodies(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    partial = [
        {"label": "C7", "center_lps_mm": [0.0, 0.0, 25.0]},
        {"label": "C6", "center_lps_mm": [0.0, 0.0, 50.0]},
        {"label": "C5", "center_lps_mm": [0.0, 0.0, 75.0]},
    ]
    write(tdir, "c", "truth.json", study(column(truth=True), extra={"partial": partial}))
    pred = [
        vertebra("C7", 25.0, grade=2, prob=0.8),  # a fracture call on a cut body
        not_assessable("C6", 50.0),  # not assessable: fine
        vertebra("C5", 75.0, grade=0, prob=0.1),  # graded 0: fine
        *column(truth=False),
    ]
    write(rdir, "c", "results.json", study(pred))
    r = evaluate(tdir, rdir)
    assert r.counts["ignored_partial"] == 3 and r.counts["false_positives"] == 0
    assert r.counts["fracture_calls_on_cut_bodies"] == 1
    assert r.counts["not_assessable_cut"] == 1 and r.counts["not_assessable_complete"] == 0
    assert r.to_dict()["studies"][0]["fracture_calls_on_cut_bodies"] == 1
    # a probability at the operating threshold with grade 0 is a call too
    pred[2] = vertebra("C5", 75.0, grade=0, prob=0.5)
    write(rdir, "c", "results.json", study(pred))
    assert evaluate(tdir, rdir).counts["fracture_calls_on_cut_bodies"] == 2


def test_unnamed_bodies_are_neither_tp_nor_fp(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    z_below = -25.0 * len(LEVELS_T1_L5)
    unnamed = [{"label": "S1", "center_lps_mm": [0.0, 0.0, z_below], "complete": True}]
    write(tdir, "c", "truth.json", study(column(truth=True), extra={"unnamed": unnamed}))
    pred = [*column(truth=False), vertebra("L5", z_below, grade=1, prob=0.7)]
    write(rdir, "c", "results.json", study(pred))
    r = evaluate(tdir, rdir)
    assert r.counts["ignored_unnamed"] == 1 and r.counts["ignored_partial"] == 0
    assert r.counts["false_positives"] == 0 and r.metrics["precision"] == 1.0
    assert r.counts["fracture_calls_on_cut_bodies"] == 0  # complete: not a cut body
    unnamed[0]["complete"] = False
    write(tdir, "c", "truth.json", study(column(truth=True), extra={"unnamed": unnamed}))
    assert evaluate(tdir, rdir).counts["fracture_calls_on_cut_bodies"] == 1
    # without the unnamed entry the same detection is a false positive
    write(tdir, "c", "truth.json", study(column(truth=True)))
    assert evaluate(tdir, rdir).counts["false_positives"] == 1


def test_not_assessable_complete_bodies(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    write(tdir, "c", "truth.json", study(column({"T12": 2}, truth=True), patient_fractured=True))
    write(tdir, "d", "truth.json", study(column(truth=True), patient_fractured=False))
    pred = column({"T12": 2, "T8": 1}, {"T12": 0.9, "T8": 0.3}, truth=False)
    i12 = LEVELS_T1_L5.index("T12")
    pred[i12] = not_assessable("T12", -25.0 * i12)
    write(rdir, "c", "results.json", study(pred, patient_fracture_probability=0.3))
    write(rdir, "d", "results.json", study(column(truth=False), patient_fracture_probability=0.1))
    r = evaluate(tdir, rdir)
    assert r.counts["not_assessable_complete"] == 1
    assert r.counts["true_positives"] == 34 and r.metrics["recall"] == 1.0  # still detected
    # the missed fracture has probability 0: below every negative but the unmatched zeros
    assert r.metrics["vertebra_sensitivity"] == 0.0
    neg = np.r_[0.3, np.full(32, 0.05)]
    assert r.metrics["vertebra_auc"] == pytest.approx(np.mean(0.0 > neg) + 0.5 * np.mean(0.0 == neg))
    # kappa over the 33 assessed pairs only: one 0-1 disagreement
    expected_kappa = weighted_kappa([0] * 33, [1] + [0] * 32)
    assert expected_kappa is not None
    assert r.metrics["grade_kappa_linear"] == pytest.approx(expected_kappa)
    # patient score: the application's 0.3, not the noisy-OR of the vertebrae
    assert r.metrics["patient_auc"] == 1.0 and r.metrics["patient_sensitivity"] == 0.0


def test_level_accuracy_by_status(dirs: tuple[Path, Path]) -> None:
    tdir, rdir = dirs
    write(tdir, "c", "truth.json", study(column(truth=True)))
    pred = column(truth=False)
    for i, v in enumerate(pred):
        v.level_status = "uncertain" if i < 4 else "confident"
        v.level_confidence = 0.4 if i < 4 else 0.95
    pred[0].label, pred[5].label = "C7", "T4"  # one wrong uncertain, one wrong confident
    write(rdir, "c", "results.json", study(pred))
    r = evaluate(tdir, rdir)
    assert r.metrics["level_accuracy"] == pytest.approx(15 / 17)
    assert r.metrics["level_accuracy_uncertain"] == pytest.approx(3 / 4)
    assert r.metrics["level_accuracy_confident"] == pytest.approx(12 / 13)
    assert r.metrics["uncertain_level_share"] == pytest.approx(4 / 17)


def test_specificity_at_sensitivity_and_fracture_call() -> None:
    y = [True] * 10 + [False] * 10
    p = [0.9] * 8 + [0.6, 0.2] + [0.1] * 7 + [0.5, 0.65, 0.3]
    spec, thr = specificity_at_sensitivity(y, p, 0.9)
    assert thr == 0.6 and spec == pytest.approx(9 / 10)  # 9 of 10 positives >= 0.6; 0.65 is called
    spec, thr = specificity_at_sensitivity(y, p, 1.0)
    assert thr == 0.2 and spec == pytest.approx(7 / 10)
    assert specificity_at_sensitivity([True, True], [0.1, 0.2]) == (None, None)
    assert is_fracture_call(vertebra("T1", 0.0, grade=1, prob=0.2))
    assert is_fracture_call(vertebra("T1", 0.0, grade=0, prob=0.5))
    assert not is_fracture_call(vertebra("T1", 0.0, grade=0, prob=0.49))
    assert not is_fracture_call(not_assessable("T1", 0.0))


@pytest.mark.parametrize(("offset_mm", "ignored"), [(15.0, True), (19.0, True), (23.0, False)])
def test_detection_of_a_cut_body_is_ignored_within_a_body_height(
    dirs: tuple[Path, Path], offset_mm: float, ignored: bool
) -> None:
    """The visible part of a cut body is detected up to a body height (20 mm here, twice the
    10 mm match radius) from the whole body's centre; farther away it is a false positive."""
    tdir, rdir = dirs
    partial = [{"label": "C7", "center_lps_mm": [0.0, 0.0, 25.0]}]
    write(tdir, "c", "truth.json", study(column(truth=True), extra={"partial": partial}))
    cut = vertebra("C7", 25.0 + offset_mm)
    write(rdir, "c", "results.json", study([cut, *column(truth=False)]))
    r = evaluate(tdir, rdir)
    assert r.counts["ignored_partial"] == (1 if ignored else 0)
    assert r.counts["false_positives"] == (0 if ignored else 1)
