"""Assessability on generated scans that start and stop inside vertebral bodies.

Issue 13: a body cut at the scan edge was measured and called a crush at 3 mm slices and on
real scans. Here a study is generated so that its first and last slice centres fall inside
vertebral bodies (``SynthConfig(edge="cut")``) at 1, 2.5 and 5 mm slices, and run through the
committed models: every detection of a body the scan cuts must be reported as not
assessable (with its reason, no grade, no probability) and the patient probability must not
depend on it.
"""

from __future__ import annotations

import pytest

from spinevcf.evaluate import match_study
from spinevcf.pipeline import Pipeline
from spinevcf.synth import SynthConfig, generate_case
from tests.committed_models import require_committed_models

#: (seed, slice thickness mm): seeds reserved for this test.
CUT_CASES = ((995001, 1.0), (995002, 2.5), (995003, 5.0))


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    pipe = Pipeline(require_committed_models())
    yield pipe
    pipe.close()


@pytest.mark.parametrize(("seed", "thickness"), CUT_CASES)
def test_body_cut_by_the_scan_is_not_assessable(pipeline: Pipeline, seed: int, thickness: float) -> None:
    case = generate_case(seed, SynthConfig(edge="cut", slice_thickness=thickness, fov="thoracic"))
    partial = case.truth.extra["partial"]
    assert partial, "the generated scan must cut at least one body"
    pred = pipeline.run(case.volume).record
    m = match_study(case.truth, pred, str(seed))
    # Detections of cut bodies: reported, but not assessable, with a reason and no finding.
    assert m.ignored, "the cut bodies at the scan ends are detected"
    for p in m.ignored:
        v = pred.vertebrae[p]
        assert v.assessment == "not_assessable", (v.label, v.genant_grade, v.heights_mm)
        assert v.assessment_reason in ("cut_by_scan_range", "outside_reformatted_image", "implausible_height")
        assert v.genant_grade is None and v.fracture_probability is None and v.heights_mm == {}
    # The first and last reported bodies are the ones at the scan ends: never graded when cut.
    assert not any(pred.vertebrae[p].fractured for p in m.ignored)
    # The patient probability is computed over the assessed bodies only.
    from spinevcf.grading import patient_probability

    expected = patient_probability([v.fracture_probability for v in pred.vertebrae if v.assessed])
    assert pred.patient_fracture_probability == pytest.approx(expected, abs=1e-4)
    # Most complete bodies stay assessed (only those whose disc is cut by the scan are not).
    assessed = sum(pred.vertebrae[p].assessed for _, p in m.pairs)
    assert assessed >= len(m.pairs) - 2, f"{assessed} of {len(m.pairs)} complete bodies assessed"
