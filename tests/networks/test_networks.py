"""Shapes and heads of the two networks."""

from __future__ import annotations

import math

import pytest
import torch

from spinevcf.errors import ModelError
from spinevcf.networks import SpineLocalizer3D, VertebraDetector2D, build_model


def test_localizer_output_shape_and_range() -> None:
    net = SpineLocalizer3D(channels=(4, 8, 8, 8)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 32, 48, 16))
    assert out.shape == (2, 1, 32, 48, 16)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_detector_heads_at_stride_4() -> None:
    net = VertebraDetector2D().eval()
    with torch.no_grad():
        heat, off, kp, lev, kp_heat, kp_off = net(torch.randn(1, 2, 96, 64))
    assert heat.shape == (1, 1, 24, 16) and off.shape == (1, 2, 24, 16)
    assert kp.shape == (1, 12, 24, 16) and lev.shape == (1, 24, 24, 16)
    assert kp_heat.shape == (1, 6, 24, 16) and kp_off.shape == (1, 12, 24, 16)
    assert float(kp_heat.min()) >= 0.0 and float(kp_heat.max()) <= 1.0
    assert len(net.output_names) == 6
    # Heatmap prior: the bias of the last layer of both heatmaps is the logit of HEATMAP_PRIOR.
    for head in (net.heatmap, net.kp_heatmap):
        assert math.isclose(float(head[-1].bias.mean()), math.log(0.1 / 0.9), rel_tol=1e-6)


def test_build_model_rejects_unknown_name() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        build_model("nope")


def test_localizer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SpineLocalizer3D(channels=(8,))
    with pytest.raises(ValueError):
        SpineLocalizer3D(num_res_units=0)
