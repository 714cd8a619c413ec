"""The two networks of the method and a factory that rebuilds them from a checkpoint."""

from spinevcf.networks.detector import VertebraDetector2D
from spinevcf.networks.factory import build_model, load_checkpoint
from spinevcf.networks.localizer import SpineLocalizer3D

__all__ = ["SpineLocalizer3D", "VertebraDetector2D", "build_model", "load_checkpoint"]
