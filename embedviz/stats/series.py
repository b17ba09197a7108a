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


def check_max_points(max_points) -> int | None:
    """``max_points`` if it is None or an integer >= 2, else an InputError."""
    if max_points is None:
        return None
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer):
        raise InputError(f"max_points: expected an integer >= 2 or None, got {max_points!r}")
    if max_points < 2:
        raise InputError(f"max_points: expected an integer >= 2 or None, got {max_points}")
    return int(max_points)


def limits_of(names: list[str], max_points) -> dict[str, int | None]:
    """Each name's ``max_points``: one value for all, or a mapping of name to value
    (names it leaves out get every point), each checked by :func:`check_max_points`.

    Examples
    --------
    >>> limits_of(["score", "lr/0"], {"lr/0": 100})
    {'score': None, 'lr/0': 100}
    """
    if isinstance(max_points, dict):
        return {n: check_max_points(max_points.get(n)) for n in names}
    limit = check_max_points(max_points)
    return dict.fromkeys(names, limit)


def bucket_edges(n: int, max_points: int) -> np.ndarray:
    """The ``max_points // 2 + 1`` edges of the equal buckets of ``n`` points (int64)."""
    return np.linspace(0, n, max_points // 2 + 1).astype(np.int64)


def piece_extremes(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per piece and column, the rows of the first smallest and first largest finite
    value and of the first non-finite value.

    Parameters
    ----------
    values : array of float, shape (m, k)
        ``k`` columns of ``m`` consecutive points.
    starts : array of int, shape (p,)
        Strictly increasing first rows of ``p`` pieces, ``starts[0] == 0``; piece ``i``
        ends where piece ``i + 1`` starts (the last at ``m``).

    Returns
    -------
    ndarray of int64, shape (3, p, k)
        Row indices; ``m`` where the piece has no such point (no finite value, or no
        non-finite one).
    """
    m = values.shape[0]
    widths = np.diff(np.append(starts, m))
    finite = np.isfinite(values)
    all_finite = bool(finite.all())  # the usual case: no masking needed
    rows = np.arange(m, dtype=np.int64)[:, None]
    out = np.empty((3, len(starts), values.shape[1]), dtype=np.int64)
    for k, (fill, reduce) in enumerate(((np.inf, np.minimum), (-np.inf, np.maximum))):
        masked = values if all_finite else np.where(finite, values, fill)
        hit = masked == np.repeat(reduce.reduceat(masked, starts, axis=0), widths, axis=0)
        if not all_finite:
            hit &= finite
        out[k] = np.minimum.reduceat(np.where(hit, rows, m), starts, axis=0)
    if all_finite:
        out[2] = m
    else:
        out[2] = np.minimum.reduceat(np.where(finite, m, rows), starts, axis=0)
    return out


def downsample_minmax(values: np.ndarray, max_points: int | None) -> np.ndarray:
    """Indices of the points to keep so that spikes and the newest point survive.

    Parameters
    ----------
    values : array of float, shape (n,)
        In drawing order (by iteration).
    max_points : int or None
        About how many points to keep (at least 2); None keeps all. The series is cut
        into ``max_points // 2`` buckets of consecutive points (edges
        ``linspace(0, n, max_points // 2 + 1)`` rounded down); the result has at most
        ``2 * (max_points // 2) + (max_points // 2) + 1`` points: per bucket the first
        point with the smallest and the first with the largest finite value, the first
        non-finite point of each bucket that holds any, and the newest point.

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
    max_points = check_max_points(max_points)
    n = len(values)
    if max_points is None or n <= max_points:
        return np.arange(n, dtype=np.int64)
    found = piece_extremes(values[:, None], bucket_edges(n, max_points)[:-1]).ravel()
    return np.unique(np.append(found[found < n], n - 1))


class MinMaxReducer:
    """Min/max downsampling of ``k`` series of ``n`` points fed in consecutive chunks.

    Gives exactly what :func:`downsample_minmax` gives on each whole series, holding
    only the candidate points (at most three per bucket and chunk) instead of every
    point; with ``max_points=None`` (or ``n <= max_points``) it keeps every point.

    Parameters
    ----------
    n : int
        Total number of points that :meth:`add` will be given.
    max_points : int or None
        As for :func:`downsample_minmax`.
    n_columns : int
        Number of series (columns of the ``values`` given to :meth:`add`).

    Examples
    --------
    >>> r = MinMaxReducer(1000, 10, 1)
    >>> v = np.zeros((1000, 1)); v[500] = 9.0
    >>> for s in range(0, 1000, 300):
    ...     r.add(np.arange(s, min(s + 300, 1000)), np.zeros(min(300, 1000 - s)), v[s : s + 300])
    >>> out = r.result()[0]
    >>> bool(9.0 in out.values and out.iterations[-1] == 999)
    True
    """

    def __init__(self, n: int, max_points: int | None, n_columns: int) -> None:
        max_points = check_max_points(max_points)
        self.n, self.n_columns, self.seen = n, n_columns, 0
        self.keep_all = max_points is None or n <= max_points
        self.edges = None if self.keep_all else bucket_edges(n, max_points)
        self._pieces: list[tuple[np.ndarray, ...]] = []

    def add(self, iterations, timestamps, values: np.ndarray) -> None:
        """The next ``m`` points of every series: ``values`` has shape (m, k)."""
        m = len(values)
        if m == 0:
            return
        it = np.asarray(iterations, np.int64)
        ts = np.asarray(timestamps, np.float64)
        values = np.asarray(values, np.float64).reshape(m, self.n_columns)
        first, self.seen = self.seen, self.seen + m
        if self.seen > self.n:
            raise ValueError(f"MinMaxReducer: given {self.seen} points, expected {self.n}")
        if self.keep_all:
            self._pieces.append((it, ts, values.copy()))
            return
        # the buckets met in this chunk, cut at its ends
        bucket = np.searchsorted(self.edges, np.arange(first, self.seen), side="right") - 1
        starts = np.flatnonzero(np.diff(bucket, prepend=-1))
        found = piece_extremes(values, starts)  # (3, pieces, k)
        col = np.broadcast_to(np.arange(self.n_columns), found.shape)
        ok = found < m
        rows, cols = found[ok], col[ok]
        if self.seen == self.n:  # the newest point of every series
            rows = np.append(rows, np.full(self.n_columns, m - 1))
            cols = np.append(cols, np.arange(self.n_columns))
        self._pieces.append(
            (it[rows], ts[rows], values[rows, cols], rows + first, bucket[rows], cols)
        )

    def result(self) -> list[Series]:
        """One downsampled :class:`Series` per column."""
        if self.seen != self.n:
            raise ValueError(f"MinMaxReducer: given {self.seen} points, expected {self.n}")
        if not self._pieces:
            return [Series.empty() for _ in range(self.n_columns)]
        if self.keep_all:
            it = np.concatenate([p[0] for p in self._pieces])
            ts = np.concatenate([p[1] for p in self._pieces])
            values = np.concatenate([p[2] for p in self._pieces])
            return [Series(it, ts, values[:, k].copy()) for k in range(self.n_columns)]
        it, ts, values, pos, bucket, cols = (
            np.concatenate([p[k] for p in self._pieces]) for k in range(6)
        )
        order = np.lexsort((pos, cols))
        it, ts, values, pos, bucket, cols = (a[order] for a in (it, ts, values, pos, bucket, cols))
        distinct = np.diff(pos, prepend=-1) != 0
        distinct |= np.diff(cols, prepend=-1) != 0  # a candidate may be found twice
        it, ts, values, pos, bucket, cols = (
            a[distinct] for a in (it, ts, values, pos, bucket, cols)
        )
        # candidates of one bucket and column may come from two chunks: pick again
        group = cols * len(self.edges) + bucket
        starts = np.flatnonzero(np.diff(group, prepend=-1))
        found = piece_extremes(values[:, None], starts).ravel()
        keep = np.zeros(len(values), dtype=bool)
        keep[found[found < len(values)]] = True
        keep |= pos == self.n - 1
        it, ts, values, cols = it[keep], ts[keep], values[keep], cols[keep]
        bounds = np.searchsorted(cols, np.arange(self.n_columns + 1))
        return [
            Series(it[a:b], ts[a:b], values[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
