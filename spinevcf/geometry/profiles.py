"""Helpers for 1D intensity profiles sampled across a structure."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["run_around"]


def run_around(inside: npt.ArrayLike, index: int) -> tuple[int, int] | None:
    """First and last index of the run of ``True`` in ``inside`` that contains ``index``.

    Returns ``None`` when ``inside[index]`` is ``False`` or when the run reaches either end
    of the profile (the structure is not wholly inside the sampled window).

    Example:
        >>> run_around([False, True, True, True, False], 2)
        (1, 3)
        >>> run_around([True, True, False], 0) is None
        True
    """
    a = np.asarray(inside, dtype=bool)
    if not a[index]:
        return None
    lo = index
    while lo > 0 and a[lo - 1]:
        lo -= 1
    hi = index
    while hi < len(a) - 1 and a[hi + 1]:
        hi += 1
    if lo == 0 or hi == len(a) - 1:
        return None
    return lo, hi
