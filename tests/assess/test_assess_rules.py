"""The assessability rules of spinevcf.assess on a real pipeline run, one rule at a time.

The committed models run on one generated cut scan (``SynthConfig(edge="cut")``); each test
then changes one thing (where the keypoints of the cut body landed, metal in a body, the
reconstruction circle) and checks the verdict and its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from spinevcf.assess import assess_bodies, reconstruction_circle
from spinevcf.evaluate import match_study
from spinevcf.grading import heights_from_keypoints
from spinevcf.pipeline import Pipeline
from spinevcf.schema import StudyRecord, VertebraRecord
from spinevcf.synth import SynthConfig, generate_case
from spinevcf.synth.case import SyntheticCase
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


def test_body_wall_outside_the_reconstruction_circle_is_not_assessable(run) -> None:
    """A scanner that pads outside the circle inscribed in the image imaged nothing there: a
    body whose lateral wall lies beyond the circle is cut, even with its core inside it."""
    case, cpr, dets, record, m = run
    p = [p for _, p in m.pairs][len(m.pairs) // 2]
    vol = case.volume
    centre = cpr.pixel_to_lps(np.atleast_2d(dets[p].center_px))[0]
    k, r, c = np.rint(np.linalg.inv(vol.affine)[:3] @ np.r_[centre, 1.0]).astype(int)
    px = float(np.linalg.norm(vol.affine[:3, 2]))
    # A square crop (160 mm) whose inscribed circle passes 10 mm from the body's centre on a
    # diagonal: the core (6 mm each side) is inside the circle, the wall (about 20 mm out) is
    # not, and the whole body is inside the square (30 mm from its sides).
    half = int(round(80.0 / px))
    off = (80.0 - 10.0) / np.sqrt(2.0) / px
    sr, sc = (1.0 if r < vol.shape[1] / 2 else -1.0), (1.0 if c < vol.shape[2] / 2 else -1.0)
    r0, c0 = int(round(r + sr * off)) - half, int(round(c + sc * off)) - half
    assert r0 >= 0 and c0 >= 0 and r0 + 2 * half <= vol.shape[1] and c0 + 2 * half <= vol.shape[2]
    open_fov = vol.crop((0, r0, c0), (vol.shape[0], r0 + 2 * half, c0 + 2 * half))
    arr = open_fov.array.copy()
    yy, xx = np.ogrid[0 : 2 * half, 0 : 2 * half]
    arr[:, (yy - (half - 0.5)) ** 2 + (xx - (half - 0.5)) ** 2 > half**2] = -2048
    padded = Volume(arr, open_fov.affine, vol.info)
    assert reconstruction_circle(padded) and not reconstruction_circle(open_fov)
    assert assess_bodies(padded, cpr, dets, _heights(cpr, dets))[p].reason == "cut_by_field_of_view"
    assert assess_bodies(open_fov, cpr, dets, _heights(cpr, dets))[p].assessable


#: Seed reserved for this test: a 2.5 mm lumbar scan whose L1 is a grade-3 wedge fracture.
CRUSH_SEED = 995104
#: Seed reserved for this test: a 1 mm lumbar scan whose L2 is a grade-3 crush fracture, with
#: an 8 mm L2-L3 disc (lowest point of L3's superior endplate to highest of L2's inferior).
OPEN_DISC_SEED = 995139


@dataclass(frozen=True)
class _EndScan:
    """A generated lumbar scan, the crushed body to grade and the next body caudal to it."""

    case: SyntheticCase
    body: VertebraRecord
    nxt: VertebraRecord
    spacing: float

    def z(self, pts) -> np.ndarray:
        """Slice index of LPS points."""
        return self.case.volume.lps_to_index(np.asarray(pts, dtype=np.float64))[:, 0]

    def ending_at(self, last: int) -> Volume:
        """The scan up to (and with) slice ``last``."""
        vol = self.case.volume
        return vol.crop((0, 0, 0), (last + 1, vol.shape[1], vol.shape[2]))


def _end_scan(seed: int, body: str, nxt: str) -> _EndScan:
    case = generate_case(seed, SynthConfig(fracture_rate=0.5, fov="lumbar"))
    labels = [v.label for v in case.truth.vertebrae]
    scan = _EndScan(
        case,
        case.truth.vertebrae[labels.index(body)],
        case.truth.vertebrae[labels.index(nxt)],
        float(np.linalg.norm(case.volume.affine[:3, 0])),
    )
    assert scan.body.genant_grade == 3
    assert (
        scan.z(scan.nxt.keypoints_lps_mm).mean() > scan.z(scan.body.keypoints_lps_mm).mean()
    )  # next body higher
    return scan


@pytest.fixture(scope="module")
def crush_scan() -> _EndScan:
    return _end_scan(CRUSH_SEED, "L1", "L2")


def _run(volume: Volume) -> StudyRecord:
    pipe = Pipeline(require_committed_models())
    try:
        return pipe.run(volume).record
    finally:
        pipe.close()


def _assert_graded_and_nothing_beyond(
    scan: _EndScan, record: StudyRecord, in_scan: set[str], seed: int
) -> None:
    """The crushed body is graded (grade 2 or more, patient fractured); nothing past it is."""
    truth = replace(scan.case.truth, vertebrae=[v for v in scan.case.truth.vertebrae if v.label in in_scan])
    m = match_study(truth, record, str(seed))
    found = {truth.vertebrae[t].label: record.vertebrae[p] for t, p in m.pairs}
    body = found[scan.body.label]
    assert body.assessed, body.assessment_reason
    assert (body.genant_grade or 0) >= 2 and record.patient_fractured
    # Whatever is reported of the cut body beyond it is not assessable.
    limit = scan.z([body.center_lps_mm])[0] + 5.0 / scan.spacing
    assert not any(v.assessed for v in record.vertebrae if scan.z([v.center_lps_mm])[0] > limit)


def test_crushed_body_at_the_scan_end_with_its_disc_in_view_is_graded(crush_scan: _EndScan) -> None:
    """A crushed body is shorter than its level's expected extent, so at a scan end that
    extent overhangs the scan even where the scan holds the body, its disc and the next
    body's endplate. The disc in view shows the body is whole: it is graded (before this
    rule it was 'cut by the scan range' and the patient's only fracture was never called)."""
    scan = crush_scan
    # The scan stops 3 mm inside L2 (beyond the whole of its superior endplate).
    last = int(np.floor(scan.z(scan.nxt.keypoints_lps_mm)[0:3].max())) + int(np.ceil(3.0 / scan.spacing))
    record = _run(scan.ending_at(last))
    in_scan = {v.label for v in scan.case.truth.vertebrae} - {"L2"}
    _assert_graded_and_nothing_beyond(scan, record, in_scan, CRUSH_SEED)


def test_short_end_body_with_its_disc_inside_the_scan_is_not_implausible(crush_scan: _EndScan) -> None:
    """The implausible-height test (an end body far too short for its pitch) looks for the
    disc beyond the body over 0.6 of the pitch; where the scan ends within that window, the
    disc and the next body's endplate inside the scan show the body is whole, as they do for
    the extent test. The same scan as above (L1, its disc and 3 mm of L2), with L1's measured
    heights cut to 40 %: before this rule it was 'implausible height'."""
    scan = crush_scan
    last = int(np.floor(scan.z(scan.nxt.keypoints_lps_mm)[0:3].max())) + int(np.ceil(3.0 / scan.spacing))
    cropped = scan.ending_at(last)
    pipe = Pipeline(require_committed_models())
    try:
        curve = pipe.localize(cropped)
        assert curve is not None
        cpr = pipe.reformat(cropped, curve)
        dets = pipe.detect(cpr, cropped)
    finally:
        pipe.close()
    centres = np.array([cpr.pixel_to_lps(np.atleast_2d(d.center_px))[0] for d in dets])
    i = int(np.argmin(np.linalg.norm(centres - np.asarray(scan.body.center_lps_mm), axis=1)))
    heights = _heights(cpr, dets)
    assert assess_bodies(cropped, cpr, dets, heights)[i].assessable
    heights[i] = {k: 0.4 * h for k, h in heights[i].items()}
    assert assess_bodies(cropped, cpr, dets, heights)[i].assessable
    # Without the disc in the scan (the scan ends 1 mm below the body) it stays implausible.
    short = int(np.floor(scan.z(scan.body.keypoints_lps_mm)[3:6].max() + 1.0 / scan.spacing))
    verdict = assess_bodies(scan.ending_at(short), cpr, dets, heights)[i]
    assert verdict.reason in ("implausible_height", "cut_by_scan_range")


def test_crushed_body_whose_scan_ends_inside_the_disc_below_it_is_graded() -> None:
    """The scan ends inside the disc below a crushed body, short of the next body's endplate.
    The body's expected extent overhangs the scan's end, and there is no next endplate to
    close the disc; the soft disc seen over several slices up to the scan's end shows that the
    endplate above it is the body's own, so the body is whole and graded (before this rule it
    was 'cut by the scan range')."""
    scan = _end_scan(OPEN_DISC_SEED, "L2", "L3")
    # The last slice lies 2 mm short of L3's superior endplate (inside the disc), at least
    # 5 mm beyond every point of L2's inferior endplate.
    last = int(np.floor(scan.z(scan.nxt.keypoints_lps_mm)[0:3].min() - 2.0 / scan.spacing))
    assert (last - scan.z(scan.body.keypoints_lps_mm)[3:6].max()) * scan.spacing >= 5.0
    record = _run(scan.ending_at(last))
    in_scan = {v.label for v in scan.case.truth.vertebrae} - {"L3", "L4", "L5"}
    _assert_graded_and_nothing_beyond(scan, record, in_scan, OPEN_DISC_SEED)
