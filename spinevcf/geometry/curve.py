"""The spine curve: a smooth 3D curve in LPS mm parametrised by arc length.

Conventions (docs/architecture.md, "Spine curve and CPR"):

* ``s`` is the arc length in mm, ``0`` at the cranial end, increasing caudally.
* Local frame at ``s``: ``t`` = unit tangent (caudal); ``p`` = LPS +y with its ``t``
  component removed, normalised (posterior, a fixed sagittal reference so the frame
  never twists or flips at inflection points, unlike a Frenet frame); ``l = t x p``
  (patient left for a cranio-caudal curve).
* ``local_to_global(s, u, v) = C(s) + u p(s) + v l(s)``; :meth:`SpineCurve.global_to_local`
  is its inverse near the curve (closest-point projection).

Representation: a C2 cubic spline through nodes spaced :data:`NODE_STEP_MM` apart in
true arc length. Outside ``[0, length]`` the curve continues as a straight line along the
end tangent, so every ``s`` is valid and the frame is constant there.

Degenerate frame: where ``t`` is (almost) parallel to LPS y (a curve running
antero-posteriorly, which a spine in an axial CT never does) ``p`` is undefined; then
LPS -z (inferior) with its ``t`` component removed is used instead. The switch is
discontinuous by nature; it only happens when ``|t . y| > 1 - 1e-9``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.interpolate import CubicSpline, make_smoothing_spline

__all__ = [
    "SpineCurve",
    "NODE_STEP_MM",
    "DEFAULT_SMOOTHING_MM",
    "DEFAULT_EXTEND_MM",
]

log = logging.getLogger(__name__)

#: Arc-length spacing of the spline nodes of a fitted curve (mm).
NODE_STEP_MM: float = 2.0
#: Default smoothing bandwidth of :meth:`SpineCurve.fit` (mm of chord length).
DEFAULT_SMOOTHING_MM: float = 8.0
#: Default linear extension at both ends of a fitted curve (mm).
DEFAULT_EXTEND_MM: float = 0.0

_DENSE_STEP_MM = 0.25  # sampling step of the arc-length reparametrisation
_SEARCH_STEP_MM = 1.0  # coarse search step of global_to_local
_NEWTON_ITERATIONS = 8
_MIN_SPLINE_POINTS = 5  # make_smoothing_spline needs at least 5 points
_DEGENERATE_DOT = 1.0 - 1e-9
_POSTERIOR = np.array([0.0, 1.0, 0.0])
_INFERIOR = np.array([0.0, 0.0, -1.0])


class SpineCurve:
    """A smooth 3D curve parametrised by arc length ``s`` (mm), ``s`` increasing caudally.

    Build one with :meth:`fit` (from noisy points) or :meth:`from_nodes` (from points that
    are already equally spaced in arc length, e.g. a stored curve).

    Args:
        nodes: (M, 3) LPS points at arc lengths ``s_nodes``; M >= 2.
        s_nodes: (M,) strictly increasing arc lengths starting at 0.

    Example:
        >>> z = np.linspace(100, -100, 11)
        >>> c = SpineCurve.fit(np.c_[0 * z, 0 * z, z])
        >>> round(c.length, 3), c.tangent(10.0).round(6).tolist()
        (200.0, [0.0, 0.0, -1.0])
    """

    def __init__(self, nodes: npt.ArrayLike, s_nodes: npt.ArrayLike) -> None:
        pts = np.asarray(nodes, dtype=np.float64)
        s = np.asarray(s_nodes, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < 2:
            raise ValueError(f"nodes must be (M, 3) with M >= 2, got {pts.shape}")
        if s.shape != (pts.shape[0],):
            raise ValueError(f"s_nodes must have shape ({pts.shape[0]},), got {s.shape}")
        if not np.all(np.isfinite(pts)) or not np.all(np.isfinite(s)):
            raise ValueError("nodes and s_nodes must be finite")
        if np.any(np.diff(s) <= 0):
            raise ValueError("s_nodes must be strictly increasing")
        self._s = s - s[0]
        self._nodes = pts
        bc = "natural" if pts.shape[0] > 2 else "not-a-knot"
        self._spline = CubicSpline(self._s, pts, axis=0, bc_type=bc)
        self._d1 = self._spline.derivative(1)
        self._d2 = self._spline.derivative(2)
        self._length = float(self._s[-1])
        self._t_start = self._unit(self._d1(0.0))
        self._t_end = self._unit(self._d1(self._length))
        # Dense samples for the coarse closest-point search.
        n = max(2, int(np.ceil(self._length / _SEARCH_STEP_MM)) + 1)
        self._search_s = np.linspace(0.0, self._length, n)
        self._search_pts = self._spline(self._search_s)

    # ------------------------------------------------------------------ construction
    @classmethod
    def fit(
        cls,
        points_lps: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        *,
        smoothing_mm: float = DEFAULT_SMOOTHING_MM,
        extend_mm: float = DEFAULT_EXTEND_MM,
    ) -> SpineCurve:
        """Fit a smooth curve through noisy points of the column.

        Points are sorted cranio-caudally (z descending; robust to scoliosis, which bends
        the column laterally, not upwards), parametrised by a preliminary chord length,
        smoothed per coordinate with a penalised smoothing spline, then reparametrised
        by true arc length and optionally extended linearly at both ends.

        Args:
            points_lps: (N, 3) points in LPS mm, any order; N >= 2.
            weights: optional (N,) non-negative weights (e.g. probability mass per plane).
            smoothing_mm: bandwidth of the smoothing, in mm of chord length: wiggles
                shorter than about this are removed. 0 interpolates the points.
            extend_mm: straight extension added at both ends along the end tangents.

        Returns:
            The fitted curve, ``s = 0`` at its cranial end.

        Raises:
            ValueError: too few distinct points, bad weights, or a zero-length curve.

        Example:
            >>> z = np.linspace(0, -90, 10)
            >>> c = SpineCurve.fit(np.c_[0 * z, 0 * z, z], extend_mm=5)
            >>> round(c.length, 6), c.position(0.0).round(6).tolist()
            (100.0, [0.0, 0.0, 5.0])
        """
        pts = np.asarray(points_lps, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points_lps must be (N, 3), got {pts.shape}")
        w = np.ones(len(pts)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(pts),):
            raise ValueError(f"weights must have shape ({len(pts)},), got {w.shape}")
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            raise ValueError("weights must be finite and non-negative")
        keep = np.all(np.isfinite(pts), axis=1) & (w > 0)
        pts, w = pts[keep], w[keep]
        if smoothing_mm < 0 or extend_mm < 0:
            raise ValueError("smoothing_mm and extend_mm must be non-negative")

        order = np.argsort(-pts[:, 2], kind="stable")
        pts, w = pts[order], w[order]
        # Merge points that coincide (a zero chord would break the parametrisation).
        chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
        distinct = np.r_[True, np.diff(chord) > 1e-6]
        if not np.all(distinct):
            groups = np.cumsum(distinct) - 1
            ng = int(groups[-1]) + 1
            wsum = np.bincount(groups, weights=w, minlength=ng)
            pts = np.stack(
                [np.bincount(groups, weights=w * pts[:, k], minlength=ng) / wsum for k in range(3)], axis=1
            )
            w = wsum
            chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
        if len(pts) < 2 or chord[-1] <= 1e-6:
            raise ValueError("need at least 2 distinct points to fit a curve")
        w = w / w.mean()

        dense_tau = np.linspace(0.0, chord[-1], max(2, int(np.ceil(chord[-1] / _DENSE_STEP_MM)) + 1))
        if len(pts) >= _MIN_SPLINE_POINTS:
            # Penalised spline: sum w (y - f)^2 + lam * int f''^2. Its equivalent kernel
            # has bandwidth h = (lam * spacing / mean(w)) ** (1/4), so lam = h^4 / spacing.
            spacing = chord[-1] / (len(pts) - 1)
            lam = smoothing_mm**4 / spacing if smoothing_mm > 0 else 1e-12
            dense = np.stack(
                [make_smoothing_spline(chord, pts[:, k], w=w, lam=lam)(dense_tau) for k in range(3)], axis=1
            )
        else:
            deg = min(len(pts) - 1, 2)
            dense = np.stack(
                [np.polyval(np.polyfit(chord, pts[:, k], deg, w=np.sqrt(w)), dense_tau) for k in range(3)],
                axis=1,
            )
        return cls._from_dense(dense, extend_mm)

    @classmethod
    def _from_dense(cls, dense: npt.NDArray[np.float64], extend_mm: float) -> SpineCurve:
        """Reparametrise densely sampled points by arc length and build the curve."""
        arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))]
        total = float(arc[-1])
        if total <= 1e-6:
            raise ValueError("the fitted curve has zero length")
        n = max(2, int(np.ceil(total / NODE_STEP_MM)) + 1)
        s_nodes = np.linspace(0.0, total, n)
        nodes = np.stack([np.interp(s_nodes, arc, dense[:, k]) for k in range(3)], axis=1)
        if extend_mm > 0:
            base = cls(nodes, s_nodes)
            k = max(1, int(np.ceil(extend_mm / NODE_STEP_MM)))
            steps = np.linspace(0.0, extend_mm, k + 1)[1:]
            head = base.position(-steps[::-1])
            tail = base.position(total + steps)
            nodes = np.concatenate([head, nodes, tail])
            s_nodes = np.concatenate([-steps[::-1], s_nodes, total + steps]) + extend_mm
        return cls(nodes, s_nodes)

    @classmethod
    def from_nodes(cls, nodes: npt.ArrayLike, s_nodes: npt.ArrayLike | None = None) -> SpineCurve:
        """Curve through given nodes; ``s_nodes`` defaults to their cumulative chord length.

        Args:
            nodes: (M, 3) LPS points ordered cranial to caudal.
            s_nodes: optional (M,) arc lengths of the nodes.

        Returns:
            The interpolating curve (no smoothing).
        """
        pts = np.asarray(nodes, dtype=np.float64)
        if s_nodes is None:
            s_nodes = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
        return cls(pts, s_nodes)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (nodes and their arc lengths).

        Example:
            >>> c = SpineCurve.from_nodes([[0, 0, 0], [0, 0, -10]])
            >>> SpineCurve.from_dict(c.to_dict()).length
            10.0
        """
        return {
            "type": "cubic_spline_arc_length",
            "s_mm": self._s.round(6).tolist(),
            "nodes_lps_mm": self._nodes.round(6).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpineCurve:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(d["nodes_lps_mm"], d["s_mm"])
        except KeyError as exc:
            raise ValueError(f"curve dict lacks key {exc.args[0]!r}") from exc

    # ------------------------------------------------------------------ evaluation
    @property
    def length(self) -> float:
        """Arc length in mm (the curve spans ``s`` in ``[0, length]``)."""
        return self._length

    @property
    def nodes(self) -> npt.NDArray[np.float64]:
        """(M, 3) spline nodes in LPS mm (a copy)."""
        return self._nodes.copy()

    @staticmethod
    def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        n = np.linalg.norm(v, axis=-1, keepdims=True)
        return v / np.where(n > 0, n, 1.0)

    def _eval(self, s: npt.ArrayLike, nu: int) -> npt.NDArray[np.float64]:
        """Position (nu=0), first (1) or second (2) derivative with linear extrapolation."""
        s = np.asarray(s, dtype=np.float64)
        flat = np.atleast_1d(s).ravel()
        sc = np.clip(flat, 0.0, self._length)
        below = flat < 0.0
        above = flat > self._length
        if nu == 0:
            out = self._spline(sc)
            out[below] += (flat[below] - 0.0)[:, None] * self._t_start
            out[above] += (flat[above] - self._length)[:, None] * self._t_end
        elif nu == 1:
            out = self._d1(sc)
            out[below] = self._t_start
            out[above] = self._t_end
        else:
            out = self._d2(sc)
            out[below | above] = 0.0
        return out.reshape(s.shape + (3,))

    def position(self, s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Point(s) ``C(s)`` in LPS mm: shape ``s.shape + (3,)``."""
        return self._eval(s, 0)

    def tangent(self, s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Unit tangent(s) pointing caudally: shape ``s.shape + (3,)``."""
        return self._unit(self._eval(s, 1))

    def frame(
        self, s: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Local frame ``(t, p, l)`` at ``s``, each of shape ``s.shape + (3,)``.

        ``p`` is LPS +y minus its component along ``t`` (normalised); ``l = t x p``.
        See the module docstring for the degenerate case ``t || y``.

        Example:
            >>> c = SpineCurve.from_nodes([[0, 0, 0], [0, 0, -10]])
            >>> [(v.round(6) + 0.0).tolist() for v in c.frame(5.0)]
            [[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
        """
        t = self.tangent(s)
        ty = t[..., 1:2]
        p = _POSTERIOR - ty * t
        degenerate = np.abs(ty[..., 0]) > _DEGENERATE_DOT
        if np.any(degenerate):
            log.debug(
                "curve tangent parallel to LPS y at %d sample(s): using -z as reference", degenerate.sum()
            )
            td = t[degenerate]
            p[degenerate] = _INFERIOR - (td @ _INFERIOR)[:, None] * td
        p = self._unit(p)
        return t, p, np.cross(t, p)

    def local_to_global(
        self, s: npt.ArrayLike, u: npt.ArrayLike, v: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """LPS points ``C(s) + u p(s) + v l(s)`` (arguments broadcast together).

        Args:
            s: arc length(s) in mm.
            u: posterior offset(s) in mm.
            v: left offset(s) in mm.

        Returns:
            Array of shape ``broadcast(s, u, v).shape + (3,)``.
        """
        s, u, v = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (s, u, v)))
        # Grids of points repeat each s many times (a plane of (u, v) per s): the curve and
        # its frame are evaluated once per distinct s (the same values as per point).
        distinct, where = np.unique(s, return_inverse=True)
        where = where.reshape(s.shape)
        c = self.position(distinct)[where]
        _, p, left = (f[where] for f in self.frame(distinct))
        return c + u[..., None] * p + v[..., None] * left

    def global_to_local(
        self, points: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Curve coordinates ``(s, u, v)`` of (N, 3) LPS points by closest-point projection.

        A coarse search over samples every :data:`_SEARCH_STEP_MM` mm is refined by
        Newton steps on ``g(s) = (P - C(s)) . C'(s) = 0``, i.e. ``P`` lies in the plane
        normal to the curve at ``s``. This is the exact inverse of
        :meth:`local_to_global` for points closer to the curve than its radius of
        curvature; beyond the ends the straight extension is used.

        Args:
            points: (N, 3) or (3,) LPS points.

        Returns:
            ``(s, u, v)``, each (N,) (or scalars' 0-d arrays for a single (3,) point).
        """
        pts = np.asarray(points, dtype=np.float64)
        single = pts.ndim == 1
        pts = np.atleast_2d(pts)
        if pts.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got {pts.shape}")
        s = self._coarse_search(pts)
        max_step = 2.0 * _SEARCH_STEP_MM
        for _ in range(_NEWTON_ITERATIONS):
            c = self._eval(s, 0)
            d1 = self._eval(s, 1)
            d2 = self._eval(s, 2)
            r = pts - c
            g = np.einsum("ij,ij->i", r, d1)
            dg = -np.einsum("ij,ij->i", d1, d1) + np.einsum("ij,ij->i", r, d2)
            # Newton on a minimum of the distance needs dg < 0; otherwise step along -g.
            step = np.where(dg < -1e-9, -g / np.where(dg < -1e-9, dg, -1.0), g)
            step = np.clip(step, -max_step, max_step)
            s = s + step
            if np.all(np.abs(step) < 1e-9):
                break
        c = self.position(s)
        _, p, left = self.frame(s)
        r = pts - c
        u = np.einsum("ij,ij->i", r, p)
        v = np.einsum("ij,ij->i", r, left)
        if single:
            return s[0], u[0], v[0]
        return s, u, v

    def _coarse_search(self, pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Arc length of the nearest dense sample (ends extended) for every point."""
        out = np.empty(len(pts))
        chunk = max(1, 2_000_000 // len(self._search_s))
        for i in range(0, len(pts), chunk):
            d2 = ((pts[i : i + chunk, None, :] - self._search_pts[None, :, :]) ** 2).sum(-1)
            out[i : i + chunk] = self._search_s[np.argmin(d2, axis=1)]
        # Points beyond an end project onto the straight extension.
        ts, te = self._t_start, self._t_end
        before = (pts - self._search_pts[0]) @ ts
        after = (pts - self._search_pts[-1]) @ te
        out = np.where((out == 0.0) & (before < 0), before, out)
        out = np.where((out == self._length) & (after > 0), self._length + after, out)
        return out

    def __repr__(self) -> str:
        return f"SpineCurve(length={self._length:.1f} mm, nodes={len(self._nodes)})"
