"""Scanner simulation: field of view, slice profile, reconstruction kernel, noise, metal streaks.

The phantom is rendered on the scanner grid (in-plane) at a fine z step, averaged over
the slice thickness (box slice-sensitivity profile, i.e. partial volume along z), then
white noise is added and the reconstruction kernel (Gaussian blur, optionally with an
unsharp mask for sharp/bone kernels) is applied to image and noise together, so the noise
is correlated like real filtered back-projection noise. HU are clipped to the 12-bit
scanner range and, optionally, everything outside the circular reconstruction field of
view is set to a padding value (-2048 or -1024, as real scanners store it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.schema import LEVELS
from spinevcf.synth import anatomy as A
from spinevcf.synth.config import FOV_PRESETS, SynthConfig
from spinevcf.synth.phantom import Phantom

__all__ = ["Acquisition", "sample_acquisition", "simulate", "scanner_affine", "PATIENT_ORIENTATIONS"]

log = logging.getLogger(__name__)

#: ImageOrientationPatient (row direction, column direction) of axial images per PatientPosition.
PATIENT_ORIENTATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "HFS": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "FFS": ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "HFP": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "FFP": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
}
#: Slice thicknesses offered (mm) and their probabilities.
SLICE_THICKNESSES: tuple[float, ...] = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
_THICKNESS_P = (0.15, 0.2, 0.2, 0.1, 0.15, 0.1, 0.1)
#: Fine z step used to integrate thick slices (mm).
_FINE_DZ_MM = 1.25
#: Lowest stored HU inside the reconstruction circle.
_MIN_HU = -1024.0
#: Image matrix (rows = columns).
_MATRIX = 512
#: Seed-stream tag of the draws made only for the non-default options (cut ends, centre jitter).
_OPTIONS_STREAM = 0xED6E
#: A cut scan end lies between these fractions of the end body's height (from its inferior
#: endplate), so that the end slice centre is well inside the body at every thickness.
CUT_FRACTION_RANGE: tuple[float, float] = (0.25, 0.75)
#: Standard deviation (mm) of the targeted reconstruction's centre around its target.
_CENTRE_JITTER_MM = 4.0
#: Offset of the descending aorta's centre from a vertebral body's centre, local frame:
#: lateral (fraction of the half-width + mm, patient left) and anterior (mm in front of the
#: anterior wall); matches the aorta of :func:`spinevcf.synth.body.sample_body` (radius ~11 mm).
_AORTA_LATERAL = (0.35, 6.0)
_AORTA_ANTERIOR_MM = 10.0


@dataclass(frozen=True)
class Acquisition:
    """Parameters of one simulated CT acquisition.

    Attributes:
        fov_preset: "thoracic", "lumbar" or "thoracolumbar".
        z_first: z (mm) of the first slice (array index 0).
        n_slices: number of slices.
        slice_spacing: distance between slice centres (mm).
        slice_thickness: reconstructed slice thickness (mm, >= spacing or overlapping).
        pixel_spacing: in-plane pixel size (mm).
        matrix: image rows = columns.
        center_x: LPS x of the image centre.
        center_y: LPS y of the image centre.
        patient_position: HFS, FFS, HFP or FFP.
        kernel: "smooth", "standard" or "sharp".
        kernel_sigma_mm: Gaussian blur of the kernel.
        sharpen: unsharp-mask gain (0: none).
        noise_hu: target noise standard deviation in uniform regions.
        padding_value: HU stored outside the reconstruction circle, or ``None``.
        streak_hu: amplitude of metal streaks (0 without implants).
    """

    fov_preset: str
    z_first: float
    n_slices: int
    slice_spacing: float
    slice_thickness: float
    pixel_spacing: float
    matrix: int
    center_x: float
    center_y: float
    patient_position: str
    kernel: str
    kernel_sigma_mm: float
    sharpen: float
    noise_hu: float
    padding_value: float | None
    streak_hu: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready parameters (rounded)."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def scanner_affine(acq: Acquisition) -> npt.NDArray[np.float64]:
    """Index->LPS affine of the scanner grid (slices, rows, columns)."""
    row, col = (np.asarray(d) for d in PATIENT_ORIENTATIONS[acq.patient_position])
    head_first = acq.patient_position.startswith("HF")
    step = np.array([0.0, 0.0, -acq.slice_spacing if head_first else acq.slice_spacing])
    ps = acq.pixel_spacing
    half = 0.5 * (acq.matrix - 1) * ps
    origin = np.array([acq.center_x, acq.center_y, acq.z_first]) - row * half - col * half
    aff = np.eye(4)
    aff[:3, 0] = step
    aff[:3, 1] = col * ps
    aff[:3, 2] = row * ps
    aff[:3, 3] = origin
    return aff


def sample_acquisition(
    rng: np.random.Generator, phantom: Phantom, config: SynthConfig | None = None
) -> Acquisition:
    """Draw scanner settings and a field of view for ``phantom``."""
    cfg = config or SynthConfig()
    preset = cfg.fov
    if preset == "random":
        preset = str(rng.choice(list(FOV_PRESETS), p=[0.45, 0.25, 0.30]))
    (a0, a1), (b0, b1) = FOV_PRESETS[preset]
    z_top = phantom.level_z(rng.uniform(a0, a1))
    z_bot = phantom.level_z(rng.uniform(b0, b1))
    thick = float(rng.choice(SLICE_THICKNESSES, p=_THICKNESS_P))
    spacing = thick * 0.8 if (thick >= 1.25 and rng.random() < 0.25) else thick
    if cfg.n_slices is not None:
        n = int(cfg.n_slices)
        mid = 0.5 * (z_top + z_bot)
        z_top = mid + 0.5 * (n - 1) * spacing
    else:
        n = int(math.floor((z_top - z_bot) / spacing)) + 1
    lo, hi = phantom.body_extent(z_top - (n - 1) * spacing, z_top)
    size = float(np.max(hi - lo))
    if rng.random() < 0.15:
        ps = rng.uniform(0.5, 0.7)  # targeted reconstruction: the body may be cut
    else:
        ps = float(np.clip(size * rng.uniform(1.03, 1.25) / 512.0, 0.5, 1.0))
    centre = 0.5 * (lo + hi) + rng.normal(0.0, 8.0, 2)
    position = str(rng.choice(list(PATIENT_ORIENTATIONS), p=[0.8, 0.1, 0.07, 0.03]))
    head_first = position.startswith("HF")
    kernel = str(rng.choice(["smooth", "standard", "sharp"], p=[0.35, 0.4, 0.25]))
    sigma = {
        "smooth": rng.uniform(0.7, 1.0),
        "standard": rng.uniform(0.45, 0.7),
        "sharp": rng.uniform(0.3, 0.45),
    }[kernel]
    sharpen = rng.uniform(0.5, 1.2) if kernel == "sharp" else 0.0
    noise = float(rng.uniform(5.0, 40.0))
    pad_draw = rng.random()
    padding = -2048.0 if pad_draw < 0.4 else (-1024.0 if pad_draw < 0.5 else None)
    streak = float(rng.uniform(300.0, 900.0)) if phantom.implants else 0.0
    if not cfg.is_default_geometry:
        # Extra draws come from their own stream: the draws above stay those of the default.
        orng = np.random.default_rng([int(phantom.seed), _OPTIONS_STREAM])
        if cfg.slice_thickness is not None:
            thick = spacing = float(cfg.slice_thickness)
            if cfg.edge == "margin" and cfg.n_slices is None:
                n = int(math.floor((z_top - z_bot) / spacing)) + 1
        if cfg.edge == "cut":
            z_top, n = _cut_ends(orng, phantom, z_top, z_bot, spacing)
        if cfg.inplane_fov_mm is not None:
            ps = float(cfg.inplane_fov_mm) / _MATRIX
            mid = z_top - 0.5 * (n - 1) * spacing
            centre = _targeted_centre(phantom, mid, str(cfg.fov_centre)) + orng.normal(
                0.0, _CENTRE_JITTER_MM, 2
            )
    return Acquisition(
        fov_preset=preset,
        z_first=float(z_top if head_first else z_top - (n - 1) * spacing),
        n_slices=n,
        slice_spacing=float(spacing),
        slice_thickness=thick,
        pixel_spacing=float(ps),
        matrix=_MATRIX,
        center_x=float(centre[0]),
        center_y=float(centre[1]),
        patient_position=position,
        kernel=kernel,
        kernel_sigma_mm=float(sigma),
        sharpen=float(sharpen),
        noise_hu=noise,
        padding_value=padding,
        streak_hu=streak,
    )


def _body_heights(phantom: Phantom) -> list[tuple[float, float]]:
    """(inferior z, superior z) of each vertebral body (C2 .. the sacral body) along its centre (mid keypoints)."""
    out = []
    for vb in phantom.spine.vertebrae:
        kp = vb.keypoints()
        out.append((float(kp[3:6, 2].mean()), float(kp[0:3, 2].mean())))
    return out


def _nearest_body(bodies: list[tuple[float, float]], z: float) -> int:
    """Index of the body whose centre height is nearest to ``z``."""
    return int(np.argmin([abs(0.5 * (lo + hi) - z) for lo, hi in bodies]))


def _cut_ends(
    rng: np.random.Generator, phantom: Phantom, z_top: float, z_bot: float, spacing: float
) -> tuple[float, int]:
    """Move both scan ends inside vertebral bodies near the preset's ends.

    The first slice centre is put at a random fraction (:data:`CUT_FRACTION_RANGE`) of the
    height of the body nearest to ``z_top``; the last slice centre is the grid point nearest
    to a random fraction of a body below it, nearest to ``z_bot``. Any body can be an end
    body, the sacral S1 included (a cut S1 is not listed as partial: it has no truth).

    Returns:
        (z of the first, most cranial slice, number of slices).
    """
    bodies = _body_heights(phantom)
    i_top = _nearest_body(bodies, z_top)
    i_bot = max(_nearest_body(bodies, z_bot), i_top + 1)
    if i_bot >= len(bodies):
        i_top, i_bot = len(bodies) - 2, len(bodies) - 1
    lo, hi = bodies[i_top]
    top = lo + rng.uniform(*CUT_FRACTION_RANGE) * (hi - lo)
    lo, hi = bodies[i_bot]
    target = lo + rng.uniform(*CUT_FRACTION_RANGE) * (hi - lo)
    n = int(round((top - target) / spacing)) + 1
    return float(top), max(n, 2)


def _targeted_centre(phantom: Phantom, z: float, target: str) -> npt.NDArray[np.float64]:
    """In-plane (x, y) of the spine's body centre or of the aorta at the body nearest to height ``z``."""
    vbs = [vb for vb in phantom.spine.vertebrae if vb.level in LEVELS]
    vb = vbs[int(np.argmin([abs(float(v.center[2]) - z) for v in vbs]))]
    if target == "spine":
        return np.asarray(vb.center[:2], dtype=np.float64)
    frac, add = _AORTA_LATERAL
    local = [[vb.half_width * frac + add, -vb.half_depth - _AORTA_ANTERIOR_MM, 0.0]]
    return np.asarray(vb.to_global(local)[0, :2], dtype=np.float64)


def _kernel(img: npt.NDArray[np.float32], sigma_px: float, sharpen: float) -> npt.NDArray[np.float32]:
    """Apply the reconstruction kernel in-plane (in place where possible)."""
    out = ndimage.gaussian_filter(img, sigma=(0.0, sigma_px, sigma_px), truncate=3.0)
    if sharpen > 0:
        low = ndimage.gaussian_filter(
            out, sigma=(0.0, 2.0 * sigma_px + 0.5, 2.0 * sigma_px + 0.5), truncate=2.5
        )
        out += np.float32(sharpen) * (out - low)
    return out


def _noise_gain(sigma_px: float, sharpen: float) -> float:
    """Standard deviation of unit white noise after the kernel."""
    probe = np.random.default_rng(0).standard_normal((3, 96, 96)).astype(np.float32)
    return float(_kernel(probe, sigma_px, sharpen)[1, 20:-20, 20:-20].std())


def _streaks(
    img: npt.NDArray[np.float32], rng: np.random.Generator, amplitude: float, metal_hu: float = 2500.0
) -> None:
    """Add radial bright/dark streaks around metal in each axial slice (in place)."""
    n, rows, cols = img.shape
    n_ang = 720
    profile = rng.normal(0.0, 1.0, n_ang) * (rng.random(n_ang) < 0.15)
    profile = np.convolve(profile, [0.25, 0.5, 0.25], mode="same").astype(np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    for k in range(n):
        metal = img[k] >= metal_hu
        if not metal.any():
            continue
        lab, m = ndimage.label(metal)
        cents = ndimage.center_of_mass(metal, lab, range(1, m + 1))
        sizes = ndimage.sum(metal, lab, range(1, m + 1))
        field = np.zeros((rows, cols), np.float32)
        for (cy, cx), sz in zip(cents, sizes, strict=True):
            ang = np.arctan2(yy - np.float32(cy), xx - np.float32(cx))
            idx = ((ang + np.pi) * (n_ang / (2 * np.pi))).astype(np.int32) % n_ang
            r = np.hypot(yy - np.float32(cy), xx - np.float32(cx))
            field += profile[idx] * np.float32(min(1.0, sz / 40.0)) * np.exp(-r / np.float32(90.0)) * (r > 3)
        if len(cents) >= 2:  # dark band between the two largest metal parts
            order = np.argsort(sizes)[::-1][:2]
            (y0, x0), (y1, x1) = cents[order[0]], cents[order[1]]
            d = np.hypot(x1 - x0, y1 - y0) + 1e-6
            dist = np.abs(
                (xx - np.float32(x0)) * np.float32((y1 - y0) / d)
                - (yy - np.float32(y0)) * np.float32((x1 - x0) / d)
            )
            field -= np.float32(0.8) * np.exp(-((dist / np.float32(6.0)) ** 2))
        img[k] += np.float32(amplitude) * field * ~metal


#: Noise pool: slices of white noise, margin for random shifts.
_POOL_SLICES = 24
_POOL_MARGIN = 61


def _add_noise(img: npt.NDArray[np.float32], rng: np.random.Generator, sigma: np.float32) -> None:
    """Add white Gaussian noise (in place), drawn from a shifted/flipped pool to save time.

    Each slice takes a random pool slice at a random offset, flip and sign, so
    neighbouring slices are uncorrelated and no pattern repeats visibly.
    """
    n, rows, cols = img.shape
    pool = rng.standard_normal(
        (min(n, _POOL_SLICES), rows + _POOL_MARGIN, cols + _POOL_MARGIN), dtype=np.float32
    )
    pool *= sigma
    picks = rng.integers(0, len(pool), n)
    offs = rng.integers(0, _POOL_MARGIN + 1, (n, 2))
    flips = rng.integers(0, 4, n)
    for k in range(n):
        view = pool[picks[k], offs[k, 0] : offs[k, 0] + rows, offs[k, 1] : offs[k, 1] + cols]
        if flips[k] & 1:
            view = view[::-1]
        if flips[k] & 2:
            view = view[:, ::-1]
        img[k] += view


def simulate(acq: Acquisition, phantom: Phantom, seed: int) -> npt.NDArray[np.int16]:
    """Render ``phantom`` as the scanner of ``acq`` would reconstruct it.

    Args:
        acq: acquisition settings.
        phantom: the patient.
        seed: seed of the noise and streak patterns.

    Returns:
        int16 HU array (slices, rows, columns) on :func:`scanner_affine` ``(acq)``.
    """
    rng = np.random.default_rng([int(seed), 0xAC0])
    aff = scanner_affine(acq)
    n, mtx = acq.n_slices, acq.matrix
    if acq.slice_thickness <= 1.25:
        m, half = 1, 0
    else:
        m = max(1, math.ceil(acq.slice_spacing / _FINE_DZ_MM))
        half = int(round(0.5 * acq.slice_thickness / (acq.slice_spacing / m)))
    fine = aff.copy()
    fine[:3, 0] = aff[:3, 0] / m
    fine[:3, 3] = aff[:3, 3] - fine[:3, 0] * half
    n_fine = (n - 1) * m + 1 + 2 * half
    img = phantom.render(fine, (n_fine, mtx, mtx), acquisition=acq)
    if m > 1 or half > 0:
        # box slice profile: mean of the fine slices within the thickness (slice-wise sums: cache friendly)
        avg = np.empty((n, mtx, mtx), np.float32)
        for k in range(n):
            np.sum(img[k * m : k * m + 2 * half + 1], axis=0, out=avg[k])
        avg *= np.float32(1.0 / (2 * half + 1))
        img = avg
    np.minimum(img, np.float32(A.METAL_HU), out=img)
    if acq.streak_hu > 0:
        _streaks(img, rng, acq.streak_hu)
    sigma_px = acq.kernel_sigma_mm / acq.pixel_spacing
    gain = _noise_gain(sigma_px, acq.sharpen)
    _add_noise(img, rng, np.float32(acq.noise_hu / gain))
    img = _kernel(img, sigma_px, acq.sharpen)
    np.clip(img, _MIN_HU, A.SCANNER_MAX_HU, out=img)
    if acq.padding_value is not None:
        c = 0.5 * (mtx - 1)
        yy, xx = np.ogrid[0:mtx, 0:mtx]
        outside = (yy - c) ** 2 + (xx - c) ** 2 > (0.5 * mtx) ** 2
        img[:, outside] = np.float32(acq.padding_value)
    return np.rint(img).astype(np.int16)
