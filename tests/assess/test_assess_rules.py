"""The assessability rules of spinevcf.assess on a real pipeline run, one rule at a time.

The committed models run on one generated cut scan (``SynthConfig(edge="cut")``); each test
then changes one thing (where the keypoints of the cut body landed, metal in a body, the
reconstruction circle) and checks the verdict and its reason.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spinevcf.assess import assess_bodies
from spinevcf.evaluate import match_study
from spinevcf.grading import heights_from_keypoints
from spinevcf.pipeline import Pipeline
from spinevcf.synth import SynthConfig, generate_case
from spinevcf.volume import Volume
from tests.committed_models import require_committed_models

#: Seed reserved for this test: a 3 mm thoracic scan whose ends cut vertebral bodies.
SEED = 995004
THICKNESS_MM = 3.0


@pytest.fixture(scope="module")
def run():
    pipe = Pipeline(require_committed_models())
    case = generate_case(SEED, SynthConfig(edge="cut", slice_thickness=THICKNESS_MM, fov="thoracic"))
    curve = pipe.localize(case.volume)
    assert curve is not None
    cpr = pipe.reformat(case.volume, curve)
    dets = pipe.detect(cpr, case.volume)
    record = pipe.grade(case.volume, cpr, dets)
    pipe.close()
    m = match_study(case.truth, record, str(SEED))
    return case, cpr, dets, record, m


def _heights(pipe_cpr, dets):
    return [heights_from_keypoints(pipe_cpr.pixel_to_lps(np.asarray(d.keypoints_px))) for d in dets]


def test_complete_bodies_away_from_the_ends_are_assessed(run) -> None:
    case, cpr, dets, record, m = run
    verdicts = assess_bodies(case.volume, cpr, dets, _heights(cpr, dets))
    inner = [p for _, p in m.pairs][1:-1]  # complete bodies with a complete body on both sides
    assert inner
    assert all(verdicts[p].assessable for p in inner), [(dets[p].label, verdicts[p].reason) for p in inner]


def test_cut_body_with_keypoints_inside_the_scan_is_not_assessable(run) -> None:
    """The real-scan failure: the detector puts a cut body's endplate on an inner band, a few mm
    inside the last slice. Its expected extent (from the neighbours' pitch) still crosses the
    scan's end, so it is not assessable whatever its keypoints say."""
    case, cpr, dets, record, m = run
    vol = case.volume
    inv = np.linalg.inv(vol.affine)
    assert m.ignored
    for p in m.ignored:
        det = dets[p]
        kp = np.asarray(det.keypoints_px, dtype=np.float64)
        toward_centre = 1.0 if det.center_px[0] < np.mean([d.center_px[0] for d in dets]) else -1.0
        # Each keypoint beyond 4 mm of the scan's end moves along the column until it is 4 mm
        # inside: the cut endplate now sits on an inner band; the other endplate stays.
        for i in range(len(kp)):
            for _ in range(400):
                z = (cpr.pixel_to_lps(kp[i : i + 1]) @ inv[:3, :3].T + inv[:3, 3])[0, 0]
                if min(z, vol.shape[0] - 1 - z) * THICKNESS_MM >= 4.0:
                    break
                kp[i, 0] += 0.25 * toward_centre
        z = (cpr.pixel_to_lps(kp) @ inv[:3, :3].T + inv[:3, 3])[:, 0]
        assert (np.minimum(z, vol.shape[0] - 1 - z) * THICKNESS_MM >= 4.0 - 1e-6).all()
        moved = [
            replace(d, keypoints_px=kp, center_px=kp.mean(axis=0)) if i == p else d
            for i, d in enumerate(dets)
        ]
        verdict = assess_bodies(vol, cpr, moved, _heights(cpr, moved))[p]
        assert not verdict.assessable and verdict.reason == "cut_by_scan_range", (det.label, verdict)


def test_metal_in_a_body_makes_it_not_assessable(run) -> None:
    case, cpr, dets, record, m = run
    p = [p for _, p in m.pairs][len(m.pairs) // 2]
    arr = case.volume.array.copy()
    centre = cpr.pixel_to_lps(np.atleast_2d(dets[p].center_px))[0]
    k, r, c = np.rint(np.linalg.inv(case.volume.affine)[:3] @ np.r_[centre, 1.0]).astype(int)
    arr[k - 1 : k + 2, r - 3 : r + 3, c - 3 : c + 3] = 3071  # a screw tip in the body
    vol = Volume(arr, case.volume.affine, case.volume.info)
    verdicts = assess_bodies(vol, cpr, dets, _heights(cpr, dets))
    assert verdicts[p].reason == "next_to_metal"
    others = [q for _, q in m.pairs if abs(q - p) > 1][1:-1]
    assert all(verdicts[q].assessable for q in others)


def test_body_outside_the_reconstruction_circle_is_not_assessable(run) -> None:
    case, cpr, dets, record, m = run
    p = [p for _, p in m.pairs][len(m.pairs) // 2]
    arr = case.volume.array.copy()
    centre = cpr.pixel_to_lps(np.atleast_2d(dets[p].center_px))[0]
    _, r, _ = np.rint(np.linalg.inv(case.volume.affine)[:3] @ np.r_[centre, 1.0]).astype(int)
    arr[:, r:, :] = -2048  # a targeted reconstruction whose circle cuts through the body
    vol = Volume(arr, case.volume.affine, case.volume.info)
    verdict = assess_bodies(vol, cpr, dets, _heights(cpr, dets))[p]
    assert verdict.reason == "cut_by_field_of_view"


def test_not_assessable_bodies_are_reported_without_findings(run) -> None:
    case, cpr, dets, record, m = run
    assert len(record.vertebrae) == len(dets)
    cut = [v for v in record.vertebrae if not v.assessed]
    assert cut
    for v in cut:
        assert v.genant_grade is None and v.fracture_probability is None and v.heights_mm == {}
        assert v.assessment_reason
    d = record.to_dict()["vertebrae"]
    assert any(x["assessment"] == "not_assessable" and x["genant_grade"] is None for x in d)
