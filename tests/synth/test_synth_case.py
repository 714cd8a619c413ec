"""Whole cases: reproducibility, field-of-view presets, DICOM round trip, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spinevcf.schema import LEVELS, StudyRecord
from spinevcf.synth import (
    SynthConfig,
    case_uids,
    generate_case,
    sample_acquisition,
    sample_phantom,
    scanner_affine,
    truth_for,
    write_case,
)

SMALL = SynthConfig(n_slices=6)


def test_generate_case_reproducible_and_seed_dependent() -> None:
    a, b, c = generate_case(4, SMALL), generate_case(4, SMALL), generate_case(5, SMALL)
    np.testing.assert_array_equal(a.volume.array, b.volume.array)
    np.testing.assert_array_equal(a.volume.affine, b.volume.affine)
    assert a.truth.to_json() == b.truth.to_json()
    assert a.volume.array.dtype == np.int16 and a.volume.shape == (6, 512, 512)
    assert a.volume.info.study_instance_uid == a.truth.study_instance_uid == case_uids(4)["study"]
    assert a.volume.info.series_instance_uid == a.truth.series_instance_uid
    assert c.volume.info.study_instance_uid != a.volume.info.study_instance_uid
    assert not np.array_equal(a.volume.array, c.volume.array)


def test_scanner_values_are_plausible() -> None:
    case = generate_case(9, SMALL)
    arr = case.volume.array
    acq = case.acquisition
    assert arr.max() <= 3071
    inside = arr[arr > -2048]
    assert inside.min() >= -1024
    if acq.padding_value is not None:
        assert arr[0, 0, 0] == int(acq.padding_value)
    assert 0.5 <= acq.pixel_spacing <= 1.0
    assert 0.625 <= acq.slice_thickness <= 5.0
    assert 5.0 <= acq.noise_hu <= 40.0


@pytest.mark.parametrize(
    ("fov", "must"),
    [
        ("thoracic", [f"T{i}" for i in range(2, 12)]),
        ("lumbar", ["L1", "L2", "L3", "L4"]),
        ("thoracolumbar", [*(f"T{i}" for i in range(4, 13)), "L1", "L2", "L3"]),
    ],
)
def test_fov_presets_cover_intended_levels(fov: str, must: list[str]) -> None:
    cfg = SynthConfig(fov=fov)
    for seed in range(6):
        ph = sample_phantom(seed, cfg)
        acq = sample_acquisition(np.random.default_rng(seed), ph, cfg)
        assert acq.fov_preset == fov
        truth = truth_for(ph, scanner_affine(acq), (acq.n_slices, 512, 512), uids=case_uids(seed))
        labels = [v.label for v in truth.vertebrae]
        assert set(must) <= set(labels), (seed, labels)
        assert labels == sorted(labels, key=LEVELS.index)
        # partial vertebrae sit at the ends of the listed run
        for item in truth.extra["partial"]:
            i = LEVELS.index(item["label"])
            assert i < LEVELS.index(labels[0]) or i > LEVELS.index(labels[-1])
        if fov == "thoracic":
            assert "L4" not in labels


def test_write_case_round_trip(tmp_path: Path) -> None:
    dicom = pytest.importorskip("spinevcf.io.dicom")
    case = generate_case(13, SynthConfig(n_slices=5))
    out = write_case(case, tmp_path / "case", compress="rle")
    truth = StudyRecord.load(out / "truth.json")
    assert truth.study_instance_uid == case.volume.info.study_instance_uid
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 5
    vol = dicom.load_study(out / "dicom")
    assert vol.info.study_instance_uid == truth.study_instance_uid
    assert vol.info.series_instance_uid == truth.series_instance_uid
    # same voxels at the same LPS positions, whatever slice order the reader uses
    t = np.linalg.inv(case.volume.affine) @ vol.affine
    np.testing.assert_allclose(np.abs(t[:3, :3]), np.eye(3), atol=1e-4)
    src = case.volume.array
    first = 0
    if t[0, 0] < 0:
        src = src[::-1]
        first = src.shape[0] - 1
    np.testing.assert_allclose(
        vol.index_to_lps([[0, 0, 0]]), case.volume.index_to_lps([[first, 0, 0]]), atol=1e-3
    )
    np.testing.assert_allclose(vol.spacing, case.volume.spacing, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(vol.array, dtype=np.int16), src)


def test_cli_writes_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spinevcf.cli import main

    rc = main(
        [
            "synth",
            str(tmp_path),
            "--cases",
            "2",
            "--seed",
            "100",
            "--slices",
            "4",
            "--fov",
            "lumbar",
            "--fracture-rate",
            "0.5",
        ]
    )
    assert rc == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("case_")]
    assert len(lines) == 2 and "seed=100" in lines[0] and "seed=101" in lines[1]
    for k, seed in ((0, 100), (1, 101)):
        d = json.loads((tmp_path / f"case_{k:04d}" / "truth.json").read_text())
        assert d["extra"]["seed"] == seed
        assert d["study_instance_uid"] == case_uids(seed)["study"]
        assert len(list((tmp_path / f"case_{k:04d}" / "dicom").glob("*.dcm"))) == 4
    assert main(["synth", str(tmp_path), "--fracture-rate", "2"]) != 0


@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP", "FFP"])
def test_scanner_affine_matches_patient_position(position: str) -> None:
    import dataclasses

    from spinevcf.io.dicom_write import patient_position_from_orientation

    ph = sample_phantom(2)
    acq = dataclasses.replace(
        sample_acquisition(np.random.default_rng(2), ph), patient_position=position, n_slices=4
    )
    aff = scanner_affine(acq)
    row, col = aff[:3, 2] / acq.pixel_spacing, aff[:3, 1] / acq.pixel_spacing
    assert patient_position_from_orientation(row, col) == position
    # the image centre is where the acquisition put it, slices are axial
    centre = aff @ np.array([0.0, 255.5, 255.5, 1.0])
    np.testing.assert_allclose(centre[:2], [acq.center_x, acq.center_y], atol=1e-6)
    assert abs(abs(aff[2, 0]) - acq.slice_spacing) < 1e-9
