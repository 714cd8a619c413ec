"""Lateral refinement of a vertebral body's mid-sagittal plane.

The CPR image is the ``v = 0`` surface of the spine curve. The localizer's curve runs
close to, but not exactly through, each body's mid-sagittal plane (about 1-3 mm on real
scans), and a keypoint mapped back at ``v = 0`` inherits that lateral error. A vertebral
body is laterally symmetric, so its mid-plane is the midpoint of its left and right
cortical walls: this module measures that midpoint from the CT along the local lateral
axis ``l`` and returns the offset ``v`` to use when mapping the body's keypoints to 3D.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from spinevcf.geometry import sampling
from spinevcf.geometry.cpr import CPRImage
from spinevcf.geometry.profiles import run_around
from spinevcf.volume import Volume

__all__ = ["lateral_offset", "MAX_LATERAL_OFFSET_MM", "LATERAL_SEARCH_MM", "LATERAL_STEP_MM"]

#: Largest accepted correction; a larger one means the profile was not a body.
MAX_LATERAL_OFFSET_MM = 8.0
#: Half-width of the lateral profile.
LATERAL_SEARCH_MM = 35.0
#: Sampling step of the lateral profile.
LATERAL_STEP_MM = 0.5
#: Inner fraction of the body (rows between the endplates, columns between the walls) sampled.
INNER_FRACTION = 0.6
#: Samples per axis inside the body.
BODY_SAMPLES = 7


def lateral_offset(volume: Volume, cpr: CPRImage, keypoints_px: npt.ArrayLike) -> float:
    """Offset ``v`` (mm, along ``l``) of the body's mid-sagittal plane from the CPR plane.

    The mean HU profile across the body (over a grid of points between its endplates and
    walls) is thresholded halfway between its central value and its lower shoulder; the
    midpoint of the contiguous supra-threshold run around the centre is the body's
    lateral centre. Returns 0.0 when the profile does not look like a body.

    Args:
        volume: the CT.
        cpr: the CPR the keypoints were detected on.
        keypoints_px: (6, 2) keypoints (row, col) of the body.

    Returns:
        The offset in mm, within +-:data:`MAX_LATERAL_OFFSET_MM`.
    """
    kp = np.asarray(keypoints_px, dtype=np.float64)
    s_kp, u_kp = cpr.pixel_to_local(kp)
    s_top, s_bot = float(np.mean(s_kp[:3])), float(np.mean(s_kp[3:]))
    u_ant, u_post = float(np.mean(u_kp[[0, 3]])), float(np.mean(u_kp[[2, 5]]))
    s_mid, u_mid = 0.5 * (s_top + s_bot), 0.5 * (u_ant + u_post)
    hs, hu = 0.5 * INNER_FRACTION * abs(s_bot - s_top), 0.5 * INNER_FRACTION * abs(u_post - u_ant)
    if hs < 1.0 or hu < 1.0:
        return 0.0
    ss = np.linspace(s_mid - hs, s_mid + hs, BODY_SAMPLES)
    uu = np.linspace(u_mid - hu, u_mid + hu, BODY_SAMPLES)
    vv = np.arange(-LATERAL_SEARCH_MM, LATERAL_SEARCH_MM + 1e-9, LATERAL_STEP_MM)
    S, U, V = np.meshgrid(ss, uu, vv, indexing="ij")
    pts = cpr.curve.local_to_global(S.ravel(), U.ravel(), V.ravel())
    idx = volume.lps_to_index(pts)
    vals = sampling.map_coordinates(
        np.asarray(volume.array), idx.T, order=1, mode="constant", cval=-1000.0, output=np.float32
    )
    profile = vals.reshape(S.shape).mean(axis=(0, 1))
    centre = len(vv) // 2
    core = float(np.median(profile[centre - 10 : centre + 11]))
    shoulder = float(min(np.min(profile[: centre // 2]), np.min(profile[-(centre // 2) :])))
    if core - shoulder < 50.0:  # no contrast between body and surroundings
        return 0.0
    run = run_around(profile > 0.5 * (core + shoulder), centre)
    if run is None:  # not above the threshold at the centre, or reaching the window edge
        return 0.0
    lo, hi = run
    offset = 0.5 * (vv[lo] + vv[hi])
    return float(np.clip(offset, -MAX_LATERAL_OFFSET_MM, MAX_LATERAL_OFFSET_MM))
