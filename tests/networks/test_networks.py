"""Shapes and heads of the two networks."""

from __future__ import annotations

import math
from pathlib import Path

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


def test_freeze_except_trains_only_the_named_parts() -> None:
    # A fine-tune of the keypoint heads leaves the centres, counts and level logits exactly as
    # they were: the other parts get no gradient and keep their batch-norm statistics.
    from spinevcf.training.train_detector import freeze_except

    torch.manual_seed(0)
    net = VertebraDetector2D()
    x = torch.randn(2, 2, 96, 64)
    net.eval()
    with torch.no_grad():
        before = dict(zip(net.output_names, (o.clone() for o in net(x)), strict=True))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    freeze_except(net, ["keypoints", "kp_heatmap", "kp_offset"])
    sum(o.square().mean() for o in net(x)).backward()
    with torch.no_grad():  # one plain gradient step (no torch.optim: it would import torch._dynamo)
        for p in net.parameters():
            if p.grad is not None:
                p -= 1e-2 * p.grad
    assert all(p.grad is None for n, p in net.named_parameters() if n.split(".")[0] == "stages")
    changed = {k.split(".")[0] for k, v in net.state_dict().items() if not torch.equal(v, state[k])}
    assert changed == {"keypoints", "kp_heatmap", "kp_offset"}
    net.eval()
    with torch.no_grad():
        after = dict(zip(net.output_names, net(x), strict=True))
    for name in ("heatmap", "offset", "level_logits"):
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["keypoints"], before["keypoints"])
    with pytest.raises(ValueError, match="unknown parts"):
        freeze_except(net, ["keypoint"])


def test_level_distillation_loss_is_zero_on_the_teacher_and_pulls_towards_it() -> None:
    # Config ``distill``: the fine-tune keeps the level logits of the reference detector
    # where bodies are (target heatmap), and nowhere else.
    from spinevcf.training.train_detector import level_distillation_loss

    torch.manual_seed(0)
    teacher = torch.randn(2, 24, 8, 6)
    heat = torch.zeros(2, 1, 8, 6)
    heat[0, 0, 3, 2] = 1.0
    heat[1, 0, 5, 4] = 0.5
    assert float(level_distillation_loss(teacher.clone(), teacher, heat)) == pytest.approx(0.0, abs=1e-6)
    # Student different only where the heatmap is 0: no loss.
    student = teacher.clone()
    student[:, :, 0, 0] += torch.randn(2, 24) * 5
    assert float(level_distillation_loss(student, teacher, heat)) == pytest.approx(0.0, abs=1e-6)
    # Different at a body centre: positive, and a gradient step moves the student towards the teacher.
    student = teacher.clone()
    student[0, :, 3, 2] = torch.randn(24) * 3
    student.requires_grad_(True)
    loss = level_distillation_loss(student, teacher, heat)
    assert float(loss) > 0.1
    loss.backward()
    with torch.no_grad():
        moved = student - 0.5 * student.grad
    assert float(level_distillation_loss(moved, teacher, heat)) < float(loss)
    assert float(student.grad[1].abs().max()) < 1e-6  # sample 1 matches the teacher at its body
    # Temperature softens both sides; still zero on the teacher itself.
    assert float(level_distillation_loss(teacher.clone(), teacher, heat, temperature=2.0)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_load_teacher_is_frozen_and_checks_the_architecture(tmp_path: Path) -> None:
    from spinevcf.training.train_detector import load_teacher

    arch = {"in_channels": 2, "widths": [8, 8, 8, 8, 8], "head_channels": 8}
    net = VertebraDetector2D(**arch)
    torch.save({"arch": arch, "state_dict": net.state_dict()}, tmp_path / "t.pt")
    teacher = load_teacher(tmp_path / "t.pt", arch)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ValueError, match="different architecture"):
        load_teacher(tmp_path / "t.pt", {**arch, "head_channels": 16})
