"""3D spine localizer: a small residual U-Net giving the vertebral-body column probability."""

from __future__ import annotations

import torch
from monai.networks.nets import UNet
from torch import nn

__all__ = ["SpineLocalizer3D"]


class SpineLocalizer3D(nn.Module):
    """Coarse 3D segmentation of the vertebral-body column (bodies and discs).

    Runs on the CT resampled to a coarse isotropic grid (4 mm by default, see the
    model folder's ``spinevcf.json``). The output is a probability map; the spine
    curve is fitted outside the network (:mod:`spinevcf.localizer`).

    Args:
        channels: feature channels per resolution level.
        num_res_units: residual units per level of the MONAI U-Net.

    Example:
        >>> net = SpineLocalizer3D()
        >>> net(torch.zeros(1, 1, 32, 32, 32)).shape
        torch.Size([1, 1, 32, 32, 32])
    """

    input_names = ("image",)
    output_names = ("column_prob",)

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32, 48), num_res_units: int = 1) -> None:
        super().__init__()
        self.unet = UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=1,
            channels=tuple(channels),
            strides=tuple([2] * (len(channels) - 1)),
            num_res_units=num_res_units,
            norm="batch",
        )

    def forward_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Logits of the column map (used by the training loss)."""
        return self.unet(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Column probability, same spatial size as ``image``."""
        return torch.sigmoid(self.forward_logits(image))
