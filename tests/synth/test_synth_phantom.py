"""Phantom geometry and rendering: reproducibility, keypoints on endplates, labels, fractures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from spinevcf.grading import grade_column, heights_from_keypoints
from spinevcf.schema import LEVELS
from spinevcf.synth import SynthConfig, case_uids, sample_phantom, truth_for
from spinevcf.synth.spine import LABEL_DISC, LABEL_OTHER_BONE, Vertebra

NO_FX = SynthConfig(fracture_rate=0.0, subthreshold_rate=0.0)


def _box_affine(center: np.ndarray, half_mm: float, step: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    n = int(round(2 * half_mm / step)) + 1
    aff = np.diag([step, step, step, 1.0])
    aff[:3, 3] = np.asarray(center) - half_mm
    return aff, (n, n, n)


def _midsagittal(ph, vb: Vertebra, step: float = 0.25):
    """Render the body's mid-sagittal plane (u = 0): axis 1 = v (posterior), axis 2 = w (superior)."""
    hv, hw = vb.half_depth + 6.0, vb.max_half_height + 6.0
    nv, nw = int(2 * hv / step) + 1, int(2 * hw / step) + 1
    aff = np.eye(4)
    aff[:3, 0] = vb.rot[:, 0]
    aff[:3, 1] = vb.rot[:, 1] * step
    aff[:3, 2] = vb.rot[:, 2] * step
    aff[:3, 3] = vb.to_global([[0.0, -hv, -hw]])[0]
    img = ph.render(aff, (1, nv, nw))[0]
    return img, aff


def _sample(img: np.ndarray, aff: np.ndarray, pts: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(aff)
    idx = pts @ inv[:3, :3].T + inv[:3, 3]
    return ndimage.map_coordinates(img, idx[:, 1:].T, order=1)


def test_same_seed_same_phantom_and_render() -> None:
    a, b = sample_phantom(7), sample_phantom(7)
    c = a.spine.by_level("L1").center
    aff, shape = _box_affine(c, 60.0, 4.0)
    np.testing.assert_array_equal(a.render(aff, shape), b.render(aff, shape))
    np.testing.assert_array_equal(a.render_labels(aff, shape), b.render_labels(aff, shape))
    for va, vb in zip(a.spine.vertebrae, b.spine.vertebrae, strict=True):
        np.testing.assert_array_equal(va.keypoints(), vb.keypoints())


def test_different_seed_differs() -> None:
    a, b = sample_phantom(1), sample_phantom(2)
    assert not np.allclose(a.spine.by_level("T8").keypoints(), b.spine.by_level("T8").keypoints())


def test_render_any_grid_shapes_and_dtypes() -> None:
    ph = sample_phantom(3)
    aff, shape = _box_affine(ph.spine.by_level("T10").center, 100.0, 4.0)
    hu = ph.render(aff, shape)
    lab = ph.render_labels(aff, shape)
    assert hu.dtype == np.float32 and hu.shape == shape
    assert lab.dtype == np.uint8 and lab.shape == shape
    assert hu.min() >= -1000.0 and hu.max() > 500.0
    assert set(np.unique(lab)) <= set(range(27))
    assert LABEL_DISC in lab and LABEL_OTHER_BONE in lab
    with pytest.raises(ValueError, match="4x4"):
        ph.render(np.eye(3), shape)


@pytest.mark.parametrize("seed", [11, 12])
def test_keypoints_lie_on_rendered_endplates(seed: int) -> None:
    ph = sample_phantom(seed, SynthConfig(fracture_rate=0.3))
    discs_with_gas = {d.upper.level for d in ph.spine.discs if d.vacuum} | {
        d.lower.level for d in ph.spine.discs if d.vacuum
    }
    checked = 0
    for level in ("C5", "T3", "T8", "T12", "L2", "L4"):
        vb = ph.spine.by_level(level)
        img, aff = _midsagittal(ph, vb)
        kp = vb.keypoints()
        for j in range(3):
            top, bot = kp[j], kp[j + 3]
            height = np.linalg.norm(bot - top)
            d = (bot - top) / height  # from the superior keypoint into the body
            inside_cortex = _sample(img, aff, np.array([top + 0.5 * d, bot - 0.5 * d]))
            # The endplate shell is painted at the vertebra's shell HU (partial-volume cortex).
            np.testing.assert_allclose(inside_cortex, vb.shell_hu, atol=1.0, err_msg=f"{level} {j}")
            assert vb.trabecular_hu + 40.0 < vb.shell_hu < vb.cortical_hu
            mid = _sample(img, aff, np.array([top + 0.5 * height * d]))[0]
            assert -100.0 < mid < 500.0, (level, j, mid)  # trabecular (with texture)
            if level not in discs_with_gas:
                outside = _sample(img, aff, np.array([top - 1.0 * d, bot + 1.0 * d]))
                assert np.all((outside > 35.0) & (outside < 135.0)), (level, j, outside)
            checked += 1
    assert checked == 18


def test_truth_grades_equal_grade_column_recomputation() -> None:
    ph = sample_phantom(21, SynthConfig(fracture_rate=0.4))
    aff, shape = _box_affine(ph.spine.by_level("T9").center, 400.0, 10.0)
    truth = truth_for(ph, aff, shape, uids=case_uids(21))
    assert [v.label for v in truth.vertebrae] == list(LEVELS[1:])
    heights = [heights_from_keypoints(v.keypoints) for v in truth.vertebrae]
    grades = grade_column([v.label for v in truth.vertebrae], heights)
    assert [g.genant_grade for g in grades] == [v.genant_grade for v in truth.vertebrae]
    assert [g.deformity for g in grades] == [v.deformity for v in truth.vertebrae]
    assert truth.patient_fractured == any(g.genant_grade >= 1 for g in grades)


def test_normal_spine_has_no_fracture_grades() -> None:
    for seed in range(30, 36):
        ph = sample_phantom(seed, NO_FX)
        aff, shape = _box_affine(ph.spine.by_level("T9").center, 400.0, 10.0)
        truth = truth_for(ph, aff, shape, uids=case_uids(seed))
        assert all(v.genant_grade == 0 for v in truth.vertebrae), [
            (v.label, v.height_reductions_pct) for v in truth.vertebrae if v.genant_grade
        ]
        thoracic_wedge = [
            v.height_reductions_pct["wedge"] for v in truth.vertebrae if v.label in ("T6", "T7", "T8")
        ]
        assert all(0.0 <= w < 12.0 for w in thoracic_wedge)


def test_fracture_types_produce_intended_deformity() -> None:
    hits = {"wedge": [0, 0], "biconcave": [0, 0], "crush": [0, 0]}
    for seed in range(40, 60):
        ph = sample_phantom(seed, SynthConfig(fracture_rate=0.15, subthreshold_rate=0.0))
        aff, shape = _box_affine(ph.spine.by_level("T9").center, 400.0, 10.0)
        truth = truth_for(ph, aff, shape, uids=case_uids(seed))
        by_label = {v.label: v for v in truth.vertebrae}
        for vb in ph.spine.vertebrae:
            if vb.fracture == "none" or vb.level not in by_label:
                continue
            rec = by_label[vb.level]
            hits[vb.fracture][1] += 1
            if rec.deformity == vb.fracture and rec.genant_grade >= 1:
                hits[vb.fracture][0] += 1
                got = rec.height_reductions_pct[vb.fracture] / 100.0
                assert abs(got - vb.target_reduction) < 0.08, (
                    seed,
                    vb.level,
                    vb.fracture,
                    got,
                    vb.target_reduction,
                )
    for kind, (ok, total) in hits.items():
        assert total >= 3, (kind, total)
        assert ok >= 0.75 * total, (kind, ok, total)


def test_ribs_on_thoracic_levels_only() -> None:
    ph = sample_phantom(5, NO_FX)
    for level, expect in (("T6", True), ("T9", True), ("L2", False), ("L3", False)):
        vb = ph.spine.by_level(level)
        c = vb.center
        aff = np.diag([2.0, 2.0, 2.0, 1.0])
        aff[:3, 3] = [c[0] - 200.0, c[1] - 160.0, c[2] - (60.0 if expect else 12.0)]
        shape = (201, 181, 37 if expect else 13)
        lab = ph.render_labels(aff, shape)
        x = aff[0, 3] + 2.0 * np.arange(shape[0])
        lateral = np.abs(x - c[0]) > 75.0
        n_bone = int((lab[lateral] == LABEL_OTHER_BONE).sum())
        assert (n_bone > 20) == expect, (level, n_bone)


def test_body_label_centroid_matches_truth_centre() -> None:
    ph = sample_phantom(8, NO_FX)
    for level in ("C6", "T2", "T7", "T11", "L1", "L5"):
        vb = ph.spine.by_level(level)
        aff, shape = _box_affine(vb.center, 40.0, 0.8)
        lab = ph.render_labels(aff, shape)
        k = LEVELS.index(level) + 1
        idx = np.argwhere(lab == k).mean(axis=0)
        centroid = idx @ aff[:3, :3].T + aff[:3, 3]
        err = np.linalg.norm(centroid - vb.keypoints().mean(axis=0))
        assert err < 1.0, (level, err)
