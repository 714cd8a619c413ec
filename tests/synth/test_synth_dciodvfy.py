"""Series written by the synthetic generator are valid CT Image IODs (dciodvfy, no errors)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from spinevcf.synth import SynthConfig, generate_case, write_case


@pytest.mark.parametrize("compress", ["none", "rle"])
def test_generated_series_pass_dciodvfy(tmp_path, compress: str) -> None:
    if shutil.which("dciodvfy") is None:
        subprocess.run(["bash", "scripts/install_system_deps.sh"], check=False, capture_output=True)
    if shutil.which("dciodvfy") is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy (dicom3tools) is missing")
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    case = generate_case(3, SynthConfig(fov="lumbar", n_slices=12))
    out = write_case(case, tmp_path / "case", compress=compress)
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 12
    for p in (files[0], files[-1]):
        res = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, check=False)
        text = res.stdout + res.stderr
        assert "CTImage" in text, text
        errors = [line for line in text.splitlines() if line.startswith("Error")]
        assert not errors, text
