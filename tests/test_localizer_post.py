"""Tests of spinevcf.localizer: config, preprocessing and the curve from the probability map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from spinevcf.errors import ModelError
from spinevcf.geometry.curve import SpineCurve
from spinevcf.localizer import LocalizerConfig, curve_from_probability, preprocess
from spinevcf.volume import Volume

SPACING_MM = 4.0
GRID_SHAPE = (100, 40, 50)
TUBE_RADIUS_MM = 14.0


def grid_affine() -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = np.c_[[0, 0, -SPACING_MM], [0, SPACING_MM, 0], [SPACING_MM, 0, 0]]
    aff[:3, 3] = [-100.0, -80.0, 200.0]
    return aff


def true_curve() -> SpineCurve:
    """S-shaped scoliotic column (two opposite lateral bends) with a sagittal curve."""
    z = np.linspace(180.0, -180.0, 400)
    x = 18.0 * np.sin((z - 180.0) / 360.0 * 2.0 * np.pi)
    y = 5.0 * np.cos(z / 200.0)
    return SpineCurve.from_nodes(np.c_[x, y, z])


def tube_probability(curve: SpineCurve, aff: np.ndarray) -> np.ndarray:
    dense = curve.position(np.linspace(0.0, curve.length, 4000))
    idx = np.indices(GRID_SHAPE).reshape(3, -1).T
    lps = idx @ aff[:3, :3].T + aff[:3, 3]
    dist, _ = cKDTree(dense).query(lps)
    within = (lps[:, 2] <= 180.0) & (lps[:, 2] >= -180.0)
    prob = within / (1.0 + np.exp(-(TUBE_RADIUS_MM - dist) / 2.0))
    return prob.reshape(GRID_SHAPE).astype(np.float32)


def test_fitted_curve_within_1mm_of_truth() -> None:
    aff, truth = grid_affine(), true_curve()
    prob = tube_probability(truth, aff)
    curve = curve_from_probability(prob, aff, LocalizerConfig(extend_mm=0.0))
    assert curve is not None
    dense = cKDTree(truth.position(np.linspace(0.0, truth.length, 8000)))
    dist, _ = dense.query(curve.position(np.linspace(4.0, curve.length - 4.0, 400)))
    assert dist.max() < 1.0
    assert curve.position(0.0)[2] > curve.position(curve.length)[2]  # s increases caudally


def test_spurious_blob_is_ignored() -> None:
    aff, truth = grid_affine(), true_curve()
    prob = tube_probability(truth, aff)
    prob[40:46, 2:6, 2:6] = 0.95  # a bright blob far from the column, in the same planes
    prob_5d = prob[None, None]
    curve = curve_from_probability(prob_5d, aff, LocalizerConfig(extend_mm=0.0))
    assert curve is not None
    dense = cKDTree(truth.position(np.linspace(0.0, truth.length, 8000)))
    dist, _ = dense.query(curve.position(np.linspace(4.0, curve.length - 4.0, 400)))
    assert dist.max() < 1.0


def test_extension() -> None:
    aff, truth = grid_affine(), true_curve()
    prob = tube_probability(truth, aff)
    short = curve_from_probability(prob, aff, LocalizerConfig(extend_mm=0.0))
    long = curve_from_probability(prob, aff, LocalizerConfig(extend_mm=10.0))
    assert short is not None and long is not None
    assert long.length == pytest.approx(short.length + 20.0, abs=0.01)


def test_no_spine_returns_none() -> None:
    aff = grid_affine()
    assert curve_from_probability(np.zeros(GRID_SHAPE, np.float32), aff, LocalizerConfig()) is None
    small = np.zeros(GRID_SHAPE, np.float32)
    small[50:52, 20:22, 20:22] = 0.9  # 8 voxels in 2 planes
    assert curve_from_probability(small, aff, LocalizerConfig()) is None


def test_preprocess_shapes_and_scaling() -> None:
    affine = np.eye(4)
    affine[:3, :3] = np.c_[[0, 0, -2.5], [0, 0.8, 0], [0.8, 0, 0]]
    vol = Volume(np.full((30, 64, 64), 3000, dtype=np.int16), affine)
    cfg = LocalizerConfig(spacing_mm=4.0, hu_window=(-1000.0, 1500.0), hu_scale=1000.0, divisible_by=16)
    image, grid_aff = preprocess(vol, cfg)
    assert image.dtype == np.float32 and image.shape[:2] == (1, 1)
    assert all(n % 16 == 0 for n in image.shape[2:])
    assert image[0, 0, 0, 0, 0] == pytest.approx(1.5)  # clipped to 1500 / 1000
    assert image[0, 0, -1, -1, -1] == pytest.approx(-1.0)  # padding = air
    np.testing.assert_allclose(grid_aff[:3, :3], np.c_[[0, 0, -4.0], [0, 4.0, 0], [4.0, 0, 0]])


def test_config_from_json(tmp_path: Path) -> None:
    p = tmp_path / "spinevcf.json"
    p.write_text(
        json.dumps(
            {
                "spacing_mm": 3.0,
                "hu_window": [-500, 1500],
                "hu_scale": 500,
                "divisible_by": 32,
                "probability_threshold": 0.4,
                "comment": "ignored",
            }
        )
    )
    cfg = LocalizerConfig.from_json(p)
    assert (cfg.spacing_mm, cfg.hu_window, cfg.hu_scale, cfg.divisible_by) == (3.0, (-500.0, 1500.0), 500, 32)
    assert cfg.probability_threshold == 0.4


def test_config_from_json_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        LocalizerConfig.from_json(tmp_path / "missing.json")
    p = tmp_path / "spinevcf.json"
    p.write_text(json.dumps({"spacing_mm": 3.0}))
    with pytest.raises(ModelError, match="hu_window"):
        LocalizerConfig.from_json(p)
    p.write_text(json.dumps({"spacing_mm": -1, "hu_window": [0, 1], "hu_scale": 1, "divisible_by": 16}))
    with pytest.raises(ModelError, match="spacing_mm"):
        LocalizerConfig.from_json(p)
