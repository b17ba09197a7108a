"""Scalar series and their min/max downsampling.

A long series drawn at screen resolution must not hide spikes (Deeplearning4j's UI
averaged them away). :func:`downsample_minmax` cuts the series into equal buckets of
consecutive points and keeps, in each bucket, the point with the smallest and the point
with the largest finite value, the first non-finite point (NaN or inf, which a chart
marks rather than hides), and always the newest point.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from embedviz.errors import InputError


class Series(NamedTuple):
    """One scalar series of one worker, sorted by iteration.

    ``iterations`` int64, ``timestamps`` float64 (Unix seconds), ``values`` float64
    (NaN and inf kept as they were recorded).
    """

    iterations: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:  # noqa: D105
        return len(self.iterations)

    @classmethod
    def empty(cls) -> Series:
        """A series with no points."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64))

    def take(self, index: np.ndarray) -> Series:
        """The points at ``index``."""
        return Series(self.iterations[index], self.timestamps[index], self.values[index])


def downsample_minmax(values: np.ndarray, max_points: int | None) -> np.ndarray:
    """Indices of the points to keep so that spikes and the newest point survive.

    Parameters
    ----------
    values : array of float, shape (n,)
        In drawing order (by iteration).
    max_points : int or None
        About how many points to keep (at least 2); None keeps all. The result has at
        most ``2 * (max_points // 2) + (max_points // 2) + 1`` points: two extremes per
        bucket, one non-finite point per bucket that holds any, and the newest point.

    Returns
    -------
    ndarray of int64
        Sorted indices into ``values``.

    Examples
    --------
    >>> v = np.zeros(1000); v[500] = 9.0
    >>> idx = downsample_minmax(v, 10)
    >>> bool(500 in idx and 999 in idx and len(idx) <= 16)
    True
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if max_points is None or n <= max_points:
        return np.arange(n, dtype=np.int64)
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer):
        raise InputError(f"max_points: expected an integer >= 2 or None, got {max_points!r}")
    if max_points < 2:
        raise InputError(f"max_points: expected an integer >= 2 or None, got {max_points}")
    n_buckets = max_points // 2
    edges = np.linspace(0, n, n_buckets + 1).astype(np.int64)
    segment = np.repeat(np.arange(n_buckets), np.diff(edges))
    finite = np.isfinite(values)
    low = np.where(finite, values, np.inf)
    high = np.where(finite, -values, np.inf)
    keep = [np.array([n - 1], dtype=np.int64)]
    for key in (low, high):
        order = np.lexsort((key, segment))  # by segment, then by key ascending
        starts = np.searchsorted(segment[order], np.arange(n_buckets))
        first = order[starts]
        keep.append(first[finite[first]])
    bad = np.flatnonzero(~finite)
    if len(bad):
        _, first_bad = np.unique(segment[bad], return_index=True)
        keep.append(bad[first_bad])
    return np.unique(np.concatenate(keep))
