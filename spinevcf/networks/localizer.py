"""3D spine localizer: a small residual U-Net giving the vertebral-body column probability."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpineLocalizer3D"]


class _ResBlock3d(nn.Module):
    """Two 3x3x3 convolutions with instance-free batch norm and a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.skip: nn.Module = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x), inplace=True)


class SpineLocalizer3D(nn.Module):
    """Coarse 3D segmentation of the vertebral-body column (bodies and discs).

    Runs on the CT resampled to a coarse isotropic grid (4 mm by default, see the
    model folder's ``spinevcf.json``); input sizes must be multiples of
    ``2 ** len(channels)``. The output is a probability map; the spine curve is
    fitted outside the network (:mod:`spinevcf.localizer`).

    A plain residual U-Net written for this project (no MONAI-core dependency, so the
    deployed application never imports MONAI core or its optional packages).

    Args:
        channels: feature channels per resolution level.
        num_res_units: residual blocks per level (>= 1).

    Example:
        >>> net = SpineLocalizer3D().eval()
        >>> net(torch.zeros(1, 1, 32, 32, 32)).shape
        torch.Size([1, 1, 32, 32, 32])
    """

    input_names = ("image",)
    output_names = ("column_prob",)

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32, 48), num_res_units: int = 1) -> None:
        super().__init__()
        chans = [int(c) for c in channels]
        if len(chans) < 2:
            raise ValueError("channels must give at least two levels")
        if num_res_units < 1:
            raise ValueError("num_res_units must be >= 1")
        # The stem halves the resolution: a 4 mm column map needs no full-resolution features.
        self.stem = nn.Sequential(
            nn.Conv3d(1, chans[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm3d(chans[0]), nn.ReLU(inplace=True)
        )
        self.down = nn.ModuleList()
        for i in range(len(chans)):
            blocks: list[nn.Module] = [_ResBlock3d(chans[i - 1] if i else chans[0], chans[i], 2 if i else 1)]
            blocks += [_ResBlock3d(chans[i], chans[i]) for _ in range(num_res_units - 1)]
            self.down.append(nn.Sequential(*blocks))
        self.up = nn.ModuleList()
        for i in range(len(chans) - 1, 0, -1):
            self.up.append(_ResBlock3d(chans[i] + chans[i - 1], chans[i - 1]))
        self.head = nn.Conv3d(chans[0], 1, 1)

    def forward_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Logits of the column map (used by the training loss)."""
        x = self.stem(image)
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-3:], mode="trilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        # A fixed scale (not a target size) keeps the ONNX output channel dimension static.
        return F.interpolate(self.head(x), scale_factor=2.0, mode="trilinear", align_corners=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Column probability, same spatial size as ``image``."""
        return torch.sigmoid(self.forward_logits(image))
