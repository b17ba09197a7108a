"""The series that page builds read, kept in the server and caught up on the next build.

Reading the series of a long run is most of the work of building a page: 100k updates of
50 tensors are 470 MB of rows that :meth:`get_series_many` streams through once per
page (0.4 s and more). Users open the same pages again and again (reload, overview ->
model -> overview, a second tab), so the server keeps what it read: per (storage,
session, worker, series, ``max_points``) the series as returned, and its newest
iteration. A later read of the same series takes the updates recorded since then
(``get_updates(after_iteration=...)``, a few rows on a live run), appends their values
and, for a downsampled series, min/max downsamples the result again (spikes and the
newest point survive, as in :func:`~embedviz.stats.series.downsample_minmax`). When more
than :data:`CATCH_UP_ROWS` updates arrived since, the series is read again.

:class:`CachedReads` wraps a storage for the page builders: ``get_series`` and
``get_series_many`` of one worker go through the cache, everything else goes straight
to the storage. At most :data:`MAX_POINTS_KEPT` points are kept (least recently used
first out).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from embedviz.stats.base import scalar_getter
from embedviz.stats.series import Series, downsample_minmax, limits_of

CATCH_UP_ROWS = 2000  # more updates than this since a series was read: read it again
MAX_POINTS_KEPT = 1_000_000  # about 24 MB of iterations, timestamps and values


class SeriesCache:
    """Series read by page builds, shared by every tab of a server (thread-safe).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage(); st.put(Update("run", "0", 1, 0.0, score=2.0))
    >>> reads = SeriesCache().wrap(st)
    >>> st.put(Update("run", "0", 2, 1.0, score=1.5))
    >>> reads.get_series("run", "0", "score").values.tolist()  # read, then kept
    [2.0, 1.5]
    >>> st.put(Update("run", "0", 3, 2.0, score=1.0))
    >>> reads.get_series("run", "0", "score").values.tolist()  # kept + caught up
    [2.0, 1.5, 1.0]
    """

    def __init__(self, max_points_kept: int = MAX_POINTS_KEPT) -> None:
        self.max_points_kept = int(max_points_kept)
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple, tuple[object, Series]] = OrderedDict()
        self._points = 0
        self.hits = self.misses = 0

    def wrap(self, storage) -> CachedReads:
        """``storage`` with its series reads going through this cache."""
        return CachedReads(storage, self)

    def get(self, storage, key: tuple) -> Series | None:
        with self._lock:
            held = self._kept.get(key)
            if held is None or held[0] is not storage:
                return None
            self._kept.move_to_end(key)
            return held[1]

    def put(self, storage, key: tuple, series: Series) -> None:
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._points -= len(old[1])
            if len(series) > self.max_points_kept:
                return
            self._kept[key] = (storage, series)
            self._points += len(series)
            while self._points > self.max_points_kept:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._points -= len(dropped)

    def clear(self) -> None:
        """Forget everything (e.g. when a storage is detached)."""
        with self._lock:
            self._kept.clear()
            self._points = 0


def _append(series: Series, updates: list, name: str, max_points: int | None) -> Series:
    last = int(series.iterations[-1]) if len(series) else None
    get = scalar_getter(name)
    rows = [
        (u.iteration, u.timestamp, v)
        for u in updates
        if (last is None or u.iteration > last) and (v := get(u)) is not None
    ]
    if not rows:
        return series
    it, ts, vals = zip(*rows, strict=True)
    joined = Series(
        np.concatenate([series.iterations, np.asarray(it, np.int64)]),
        np.concatenate([series.timestamps, np.asarray(ts, np.float64)]),
        np.concatenate([series.values, np.asarray(vals, np.float64)]),
    )
    if max_points is not None and len(joined) > max_points:
        joined = joined.take(downsample_minmax(joined.values, max_points))
    return joined


class CachedReads:
    """A storage whose ``get_series`` / ``get_series_many`` of one worker are cached."""

    def __init__(self, storage, cache: SeriesCache) -> None:
        self._storage = storage
        self._cache = cache

    def __getattr__(self, name: str):
        return getattr(self._storage, name)

    def get_series(
        self, session_id, worker_id, name, max_points=None, after_iteration=None
    ) -> Series:
        return self.get_series_many(
            session_id, worker_id, [name], max_points, after_iteration=after_iteration
        )[name]

    def get_series_many(
        self, session_id, worker_id, names, max_points=None, after_iteration=None
    ) -> dict:
        """As the storage's; ``max_points`` may give each name its own limit (a mapping).
        A read ``after_iteration`` (a live page's new points) goes straight to the
        storage: it is small, and not what a page build reads again."""
        storage = self._storage
        names = list(dict.fromkeys(names))
        limits = limits_of(names, max_points)
        many = getattr(storage, "get_series_many", None)
        if after_iteration is not None:
            if many is not None:
                return many(session_id, worker_id, names, limits, after_iteration=after_iteration)
            return {
                n: storage.get_series(session_id, worker_id, n, limits[n], after_iteration)
                for n in names
            }
        if worker_id is None or any(n.startswith("eval/") for n in names):
            if many is not None:
                return many(session_id, worker_id, names, max_points=max_points)
            return {n: storage.get_series(session_id, worker_id, n, limits[n]) for n in names}
        keys = {n: (id(storage), session_id, worker_id, n, limits[n]) for n in names}
        out = {}
        for n in names:
            held = self._cache.get(storage, keys[n])
            if held is not None:
                out[n] = held
        lasts = [int(s.iterations[-1]) for s in out.values() if len(s)]
        if out and lasts:
            late = storage.get_updates(session_id, worker_id, after_iteration=min(lasts))
            if len(late) > CATCH_UP_ROWS:
                out = {}  # read again: cheaper than decoding that many updates
            else:
                out = {n: _append(s, late, n, limits[n]) for n, s in out.items()}
        elif out:
            out = {}  # nothing recorded when they were read: read again
        missing = [n for n in names if n not in out]
        self._cache.hits += len(out)
        self._cache.misses += len(missing)
        if missing:
            if many is not None:
                wanted = {n: limits[n] for n in missing}
                out.update(many(session_id, worker_id, missing, max_points=wanted))
            else:
                out.update(
                    {n: storage.get_series(session_id, worker_id, n, limits[n]) for n in missing}
                )
        for n in names:
            self._cache.put(storage, keys[n], out[n])
        return {n: out[n] for n in names}
