"""2D anchor-free vertebra detector on the CPR image (CenterNet-style heads at stride 4)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VertebraDetector2D", "HEATMAP_PRIOR"]

#: Prior probability of a centre at initialisation (heatmap bias = logit of it, about -2.19).
HEATMAP_PRIOR = 0.1


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _head(cin: int, cout: int, mid: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))


class VertebraDetector2D(nn.Module):
    """Finds every vertebral body, its six keypoints and its level in one pass.

    An encoder down to stride 32 (a wide receptive field, so that neighbouring
    levels, ribs and the sacrum inform the level names) and a top-down path back
    to stride 4, followed by six heads (see docs/architecture.md):
    ``heatmap`` (sigmoid), ``offset`` (2), ``keypoints`` (12, scaled), ``level_logits`` (24),
    ``kp_heatmap`` (sigmoid, one map per keypoint type) and ``kp_offset`` (2 per keypoint
    type). The last two find each endplate point where it is (a peak near the point
    regressed from the centre) rather than where a normally shaped body would put it.

    Args:
        in_channels: CPR channels (mid-sagittal slab and wide lateral MIP).
        widths: channels at strides 2, 4, 8, 16, 32.
        head_channels: channels of the fused stride-4 features and of the heads.
        num_levels: number of level classes (C1..L5).
        num_keypoints: keypoints per vertebra.

    Example:
        >>> net = VertebraDetector2D().eval()
        >>> out = net(torch.zeros(1, 2, 128, 64))
        >>> [tuple(o.shape) for o in out]
        [(1, 1, 32, 16), (1, 2, 32, 16), (1, 12, 32, 16), (1, 24, 32, 16), (1, 6, 32, 16), (1, 12, 32, 16)]
    """

    input_names = ("image",)
    output_names = ("heatmap", "offset", "keypoints", "level_logits", "kp_heatmap", "kp_offset")
    stride = 4

    def __init__(
        self,
        in_channels: int = 2,
        widths: tuple[int, ...] = (16, 32, 48, 64, 96),
        head_channels: int = 48,
        num_levels: int = 24,
        num_keypoints: int = 6,
    ) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError("widths must give 5 stages (strides 2..32)")
        stages = []
        cin = in_channels
        for w in widths:
            stages.append(_block(cin, w, 2))
            cin = w
        self.stages = nn.ModuleList(stages)
        # Lateral 1x1 projections of strides 4..32 into the fused width.
        self.lateral = nn.ModuleList([nn.Conv2d(w, head_channels, 1) for w in widths[1:]])
        self.smooth = _block(head_channels, head_channels, 1)
        # Long-range context along the column: a dilated stack at stride 32.
        self.context = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(widths[-1], widths[-1], 3, padding=d, dilation=d, bias=False),
                    nn.BatchNorm2d(widths[-1]),
                    nn.ReLU(inplace=True),
                )
                for d in (1, 2, 4)
            ]
        )
        self.heatmap = _head(head_channels, 1, head_channels)
        self.offset = _head(head_channels, 2, head_channels)
        self.keypoints = _head(head_channels, 2 * num_keypoints, head_channels)
        self.level_logits = _head(head_channels, num_levels, head_channels)
        self.kp_heatmap = _head(head_channels, num_keypoints, head_channels)
        self.kp_offset = _head(head_channels, 2 * num_keypoints, head_channels)
        for head in (self.heatmap, self.kp_heatmap):
            last = head[-1]
            assert isinstance(last, nn.Conv2d) and last.bias is not None
            nn.init.constant_(last.bias, -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``(heatmap, offset, keypoints, level_logits, kp_heatmap, kp_offset)`` at stride 4."""
        feats = []
        x = image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats[-1] = feats[-1] + self.context(feats[-1])
        top = self.lateral[-1](feats[-1])
        for i in range(len(self.lateral) - 2, -1, -1):
            lat = self.lateral[i](feats[i + 1])
            top = lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
        fused = self.smooth(top)
        return (
            torch.sigmoid(self.heatmap(fused)),
            self.offset(fused),
            self.keypoints(fused),
            self.level_logits(fused),
            torch.sigmoid(self.kp_heatmap(fused)),
            self.kp_offset(fused),
        )
