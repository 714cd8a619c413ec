"""Rib-bearing vertebrae (spinevcf.ribs): finding ribs in CT and anchoring the level names."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spinevcf.detector import Detection
from spinevcf.evaluate import match_study
from spinevcf.geometry.cpr import CPRImage, make_cpr
from spinevcf.geometry.curve import SpineCurve
from spinevcf.pipeline import Pipeline
from spinevcf.ribs import RibEvidence, anchor_levels, find_ribs, is_rib_bearing_level
from spinevcf.schema import LEVELS
from spinevcf.synth import SynthConfig, generate_case
from spinevcf.synth.case import SyntheticCase
from spinevcf.volume import Volume
from tests.committed_models import require_committed_models

#: Seeds reserved for this module (not used in training, calibration or evaluation).
RIB_SEED = 990021
SHIFT_SEED = 990022


def flat_probs() -> np.ndarray:
    return np.full(len(LEVELS), 1.0 / len(LEVELS))


def labelled(labels: list[str]) -> list[Detection]:
    """Detections 25 px apart with the given labels (no image behind them)."""
    return [
        Detection(1.0, np.array([25.0 * i, 0.0]), np.zeros((6, 2)), flat_probs(), label=lab)
        for i, lab in enumerate(labels)
    ]


def evidence(found: list[bool]) -> RibEvidence:
    return RibEvidence([], np.array([2 if f else 0 for f in found]), 25.0 * np.arange(len(found)))


# -- anchoring (no image) -----------------------------------------------------------------
@pytest.mark.parametrize("shift", [-3, -2, -1, 1, 2, 3])
def test_anchor_undoes_a_shift_at_the_thoracolumbar_junction(shift: int) -> None:
    true = ["T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2"]
    named = [LEVELS[LEVELS.index(x) + shift] for x in true]
    out = anchor_levels(labelled(named), evidence([is_rib_bearing_level(x) for x in true]))
    assert [d.label for d in out] == true


def test_anchor_undoes_a_shift_at_the_cervicothoracic_junction() -> None:
    true = ["C5", "C6", "C7", "T1", "T2", "T3", "T4"]
    named = [LEVELS[LEVELS.index(x) + 2] for x in true]
    out = anchor_levels(labelled(named), evidence([is_rib_bearing_level(x) for x in true]))
    assert [d.label for d in out] == true


def test_anchor_keeps_the_names_when_the_ribs_do_not_decide() -> None:
    names = ["T3", "T4", "T5", "T6", "T7", "T8"]  # thoracic throughout: any small shift fits
    dets = labelled(names)
    assert anchor_levels(dets, evidence([True] * 6)) == dets


def test_anchor_keeps_the_gaps_of_the_detector() -> None:
    true = ["T10", "T11", "L1", "L2"]  # T12 missed by the detector
    named = [LEVELS[LEVELS.index(x) - 1] for x in true]
    out = anchor_levels(labelled(named), evidence([True, True, False, False]))
    assert [d.label for d in out] == true


def test_anchor_one_missed_mid_thoracic_rib_does_not_move_the_names() -> None:
    names = ["T8", "T9", "T10", "T11", "T12", "L1", "L2"]
    found = [True, True, False, True, True, False, False]
    assert [d.label for d in anchor_levels(labelled(names), evidence(found))] == names


def test_anchor_one_sided_false_rib_below_t12_does_not_move_the_names() -> None:
    # e.g. a contrast-filled renal pelvis on one side at L1 taken for a rib
    names = ["T9", "T10", "T11", "T12", "L1", "L2", "L3"]
    ev = RibEvidence([], np.array([2, 2, 2, 2, 1, 0, 0]), 25.0 * np.arange(7))
    assert [d.label for d in anchor_levels(labelled(names), ev)] == names


def test_anchor_two_lumbar_named_bodies_with_ribs_on_both_sides_move_the_names() -> None:
    names = ["T11", "T12", "L1", "L2", "L3", "L4"]  # the detector counted two too low
    ev = RibEvidence([], np.array([2, 2, 2, 2, 0, 0]), 25.0 * np.arange(6))
    assert [d.label for d in anchor_levels(labelled(names), ev)] == ["T9", "T10", "T11", "T12", "L1", "L2"]


def test_anchor_a_missed_twelfth_rib_reads_as_l1() -> None:
    # The documented limitation: a 12th rib too short to find (or 11 rib pairs) makes T12
    # look like L1, and the names move by one, as a reader counting ribs would move them.
    names = ["T9", "T10", "T11", "T12", "L1", "L2"]
    found = [True, True, True, False, False, False]
    out = anchor_levels(labelled(names), evidence(found))
    assert [d.label for d in out] == ["T10", "T11", "T12", "L1", "L2", "L3"]


def test_anchor_ignores_bodies_whose_ribs_are_outside_the_scan() -> None:
    names = ["T2", "T3", "T4", "T5", "T6"]  # the top body is cut by the scan: no ribs seen
    ev = evidence([False, True, True, True, True])
    assert [d.label for d in anchor_levels(labelled(names), ev)] == ["C7", "T1", "T2", "T3", "T4"]
    unseen = RibEvidence([], ev.sides, ev.body_s_mm, np.array([False, True, True, True, True]))
    assert [d.label for d in anchor_levels(labelled(names), unseen)] == names


def test_anchor_lumbar_column_without_ribs_leaves_the_thoracic_names() -> None:
    out = anchor_levels(labelled(["T11", "T12", "L1", "L2", "L3"]), evidence([False] * 5))
    assert [d.label for d in out] == ["L1", "L2", "L3", "L4", "L5"]


def test_anchor_shifts_at_most_max_shift_and_stays_in_the_table() -> None:
    # Ribs on every body of a column named L1-L5: T8-T12 would need a shift of 5.
    out = anchor_levels(labelled(["L1", "L2", "L3", "L4", "L5"]), evidence([True] * 5))
    assert [d.label for d in out] == ["T9", "T10", "T11", "T12", "L1"]
    out = anchor_levels(labelled(["C1", "C2", "C3"]), evidence([False] * 3))
    assert [d.label for d in out] == ["C1", "C2", "C3"]


def test_anchor_leaves_unlabelled_detections_alone() -> None:
    dets = labelled(["T11", "T12", "L1"])
    dets.append(replace(dets[-1], center_px=np.array([75.0, 0.0]), label=None))
    out = anchor_levels(dets, evidence([True, False, False, False]))
    assert [d.label for d in out] == ["T12", "L1", "L2", None]


def test_anchor_rejects_mismatched_evidence() -> None:
    with pytest.raises(ValueError, match="rib evidence"):
        anchor_levels(labelled(["T1", "T2"]), evidence([True]))


# -- finding ribs in a generated CT --------------------------------------------------------
def truth_detections(case: SyntheticCase) -> tuple[CPRImage, list[Detection]]:
    """A CPR along the true body centres and detections at the true keypoints."""
    verts = case.truth.vertebrae
    curve = SpineCurve.fit(np.stack([v.center for v in verts]))
    cpr = make_cpr(case.volume, curve)
    dets = []
    for v in verts:
        kp = cpr.lps_to_pixel(v.keypoints)
        dets.append(Detection(1.0, kp.mean(axis=0), kp, flat_probs(), label=v.label))
    return cpr, dets


@pytest.fixture(scope="module")
def thoracolumbar() -> SyntheticCase:
    return generate_case(RIB_SEED, SynthConfig(fov="thoracolumbar"))


def test_find_ribs_marks_exactly_the_thoracic_bodies(thoracolumbar: SyntheticCase) -> None:
    cpr, dets = truth_detections(thoracolumbar)
    ev = find_ribs(thoracolumbar.volume, cpr, dets)
    labels = [d.label or "" for d in dets]
    assert any(is_rib_bearing_level(x) for x in labels) and not all(is_rib_bearing_level(x) for x in labels)
    # T1's rib may merge with the clavicle and go unfound (P_SIDES_LEVEL); every other body
    # whose rib region is in the scan must be marked as its level says.
    assert ev.observed[len(labels) // 2]
    checked = [
        (lab, bool(f))
        for lab, f, seen in zip(labels, ev.rib_bearing, ev.observed, strict=True)
        if lab != "T1" and seen
    ]
    assert len(checked) >= len(labels) - 3
    assert checked == [(lab, is_rib_bearing_level(lab)) for lab, _ in checked]
    assert all(r.reach_mm >= 70.0 and r.root_height_mm <= 26.0 for r in ev.ribs)
    # both sides for the mid-thoracic bodies
    mid = [s for lab, s in zip(labels, ev.sides, strict=True) if lab in ("T4", "T5", "T6", "T7", "T8", "T9")]
    assert mid and sum(s == 2 for s in mid) >= len(mid) - 1


def test_find_ribs_without_detections() -> None:
    vol = Volume(np.full((8, 8, 8), -1000, np.int16), np.eye(4))
    cpr = make_cpr(vol, SpineCurve.from_nodes([[4, 4, 6], [4, 4, 1]]), u_range_mm=(-4, 4), pad_to=4)
    ev = find_ribs(vol, cpr, [])
    assert ev.ribs == [] and ev.sides.shape == (0,)


def _phantom_column(tubes: list[tuple[float, float, float]]) -> Volume:
    """A bony column along z with horizontal tubes (z, y of their axis, length) on both sides.

    1 mm voxels, LPS axes; the column's centre is at x = y = 0.
    """
    n = 160
    z, y, x = np.ogrid[:n, :n, :n]
    z, y, x = z - n / 2.0, y - n / 2.0, x - n / 2.0
    hu = np.full((n, n, n), 40, np.int16)
    hu[np.broadcast_to((x**2 + y**2) <= 15.0**2, hu.shape)] = 400
    for zc, yc, length in tubes:
        tube = ((z - zc) ** 2 + (y - yc) ** 2 <= 4.0**2) & (np.abs(x) <= length)
        hu[tube] = 600
    aff = np.array([[0, 0, 1, -n / 2], [0, 1, 0, -n / 2], [1, 0, 0, -n / 2], [0, 0, 0, 1]], dtype=float)
    return Volume(hu, aff)


def _four_bodies(vol: Volume) -> tuple[CPRImage, list[Detection]]:
    """The CPR of :func:`_phantom_column` and four unlabelled bodies at z 45, 15, -15, -45."""
    curve = SpineCurve.from_nodes([[0, 0, 75], [0, 0, -75]])
    cpr = make_cpr(vol, curve)
    dets = []
    for zc in (45.0, 15.0, -15.0, -45.0):
        kp_lps = np.array([[0, y, zc + dz] for dz in (8.0, -8.0) for y in (-14.0, 0.0, 14.0)])
        kp = cpr.lps_to_pixel(kp_lps)
        dets.append(Detection(1.0, kp.mean(axis=0), kp, flat_probs(), label=None))
    return cpr, dets


def test_find_ribs_needs_reach_thinness_and_a_posterior_root() -> None:
    # z of four bodies: 45, 15, -15, -45 (cranial first). Tubes:
    # at 45, posterior and long: a rib; at 15, posterior but short: a transverse process;
    # at -15, long but in front of the body: a vessel leaving the aorta; at -45: nothing.
    vol = _phantom_column([(45.0, 20.0, 78.0), (15.0, 20.0, 55.0), (-15.0, -20.0, 78.0)])
    cpr, dets = _four_bodies(vol)
    ev = find_ribs(vol, cpr, dets)
    assert ev.sides.tolist() == [2, 0, 0, 0]
    assert {r.side for r in ev.ribs} == {1, -1} and all(r.vertebra == 0 for r in ev.ribs)


def _add_bone(vol: Volume, mask_of_xyz: object) -> None:
    """Set the voxels where ``mask_of_xyz(x, y, z)`` (LPS mm, the phantom's grid) holds to bone."""
    n = vol.array.shape[0]
    z, y, x = np.ogrid[:n, :n, :n]
    mask = mask_of_xyz(x - n / 2.0, y - n / 2.0, z - n / 2.0)  # type: ignore[operator]
    vol.array[np.broadcast_to(mask, vol.array.shape)] = 600


def test_find_ribs_counts_ribs_that_touch_next_to_the_column() -> None:
    # Three ribs whose roots a thin bony bridge joins next to the column (as neighbouring
    # ribs blurred together by thick slices, or broad rib necks): one root piece 70 mm tall
    # in the root band, split at the valleys of its profile into a rib per body.
    vol = _phantom_column([(45.0, 20.0, 78.0), (15.0, 20.0, 78.0), (-15.0, 20.0, 78.0)])
    _add_bone(
        vol,
        lambda x, y, z: ((np.abs(x) - 44.0) ** 2 + (y - 20.0) ** 2 <= 1.5**2) & (np.abs(z - 15.0) <= 30.0),
    )
    cpr, dets = _four_bodies(vol)
    ev = find_ribs(vol, cpr, dets)
    assert ev.sides.tolist() == [2, 2, 2, 0]
    assert sorted(r.vertebra for r in ev.ribs) == [0, 0, 1, 1, 2, 2]
    assert all(r.root_height_mm <= 26.0 for r in ev.ribs)


def test_find_ribs_does_not_split_a_tall_bone_without_valleys_into_ribs() -> None:
    # A tall bony plate next to the posterior column that reaches far out (a scapula, an
    # iliac wing, a kidney bright with contrast): its root profile has no valley, so it is
    # no rib, as before the split.
    vol = _phantom_column([])
    _add_bone(
        vol,
        lambda x, y, z: (
            (np.abs(x) >= 38.0) & (np.abs(x) <= 90.0) & (np.abs(y - 20.0) <= 4.0) & (np.abs(z) <= 35.0)
        ),
    )
    cpr, dets = _four_bodies(vol)
    ev = find_ribs(vol, cpr, dets)
    assert ev.ribs == [] and ev.sides.tolist() == [0, 0, 0, 0]


# -- in the pipeline -----------------------------------------------------------------------
class ShiftedLevels:
    """A backend whose detector names every body ``shift`` levels more caudal (no wrap)."""

    def __init__(self, inner: object, shift: int) -> None:
        self.inner, self.shift = inner, shift

    def infer(self, model_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(self.inner.infer(model_name, inputs))  # type: ignore[attr-defined]
        if "level_logits" in out:
            logits = out["level_logits"]
            shifted = np.full_like(logits, logits.min() - 20.0)
            k = self.shift
            if k >= 0:
                shifted[:, k:] = logits[:, : logits.shape[1] - k]
            else:
                shifted[:, :k] = logits[:, -k:]
            out["level_logits"] = shifted
        return out

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


def test_pipeline_anchor_corrects_a_detector_that_counts_wrong() -> None:
    repo = require_committed_models()
    case = generate_case(SHIFT_SEED, SynthConfig(fov="thoracolumbar", metal_rate=0.0))  # no screws
    base = Pipeline(repo)
    try:
        accuracy = {}
        for anchor in (False, True):
            pipe = Pipeline(repo, backend=ShiftedLevels(base.backend, -2), rib_anchor=anchor)
            rec = pipe.run(case.volume).record
            m = match_study(case.truth, rec)
            assert len(m.pairs) >= 0.9 * len(case.truth.vertebrae)
            ok = [case.truth.vertebrae[t].label == rec.vertebrae[p].label for t, p in m.pairs]
            accuracy[anchor] = float(np.mean(ok))
    finally:
        base.close()
    assert accuracy[False] <= 0.1  # the wrapped detector names every body two levels too high
    assert accuracy[True] >= 0.95


def test_find_ribs_does_not_use_bodies_next_to_metal() -> None:
    # Study 990022 carries pedicle screws and rods (T11-L2); their streaks pass the bone
    # test in the rib region, so those bodies give no evidence.
    case = generate_case(SHIFT_SEED, SynthConfig(fov="thoracolumbar"))
    assert case.truth.extra["patient"]["implants"]
    cpr, dets = truth_detections(case)
    ev = find_ribs(case.volume, cpr, dets)
    unseen = {d.label for d, seen in zip(dets, ev.observed, strict=True) if not seen}
    assert {"T12", "L1"} <= unseen
    assert {"T5", "T6", "L4", "L5"}.isdisjoint(unseen)
    clean = generate_case(SHIFT_SEED, SynthConfig(fov="thoracolumbar", metal_rate=0.0))
    cpr, dets = truth_detections(clean)
    ev = find_ribs(clean.volume, cpr, dets)
    assert {"T12", "L1"}.isdisjoint({d.label for d, seen in zip(dets, ev.observed, strict=True) if not seen})
