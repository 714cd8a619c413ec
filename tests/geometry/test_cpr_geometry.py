"""Tests of spinevcf.geometry.cpr: pixel <-> LPS mapping and reformation of a synthetic CT."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spinevcf.geometry.cpr import CPRImage, make_cpr
from spinevcf.geometry.curve import SpineCurve
from spinevcf.volume import Volume

BACKGROUND_HU = -1000.0
SPHERE_HU = 1000.0


def scoliotic_curve(z_top: float = 60.0, z_bottom: float = -60.0) -> SpineCurve:
    z = np.linspace(z_top, z_bottom, 40)
    phase = (z_top - z) / (z_top - z_bottom)
    pts = np.c_[12.0 * np.sin(2.0 * np.pi * phase), 6.0 * np.cos(np.pi * phase), z]
    return SpineCurve.fit(pts, smoothing_mm=1.0)


def oblique_volume(shape: tuple[int, int, int] = (110, 90, 90)) -> Volume:
    """A volume with anisotropic voxels and axes rotated off the LPS axes, centred at 0."""
    spacing = np.array([1.4, 1.1, 1.2])
    rot = Rotation.from_euler("xyz", [8.0, -5.0, 12.0], degrees=True).as_matrix()
    direction = rot @ np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=float).T  # axis0 ~ -z like slices
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[None, :]
    centre = (np.array(shape) - 1) / 2.0
    affine[:3, 3] = -affine[:3, :3] @ centre
    return Volume(np.full(shape, BACKGROUND_HU, dtype=np.float32), affine)


def add_sphere(vol: Volume, centre_lps: np.ndarray, radius_mm: float) -> None:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij"), -1).reshape(-1, 3)
    d = np.linalg.norm(vol.index_to_lps(idx) - centre_lps, axis=1).reshape(vol.shape)
    inside = np.clip(radius_mm + 0.5 - d, 0.0, 1.0)  # 1-voxel soft edge keeps the centroid exact
    vol.array[...] = np.maximum(vol.array, BACKGROUND_HU + inside * (SPHERE_HU - BACKGROUND_HU))


@pytest.fixture(scope="module")
def curve() -> SpineCurve:
    return scoliotic_curve()


def test_pixel_lps_round_trip(curve: SpineCurve) -> None:
    cpr = CPRImage(np.zeros((2, 160, 96), np.float32), curve, s0=0.0, u0=-48.0, pixel_mm=0.8)
    rc = np.random.default_rng(0).uniform([0, 0], [150, 96], size=(300, 2))
    np.testing.assert_allclose(cpr.lps_to_pixel(cpr.pixel_to_lps(rc)), rc, atol=1e-6)


def test_3d_2d_3d_round_trip(curve: SpineCurve) -> None:
    cpr = CPRImage(np.zeros((2, 160, 96), np.float32), curve, s0=0.0, u0=-48.0, pixel_mm=1.0)
    rng = np.random.default_rng(1)
    pts = curve.local_to_global(
        rng.uniform(0, curve.length, 300), rng.uniform(-40, 40, 300), rng.uniform(-30, 30, 300)
    )
    s, u, v = cpr.lps_to_local(pts)
    back = curve.local_to_global(s, u, v)
    assert np.max(np.linalg.norm(back - pts, axis=1)) < 0.1
    # A point of the image plane goes to a pixel and back to itself.
    plane = pts - v[:, None] * curve.frame(s)[2]
    np.testing.assert_allclose(cpr.pixel_to_lps(cpr.lps_to_pixel(plane)), plane, atol=0.1)


def test_shape_padding_and_fill(curve: SpineCurve) -> None:
    vol = oblique_volume((40, 40, 40))
    cpr = make_cpr(vol, curve, pixel_mm=1.0, u_range_mm=(-50.0, 50.0), pad_to=32, fill_hu=-1234.0)
    rows = int(np.floor(curve.length)) + 1
    assert cpr.image.shape == (2, 32 * int(np.ceil(rows / 32)), 128)
    assert cpr.image.dtype == np.float32
    assert cpr.valid_rows == rows
    assert np.all(cpr.image[:, rows:] == -1234.0)
    assert cpr.u0 == -50.0 and cpr.s0 == 0.0


@pytest.mark.parametrize("s_mm, u_mm", [(40.0, 10.0), (95.0, -20.0)])
def test_sphere_lands_at_expected_pixel(curve: SpineCurve, s_mm: float, u_mm: float) -> None:
    vol = oblique_volume()
    add_sphere(vol, curve.local_to_global(s_mm, u_mm, 0.0), 4.0)
    cpr = make_cpr(vol, curve, pixel_mm=1.0, u_range_mm=(-64.0, 64.0))
    for ch in (0, 1):
        w = np.clip(cpr.image[ch] - BACKGROUND_HU, 0.0, None)
        rows, cols = np.indices(w.shape)
        centroid = np.array([(w * rows).sum(), (w * cols).sum()]) / w.sum()
        np.testing.assert_allclose(centroid, [s_mm, u_mm + 64.0], atol=0.5)
    assert cpr.image[0, int(s_mm), int(u_mm + 64)] > 500.0


def test_lateral_sphere_only_in_wide_mip(curve: SpineCurve) -> None:
    vol = oblique_volume()
    add_sphere(vol, curve.local_to_global(60.0, 0.0, 20.0), 4.0)  # 20 mm to the left
    cpr = make_cpr(vol, curve)
    assert cpr.image[0].max() < BACKGROUND_HU + 1.0
    w = np.clip(cpr.image[1] - BACKGROUND_HU, 0.0, None)
    rows, cols = np.indices(w.shape)
    centroid = np.array([(w * rows).sum(), (w * cols).sum()]) / w.sum()
    np.testing.assert_allclose(centroid, [60.0, 64.0], atol=0.5)
    assert cpr.image[1, 60, 64] > 500.0


def test_outside_volume_is_fill(curve: SpineCurve) -> None:
    vol = oblique_volume((20, 20, 20))  # much smaller than the curve
    cpr = make_cpr(vol, curve, fill_hu=-1000.0)
    assert cpr.image[:, 0, 0].tolist() == [-1000.0, -1000.0]


def test_rejects_bad_arguments(curve: SpineCurve) -> None:
    vol = oblique_volume((20, 20, 20))
    with pytest.raises(ValueError, match="u_range_mm"):
        make_cpr(vol, curve, u_range_mm=(10.0, -10.0))
    with pytest.raises(ValueError, match="pixel_mm"):
        make_cpr(vol, curve, pixel_mm=0.0)


def test_inside_source_with_a_margin(curve: SpineCurve) -> None:
    """Points on the curve near the volume's first slice: inside, but not 2 mm inside."""
    vol = oblique_volume((40, 90, 90))
    cpr = make_cpr(vol, curve)
    inv = np.linalg.inv(vol.affine)
    # Walk down the central column of the CPR; find the last row whose point is inside.
    rows = np.arange(cpr.shape[0], dtype=np.float64)
    rc = np.c_[rows, np.full_like(rows, (cpr.shape[1] - 1) / 2.0)]
    inside = cpr.inside_source(rc)
    assert inside.any() and not inside.all()
    idx = cpr.pixel_to_lps(rc) @ inv[:3, :3].T + inv[:3, 3]
    spacing = np.linalg.norm(vol.affine[:3, :3], axis=0)
    # Distance (mm, per axis) from each point to the nearest face of the volume.
    to_face = np.minimum(idx + 0.5, np.asarray(vol.shape) - 0.5 - idx) * spacing
    margin = cpr.inside_source(rc, margin_mm=2.0)
    np.testing.assert_array_equal(margin, (to_face >= 2.0).all(axis=1))
    assert margin.sum() < inside.sum()  # some points are inside but within 2 mm of a face
