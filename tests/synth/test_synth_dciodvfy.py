"""Series written by the synthetic generator are valid CT Image IODs (dciodvfy, no errors)."""

from __future__ import annotations

import pytest

from spinevcf.synth import SynthConfig, generate_case, write_case
from tests.dicom_tools import dciodvfy_output, require_tool


@pytest.mark.parametrize("compress", ["none", "rle"])
def test_generated_series_pass_dciodvfy(tmp_path, compress: str) -> None:
    require_tool("dciodvfy")
    case = generate_case(3, SynthConfig(fov="lumbar", n_slices=12))
    out = write_case(case, tmp_path / "case", compress=compress)
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 12
    for p in (files[0], files[-1]):
        text = dciodvfy_output(p)
        assert "CTImage" in text, text
        errors = [line for line in text.splitlines() if line.startswith("Error")]
        assert not errors, text
