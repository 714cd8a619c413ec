"""Golden regression test: the committed ONNX models on fresh generated studies vs their truth.

The studies come from seeds reserved for this test (never used in training or in the
evaluation set of docs/model-card.md). The bounds are per-study regression guards, looser
than the model card's 50-study targets, which `spinevcf evaluate` measures.
"""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.evaluate import match_study
from spinevcf.pipeline import Pipeline
from spinevcf.schema import LEVEL_INDEX, StudyRecord
from spinevcf.synth import SynthConfig, generate_case
from tests.committed_models import require_committed_models

#: Seeds reserved for this test.
GOLDEN_CASES = ((990001, "thoracolumbar"), (990002, "lumbar"), (990003, "thoracic"))
#: Fracture rate of the golden studies (about twice the generator default).
GOLDEN_FRACTURE_RATE = 0.12
MIN_RECALL = 0.9
MIN_PRECISION = 0.9
MAX_MEAN_CENTRE_ERROR_MM = 2.0
MAX_MEAN_KEYPOINT_ERROR_MM = 2.0
MIN_LEVEL_ACCURACY = 0.8
MAX_MEAN_HEIGHT_ERROR_MM = 1.5
#: Largest error of any one height of a vertebra that is normal or mildly deformed (grade <= 1).
MAX_HEIGHT_ERROR_MM = 5.0
#: Moderate and severe fractures (grade >= 2) of the golden studies, pooled: the share that
#: must be graded >= 1. The committed model misses one of the four: T3 of study 990001, a
#: 54 % anterior wedge of a faint osteoporotic upper-thoracic body, measured as normal
#: (docs/model-card.md, known limitations); its heights are therefore not bounded per
#: vertebra (the mean height error of the study still is).
MIN_SEVERE_FRACTURES_FOUND = 0.7
#: Share of the matched complete bodies that must be assessed (the rest lie next to a scan end,
#: where a disc is cut: not assessable by design).
MIN_ASSESSED = 0.8


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    pipe = Pipeline(require_committed_models())
    yield pipe
    pipe.close()


@pytest.fixture(scope="module")
def golden_runs(pipeline: Pipeline) -> dict[int, tuple[StudyRecord, StudyRecord]]:
    """(truth, prediction) of each golden study, computed once."""
    runs = {}
    for seed, fov in GOLDEN_CASES:
        case = generate_case(seed, SynthConfig(fracture_rate=GOLDEN_FRACTURE_RATE, fov=fov))
        runs[seed] = (case.truth, pipeline.run(case.volume).record)
    return runs


@pytest.mark.parametrize(("seed", "fov"), GOLDEN_CASES)
def test_golden_study(golden_runs: dict[int, tuple[StudyRecord, StudyRecord]], seed: int, fov: str) -> None:
    truth, pred = golden_runs[seed]
    assert pred.status == "ok"
    # Ordered cranial to caudal, unique, consecutive-or-gapped levels.
    idx = [LEVEL_INDEX[v.label] for v in pred.vertebrae]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    m = match_study(truth, pred, str(seed))
    n_true, n_pred = len(truth.vertebrae), len(pred.vertebrae)
    assert n_true > 0
    recall = len(m.pairs) / n_true
    precision = len(m.pairs) / max(1, n_pred - len(m.ignored))
    assert recall >= MIN_RECALL, f"recall {recall:.2f}"
    assert precision >= MIN_PRECISION, f"precision {precision:.2f}"
    ce = [np.linalg.norm(truth.vertebrae[t].center - pred.vertebrae[p].center) for t, p in m.pairs]
    ke = [
        np.linalg.norm(truth.vertebrae[t].keypoints - pred.vertebrae[p].keypoints, axis=1).mean()
        for t, p in m.pairs
    ]
    assert np.mean(ce) <= MAX_MEAN_CENTRE_ERROR_MM, f"centre error {np.mean(ce):.2f} mm"
    assert np.mean(ke) <= MAX_MEAN_KEYPOINT_ERROR_MM, f"keypoint error {np.mean(ke):.2f} mm"
    lev = np.mean([truth.vertebrae[t].label == pred.vertebrae[p].label for t, p in m.pairs])
    assert lev >= MIN_LEVEL_ACCURACY, f"level accuracy {lev:.2f}"
    # A body the scan holds whole, far from the scan's ends, is assessed; one that is not
    # assessable is reported with its reason and no grade (spinevcf.assess).
    assessed = [(t, p) for t, p in m.pairs if pred.vertebrae[p].assessed]
    assert len(assessed) >= MIN_ASSESSED * len(m.pairs), f"{len(m.pairs) - len(assessed)} not assessable"
    for _, p in m.pairs:
        if not pred.vertebrae[p].assessed:
            assert pred.vertebrae[p].genant_grade is None and pred.vertebrae[p].assessment_reason
    # No fracture is called on a body cut by the scan.
    assert not any(pred.vertebrae[p].fractured for p in m.ignored)
    herr = []
    for t, p in assessed:
        th, ph = truth.vertebrae[t].heights_mm, pred.vertebrae[p].heights_mm
        for k in ("anterior", "middle", "posterior"):
            herr.append(abs(th[k] - ph[k]))
            if truth.vertebrae[t].genant_grade <= 1:
                assert herr[-1] <= MAX_HEIGHT_ERROR_MM, f"{truth.vertebrae[t].label} {k}"
        # A normal vertebra must not be graded moderate or severe.
        if truth.vertebrae[t].genant_grade == 0:
            assert (pred.vertebrae[p].genant_grade or 0) <= 1, truth.vertebrae[t].label
    assert np.mean(herr) <= MAX_MEAN_HEIGHT_ERROR_MM, f"mean height error {np.mean(herr):.2f} mm"


def test_golden_moderate_and_severe_fractures(
    golden_runs: dict[int, tuple[StudyRecord, StudyRecord]],
) -> None:
    found = total = 0
    for seed, (truth, pred) in golden_runs.items():
        for t, p in match_study(truth, pred, str(seed)).pairs:
            if truth.vertebrae[t].genant_grade >= 2:
                total += 1
                found += pred.vertebrae[p].fractured
    assert total >= 3  # the golden studies hold fractures to find
    assert found / total >= MIN_SEVERE_FRACTURES_FOUND, f"{found} of {total} moderate/severe fractures found"


def test_no_spine_volume(pipeline: Pipeline) -> None:
    """A water cylinder (no bone) gives a valid 'no spine' record, not a crash."""
    from spinevcf.volume import SeriesInfo, Volume

    z, y, x = np.mgrid[0:40, 0:96, 0:96]
    arr = np.where((y - 48) ** 2 + (x - 48) ** 2 < 40**2, 0, -1000).astype(np.int16)
    aff = np.array([[0, 0, 3.0, -144], [0, 3.0, 0, -144], [-5.0, 0, 0, 0], [0, 0, 0, 1]])
    rec = pipeline.run(
        Volume(arr, aff, SeriesInfo(study_instance_uid="1.2.3", series_instance_uid="1.2.3.4"))
    ).record
    assert rec.status == "no_spine"
    assert rec.vertebrae == []
    assert rec.patient_fracture_probability == 0.0
