"""spinevcf: vertebral compression fracture detection and Genant grading in CT.

Implements the two-step method of Zakharov et al. (MedIA 2023): a 3D spine
localizer, a curved planar reformation (CPR) along the column, and a 2D
anchor-free detector of vertebral bodies and their six endplate keypoints,
followed by height measurement and Genant grading.
"""

from spinevcf._version import __version__

__all__ = ["__version__"]
