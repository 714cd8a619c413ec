"""Point sampling of a volume on several threads, with the values of one call (issue 15).

:func:`scipy.ndimage.map_coordinates` releases the GIL while it interpolates, and every
output value depends only on its own point. Splitting the points into contiguous chunks
and sampling each chunk on its own thread therefore gives *the same values*, bit for bit,
as one call (``tests/geometry/test_sampling.py``), in about 1 / threads of the time on the
CPR's planes and the rib search's grids, which are the largest part of those stages.

The thread count is a process setting: :func:`set_threads` (the batch runner gives each
worker process its share of the CPUs, as for ONNX Runtime); by default the usable CPUs, at
most :data:`MAX_DEFAULT_THREADS`. Calls with fewer than :data:`MIN_POINTS_PER_THREAD`
points per thread stay on the calling thread.

Example:
    >>> src = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    >>> map_coordinates(src, np.array([[0.5], [1.0], [1.0]]), order=1).tolist()
    [17.5]
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["map_coordinates", "set_threads", "threads", "MAX_DEFAULT_THREADS", "MIN_POINTS_PER_THREAD"]

#: Default thread count when none is set: the usable CPUs, at most this.
MAX_DEFAULT_THREADS = 4
#: Fewer points per thread than this: one call on the calling thread (pool overhead).
MIN_POINTS_PER_THREAD = 8_192

_lock = threading.Lock()
_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def set_threads(n: int | None) -> None:
    """Sample on ``n`` threads (``None``: the default, the usable CPUs up to 4)."""
    global _threads
    if n is not None and n < 1:
        raise ValueError(f"threads must be >= 1 or None, got {n}")
    with _lock:
        _threads = n


def threads() -> int:
    """The number of threads a large call samples on."""
    n = _threads
    return n if n is not None else max(1, min(MAX_DEFAULT_THREADS, _usable_cpus()))


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="spinevcf-sample")
            _pool_size = n
        return _pool


def map_coordinates(
    src: npt.NDArray[Any],
    coords: npt.ArrayLike,
    *,
    order: int,
    mode: str = "constant",
    cval: float = 0.0,
    output: npt.DTypeLike = np.float32,
) -> npt.NDArray[Any]:
    """:func:`scipy.ndimage.map_coordinates` (no spline prefilter: ``order`` 0 or 1) on threads.

    Args:
        src: the array to sample.
        coords: ``(src.ndim, *shape)`` index coordinates.
        order: 0 (nearest) or 1 (linear); higher orders need a prefilter over the whole
            array and are refused.
        mode, cval: as for :func:`scipy.ndimage.map_coordinates`.
        output: dtype of the result.

    Returns:
        The samples, of shape ``shape`` and dtype ``output``: equal to one
        :func:`scipy.ndimage.map_coordinates` call with the same arguments.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1 (no prefilter), got {order}")
    c = np.asarray(coords)
    if c.ndim < 1 or c.shape[0] != src.ndim:
        raise ValueError(f"coords must have shape ({src.ndim}, ...), got {c.shape}")
    shape = c.shape[1:]
    flat = c.reshape(src.ndim, -1)
    total = flat.shape[1]
    n = min(threads(), total // MIN_POINTS_PER_THREAD)
    if n <= 1:
        return ndimage.map_coordinates(src, c, order=order, mode=mode, cval=cval, output=output)
    out = np.empty(total, dtype=output)
    bounds = np.linspace(0, total, n + 1).astype(int)

    def part(k: int) -> None:
        a, b = int(bounds[k]), int(bounds[k + 1])
        ndimage.map_coordinates(
            src, np.ascontiguousarray(flat[:, a:b]), order=order, mode=mode, cval=cval, output=out[a:b]
        )

    pool = _executor(n)
    for f in [pool.submit(part, k) for k in range(n)]:
        f.result()
    return out.reshape(shape)
