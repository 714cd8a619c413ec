"""real_ct_report / validate_real_ct / real_ct_run: summaries, heights on masks, matching, doc sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import real_ct_report as rr
from PIL import Image
from real_ct_run import copy_png, layout_differences, replace_section
from validate_real_ct import compare_with_label_map

from spinevcf.schema import VertebraRecord
from spinevcf.volume import Volume

#: Voxel size of the synthetic masks (mm).
VOXEL_MM = 0.5


def _record(
    label: str, z: float, *, grade: int | None = 0, height: float = 24.0, **kw: Any
) -> VertebraRecord:
    """A body centred at (0, 0, z) with keypoints ``height`` apart."""
    kp = [[0.0, y, z + height / 2] for y in (-10.0, 0.0, 10.0)] + [
        [0.0, y, z - height / 2] for y in (-10.0, 0.0, 10.0)
    ]
    assessed = grade is not None
    return VertebraRecord(
        label=label,
        keypoints_lps_mm=kp,
        heights_mm={"anterior": height, "middle": height, "posterior": height} if assessed else {},
        genant_grade=grade,
        deformity="wedge" if grade else "none",
        fracture_probability=(0.9 if grade else 0.1) if assessed else None,
        assessment="assessed" if assessed else "not_assessable",
        assessment_reason=None if assessed else "cut_by_scan_range",
        **kw,
    )


def test_summarise_results_lists_every_category() -> None:
    results = {
        "status": "ok",
        "patient_fractured": True,
        "patient_fracture_probability": 0.93,
        "vertebrae": [
            _record("T12", -30.0, grade=None).to_dict(),
            _record("T10", 30.0, grade=0, level_confidence=0.8, level_status="confident").to_dict(),
            _record("T11", 0.0, grade=2, level_confidence=0.4, level_status="uncertain").to_dict(),
        ],
    }
    s = rr.summarise_results(results)
    assert s["detected"] == 3 and s["assessed"] == ["T10", "T11"]
    assert s["not_assessable"] == [{"level": "T12", "reason": "cut_by_scan_range"}]
    assert s["fracture_calls"] == [{"level": "T11", "grade": 2, "deformity": "wedge", "probability": 0.9}]
    assert [x["level"] for x in s["levels"]] == ["T10", "T11", "T12"]  # cranial to caudal
    assert s["levels"][1] == {"level": "T11", "confidence": 0.4, "status": "uncertain"}
    assert "T12" not in s["heights_mm"] and s["heights_mm"]["T11"]["middle"] == 24.0
    row = rr.markdown_table([{"name": "scan", "series": "3 x 4x4", "results": s}]).splitlines()[-1]
    assert "T12 (cut_by_scan_range)" in row and "T11 G2 wedge p=0.90" in row
    assert row.endswith("| T10 (0.80), T11 (0.40?), T12 |")


def test_call_rates() -> None:
    a = {
        "detected": 3,
        "assessed": ["T1", "T2"],
        "not_assessable": [{}],
        "fracture_calls": [{}],
        "patient_fractured": True,
    }
    b = {
        "detected": 2,
        "assessed": ["L1", "L2"],
        "not_assessable": [],
        "fracture_calls": [],
        "patient_fractured": False,
    }
    r = rr.call_rates([a, b])
    assert r == {
        "scans": 2,
        "bodies": 5,
        "assessed": 4,
        "not_assessable": 1,
        "fracture_calls": 1,
        "calls_per_assessed_body": 0.25,
        "patients_fractured": 1,
    }
    assert rr.call_rates([])["calls_per_assessed_body"] is None


def test_format_levels_runs() -> None:
    same = [{"level": n, "confidence": 0.87, "status": "uncertain"} for n in ("C7", "T1", "T2")]
    assert rr.format_levels(same) == "C7-T2 (0.87?)"
    gap = [{"level": n, "confidence": None, "status": None} for n in ("T9", "T10", "T12")]
    assert rr.format_levels(gap) == "T9-T10, T12"
    assert rr.format_levels([]) == "-"


def _wedge(ha: float, hp: float, depth: float = 30.0, width: float = 40.0) -> Volume:
    """A body mask on a 0.5 mm grid (axes z, y, x), anterior wall at y = 0, height ha -> hp along y."""
    nz, ny, nx = (int(round(s / VOXEL_MM)) + 20 for s in (max(ha, hp), depth, width))
    zc = np.arange(nz) * VOXEL_MM
    yc = np.arange(ny) * VOXEL_MM
    xc = np.arange(nx) * VOXEL_MM
    z0, y0, x0 = 5.0, 5.0, 5.0
    y = yc[None, :, None] - y0
    h = ha + (hp - ha) * np.clip(y / depth, 0, 1)
    mid = z0 + max(ha, hp) / 2
    inside = (np.abs(zc[:, None, None] - mid) <= h / 2) & (y >= 0) & (y <= depth)
    inside = inside & (xc[None, None, :] >= x0) & (xc[None, None, :] <= x0 + width)
    aff = np.eye(4)
    aff[:3, :3] = np.eye(3)[:, ::-1] * VOXEL_MM  # axis 0 = +z, 1 = +y, 2 = +x
    return Volume(inside.astype(np.uint8), aff)


def test_body_heights_of_a_box_and_a_wedge() -> None:
    box = rr.verse_body_heights(_wedge(25.0, 25.0))
    # a mask of whole voxels crosses 0.5 half a voxel beyond the boundary voxel centres
    for key in rr.HEIGHT_KEYS:
        assert box[key] == pytest.approx(25.0 + VOXEL_MM, abs=0.3)
    assert box["depth_mm"] == pytest.approx(30.0 + VOXEL_MM, abs=0.3)
    wedge = rr.verse_body_heights(_wedge(20.0, 30.0))
    # lines 2 mm inside the walls: 20 + 10 * 2/30 and 30 - 10 * 2/30; half-way 25
    assert wedge["anterior"] == pytest.approx(20.67, abs=1.0)
    assert wedge["middle"] == pytest.approx(25.0, abs=1.0)
    assert wedge["posterior"] == pytest.approx(29.33, abs=1.0)
    with pytest.raises(ValueError, match="empty"):
        rr.verse_body_heights(Volume(np.zeros((3, 3, 3), np.uint8), np.eye(4)))


def test_compare_with_verse_names_assessability_heights() -> None:
    refs = {
        "L2": {
            "centre_lps_mm": [0, 0, 30.0],
            "cut": True,
            "heights_mm": None,
            "spinevcf_truth_heights_mm": None,
        },
        "L3": {
            "centre_lps_mm": [0, 0, 0.0],
            "cut": False,
            "heights_mm": {"anterior": 27.0, "middle": 23.0, "posterior": 26.0, "depth_mm": 33.0},
            "spinevcf_truth_heights_mm": {"anterior": 27.5, "middle": 24.0, "posterior": 27.0},
        },
    }
    verts = [_record("L1", 31.0, grade=0), _record("L2", 1.0, grade=0, height=25.0), _record("T1", 200.0)]
    c = rr.compare_with_verse(verts, refs)
    assert c["names_correct"] == "0/2"  # both names one level too high
    assert c["complete_assessed"] == "1/1" and c["cut_not_assessable"] == "0/1"
    assert c["cut_detected_and_assessed"] == ["L2"] and c["unmatched_detections"] == ["T1"]
    l3 = c["rows"][1]
    assert l3["app_minus_mask_mm"] == {"anterior": -2.0, "middle": 2.0, "posterior": -1.0}
    assert l3["app_minus_spinevcf_truth_mm"]["middle"] == 1.0


def test_label_map_comparison_counts_a_second_detection_of_a_cut_body_as_false() -> None:
    refs = {"L1": np.array([0.0, 0.0, 0.0]), "L2": np.array([0.0, 0.0, -28.0])}
    cut = {"L3": np.array([0.0, 0.0, -50.0])}
    verts = [
        _record("L1", 0.5),
        _record("L2", -28.0),
        _record("L3", -41.0, grade=3, height=8.0),  # squeezed between L2 and the cut L3
        _record("L4", -51.0, grade=None),
    ]
    c = compare_with_label_map(verts, refs, cut)
    assert c["cut_bodies_detected"] == ["L3"] and c["cut_bodies_assessed"] == []
    assert c["false_detections"] == 1 and c["false_detection_labels"] == ["L3"]
    assert c["levels_correct"] == "2/2" and c["required_assessed"] == "2/2"


def test_replace_section_and_png_size(tmp_path: Path) -> None:
    text = "# T\n\n<!-- real-ct:before:begin -->\nold\n<!-- real-ct:before:end -->\n"
    text = replace_section(text, "before", "new")
    assert "old" not in text and "new" in text
    text = replace_section(text, "after", "later")
    assert text.index("new") < text.index("later") and text.count("real-ct:after:begin") == 1
    src = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(src)
    assert src.stat().st_size > 300_000
    size = copy_png(src, tmp_path / "small.png")
    assert size == (tmp_path / "small.png").stat().st_size < 300_000
    assert Image.open(tmp_path / "small.png").size == (400, 400)


def test_layout_differences_pairs_by_reference() -> None:
    def row(pred: str, ref: str | None, cut: str | None, grade: int | None) -> dict[str, Any]:
        assessment = "assessed" if grade is not None else "not_assessable"
        return {
            "predicted": pred,
            "reference": ref,
            "cut_body": cut,
            "genant_grade": grade,
            "assessment": assessment,
        }

    nifti = {
        "detections": 3,
        "vertebrae": [row("T1", "T1", None, 0), row("T2", "T2", None, 1), row("T3", None, "T3", None)],
    }
    dicom = {
        "detections": 4,
        "vertebrae": [
            row("T1", "T1", None, 0),
            row("T2", "T2", None, 0),
            row("T3", None, None, 3),
            row("T4", None, "T3", 0),
        ],
    }
    d = layout_differences(nifti, dicom)
    assert d["detections"] == [3, 4]
    assert d["grade_changes"] == ["T2: G1 -> G0", "T3: - -> G0"]
    assert d["assessment_changes"] == ["T3: not_assessable -> assessed"]
    assert d["unpaired"] == {"nifti": [], "dicom": ["T3"]}
