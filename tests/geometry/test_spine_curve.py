"""Tests of spinevcf.geometry.curve.SpineCurve."""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.geometry.curve import SpineCurve


def scoliotic_points(n: int = 60) -> np.ndarray:
    """An S-shaped (scoliotic) column with lordosis/kyphosis, cranial z = 200."""
    z = np.linspace(200.0, -250.0, n)
    phase = (200.0 - z) / 450.0
    x = 25.0 * np.sin(2.0 * np.pi * phase)  # lateral S: two opposite bends
    y = 15.0 * np.cos(np.pi * phase) + 5.0 * np.sin(3.0 * np.pi * phase)
    return np.c_[x, y, z]


@pytest.fixture(scope="module")
def curve() -> SpineCurve:
    return SpineCurve.fit(scoliotic_points(), smoothing_mm=2.0, extend_mm=10.0)


def test_straight_line_arc_length_and_extension() -> None:
    z = np.linspace(0.0, -90.0, 10)
    c = SpineCurve.fit(np.c_[0 * z + 3.0, 0 * z - 2.0, z], extend_mm=5.0)
    assert c.length == pytest.approx(100.0, abs=1e-6)
    np.testing.assert_allclose(c.position(0.0), [3.0, -2.0, 5.0], atol=1e-6)
    np.testing.assert_allclose(c.position(50.0), [3.0, -2.0, -45.0], atol=1e-6)
    np.testing.assert_allclose(c.tangent(20.0), [0.0, 0.0, -1.0], atol=1e-9)


def test_sorting_makes_s_increase_caudally() -> None:
    pts = scoliotic_points(30)
    shuffled = pts[np.random.default_rng(1).permutation(len(pts))]
    c = SpineCurve.fit(shuffled, smoothing_mm=2.0)
    assert c.position(0.0)[2] > c.position(c.length)[2]
    assert np.all(c.tangent(np.linspace(0, c.length, 50))[:, 2] < 0)


def test_parametrised_by_true_arc_length(curve: SpineCurve) -> None:
    s = np.linspace(0.0, curve.length, 20001)
    polyline = np.linalg.norm(np.diff(curve.position(s), axis=0), axis=1).sum()
    assert polyline == pytest.approx(curve.length, rel=1e-5)
    speed = np.linalg.norm(curve._eval(s, 1), axis=1)  # |C'(s)| == 1 for arc length
    assert np.max(np.abs(speed - 1.0)) < 1e-3


def test_frame_is_orthonormal_and_right_handed(curve: SpineCurve) -> None:
    t, p, left = curve.frame(np.linspace(0.0, curve.length, 200))
    for a in (t, p, left):
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-12)
    assert np.max(np.abs(np.einsum("ij,ij->i", t, p))) < 1e-12
    np.testing.assert_allclose(np.cross(t, p), left, atol=1e-12)
    assert np.all(p[:, 1] > 0.5)  # posterior
    assert np.all(left[:, 0] > 0.5)  # patient left for a caudal tangent


def test_frame_does_not_flip_across_inflections(curve: SpineCurve) -> None:
    _, p, left = curve.frame(np.linspace(0.0, curve.length, 2000))
    assert np.min(np.einsum("ij,ij->i", p[1:], p[:-1])) > 0.999
    assert np.min(np.einsum("ij,ij->i", left[1:], left[:-1])) > 0.999


def test_degenerate_tangent_parallel_to_y() -> None:
    c = SpineCurve.from_nodes([[0.0, 0.0, 0.0], [0.0, 50.0, 0.0]])
    t, p, left = c.frame(10.0)
    np.testing.assert_allclose(t, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(p, [0, 0, -1], atol=1e-12)
    assert np.linalg.norm(left) == pytest.approx(1.0)


def test_global_local_round_trip(curve: SpineCurve) -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(0.0, curve.length, 500)
    u = rng.uniform(-40.0, 40.0, 500)
    v = rng.uniform(-40.0, 40.0, 500)
    s2, u2, v2 = curve.global_to_local(curve.local_to_global(s, u, v))
    np.testing.assert_allclose(s2, s, atol=1e-6)
    np.testing.assert_allclose(u2, u, atol=1e-6)
    np.testing.assert_allclose(v2, v, atol=1e-6)


def test_global_local_beyond_ends(curve: SpineCurve) -> None:
    s = np.array([-15.0, -3.0, curve.length + 4.0, curve.length + 20.0])
    u = np.array([5.0, -10.0, 3.0, 0.0])
    v = np.array([-2.0, 7.0, 0.0, 12.0])
    s2, u2, v2 = curve.global_to_local(curve.local_to_global(s, u, v))
    np.testing.assert_allclose(np.c_[s2, u2, v2], np.c_[s, u, v], atol=1e-6)


def test_single_point_returns_scalars(curve: SpineCurve) -> None:
    s, u, v = curve.global_to_local(curve.local_to_global(100.0, 2.0, -3.0))
    assert np.shape(s) == () and float(s) == pytest.approx(100.0, abs=1e-6)


def test_smoothing_removes_noise() -> None:
    pts = scoliotic_points(120)
    truth = SpineCurve.fit(pts, smoothing_mm=0.0)
    noisy = pts + np.random.default_rng(2).normal(0.0, 1.5, pts.shape) * [1, 1, 0]
    errors = {}
    for smoothing in (0.0, 10.0):
        fitted = SpineCurve.fit(noisy, smoothing_mm=smoothing)
        _, u, v = truth.global_to_local(fitted.position(np.linspace(20, fitted.length - 20, 400)))
        errors[smoothing] = float(np.sqrt(np.mean(u**2 + v**2)))
    assert errors[10.0] < 0.8 < 1.5 < errors[0.0]


def test_dict_round_trip(curve: SpineCurve) -> None:
    c2 = SpineCurve.from_dict(curve.to_dict())
    s = np.linspace(-5, curve.length + 5, 97)
    np.testing.assert_allclose(c2.position(s), curve.position(s), atol=1e-5)


@pytest.mark.parametrize(
    "points",
    [np.zeros((0, 3)), np.zeros((3, 3)), np.zeros((4, 2))],
)
def test_fit_rejects_degenerate_input(points: np.ndarray) -> None:
    with pytest.raises(ValueError):
        SpineCurve.fit(points)


def test_fit_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="weights"):
        SpineCurve.fit(scoliotic_points(10), weights=-np.ones(10))
