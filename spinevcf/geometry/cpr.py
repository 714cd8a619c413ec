"""Curved planar reformation (CPR): the CT straightened along the spine curve.

Geometry (docs/architecture.md): row ``r`` <-> ``s = s0 + r * pixel_mm`` (cranial at the
top), column ``c`` <-> ``u = u0 + c * pixel_mm`` (anterior on the left, posterior on the
right). A pixel is the point ``curve.local_to_global(s, u, v)``; the image plane is
``v = 0`` (mid-sagittal along the column).

Channels (HU; the model normalisation is applied later):

* 0: mean over ``v`` in ``[-thin_slab_mm, +thin_slab_mm]`` (:data:`THIN_SLAB_SAMPLES` samples).
* 1: maximum over ``v`` in ``[-wide_slab_mm, +wide_slab_mm]`` every ``wide_step_mm``, computed
  on a grid decimated by :data:`WIDE_DECIMATION` in rows and columns, then linearly
  upsampled: the MIP shows ribs, pedicles and processes as context, for which 2 mm is
  plenty, and it costs a quarter of the samples.

Speed, measured on one shared core (300 x 512 x 512 int16 CT, 454 mm curve, 1 mm
pixels, 128 columns, 41 MIP planes): 0.09-0.13 s in total with the 2x decimated MIP,
0.43 s without it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.geometry import sampling
from spinevcf.geometry.curve import SpineCurve
from spinevcf.volume import Volume

__all__ = [
    "CPRImage",
    "make_cpr",
    "index_frame",
    "THIN_SLAB_SAMPLES",
    "WIDE_DECIMATION",
    "CHANNEL_DESCRIPTIONS",
]

log = logging.getLogger(__name__)

#: Number of lateral samples averaged into channel 0.
THIN_SLAB_SAMPLES: int = 3
#: Decimation factor (rows and columns) of the wide-slab MIP grid.
WIDE_DECIMATION: int = 2
#: Default channel descriptions (formatted with the slab parameters).
CHANNEL_DESCRIPTIONS: tuple[str, str] = (
    "mean HU over |v| <= {thin} mm ({n} samples): mid-sagittal plane",
    "max HU over |v| <= {wide} mm every {step} mm (computed at {dec}x decimation)",
)


@dataclass
class CPRImage:
    """A curved planar reformation and the geometry to map its pixels to LPS and back.

    Attributes:
        image: float32 (C, H, W) in HU.
        curve: the spine curve it was made along.
        s0: arc length (mm) of row 0.
        u0: posterior offset (mm) of column 0.
        pixel_mm: pixel size (mm), equal along rows and columns.
        channels: one description per channel.
        valid_rows: rows ``[0, valid_rows)`` lie on the curve; the rest is padding.
        source_shape: shape of the volume it was sampled from (``None`` if unknown).
        source_affine: index-to-LPS affine of that volume (``None`` if unknown).

    Example:
        >>> c = SpineCurve.from_nodes([[0, 0, 0], [0, 0, -100]])
        >>> cpr = CPRImage(np.zeros((1, 128, 64), np.float32), c, 0.0, -32.0, 1.0)
        >>> cpr.pixel_to_lps([[10, 32]]).round(6).tolist()
        [[0.0, 0.0, -10.0]]
    """

    image: npt.NDArray[np.float32]
    curve: SpineCurve
    s0: float
    u0: float
    pixel_mm: float
    channels: list[str] = field(default_factory=list)
    valid_rows: int | None = None
    source_shape: tuple[int, int, int] | None = None
    source_affine: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise ValueError(f"image must be (C, H, W), got shape {self.image.shape}")
        if not self.pixel_mm > 0:
            raise ValueError(f"pixel_mm must be positive, got {self.pixel_mm}")
        if self.valid_rows is None:
            self.valid_rows = int(self.image.shape[1])

    def inside_source(self, rc: npt.ArrayLike, margin_mm: float = 0.0) -> npt.NDArray[np.bool_]:
        """Whether (N, 2) pixels (``v = 0``) lie inside the sampled volume (all True if unknown).

        Args:
            rc: (N, 2) pixels (row, col).
            margin_mm: the point must also be at least this far (mm, per axis) inside the
                outer faces of the volume's edge voxels.
        """
        rc = np.atleast_2d(np.asarray(rc, dtype=np.float64))
        if self.source_shape is None or self.source_affine is None:
            return np.ones(len(rc), dtype=bool)
        inv = np.linalg.inv(self.source_affine)
        idx = self.pixel_to_lps(rc) @ inv[:3, :3].T + inv[:3, 3]
        shape = np.asarray(self.source_shape, dtype=np.float64)
        pad = float(margin_mm) / np.linalg.norm(np.asarray(self.source_affine)[:3, :3], axis=0)
        return ((idx >= -0.5 + pad) & (idx <= shape - 0.5 - pad)).all(axis=1)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return int(self.image.shape[1]), int(self.image.shape[2])

    def pixel_to_local(self, rc: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(s, u) in mm of (N, 2) fractional (row, col) pixels."""
        rc = np.atleast_2d(np.asarray(rc, dtype=np.float64))
        if rc.shape[-1] != 2:
            raise ValueError(f"rc must be (N, 2), got {rc.shape}")
        return self.s0 + rc[:, 0] * self.pixel_mm, self.u0 + rc[:, 1] * self.pixel_mm

    def pixel_to_lps(self, rc: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """LPS mm (N, 3) of (N, 2) fractional (row, col) pixels in the ``v = 0`` plane."""
        s, u = self.pixel_to_local(rc)
        return self.curve.local_to_global(s, u, np.zeros_like(s))

    def lps_to_local(
        self, points: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Curve coordinates ``(s, u, v)`` (each (N,)) of (N, 3) LPS points."""
        s, u, v = self.curve.global_to_local(np.atleast_2d(np.asarray(points, dtype=np.float64)))
        return s, u, v

    def lps_to_pixel(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Fractional (row, col) (N, 2) of (N, 3) LPS points projected onto ``v = 0``.

        Exact inverse of :meth:`pixel_to_lps` for points in the image plane.
        """
        s, u, _ = self.lps_to_local(points)
        return np.stack([(s - self.s0) / self.pixel_mm, (u - self.u0) / self.pixel_mm], axis=1)

    def geometry_dict(self) -> dict[str, Any]:
        """JSON-ready geometry (curve and pixel mapping), without the pixels."""
        return {
            "s0_mm": self.s0,
            "u0_mm": self.u0,
            "pixel_mm": self.pixel_mm,
            "shape": [int(n) for n in self.image.shape],
            "valid_rows": self.valid_rows,
            "channels": list(self.channels),
            "curve": self.curve.to_dict(),
        }


def index_frame(
    volume: Volume, curve: SpineCurve, s: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The curve's local frame in ``volume``'s index space at arc lengths ``s``.

    Sampling in index space avoids a matrix product per sample:
    ``index(s, u, v) = centre + u * step_u + v * step_v`` with ``centre = I(C(s))``,
    ``step_u = A p(s)``, ``step_v = A l(s)`` (``I`` the LPS-to-index map, ``A`` its linear
    part; ``p`` posterior, ``l`` left, see :meth:`SpineCurve.frame`).

    Returns:
        ``(centre, step_u, step_v)``, each of shape ``(len(s), 3)``.
    """
    s = np.atleast_1d(np.asarray(s, dtype=np.float64))
    inv = np.linalg.inv(volume.affine)
    a_mat, a_off = inv[:3, :3], inv[:3, 3]
    _, p, left = curve.frame(s)
    return curve.position(s) @ a_mat.T + a_off, p @ a_mat.T, left @ a_mat.T


def _sample_plane(
    src: npt.NDArray[Any],
    base: npt.NDArray[np.float64],
    step_u: npt.NDArray[np.float64],
    u: npt.NDArray[np.float64],
    fill_hu: float,
) -> npt.NDArray[np.float32]:
    """Trilinear samples at index points ``base[r] + u[c] * step_u[r]`` -> (R, C) float32."""
    coords = base.T[:, :, None] + step_u.T[:, :, None] * u[None, None, :]
    return sampling.map_coordinates(src, coords, order=1, mode="constant", cval=fill_hu, output=np.float32)


def make_cpr(
    volume: Volume,
    curve: SpineCurve,
    *,
    pixel_mm: float = 1.0,
    u_range_mm: tuple[float, float] = (-64.0, 64.0),
    thin_slab_mm: float = 1.5,
    wide_slab_mm: float = 40.0,
    wide_step_mm: float = 2.0,
    pad_to: int = 32,
    fill_hu: float = -1000.0,
) -> CPRImage:
    """Straighten ``volume`` along ``curve`` into a 2-channel CPR.

    Rows cover ``s`` from 0 to ``curve.length``, padded at the bottom with ``fill_hu`` to a
    multiple of ``pad_to``; columns cover ``u`` from ``u_range_mm[0]`` over at least the
    range's width, rounded up to a multiple of ``pad_to``. Samples outside the volume are
    ``fill_hu``.

    Args:
        volume: the CT in HU.
        curve: the spine curve (LPS mm).
        pixel_mm: pixel size along rows and columns.
        u_range_mm: posterior offsets of the first column and the end of the range.
        thin_slab_mm: half-width of the channel-0 mean slab.
        wide_slab_mm: half-width of the channel-1 MIP slab.
        wide_step_mm: lateral step of the MIP planes.
        pad_to: H and W are multiples of this.
        fill_hu: value outside the volume and in padding rows.

    Returns:
        The :class:`CPRImage` (float32 HU).

    Example:
        >>> v = Volume(np.zeros((40, 20, 20), np.int16), np.diag([-1.0, 1.0, 1.0, 1.0]))
        >>> c = SpineCurve.from_nodes([[10, 10, -5], [10, 10, -35]])
        >>> make_cpr(v, c, u_range_mm=(-8, 8), pad_to=16).image.shape
        (2, 32, 16)
    """
    if not pixel_mm > 0 or not wide_step_mm > 0 or thin_slab_mm < 0 or wide_slab_mm < 0:
        raise ValueError("pixel_mm and wide_step_mm must be positive, slab half-widths non-negative")
    if u_range_mm[1] <= u_range_mm[0]:
        raise ValueError(f"u_range_mm must be increasing, got {u_range_mm}")
    if pad_to < 1:
        raise ValueError(f"pad_to must be >= 1, got {pad_to}")

    rows = int(np.floor(curve.length / pixel_mm + 1e-9)) + 1
    height = int(np.ceil(rows / pad_to) * pad_to)
    width = int(np.ceil(np.ceil((u_range_mm[1] - u_range_mm[0]) / pixel_mm - 1e-9) / pad_to) * pad_to)
    s = np.arange(rows) * pixel_mm
    u = u_range_mm[0] + np.arange(width) * pixel_mm

    centre, step_u, step_v = index_frame(volume, curve, s)
    src = volume.array

    image = np.full((2, height, width), np.float32(fill_hu), dtype=np.float32)
    thin_v = np.linspace(-thin_slab_mm, thin_slab_mm, THIN_SLAB_SAMPLES) if thin_slab_mm > 0 else np.zeros(1)
    acc = np.zeros((rows, width), dtype=np.float32)
    for v in thin_v:
        acc += _sample_plane(src, centre + v * step_v, step_u, u, fill_hu)
    image[0, :rows] = acc / np.float32(len(thin_v))

    # Wide MIP on a decimated (rows, cols) grid, then linear upsampling.
    dec = WIDE_DECIMATION
    rs = np.arange(0, rows, dec)
    cs = np.arange(0, width, dec)
    n_half = int(np.floor(wide_slab_mm / wide_step_mm + 1e-9))
    wide_v = np.arange(-n_half, n_half + 1) * wide_step_mm
    mip = np.full((len(rs), len(cs)), -np.inf, dtype=np.float32)
    for v in wide_v:
        np.maximum(
            mip,
            _sample_plane(src, centre[rs] + v * step_v[rs], step_u[rs], u[0] + cs * pixel_mm, fill_hu),
            out=mip,
        )
    # Map full-resolution pixels to fractional decimated indices (the last half cell is
    # extrapolated as nearest) and interpolate.
    rr = np.arange(rows, dtype=np.float64) / dec
    cc = np.arange(width, dtype=np.float64) / dec
    up = ndimage.map_coordinates(
        mip,
        np.stack(np.meshgrid(rr, cc, indexing="ij")),
        order=1,
        mode="nearest",
        output=np.float32,
    )
    image[1, :rows] = up

    channels = [
        CHANNEL_DESCRIPTIONS[0].format(thin=thin_slab_mm, n=len(thin_v)),
        CHANNEL_DESCRIPTIONS[1].format(wide=wide_slab_mm, step=wide_step_mm, dec=dec),
    ]
    log.debug("CPR %dx%d (%d valid rows) along a %.1f mm curve", height, width, rows, curve.length)
    return CPRImage(
        image=image,
        curve=curve,
        s0=0.0,
        u0=float(u_range_mm[0]),
        pixel_mm=float(pixel_mm),
        channels=channels,
        valid_rows=rows,
        source_shape=volume.shape,
        source_affine=volume.affine.copy(),
    )
