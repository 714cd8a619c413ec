"""Tests of spinevcf.detector: decoding of the detector outputs and level assignment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spinevcf.detector import Detection, DetectorConfig, assign_levels, decode_detections, preprocess_cpr
from spinevcf.errors import ModelError
from spinevcf.geometry.cpr import CPRImage
from spinevcf.geometry.curve import SpineCurve
from spinevcf.schema import LEVEL_INDEX, LEVELS

STRIDE = 4
KP_SCALE = 32.0
H, W = 160, 128  # input pixels
h, w = H // STRIDE, W // STRIDE


def make_outputs(centres: np.ndarray, keypoints: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    """Hand-made outputs that encode the given vertebrae exactly per the contract."""
    heat = np.zeros((1, 1, h, w), np.float32)
    off = np.zeros((1, 2, h, w), np.float32)
    kps = np.zeros((1, 12, h, w), np.float32)
    logits = np.full((1, 24, h, w), -4.0, np.float32)
    yy, xx = np.indices((h, w))
    for c, k, lab in zip(centres, keypoints, labels, strict=True):
        cell = np.floor(c / STRIDE).astype(int)
        blob = 0.9 * np.exp(-((yy - c[0] / STRIDE) ** 2 + (xx - c[1] / STRIDE) ** 2) / 2.0)
        heat[0, 0] = np.maximum(heat[0, 0], blob)
        heat[0, 0, cell[0], cell[1]] = 0.95  # the peak cell
        off[0, :, cell[0], cell[1]] = c / STRIDE - cell
        kps[0, :, cell[0], cell[1]] = ((k - c) / KP_SCALE).ravel()
        logits[0, LEVEL_INDEX[lab], cell[0], cell[1]] = 3.0
    return {"heatmap": heat, "offset": off, "keypoints": kps, "level_logits": logits}


def add_keypoint_maps(outputs: dict[str, np.ndarray], keypoints: np.ndarray, score: float = 0.8) -> None:
    """Add ``kp_heatmap``/``kp_offset`` outputs with one exact peak per given keypoint."""
    kp_heat = np.zeros((1, 6, h, w), np.float32)
    kp_off = np.zeros((1, 12, h, w), np.float32)
    for kps in keypoints:
        for k, point in enumerate(np.asarray(kps, dtype=np.float64) / STRIDE):
            cell = np.floor(point).astype(int)
            kp_heat[0, k, cell[0], cell[1]] = score
            kp_off[0, 2 * k : 2 * k + 2, cell[0], cell[1]] = point - cell
    outputs["kp_heatmap"] = kp_heat
    outputs["kp_offset"] = kp_off


def vertebra_keypoints(c: np.ndarray, height: float = 18.0, depth: float = 30.0) -> np.ndarray:
    rows = np.array([-1, -1, -1, 1, 1, 1]) * height / 2.0
    cols = np.array([-1, 0, 1, -1, 0, 1]) * depth / 2.0
    return c[None, :] + np.c_[rows, cols]


CENTRES = np.array([[101.0, 58.25], [41.2, 62.6], [70.8, 60.4]])  # deliberately unsorted
LABELS = ["T12", "T10", "T11"]


@pytest.fixture
def cfg() -> DetectorConfig:
    return DetectorConfig(stride=STRIDE, keypoint_scale_px=KP_SCALE, peak_threshold=0.5)


def test_decode_recovers_centres_keypoints_levels(cfg: DetectorConfig) -> None:
    kps = np.stack([vertebra_keypoints(c) for c in CENTRES])
    dets = decode_detections(make_outputs(CENTRES, kps, LABELS), cfg)
    assert len(dets) == 3
    order = np.argsort(CENTRES[:, 0])
    for d, i in zip(dets, order, strict=True):
        np.testing.assert_allclose(d.center_px, CENTRES[i], atol=1e-4)
        np.testing.assert_allclose(d.keypoints_px, kps[i], atol=1e-4)
        assert LEVELS[int(np.argmax(d.level_probs))] == LABELS[i]
        assert d.level_probs.sum() == pytest.approx(1.0)
        assert d.score == pytest.approx(0.95)
        assert d.label is None
    assert [d.center_px[0] for d in dets] == sorted(d.center_px[0] for d in dets)


def test_decode_threshold_topk_and_batchless(cfg: DetectorConfig) -> None:
    kps = np.stack([vertebra_keypoints(c) for c in CENTRES])
    out = make_outputs(CENTRES, kps, LABELS)
    out["heatmap"][0, 0, int(CENTRES[1, 0] // 4), int(CENTRES[1, 1] // 4)] = 0.2  # below 0.5
    out["heatmap"] = np.minimum(out["heatmap"], 0.95)
    cell = (int(CENTRES[1, 0] // 4), int(CENTRES[1, 1] // 4))
    out["heatmap"][0, 0][max(0, cell[0] - 3) : cell[0] + 4, max(0, cell[1] - 3) : cell[1] + 4] = 0.1
    dets = decode_detections({k: v[0] for k, v in out.items()}, cfg)
    assert len(dets) == 2
    one = decode_detections(out, DetectorConfig(keypoint_scale_px=KP_SCALE, max_detections=1))
    assert len(one) == 1


def test_duplicate_peaks_close_in_rows_are_suppressed(cfg: DetectorConfig) -> None:
    c = np.array([[60.0, 40.0], [62.0, 80.0]])  # 2 px apart in rows, far apart in columns
    out = make_outputs(c, np.stack([vertebra_keypoints(x) for x in c]), ["T5", "T5"])
    out["heatmap"][0, 0, 15, 10] = 0.97  # the first one (cell 15, 10) is stronger
    dets = decode_detections(out, cfg)
    assert len(dets) == 1
    np.testing.assert_allclose(dets[0].center_px, c[0], atol=1e-4)


def test_decode_rejects_bad_outputs(cfg: DetectorConfig) -> None:
    out = make_outputs(CENTRES[:1], vertebra_keypoints(CENTRES[0])[None], ["T1"])
    with pytest.raises(ValueError, match="level_logits"):
        decode_detections({k: v for k, v in out.items() if k != "level_logits"}, cfg)
    out["offset"] = out["offset"][:, :, :-1]
    with pytest.raises(ValueError, match="offset"):
        decode_detections(out, cfg)


def test_preprocess_cpr(cfg: DetectorConfig) -> None:
    curve = SpineCurve.from_nodes([[0, 0, 0], [0, 0, -100]])
    img = np.full((2, 100, 60), 5000.0, np.float32)
    img[:, :, 0] = -3000.0
    x = preprocess_cpr(CPRImage(img, curve, 0.0, -30.0, 1.0), cfg)
    assert x.shape == (1, 2, 128, 64) and x.dtype == np.float32
    assert x[0, 0, 0, 1] == pytest.approx(2.0) and x[0, 0, 0, 0] == pytest.approx(-1.0)
    assert x[0, 0, -1, -1] == pytest.approx(-1.0)  # padding at the window's low value


def test_config_from_json(tmp_path: Path) -> None:
    p = tmp_path / "spinevcf.json"
    p.write_text(json.dumps({"keypoint_scale_px": 16, "hu_window": [-1000, 1000], "hu_scale": 1000, "x": 1}))
    cfg = DetectorConfig.from_json(p)
    assert cfg.keypoint_scale_px == 16 and cfg.hu_window == (-1000.0, 1000.0) and cfg.stride == 4
    p.write_text(json.dumps({"hu_window": [-1000, 1000], "hu_scale": 1000}))
    with pytest.raises(ModelError, match="keypoint_scale_px"):
        DetectorConfig.from_json(p)


# ------------------------------------------------------------------ level assignment
def detections_at(rows: np.ndarray, probs: np.ndarray) -> list[Detection]:
    return [
        Detection(0.9, np.array([r, 50.0]), np.zeros((6, 2)), p / p.sum())
        for r, p in zip(rows, probs, strict=True)
    ]


def noisy_probs(true_idx: list[int], rng: np.random.Generator, p_true: float = 0.3) -> np.ndarray:
    """Per detection: the true level gets p_true, the rest is random (often a wrong peak)."""
    probs = rng.dirichlet(np.full(24, 0.3), size=len(true_idx)) * (1.0 - p_true)
    for i, t in enumerate(true_idx):
        probs[i, t] += p_true
    return probs


def test_assign_levels_ordered_and_unique_when_all_agree() -> None:
    p = np.full(24, 0.01)
    p[LEVEL_INDEX["T8"]] = 1.0
    dets = assign_levels(detections_at(np.arange(5) * 25.0, np.tile(p, (5, 1))))
    idx = [LEVEL_INDEX[d.label] for d in dets]
    assert np.all(np.diff(idx) == 1)
    assert "T8" in [d.label for d in dets]


@pytest.mark.parametrize("seed", range(5))
def test_assign_levels_picks_right_offset_from_noisy_probs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = list(range(LEVEL_INDEX["T5"], LEVEL_INDEX["L2"] + 1))
    rows = 20.0 + np.arange(len(true)) * 26.0 + rng.normal(0, 1.0, len(true))
    probs = noisy_probs(true, rng, p_true=0.2)
    assert np.sum(np.argmax(probs, axis=1) != true) >= 1  # per-detection argmax alone fails
    dets = assign_levels(list(reversed(detections_at(rows, probs))))  # input order does not matter
    assert [d.label for d in dets] == [LEVELS[i] for i in true]


def test_assign_levels_handles_one_missing_vertebra() -> None:
    rng = np.random.default_rng(7)
    true = [LEVEL_INDEX[n] for n in ("T6", "T7", "T8", "T10", "T11", "T12", "L1")]  # T9 missed
    rows = np.array([0.0, 25.0, 50.0, 100.0, 125.0, 150.0, 175.0]) + 30.0
    probs = noisy_probs(true, rng, p_true=0.5)
    labels = [d.label for d in assign_levels(detections_at(rows, probs))]
    assert labels == ["T6", "T7", "T8", "T10", "T11", "T12", "L1"]


def test_assign_levels_no_skip_without_a_large_gap() -> None:
    # Probabilities claim a skip (T8 -> T10) but the spacing is regular: no skip allowed.
    names = ["T6", "T7", "T8", "T10", "T11"]
    probs = np.full((5, 24), 0.01)
    for i, n in enumerate(names):
        probs[i, LEVEL_INDEX[n]] = 1.0
    dets = assign_levels(detections_at(np.arange(5) * 25.0, probs))
    idx = [LEVEL_INDEX[d.label] for d in dets]
    assert np.all(np.diff(idx) == 1)


def test_assign_levels_edge_cases() -> None:
    assert assign_levels([]) == []
    p = np.full(24, 0.01)
    p[0] = 1.0
    many = assign_levels(detections_at(np.arange(26) * 20.0, np.tile(p, (26, 1))))
    labels = [d.label for d in many]
    assert labels.count(None) == 2
    assert [lab for lab in labels if lab is not None] == list(LEVELS)


def test_keypoint_maps_move_regressed_points_to_their_peaks(cfg: DetectorConfig) -> None:
    """A crushed body: the centre regression says 18 mm tall, the keypoint maps 11 mm."""
    normal = np.stack([vertebra_keypoints(c) for c in CENTRES])
    crushed = np.stack([vertebra_keypoints(c, height=11.0) for c in CENTRES])
    out = make_outputs(CENTRES, normal, LABELS)
    add_keypoint_maps(out, crushed)
    dets = decode_detections(out, cfg)
    order = np.argsort(CENTRES[:, 0])
    for d, i in zip(dets, order, strict=True):
        np.testing.assert_allclose(d.keypoints_px, crushed[i], atol=1e-4)


def test_keypoint_refinement_needs_a_peak_near_and_strong_enough(cfg: DetectorConfig) -> None:
    kps = np.stack([vertebra_keypoints(c) for c in CENTRES])
    far = kps + np.array([12.0, 0.0])  # 3 cells away: beyond keypoint_search_cells (1)
    out = make_outputs(CENTRES, kps, LABELS)
    add_keypoint_maps(out, far)
    for d, i in zip(decode_detections(out, cfg), np.argsort(CENTRES[:, 0]), strict=True):
        np.testing.assert_allclose(d.keypoints_px, kps[i], atol=1e-4)  # unchanged

    near = kps + np.array([2.4, -1.6])  # within one cell (4 px)
    add_keypoint_maps(out, near, score=0.05)  # below keypoint_peak_threshold (0.1)
    for d, i in zip(decode_detections(out, cfg), np.argsort(CENTRES[:, 0]), strict=True):
        np.testing.assert_allclose(d.keypoints_px, kps[i], atol=1e-4)

    add_keypoint_maps(out, near, score=0.5)
    for d, i in zip(decode_detections(out, cfg), np.argsort(CENTRES[:, 0]), strict=True):
        np.testing.assert_allclose(d.keypoints_px, near[i], atol=1e-4)


def test_keypoint_maps_of_the_wrong_size_are_refused(cfg: DetectorConfig) -> None:
    kps = np.stack([vertebra_keypoints(c) for c in CENTRES])
    out = make_outputs(CENTRES, kps, LABELS)
    add_keypoint_maps(out, kps)
    out["kp_heatmap"] = out["kp_heatmap"][:, :, :-1]
    with pytest.raises(ValueError, match="kp_heatmap"):
        decode_detections(out, cfg)
