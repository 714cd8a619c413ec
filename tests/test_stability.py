"""The shift-stability check (spinevcf.stability, issue 13): heights that small shifts of the
CPR do not reproduce are not measured.

Unit tests of the pieces, and the committed models on a synthetic study: every body of a
resolved synthetic column is reproduced (nothing flagged), and a body whose shifted readings
put a keypoint inside it (what the detector does on real 5 mm CT, docs/model-card.md) is
reported not assessable, without a grade, and not used as a neighbour.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spinevcf.pipeline import Pipeline
from spinevcf.stability import (
    MAX_RELATIVE_DEVIATION,
    MAX_UNREPRODUCED,
    SHIFTS_PX,
    match_shifted,
    shift_image,
    unreproduced,
)
from spinevcf.synth import SynthConfig, generate_case
from tests.committed_models import require_committed_models

H = {"anterior": 20.0, "middle": 19.0, "posterior": 21.0}


def test_shift_image_moves_rows_and_columns_and_fills() -> None:
    img = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    out = shift_image(img, 1, -2, fill=-7.0)
    np.testing.assert_array_equal(out[:, 1:, :3], img[:, :3, 2:])
    assert (out[:, 0, :] == -7.0).all() and (out[:, :, 3:] == -7.0).all()
    assert (shift_image(img, 4, 0, fill=0.0) == 0.0).all()


def test_match_shifted_moves_back_and_uses_each_detection_once() -> None:
    centres = np.array([[10.0, 20.0], [40.0, 20.0]])
    kp = np.zeros((6, 2))
    shifted = [
        (np.array([13.5, 20.0]), kp + [3, 0]),
        (np.array([14.0, 20.0]), kp + [9, 9]),
        (np.array([90.0, 20.0]), kp),
    ]
    got = match_shifted(centres, shifted, (3, 0))
    np.testing.assert_array_equal(got[0], kp + [0, 0])  # the nearest one, moved back by the shift
    assert got[1] is None  # nothing within the radius of the second body


@pytest.mark.parametrize(
    ("readings", "want"),
    [
        ([H] * 6, 0),
        ([{**H, "middle": 19.0 - 0.29 * 21.0}] * 6, 0),  # within 30 % of the height (21 mm)
        ([{**H, "middle": 19.0 - 0.31 * 21.0}] * 2 + [H] * 4, 2),
        ([None, H, H, H, H, {**H, "anterior": 30.0}], 2),  # not found counts as not reproduced
    ],
)
def test_unreproduced_counts(readings, want: int) -> None:
    assert unreproduced(H, readings) == want


@pytest.fixture(scope="module")
def detected():
    pipe = Pipeline(require_committed_models())
    case = generate_case(990002, SynthConfig(fov="lumbar", fracture_rate=0.0))
    curve = pipe.localize(case.volume)
    cpr = pipe.reformat(case.volume, curve)
    dets = pipe.detect(cpr, case.volume)
    yield pipe, case.volume, cpr, dets
    pipe.close()


def test_a_resolved_synthetic_column_is_reproduced(detected) -> None:
    pipe, volume, cpr, dets = detected
    assert dets and all(len(d.shifted_keypoints_px) == len(SHIFTS_PX) for d in dets)
    record = pipe.grade(volume, cpr, dets)
    assert not [v.label for v in record.vertebrae if v.assessment_reason == "unstable_measurement"]
    # With the check off, the same findings.
    plain = pipe.grade(volume, cpr, [replace(d, shifted_keypoints_px=()) for d in dets])
    findings = [(v.label, v.genant_grade) for v in record.vertebrae]
    assert [(v.label, v.genant_grade) for v in plain.vertebrae] == findings


def test_a_body_whose_shifted_readings_move_its_endplate_is_not_assessable(detected) -> None:
    pipe, volume, cpr, dets = detected
    before = pipe.grade(volume, cpr, dets)
    assessed = [i for i, v in enumerate(before.vertebrae) if v.assessed]
    i = assessed[len(assessed) // 2]
    d = dets[i]
    kp = np.asarray(d.keypoints_px, dtype=np.float64)
    height_px = float(np.max(kp[3:6, 0] - kp[0:3, 0]))
    inside = kp.copy()
    inside[1, 0] += (MAX_RELATIVE_DEVIATION + 0.1) * height_px  # superior middle keypoint inside the body
    readings = list(d.shifted_keypoints_px)
    for k in range(MAX_UNREPRODUCED):
        readings[k] = inside
    moved = list(dets)
    moved[i] = replace(d, shifted_keypoints_px=tuple(readings))
    after = pipe.grade(volume, cpr, moved)
    v = after.vertebrae[i]
    assert v.assessment == "not_assessable" and v.assessment_reason == "unstable_measurement"
    assert v.genant_grade is None and v.fracture_probability is None
    # One such reading is tolerated.
    readings[0] = d.shifted_keypoints_px[0]
    moved[i] = replace(d, shifted_keypoints_px=tuple(readings))
    assert pipe.grade(volume, cpr, moved).vertebrae[i].assessed
