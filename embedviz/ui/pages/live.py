"""Series that grow while a page is open: reading them, and streaming what arrives.

Series come from the storage already downsampled by min/max per bucket (spikes and the
newest point survive, see :func:`embedviz.stats.series.downsample_minmax`). A
:class:`LiveSeries` holds one drawn series's line and marks sources; a page's
``refresh()`` reads what arrived since the last call and streams only those points
(``ColumnDataSource.stream``), thinned to the resolution drawn (:func:`thin_batch`):
the new points of the series it draws (:class:`SeriesFeed`, the storage's
``get_series_many(after_iteration=)``: a few columns of the new rows), or the new
records whole (:class:`UpdateFeed`) where a page needs more of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from bokeh.models import ColumnDataSource

from embedviz.stats.base import scalar_getter
from embedviz.stats.series import downsample_minmax, limits_of
from embedviz.ui.pages.charts import MAX_POINTS, mark_columns, marks_columns_empty
from embedviz.ui.pages.smoothing import ema, log10_or_nonfinite, smoothing_weight


def fetch_many(
    storage, session_id: str, worker_id: str, names, max_points=MAX_POINTS, after_iteration=None
):
    """Several downsampled series in one pass (``get_series_many``), name -> Series.

    ``max_points`` is one limit for all or a mapping of name to limit (None: whole);
    ``after_iteration``: only the points of later iterations (None: all).
    """
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    after = {} if after_iteration is None else {"after_iteration": after_iteration}
    many = getattr(storage, "get_series_many", None)
    if many is not None:
        return many(session_id, worker_id, names, max_points=max_points, **after)
    limits = limits_of(names, max_points)
    return {n: storage.get_series(session_id, worker_id, n, limits[n], **after) for n in names}


def thin_batch(drawn_x, new_x: np.ndarray, new_values: np.ndarray, max_points: int):
    """Indices of the new points worth sending, at the resolution of what is drawn.

    A series drawn with ``max_points`` points over iterations ``drawn_x[0]..new_x[-1]``
    has min/max buckets about ``span / (max_points // 2)`` iterations wide; a batch of
    new points finer than that (a run reporting every iteration) is min/max downsampled
    to that resolution (spikes, non-finite points and the newest point kept), so the
    browser decodes and the chart compacts far less often.

    Examples
    --------
    >>> drawn = np.arange(0, 10_000, 10)  # 1000 points, buckets of 20 iterations
    >>> new = np.arange(10_000, 10_500)  # 500 new points span 25 such buckets
    >>> keep = thin_batch(drawn, new, np.sin(new / 7.0), 1000)
    >>> bool(len(keep) <= 80 and keep[-1] == 499)
    True
    """
    n = len(new_x)
    if n <= 2:
        return np.arange(n)
    if len(drawn_x) == 0:
        budget = max_points
    else:
        width = max(1.0, float(new_x[-1] - drawn_x[0]) / max(1, max_points // 2))
        budget = 2 * int(np.ceil(float(new_x[-1] - drawn_x[-1]) / width)) + 1
    if n <= budget:
        return np.arange(n)
    return downsample_minmax(new_values, max(2, budget))


def series_columns(
    iterations, timestamps, values, label: str = "", zeros: bool = False
) -> tuple[dict, dict]:
    """Columns for a line source (``x``, ``t``, ``y`` with NaN gaps) and its marks source
    (``zeros``: a drawn -inf is an exact 0 of a log10 series, see
    :func:`~embedviz.ui.pages.charts.mark_columns`)."""
    x = np.asarray(iterations, dtype=np.int64)
    t = np.asarray(timestamps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    y = np.where(np.isfinite(v), v, np.nan)
    marks = mark_columns(x, v, label, zeros)
    marks["t"] = t[~np.isfinite(v)] * 1000.0  # kept where the marks source has a "t"
    return {"x": x, "t": t * 1000.0, "y": y}, marks


@dataclass
class LiveSeries:
    """One drawn scalar series of one worker: its line source, its marks, and how to grow.

    ``transform`` maps raw values to drawn ones (e.g. :func:`log10_or_nonfinite`).
    ``smooth`` adds a ``ys`` column (debiased EMA of the drawn values, its weight lowered
    on short series by :func:`smoothing_weight`);
    ``extra_columns(line) -> dict`` adds columns computed from ``x``, ``t``, ``y``.
    ``first`` is the (iteration, timestamp) of the first point read (exact for smoothed
    series, which are read whole).
    """

    name: str
    label: str
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    smooth: float | None = None
    max_points: int = MAX_POINTS
    extra_columns: Callable[[dict], dict] | None = None
    source: ColumnDataSource = field(init=False)
    marks: ColumnDataSource = field(init=False)
    last_iteration: int | None = field(default=None, init=False)
    first: tuple[int, float] | None = field(default=None, init=False)
    _state: tuple[float, float] = field(default=(0.0, 0.0), init=False)
    _n_smoothed: int = field(default=0, init=False)

    def _smooth(self, values: np.ndarray, restart: bool = False) -> np.ndarray:
        """EMA of ``values`` continuing the series (or from scratch with ``restart``)."""
        if restart:
            self._state, self._n_smoothed = (0.0, 0.0), 0
        self._n_smoothed += int(np.isfinite(values).sum())
        weight = smoothing_weight(self.smooth, self._n_smoothed)
        out, self._state = ema(values, weight, self._state)
        return out

    def load(self, storage, session_id: str, worker_id: str, marks=None, series=None) -> LiveSeries:
        """Fill the sources from the storage (downsampled); returns self.

        ``marks``: a marks source shared with other series of the same chart.
        ``series``: the series already read (by :func:`fetch_many`), not read again.
        Loading again (or after :meth:`empty`) refills the same sources.
        """
        full = self.smooth is not None
        s = series
        if s is None:
            s = storage.get_series(
                session_id, worker_id, self.name, None if full else self.max_points
            )
        if len(s):
            self.first = (int(s.iterations[0]), float(s.timestamps[0]))
        values = s.values if self.transform is None else self.transform(s.values)
        smoothed = None
        if full:
            smoothed = self._smooth(values, restart=True)
            keep = downsample_minmax(values, self.max_points)
            s = s.take(keep)
            values, smoothed = values[keep], smoothed[keep]
        line, marks_data = series_columns(
            s.iterations, s.timestamps, values, self.label, self.transform is log10_or_nonfinite
        )
        if smoothed is not None:
            line["ys"] = smoothed
        self._fill(line, marks)
        if len(marks_data["x"]):
            self.marks.stream(self._marks_for(marks_data))
        if len(s):
            self.last_iteration = int(s.iterations[-1])
        return self

    def empty(self, marks=None) -> LiveSeries:
        """Empty sources to draw now and :meth:`load` later (into the same sources);
        returns self."""
        line, _ = series_columns([], [], [], self.label)
        if self.smooth is not None:
            line["ys"] = np.zeros(0)
        self._fill(line, marks)
        return self

    def _fill(self, line: dict, marks) -> None:
        """Put ``line`` in the line source (made on first use) and set up the marks."""
        if self.extra_columns is not None:
            line.update(self.extra_columns(line))
        if getattr(self, "source", None) is None:
            self.source = ColumnDataSource(line, name=f"series:{self.name}")
        else:
            self.source.data = line
        if marks is not None:
            self.marks = marks
        elif getattr(self, "marks", None) is None:
            self.marks = ColumnDataSource(marks_columns_empty(), name=f"marks:{self.name}")
        else:
            self.marks.data = marks_columns_empty()

    def push(self, iterations: Sequence[int], timestamps: Sequence[float], raw: Sequence) -> int:
        """Stream new points (only those after ``last_iteration``); returns how many."""
        rows = [
            (i, t, v)
            for i, t, v in zip(iterations, timestamps, raw, strict=True)
            if v is not None and (self.last_iteration is None or i > self.last_iteration)
        ]
        if not rows:
            return 0
        it, ts, vals = (np.asarray(c) for c in zip(*rows, strict=True))
        return self._push_points(it.astype(np.int64), ts.astype(np.float64), vals)

    @property
    def names(self) -> list[str]:
        """The series read for this chart (as :attr:`MultiSeries.names
        <embedviz.ui.pages.multiline.MultiSeries.names>`)."""
        return [self.name]

    def push_series(self, fetched: dict) -> int:
        """Stream this series's points in ``fetched`` (name -> Series, e.g. read with
        ``get_series_many(after_iteration=...)``; none when its name is left out) after
        ``last_iteration``, as :meth:`MultiSeries.push_series
        <embedviz.ui.pages.multiline.MultiSeries.push_series>`; returns how many."""
        series = fetched.get(self.name)
        if series is None:
            return 0
        it = np.asarray(series.iterations, np.int64)
        new = slice(None) if self.last_iteration is None else it > self.last_iteration
        it = it[new]
        if not len(it):
            return 0
        ts = np.asarray(series.timestamps, np.float64)[new]
        return self._push_points(it, ts, np.asarray(series.values)[new])

    def _push_points(self, it: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> int:
        """Stream points after ``last_iteration`` (iterations increasing, at least one)."""
        vals = vals.astype(np.float64)
        values = vals if self.transform is None else self.transform(vals)
        smoothed = self._smooth(values) if self.smooth is not None else None  # every point
        keep = thin_batch(self.source.data["x"], it, values, self.max_points)
        line, marks = series_columns(
            it[keep], ts[keep], values[keep], self.label, self.transform is log10_or_nonfinite
        )
        if smoothed is not None:
            line["ys"] = smoothed[keep]
        if self.extra_columns is not None:
            line.update(self.extra_columns(line))
        self._append(line, marks)
        self.last_iteration = int(it[-1])
        return len(it)

    def resmooth(self, weight: float) -> None:
        """Recompute the ``ys`` column with another smoothing weight (drawn points only)."""
        self.smooth = float(weight)
        y = np.asarray(self.source.data["y"], dtype=np.float64)
        self.source.data["ys"] = self._smooth(y, restart=True)

    def push_updates(self, updates: Iterable) -> int:
        """Stream the values of this series found in ``updates`` (Update records)."""
        get = scalar_getter(self.name)
        updates = list(updates)
        return self.push(
            [u.iteration for u in updates],
            [u.timestamp for u in updates],
            [get(u) for u in updates],
        )

    def _marks_for(self, marks: dict) -> dict:
        """``marks`` with the columns of the marks source: a source that has a ``t``
        column (the compare page's x axis can be time) gets it and ``extra_columns``."""
        cols = self.marks.data.keys()
        if "t" in cols and self.extra_columns is not None:
            marks = {
                **marks,
                **self.extra_columns({"x": marks["x"], "t": marks["t"], "y": marks["y"]}),
            }
        return {k: v for k, v in marks.items() if k in cols}

    def _append(self, line: dict, marks: dict) -> None:
        n = len(self.source.data["x"])
        if n + len(line["x"]) > 2 * self.max_points:
            # compact in place: min/max downsample what is drawn, then add the new points
            data = {k: np.asarray(v) for k, v in self.source.data.items()}
            keep = downsample_minmax(data["y"], self.max_points)
            self.source.data = {k: v[keep] for k, v in data.items()}
        self.source.stream(line, rollover=4 * self.max_points)
        if len(marks["x"]):
            self.marks.stream(self._marks_for(marks), rollover=4 * self.max_points)


def pick_worker(storage, session_id: str, worker_id: str | None) -> str | None:
    """``worker_id`` if given, else the session's first worker (None when it has none)."""
    if worker_id is not None:
        return worker_id
    workers = storage.list_workers(session_id)
    return workers[0] if workers else None


class UpdateFeed:
    """New updates of one worker since the last call, shared by a page's series
    (whole records: :class:`SeriesFeed` is far cheaper for a page that draws series)."""

    def __init__(self, storage, session_id: str, worker_id: str, after: int | None) -> None:
        self.storage, self.session_id, self.worker_id = storage, session_id, worker_id
        self.after = after

    def __call__(self) -> list:
        updates = self.storage.get_updates(
            self.session_id, self.worker_id, after_iteration=self.after
        )
        if updates:
            self.after = updates[-1].iteration
        return updates


class SeriesFeed:
    """The new points of some series of one worker since the last call, and the newest
    update (for a page's tables), without reading whole records.

    Each call reads the newest update (``get_latest_update``: one row) and, when it is
    newer than ``after``, the points of ``names`` after ``after`` in one pass
    (``get_series_many(after_iteration=after)``, every point: a live series thins them
    itself, see :func:`thin_batch`); ``after`` then moves to the newest iteration seen.
    A row that arrives between the two reads is read with the series, and its
    iteration is read again next time (a live series streams only points after its
    last one).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage(); st.put(Update("run", "0", 1, 0.0, score=2.0))
    >>> feed = SeriesFeed(st, "run", "0", after=1)
    >>> feed(["score"])
    ({}, None)
    >>> st.put(Update("run", "0", 2, 1.0, score=1.5))
    >>> series, latest = feed(["score"])
    >>> series["score"].values.tolist(), latest.iteration, feed.after
    ([1.5], 2, 2)
    """

    def __init__(self, storage, session_id: str, worker_id: str, after: int | None) -> None:
        self.storage, self.session_id, self.worker_id = storage, session_id, worker_id
        self.after = after

    def __call__(self, names) -> tuple[dict, object]:
        """``(name -> Series of the new points, newest update)``; ``({}, None)`` when
        nothing was recorded since the last call."""
        latest = self.storage.get_latest_update(self.session_id, self.worker_id)
        if latest is None or (self.after is not None and latest.iteration <= self.after):
            return {}, None
        series = fetch_many(
            self.storage, self.session_id, self.worker_id, names, None, after_iteration=self.after
        )
        ends = [int(s.iterations[-1]) for s in series.values() if len(s)]
        self.after = max([latest.iteration, *ends])
        return series, latest


def last_iteration(storage, session_id: str, worker_id: str) -> int | None:
    """The newest recorded iteration of a worker (None when it has no update)."""
    u = storage.get_latest_update(session_id, worker_id)
    return None if u is None else u.iteration
