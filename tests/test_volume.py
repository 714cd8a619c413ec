"""spinevcf.volume.Volume.crop: voxels keep their patient positions; bad boxes are refused."""

from __future__ import annotations

import numpy as np
import pytest

from spinevcf.volume import Volume


def test_crop_keeps_voxels_at_their_patient_positions_and_drops_block_sums() -> None:
    aff = np.array([[0.0, 0.0, 0.7, -166.0], [0.0, -0.7, 0.0, 187.6], [2.5, 0.0, 0.0, -340.0], [0, 0, 0, 1]])
    vol = Volume(np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4), aff, block_sums=object())  # type: ignore[arg-type]
    part = vol.crop((2, 1, 1), (5, 4, 3))
    assert part.shape == (3, 3, 2) and part.block_sums is None
    for idx in ((0, 0, 0), (2, 2, 1), (1, 0, 1)):
        src = tuple(int(i) + o for i, o in zip(idx, (2, 1, 1), strict=True))
        assert part.array[idx] == vol.array[src]
        np.testing.assert_allclose(part.index_to_lps([idx]), vol.index_to_lps([src]))


@pytest.mark.parametrize(
    ("start", "stop"), [((0, 0, 0), (7, 5, 4)), ((-1, 0, 0), (3, 5, 4)), ((2, 0, 0), (2, 5, 4))]
)
def test_crop_refuses_a_box_outside_the_volume_or_empty(start, stop) -> None:
    vol = Volume(np.zeros((6, 5, 4), np.int16), np.eye(4))
    with pytest.raises(ValueError, match="not a non-empty box"):
        vol.crop(start, stop)
