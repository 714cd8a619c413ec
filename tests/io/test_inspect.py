"""Tests of ``spinevcf inspect`` through the console entry point."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import spinevcf.cli
from spinevcf.cli import main
from spinevcf.errors import NoCTSeriesError
from spinevcf.io import write_ct_series
from spinevcf.volume import Volume


@pytest.fixture(autouse=True)
def _only_inspect(monkeypatch) -> None:
    """Register only ``inspect`` so these tests do not depend on other subcommands' imports."""
    monkeypatch.setattr(spinevcf.cli, "COMMANDS", ("inspect",))


PATIENT = {"PatientName": "DOE^JANE", "PatientID": "SECRET-42", "PatientBirthDate": "19500102"}


def test_inspect_lists_series_and_choice(tmp_path, h, capsys) -> None:
    write_ct_series(
        h.make_volume(),
        tmp_path / "a",
        series_number=2,
        series_description="axial 2.5",
        patient=PATIENT,
        rng_seed=1,
    )
    sag = h.make_affine(row_cos=(0, 1, 0), col_cos=(0, 0, -1))
    write_ct_series(
        Volume(np.zeros((6, 24, 20), np.int16), sag),
        tmp_path / "b",
        series_number=7,
        series_description="sag mpr",
        patient=PATIENT,
        rng_seed=2,
    )
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "axial 2.5" in out and "sag mpr" in out
    assert "selected: axial CT, 12 slices" in out
    assert "not axial" in out
    assert "would use: series 2" in out
    assert "geometry: ok" in out
    for secret in ("DOE", "JANE", "SECRET-42", "19500102"):
        assert secret not in out


def test_inspect_fails_without_ct(tmp_path, h, capsys) -> None:
    paths = write_ct_series(h.make_volume(), tmp_path, patient=PATIENT, rng_seed=1)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.Modality = "MR"
        ds.save_as(p)
    code = main(["inspect", str(tmp_path)])
    assert code == NoCTSeriesError.exit_code != 0
    captured = capsys.readouterr()
    assert "modality MR is not CT" in captured.out
    assert "no usable axial CT series" in captured.err
    assert "DOE" not in captured.out + captured.err


def test_inspect_reports_geometry_defect(tmp_path, h, capsys) -> None:
    paths = write_ct_series(h.make_volume(), tmp_path, rng_seed=1)
    paths[4].unlink()
    code = main(["inspect", str(tmp_path)])
    assert code != 0
    captured = capsys.readouterr()
    assert "UNUSABLE" in captured.out and "spacing is not uniform" in captured.err
