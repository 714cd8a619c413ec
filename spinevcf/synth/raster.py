"""Rasterisation helpers: evaluate analytic shapes on any voxel grid.

A grid is an index->LPS affine (:class:`spinevcf.volume.Volume` convention) and a shape.
Shapes are evaluated only inside their bounding box, converted to index ranges via the
inverse affine. Coordinates are built by broadcasting: for an axis-aligned grid ``x``
has shape ``(1, 1, n2)``, ``z`` shape ``(n0, 1, 1)`` and so on, so z-dependent parameters
cost one value per slice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Canvas", "Tube", "Ellipsoid", "rotation_from_axes"]

F32 = np.float32
Slices = tuple[slice, slice, slice]
Value = float | Callable[..., npt.NDArray[np.float32]]


def rotation_from_axes(w_axis: npt.ArrayLike, v_hint: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Orthonormal frame with columns (u, v, w): ``w`` along ``w_axis``, ``v`` near ``v_hint``, ``u = v x w``."""
    w = np.asarray(w_axis, dtype=np.float64)
    w = w / np.linalg.norm(w)
    v = np.asarray(v_hint, dtype=np.float64) - np.dot(v_hint, w) * w
    nv = np.linalg.norm(v)
    if nv < 1e-9:
        raise ValueError("v_hint is parallel to w_axis")
    v = v / nv
    u = np.cross(v, w)
    return np.stack([u, v, w], axis=1)


class Canvas:
    """An output grid being painted: HU (float32) or label (uint8) mode.

    Args:
        affine: 4x4 index->LPS matrix.
        shape: grid shape.
        labels: paint label values instead of HU.
        fill: initial HU (ignored in label mode, which starts at 0).
    """

    def __init__(
        self, affine: npt.ArrayLike, shape: tuple[int, int, int], *, labels: bool, fill: float
    ) -> None:
        self.affine = np.asarray(affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be 3 positive integers, got {shape}")
        self.inv = np.linalg.inv(self.affine)
        self.shape = tuple(int(s) for s in shape)
        self.labels = labels
        self.data: npt.NDArray[np.generic] = (
            np.zeros(self.shape, np.uint8) if labels else np.full(self.shape, fill, dtype=F32)
        )
        self._axes = [np.arange(n, dtype=F32) for n in self.shape]
        corners = np.array(list(itertools.product(*[(-1.0, n) for n in self.shape])), dtype=np.float64)
        pts = corners @ self.affine[:3, :3].T + self.affine[:3, 3]
        #: LPS bounding box of the grid (one voxel margin).
        self.lps_lo, self.lps_hi = pts.min(axis=0), pts.max(axis=0)

    def overlaps(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether LPS boxes ``[lo, hi]`` (shape (..., 3)) overlap the grid's bounding box."""
        return np.all((np.asarray(hi) >= self.lps_lo) & (np.asarray(lo) <= self.lps_hi), axis=-1)

    def box(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> Slices | None:
        """Index slices covering the LPS box ``[lo, hi]``; ``None`` when outside the grid."""
        corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))), dtype=np.float64)
        idx = corners @ self.inv[:3, :3].T + self.inv[:3, 3]
        a = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 1, 0)
        b = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 2, self.shape)
        if np.any(a >= b):
            return None
        return (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))

    def region(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> Slices | None:
        """:meth:`box` of ``[lo, hi]`` after the cheap :meth:`overlaps` test; ``None`` when outside."""
        if not self.overlaps(lo, hi):
            return None
        return self.box(lo, hi)

    def coords(self, sl: Slices) -> tuple[npt.NDArray[np.float32], ...]:
        """Broadcastable LPS coordinate arrays (x, y, z) of the voxels in ``sl``."""
        out = []
        for r in range(3):
            acc: npt.NDArray[np.float32] = np.full((1, 1, 1), self.affine[r, 3], dtype=F32)
            for a in range(3):
                c = self.affine[r, a]
                if c != 0.0:
                    shp = [1, 1, 1]
                    rng = self._axes[a][sl[a]]
                    shp[a] = rng.size
                    acc = acc + (F32(c) * rng).reshape(shp)
            out.append(acc)
        return tuple(out)

    def paint(self, sl: Slices, mask: npt.NDArray[np.bool_], hu: Value, label: int | None) -> None:
        """Set voxels of ``sl`` where ``mask`` to ``hu`` (HU mode) or ``label`` (label mode).

        ``hu`` may be a callable returning an array broadcastable to the box; it is only
        called in HU mode. ``label=None`` leaves labels unchanged.
        """
        view = self.data[sl]
        if self.labels:
            if label is not None:
                np.copyto(view, np.uint8(label), where=np.broadcast_to(mask, view.shape))
            return
        val = hu() if callable(hu) else F32(hu)
        np.copyto(view, val, where=np.broadcast_to(mask, view.shape), casting="same_kind")


def local_coords(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    z: npt.NDArray[np.float32],
    origin: npt.NDArray[np.float64],
    rot: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float32], ...]:
    """Coordinates of LPS points in the frame ``origin + rot @ (u, v, w)``."""
    dx, dy, dz = x - F32(origin[0]), y - F32(origin[1]), z - F32(origin[2])
    return tuple(dx * F32(rot[0, k]) + dy * F32(rot[1, k]) + dz * F32(rot[2, k]) for k in range(3))


@dataclass
class Ellipsoid:
    """A solid ellipsoid with semi-axes ``radii`` along the columns of ``rot``.

    Attributes:
        center: LPS centre.
        radii: semi-axes (mm).
        rot: 3x3 rotation, columns = ellipsoid axes in LPS.
        hu: HU value inside.
        label: label value or ``None``.
        shell_mm: when > 0, a shell of this thickness gets ``shell_hu``.
        shell_hu: HU of the shell.
    """

    center: npt.NDArray[np.float64]
    radii: npt.NDArray[np.float64]
    rot: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(3))
    hu: float = 0.0
    label: int | None = None
    shell_mm: float = 0.0
    shell_hu: float = 0.0

    def bounds(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Axis-aligned LPS bounding box."""
        ext = np.sqrt(((self.rot * self.radii[None, :]) ** 2).sum(axis=1))
        return self.center - ext, self.center + ext

    def draw(self, cv: Canvas) -> None:
        """Paint onto ``cv``."""
        sl = cv.region(*self.bounds())
        if sl is None:
            return
        u, v, w = local_coords(*cv.coords(sl), self.center, self.rot)
        r = self.radii
        q = (u / F32(r[0])) ** 2 + (v / F32(r[1])) ** 2 + (w / F32(r[2])) ** 2
        if self.shell_mm > 0 and not cv.labels:
            cv.paint(sl, q <= 1.0, self.shell_hu, self.label)
            ri = np.maximum(r - self.shell_mm, 0.1)
            qi = (u / F32(ri[0])) ** 2 + (v / F32(ri[1])) ** 2 + (w / F32(ri[2])) ** 2
            cv.paint(sl, qi <= 1.0, self.hu, self.label)
        else:
            cv.paint(sl, q <= 1.0, self.hu, self.label)


@dataclass
class Tube:
    """A tube along a polyline with an elliptical cross-section (capsule chain).

    The cross-section at each vertex has semi-axes ``ra`` (along the vertex's ``normal``
    made orthogonal to the segment) and ``rb`` (the third direction); segments join with
    ellipsoidal caps. With ``cortex_mm > 0`` the tube is bone: a shell of
    ``cortex_hu`` around a core of ``hu``.

    Attributes:
        points: (n, 3) LPS vertices, n >= 2.
        ra: (n,) semi-axes along ``normals``.
        rb: (n,) other semi-axes.
        normals: (n, 3) reference directions of the ``ra`` axis.
        hu: core HU.
        label: label value or ``None``.
        cortex_mm: shell thickness (0: solid).
        cortex_hu: shell HU.
    """

    points: npt.NDArray[np.float64]
    ra: npt.NDArray[np.float64]
    rb: npt.NDArray[np.float64]
    normals: npt.NDArray[np.float64]
    hu: float
    label: int | None = None
    cortex_mm: float = 0.0
    cortex_hu: float = 0.0

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        n = len(self.points)
        if self.points.shape != (n, 3) or n < 2:
            raise ValueError(f"points must be (n>=2, 3), got {self.points.shape}")
        self.ra = np.broadcast_to(np.asarray(self.ra, dtype=np.float64), (n,)).copy()
        self.rb = np.broadcast_to(np.asarray(self.rb, dtype=np.float64), (n,)).copy()
        self.normals = np.broadcast_to(np.asarray(self.normals, dtype=np.float64), (n, 3)).copy()

    def bounds(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Axis-aligned LPS bounding box."""
        r = np.maximum(self.ra, self.rb)[:, None]
        return (self.points - r).min(axis=0), (self.points + r).max(axis=0)

    def draw(self, cv: Canvas) -> None:
        """Paint onto ``cv`` segment by segment."""
        r = np.maximum(self.ra, self.rb)
        rr = np.maximum(r[:-1], r[1:])[:, None]
        p0, p1 = self.points[:-1], self.points[1:]
        hit = cv.overlaps(np.minimum(p0, p1) - rr, np.maximum(p0, p1) + rr)
        for i in np.flatnonzero(hit):
            self._draw_segment(cv, int(i))

    def _draw_segment(self, cv: Canvas, i: int) -> None:
        p0, p1 = self.points[i], self.points[i + 1]
        seg = p1 - p0
        length = float(np.linalg.norm(seg))
        if length < 1e-6:
            return
        t = seg / length
        r = max(self.ra[i], self.rb[i], self.ra[i + 1], self.rb[i + 1])
        sl = cv.box(np.minimum(p0, p1) - r, np.maximum(p0, p1) + r)
        if sl is None:
            return
        nrm = 0.5 * (self.normals[i] + self.normals[i + 1])
        n1 = nrm - np.dot(nrm, t) * t
        if np.linalg.norm(n1) < 1e-6:
            n1 = np.cross(t, [1.0, 0.0, 0.0]) if abs(t[0]) < 0.9 else np.cross(t, [0.0, 1.0, 0.0])
        n1 /= np.linalg.norm(n1)
        n2 = np.cross(t, n1)
        a, b, c = local_coords(*cv.coords(sl), p0, np.stack([t, n1, n2], axis=1))
        s = np.clip(a / F32(length), 0.0, 1.0)
        ra = F32(self.ra[i]) + s * F32(self.ra[i + 1] - self.ra[i])
        rb = F32(self.rb[i]) + s * F32(self.rb[i + 1] - self.rb[i])
        excess = a - s * F32(length)
        rcap = np.minimum(ra, rb)
        q = (b / ra) ** 2 + (c / rb) ** 2 + (excess / rcap) ** 2
        inside = q <= 1.0
        if not inside.any():
            return
        if self.cortex_mm > 0 and not cv.labels:
            cv.paint(sl, inside, self.cortex_hu, self.label)
            ci = F32(self.cortex_mm)
            rai, rbi = np.maximum(ra - ci, 0.2), np.maximum(rb - ci, 0.2)
            qi = (b / rai) ** 2 + (c / rbi) ** 2 + (excess / np.minimum(rai, rbi)) ** 2
            cv.paint(sl, qi <= 1.0, self.hu, self.label)
        else:
            cv.paint(sl, inside, self.hu, self.label)
