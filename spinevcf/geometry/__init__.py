"""Geometry of the method: the spine curve, curved planar reformation and resampling.

See docs/architecture.md ("Spine curve and CPR") for the conventions.
"""

from spinevcf.geometry.cpr import CPRImage, make_cpr
from spinevcf.geometry.curve import SpineCurve
from spinevcf.geometry.resample import pad_to_multiple, resample_to_grid

__all__ = ["SpineCurve", "CPRImage", "make_cpr", "resample_to_grid", "pad_to_multiple"]
