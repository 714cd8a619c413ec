"""scripts/real_ct_crops.py: the crop keeps patient coordinates; the table counts what it reports."""

from __future__ import annotations

import numpy as np
from real_ct_crops import CROPS, crop, markdown

from spinevcf.volume import Volume


def test_crop_keeps_every_voxel_at_its_patient_position() -> None:
    aff = np.array(
        [[0.0, 0.0, 0.7, -166.0], [0.0, -0.7, 0.0, 187.6], [2.5, 0.0, 0.0, -340.0], [0, 0, 0, 1.0]]
    )
    arr = np.arange(20 * 4 * 5, dtype=np.int16).reshape(20, 4, 5)
    vol = Volume(arr, aff)
    part = crop(vol, 7, 15)
    assert part.shape == (8, 4, 5)
    for k, r, c in ((0, 0, 0), (7, 3, 4), (3, 1, 2)):
        assert part.array[k, r, c] == arr[k + 7, r, c]
        np.testing.assert_allclose(part.affine @ [k, r, c, 1.0], aff @ [k + 7, r, c, 1.0])


def test_crops_lie_inside_the_133_slice_scan_and_start_with_the_whole_scan() -> None:
    assert CROPS[0] == (0, 133)
    assert all(0 <= a < b <= 133 for a, b in CROPS)


def test_table_totals_count_cut_bodies_wrong_names_and_calls() -> None:
    rows = [
        {
            "crop": "0:133",
            "slices": 133,
            "cut": ["C7"],
            "cut_assessed": [],
            "complete_assessed": "3/3",
            "complete_not_assessed": [],
            "names": "3/3",
            "wrong_and_confident": [],
            "level_confidence": [0.8],
            "calls": [],
        },
        {
            "crop": "9:121",
            "slices": 112,
            "cut": ["L2"],
            "cut_assessed": ["L2"],
            "complete_assessed": "2/3",
            "complete_not_assessed": ["T2"],
            "names": "0/3",
            "wrong_and_confident": ["T5"],
            "level_confidence": [0.5],
            "calls": ["T7 (true T7) G1 biconcave p=0.71", "T9 (true T9) G2 wedge p=0.99"],
        },
    ]
    text = markdown(rows)
    assert "| 9:121 (112) | L2 | L2 | 2/3 (T2) | 0/3 | T5 | 0.5 |" in text
    assert (
        "2 crops: cut bodies assessed 1; names all right in 1, wrong and stated confident 1; "
        "fracture calls 2 (in 1 crops" in text
    )
