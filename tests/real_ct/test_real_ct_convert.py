"""real_ct_convert: axis layout, DICOM round trip in LPS, anatomical orientation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import real_ct_convert as rc

from spinevcf.volume import Volume


def _oblique_layout() -> Volume:
    """A small volume stored like the TPTBox crop: axis 0 -> right, 1 -> inferior, 2 -> posterior."""
    rng = np.random.default_rng(3)
    arr = rng.integers(-1000, 2000, size=(6, 7, 8)).astype(np.int16)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[-1.5, 0, 0], [0, 0, 1.25], [0, -2.0, 0]])  # columns: axis steps in LPS
    aff[:3, 3] = [30.0, -20.0, 50.0]
    return Volume(arr, aff)


def test_standard_axial_axes_and_same_voxels_in_lps() -> None:
    src = _oblique_layout()
    out = rc.standard_axial(src)
    d = out.direction
    assert np.allclose(d, np.eye(3)[:, ::-1])  # axis 0 along +z, 1 along +y, 2 along +x
    assert out.shape == (7, 8, 6)
    idx = np.argwhere(np.ones(src.shape, bool))
    j = np.rint(out.lps_to_index(src.index_to_lps(idx))).astype(int)
    assert np.array_equal(out.array[tuple(j.T)], src.array[tuple(idx.T)])


def test_standard_axial_refuses_ambiguous_axes() -> None:
    aff = np.eye(4)
    # columns (axis steps): axis 0 is the nearest to both x and z
    aff[:3, :3] = np.array([[0.7, 0.0, 0.577], [0.0, 1.0, 0.577], [0.714, 0.0, 0.577]])
    with pytest.raises(ValueError, match="one to one"):
        rc.standard_axial(Volume(np.zeros((2, 2, 2), np.int16), aff))


def test_write_and_roundtrip(tmp_path: Path) -> None:
    src = _oblique_layout()
    rc.write_scan_dicom(src, tmp_path / "dicom", name="unit", description="unit test")
    check = rc.roundtrip_check(src, tmp_path / "dicom", samples=200)
    assert check["ok"] and check["max_hu_difference"] == 0.0 and check["shape"] == [7, 8, 6]
    # the same files compared with a source whose left and right are swapped must fail
    mirrored = Volume(src.array, src.affine * np.array([[-1], [1], [1], [1]]))
    assert not rc.roundtrip_check(mirrored, tmp_path / "dicom", samples=200)["ok"]


def _blob(arr: np.ndarray, lab: int, z: int, y: int, x: int, r: int = 2) -> None:
    arr[max(z - r, 0) : z + r, max(y - r, 0) : y + r, max(x - r, 0) : x + r] = lab


def _totalseg(flip_x: bool = False) -> Volume:
    """Axis 0 = +z (slices), 1 = +y, 2 = +x; T1 high, L1 low, liver right, heart in front."""
    lab = np.zeros((40, 30, 30), np.uint8)
    for k, tid in enumerate((43, 32, 31)):  # T1, T12, L1 going down
        _blob(lab, tid, 34 - 12 * k, 20, 15)
    _blob(lab, 5, 8, 10, 5)  # liver: right (small x)
    _blob(lab, 10, 25, 12, 25)  # left lung
    _blob(lab, 12, 25, 12, 5)  # right lung
    _blob(lab, 51, 22, 6, 18)  # heart: anterior (small y)
    if flip_x:
        lab = lab[:, :, ::-1].copy()
    aff = np.eye(4)
    aff[:3, :3] = np.eye(3)[:, ::-1] * 2.0
    return Volume(lab, aff)


def test_totalseg_orientation_passes_and_catches_a_mirror() -> None:
    good = rc.totalseg_orientation(_totalseg())
    assert good.ok and set(good.tests) == {
        "vertebrae_z_decreases_cranial_to_caudal",
        "liver_right_of_left_lung",
        "right_lung_right_of_left_lung",
        "heart_anterior_of_spine",
    }
    bad = rc.totalseg_orientation(_totalseg(flip_x=True))
    assert not bad.ok and not bad.tests["liver_right_of_left_lung"]
    assert bad.tests["vertebrae_z_decreases_cranial_to_caudal"]


def test_verse_orientation() -> None:
    vert = np.zeros((40, 30, 30), np.uint8)
    sub = np.zeros_like(vert)
    for k, lab in enumerate((21, 22, 23)):
        _blob(vert, lab, 34 - 12 * k, 15, 15, r=4)
    _blob(sub, 50, 22, 10, 15)  # body in front
    _blob(sub, 41, 22, 22, 15)  # arch behind
    _blob(sub, 43, 22, 18, 25)  # left costal process: larger x
    _blob(sub, 44, 22, 18, 5)
    aff = np.eye(4)
    aff[:3, :3] = np.eye(3)[:, ::-1]
    levels = {"L2": 21, "L3": 22, "L4": 23}
    assert rc.verse_orientation(Volume(vert, aff), Volume(sub, aff), levels).ok
    flipped = aff.copy()
    flipped[:3, 1] *= -1  # y reversed: the arch appears in front
    check = rc.verse_orientation(Volume(vert, flipped), Volume(sub, flipped), levels)
    assert not check.ok and not check.tests["body_anterior_of_arch"]
    assert not rc.OrientationCheck().ok  # no test ran
