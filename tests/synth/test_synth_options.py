"""Generator options of issue 13: cut scan ends, forced slice thickness, targeted in-plane FOV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spinevcf.schema import LEVELS
from spinevcf.synth import SynthConfig, cut_preset_config, generate_case, sample_phantom, scanner_affine
from spinevcf.synth.config import CUT_PRESET_THICKNESSES


def _slice_labels(case, k: int) -> set[str]:  # type: ignore[no-untyped-def]
    """Body labels present in slice ``k`` of the case's scanner grid (label map)."""
    aff = scanner_affine(case.acquisition).copy()
    aff[:3, 3] = aff[:3, 3] + aff[:3, 0] * k
    mtx = case.acquisition.matrix
    lab = case.phantom.render_labels(aff, (1, mtx, mtx))
    return {LEVELS[v - 1] for v in np.unique(lab) if 1 <= v <= len(LEVELS)}


@pytest.mark.parametrize(("seed", "thickness"), [(21, 1.0), (22, 2.5), (23, 5.0)])
def test_cut_ends_fall_inside_partial_bodies(seed: int, thickness: float) -> None:
    cfg = SynthConfig(edge="cut", slice_thickness=thickness, fov="thoracic")
    case = generate_case(seed, cfg)
    acq = case.acquisition
    assert acq.slice_thickness == acq.slice_spacing == thickness
    partial = [p["label"] for p in case.truth.extra["partial"]]
    listed = [v.label for v in case.truth.vertebrae]
    assert len(partial) >= 2
    assert not set(partial) & set(listed)
    ends = [_slice_labels(case, 0), _slice_labels(case, acq.n_slices - 1)]
    for labels in ends:
        # a cut body crosses the end slice, and the truth lists it as partial, not complete
        assert labels & set(partial), (labels, partial)
        assert not labels & set(listed), (labels, listed)
    # the first and the last slice cut different bodies, on both sides of the listed run
    i_first = {LEVELS.index(x) for x in ends[0] & set(partial)}
    i_last = {LEVELS.index(x) for x in ends[1] & set(partial)}
    order = [LEVELS.index(x) for x in listed]
    head_first = acq.patient_position.startswith("HF")
    cranial, caudal = (i_first, i_last) if head_first else (i_last, i_first)
    assert max(cranial) < min(order) and min(caudal) > max(order)
    assert case.truth.extra["generator_options"]["edge"] == "cut"


def test_cut_lumbar_end_inside_a_body() -> None:
    """Lumbar scans may end inside L5 or inside the sacral S1 body (no truth, not partial)."""
    for seed in (51, 52, 53, 54):
        case = generate_case(seed, SynthConfig(edge="cut", slice_thickness=2.0, fov="lumbar"))
        acq = case.acquisition
        k_last = acq.n_slices - 1 if acq.patient_position.startswith("HF") else 0
        z_last = float(case.volume.affine[2, 3] + case.volume.affine[2, 0] * k_last)
        inside = []
        for vb in case.phantom.spine.vertebrae:
            kp = vb.keypoints()
            if kp[3:6, 2].mean() < z_last < kp[0:3, 2].mean():
                inside.append(vb.level)
        assert inside, seed
        partial = [p["label"] for p in case.truth.extra["partial"]]
        assert inside[-1] in [*partial, "S1"]


def test_margin_ends_stay_default_and_thickness_is_forced() -> None:
    default = generate_case(5, SynthConfig(n_slices=6))
    same = generate_case(5, SynthConfig(n_slices=6, edge="margin"))
    np.testing.assert_array_equal(default.volume.array, same.volume.array)
    assert default.truth.to_json() == same.truth.to_json()
    assert "generator_options" not in default.truth.extra
    thick = generate_case(5, SynthConfig(n_slices=6, slice_thickness=2.5))
    assert thick.acquisition.slice_thickness == thick.acquisition.slice_spacing == 2.5
    assert thick.truth.extra["generator_options"]["slice_thickness"] == 2.5


@pytest.mark.parametrize("centre", ["spine", "aorta"])
def test_targeted_inplane_fov(centre: str) -> None:
    cfg = SynthConfig(n_slices=5, inplane_fov_mm=160.0, fov_centre=centre)
    case = generate_case(31, cfg)
    acq = case.acquisition
    assert acq.pixel_spacing * acq.matrix == pytest.approx(160.0)
    mid_z = float(case.volume.affine[2, 3] + case.volume.affine[2, 0] * 2)
    vbs = [vb for vb in case.phantom.spine.vertebrae if vb.level in LEVELS]
    vb = vbs[int(np.argmin([abs(v.center[2] - mid_z) for v in vbs]))]
    offset = np.array([acq.center_x, acq.center_y]) - vb.center[:2]
    if centre == "spine":
        assert np.linalg.norm(offset) < 20.0
    else:  # left (+x in LPS) and anterior (-y) of the body
        assert offset[0] > 5.0 and offset[1] < -vb.half_depth


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="fov_centre"):
        SynthConfig(inplane_fov_mm=180.0)
    with pytest.raises(ValueError, match="needs inplane_fov_mm"):
        SynthConfig(fov_centre="spine")
    with pytest.raises(ValueError, match="n_slices"):
        SynthConfig(edge="cut", n_slices=10)
    with pytest.raises(ValueError, match="family"):
        SynthConfig(family="other")
    with pytest.raises(ValueError, match="edge"):
        SynthConfig(edge="inside")
    with pytest.raises(ValueError, match="slice_thickness"):
        SynthConfig(slice_thickness=0.1)


def test_cut_preset_draws_and_keeps_the_phantom() -> None:
    cfgs = [cut_preset_config(s) for s in range(40)]
    assert {c.edge for c in cfgs} == {"cut"}
    assert {c.fov_centre for c in cfgs} == {"spine", "aorta"}
    assert all(c.slice_thickness in CUT_PRESET_THICKNESSES for c in cfgs)
    assert len({c.slice_thickness for c in cfgs}) >= 4
    assert all(150.0 <= float(c.inplane_fov_mm or 0) <= 250.0 for c in cfgs)
    assert cut_preset_config(7) == cut_preset_config(7)
    assert cut_preset_config(7, SynthConfig(family="heldout")).family == "heldout"
    a, b = sample_phantom(7), sample_phantom(7, cut_preset_config(7))
    assert a.info == b.info
    np.testing.assert_array_equal(a.spine.vertebrae[5].center, b.spine.vertebrae[5].center)


def test_cli_cut_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spinevcf.cli import main

    rc = main(
        [
            "synth",
            str(tmp_path / "out"),
            "--cases",
            "1",
            "--seed",
            "40",
            "--preset",
            "cut",
            "--fov",
            "thoracic",
        ]
    )
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert "edge=cut" in line and "partial=" in line and "partial=none" not in line
    assert (tmp_path / "out" / "case_0000" / "truth.json").is_file()
