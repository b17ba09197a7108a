"""Charts with one line per parameter tensor or layer, drawn as one Bokeh ``MultiLine``.

A chart of 50 tensors drawn as 50 ``line`` glyphs is 50 sources and some 600 Bokeh
models that the server serialises and the browser builds, one by one. Here a chart is
one ``ColumnDataSource`` whose rows are line segments -- columns ``xs`` (iterations),
``ys`` (drawn values, NaN where not finite, so the line has a gap), ``label`` and
``color`` -- drawn by one ``MultiLine``:

* at load, each series is one row, min/max downsampled by the storage (spikes and the
  newest point kept);
* live, each series that got new points adds one row holding its previous newest point
  followed by the new ones (``ColumnDataSource.stream``: only the new points travel,
  and the line stays connected), min/max downsampled to the resolution drawn when a
  run reports faster than that (:func:`~embedviz.ui.pages.live.thin_batch`);
* when a series holds more than ``2 * max_points`` drawn points, or the source more
  than :data:`ROWS_PER_SERIES` rows per series, the chart is compacted: each series is
  min/max downsampled again and the source holds one row per series (sent whole, once
  in a while).

Non-finite values sit in a marks source as in :mod:`embedviz.ui.pages.charts` (a red
x at the top or bottom edge, the value in its tooltip; an exact 0 of a log10 series a
grey circle at the bottom edge). The tooltip of a line names its
tensor (``@label``) and the nearest drawn point (``$snap_x``, ``$snap_y``). A chart of at
most :data:`LEGEND_LIMIT` series draws one renderer per series over the shared source
(a ``GroupFilter`` on ``label``), so that a legend entry hides its own line; a larger
chart draws one renderer and no legend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from bokeh.models import (
    BoxAnnotation,
    CDSView,
    ColumnDataSource,
    GroupFilter,
    HoverTool,
    Span,
)

from embedviz.stats.base import scalar_getter
from embedviz.stats.series import downsample_minmax
from embedviz.ui.pages.charts import (
    MULTI_MAX_POINTS,
    add_hover,
    add_legend,
    colour,
    line_chart,
    mark_columns,
    new_marks,
)
from embedviz.ui.pages.live import fetch_many, thin_batch
from embedviz.ui.pages.smoothing import log10_or_nonfinite

ROWS_PER_SERIES = 16  # segments per series before the chart is compacted to one row each
LEGEND_LIMIT = 12  # at most this many series: one renderer each, with a legend
LINE_WIDTH = 1.5


def _empty_rows(dashed: bool = False) -> dict:
    rows = {"xs": [], "ys": [], "label": [], "color": []}
    if dashed:
        rows["dash"] = []
    return rows


class MultiSeries:
    """Several scalar series of one worker, drawn from one segment source.

    Parameters
    ----------
    names : sequence of str
        Series names in the storage (``params/<tensor>/update_param_ratio``).
    labels : sequence of str
        What the legend and the tooltip call each series.
    key : str
        Names the sources (``lines:<key>``, ``<key>:marks``).
    transform : callable, default=log10_or_nonfinite
        Raw values -> drawn values (None: drawn as recorded).
    max_points : int, default=MULTI_MAX_POINTS
        Drawn points per series after a compaction.
    colors : sequence of str, default=None
        A colour per series (None: distinguishable colours in order).
    dashes : sequence of str, default=None
        A line dash per series ("solid", "dashed", ...), in a ``dash`` column; None:
        every line solid (no such column).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update, ParamStats
    >>> st = InMemoryStatsStorage()
    >>> w = ParamStats(0.0, 1.0, 0.8, update_param_ratio=0.01)
    >>> st.put(Update("run", "0", 1, 0.0, params={"w": w}))
    >>> ms = MultiSeries(["params/w/update_param_ratio"], ["w"], "ratio").load(st, "run", "0")
    >>> ms.points("w")[1].tolist()
    [-2.0]
    """

    def __init__(
        self,
        names: Sequence[str],
        labels: Sequence[str],
        key: str,
        transform: Callable[[np.ndarray], np.ndarray] | None = log10_or_nonfinite,
        max_points: int = MULTI_MAX_POINTS,
        colors: Sequence[str] | None = None,
        dashes: Sequence[str] | None = None,
    ) -> None:
        self.key = key
        self.names = list(names)
        self.labels = [str(lab) for lab in labels]
        n = len(self.names)
        self.colors = list(colors) if colors is not None else [colour(i, n) for i in range(n)]
        self.dashes = list(dashes) if dashes is not None else None
        self.transform = transform
        self._zeros = transform is log10_or_nonfinite  # a drawn -inf is an exact 0
        self.max_points = int(max_points)
        self.source = ColumnDataSource(self._new_rows(), name=f"lines:{key}")
        self.marks = new_marks(f"{key}:marks")
        self._x = [np.zeros(0, np.int64) for _ in self.names]
        self._y = [np.zeros(0) for _ in self.names]
        self._getters = [scalar_getter(n) for n in self.names]
        self._rows = 0

    def _new_rows(self) -> dict:
        return _empty_rows(self.dashes is not None)

    def _add_row(self, rows: dict, k: int, x: np.ndarray, y: np.ndarray) -> None:
        rows["xs"].append(x)
        rows["ys"].append(y)
        rows["label"].append(self.labels[k])
        rows["color"].append(self.colors[k])
        if self.dashes is not None:
            rows["dash"].append(self.dashes[k])

    def _drawn(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return values if self.transform is None else self.transform(values)

    def load(self, storage, session_id: str, worker_id: str, fetched=None) -> MultiSeries:
        """Fill the source from the storage; ``fetched`` (name -> Series, downsampled)
        saves reading again what :func:`fetch_many` already read. Returns self."""
        fetched = dict(fetched or {})
        missing = [n for n in self.names if n not in fetched]
        fetched.update(fetch_many(storage, session_id, worker_id, missing, self.max_points))
        marks = []
        for k, (name, label) in enumerate(zip(self.names, self.labels, strict=True)):
            s = fetched[name]
            values = self._drawn(s.values)
            self._x[k] = np.asarray(s.iterations, dtype=np.int64)
            self._y[k] = np.where(np.isfinite(values), values, np.nan)
            marks.append(mark_columns(self._x[k], values, label, self._zeros))
        self._rebuild()
        self._stream_marks(marks)
        return self

    def _rebuild(self) -> None:
        rows = self._new_rows()
        for k in range(len(self.names)):
            if len(self._x[k]):
                self._add_row(rows, k, self._x[k], self._y[k])
        self.source.data = rows
        self._rows = len(rows["xs"])

    def _stream_marks(self, marks: list[dict]) -> None:
        marks = [m for m in marks if len(m["x"])]
        if marks:
            joined = {c: np.concatenate([m[c] for m in marks]) for c in ("x", "y")}
            joined["value"] = [v for m in marks for v in m["value"]]
            joined["series"] = [v for m in marks for v in m["series"]]
            joined["kind"] = [v for m in marks for v in m["kind"]]
            self.marks.stream(joined, rollover=4 * self.max_points)

    def push_updates(self, updates: Iterable) -> int:
        """Stream the new points of every series found in ``updates`` (Update records,
        by iteration); returns how many points were added."""
        updates = list(updates)
        if not updates:
            return 0
        new = []
        for k, get in enumerate(self._getters):
            after = int(self._x[k][-1]) if len(self._x[k]) else None
            got = [
                (u.iteration, v)
                for u in updates
                if (after is None or u.iteration > after) and (v := get(u)) is not None
            ]
            x = np.fromiter((g[0] for g in got), np.int64, len(got))
            new.append((x, np.fromiter((g[1] for g in got), np.float64, len(got))))
        return self._push_points(new)

    def push_series(self, fetched: dict) -> int:
        """Stream the new points of every series in ``fetched`` (name -> Series, e.g.
        read with ``get_series_many(after_iteration=...)``; names left out have none);
        returns how many points were added."""
        new = []
        for k, name in enumerate(self.names):
            s = fetched.get(name)
            if s is None or not len(s):
                new.append((np.zeros(0, np.int64), np.zeros(0)))
                continue
            x = np.asarray(s.iterations, np.int64)
            keep = x > self._x[k][-1] if len(self._x[k]) else slice(None)
            new.append((x[keep], np.asarray(s.values, np.float64)[keep]))
        return self._push_points(new)

    def _push_points(self, new: list[tuple[np.ndarray, np.ndarray]]) -> int:
        """Stream, per series, its points ``(iterations, raw values)`` after its newest."""
        rows, marks, added, compact = self._new_rows(), [], 0, False
        for k, (x, raw) in enumerate(new):
            if not len(x):
                continue
            values = self._drawn(raw)
            n_new = len(x)
            keep = thin_batch(self._x[k], x, values, self.max_points)
            x, values = x[keep], values[keep]
            y = np.where(np.isfinite(values), values, np.nan)
            self._add_row(
                rows, k, np.concatenate([self._x[k][-1:], x]), np.concatenate([self._y[k][-1:], y])
            )
            self._x[k] = np.concatenate([self._x[k], x])
            self._y[k] = np.concatenate([self._y[k], y])
            marks.append(mark_columns(x, values, self.labels[k], self._zeros))
            compact |= len(self._x[k]) > 2 * self.max_points
            added += n_new
        if not added:
            return 0
        if compact or self._rows + len(rows["xs"]) > ROWS_PER_SERIES * len(self.names):
            for k in range(len(self.names)):
                keep = downsample_minmax(self._y[k], self.max_points)
                self._x[k], self._y[k] = self._x[k][keep], self._y[k][keep]
            self._rebuild()
        else:
            self.source.stream(rows)
            self._rows += len(rows["xs"])
        self._stream_marks(marks)
        return added

    def points(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(iterations, drawn values) of one series, read back from the source's rows
        (what the browser draws: later rows repeat their predecessor's last point)."""
        data = self.source.data
        return line_points(data, label)


def line_points(data: dict, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of the series ``label`` in a segment source's ``data``.

    The first row of a label is taken whole; each later row starts with the previous
    row's last point, which is skipped.
    """
    xs, ys = [], []
    for x, y, lab in zip(data["xs"], data["ys"], data["label"], strict=True):
        if lab != label:
            continue
        skip = 1 if xs else 0
        xs.append(np.asarray(x)[skip:])
        ys.append(np.asarray(y, dtype=np.float64)[skip:])
    if not xs:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(xs).astype(np.int64), np.concatenate(ys)


def draw_multi(p, ms: MultiSeries, y_format: str = "{0.0000g}") -> list:
    """Draw ``ms`` on ``p`` with its hover tool, marks and (small charts) legend."""
    kw = {"line_color": "color", "line_width": LINE_WIDTH}
    if ms.dashes is not None:
        kw["line_dash"] = "dash"
    if len(ms.labels) <= LEGEND_LIMIT:
        drawn = [
            p.multi_line(
                "xs",
                "ys",
                source=ms.source,
                view=CDSView(filter=GroupFilter(column_name="label", group=label)),
                **kw,
            )
            for label in ms.labels
        ]
    else:
        drawn = [p.multi_line("xs", "ys", source=ms.source, **kw)] if ms.labels else []
    if drawn:
        p.add_tools(
            HoverTool(
                renderers=drawn,
                line_policy="nearest",
                tooltips=[
                    ("", "@label"),
                    ("iteration", "$snap_x{0}"),
                    ("value", f"$snap_y{y_format}"),
                ],
            )
        )
    add_hover(p, [], ms.marks)
    if len(drawn) == len(ms.labels):  # one renderer per series: name each
        add_legend(
            p,
            drawn,
            ms.labels,
            ms.colors,
            dashes=ms.dashes,
            width=LINE_WIDTH,
            limit=LEGEND_LIMIT,
        )
    return drawn


def multi_series_chart(
    storage,
    session_id: str,
    worker_id: str,
    names: Sequence[str],
    labels: Sequence[str],
    title: str,
    y_label: str,
    page,
    key: str,
    transform=log10_or_nonfinite,
    band: tuple[float, float] | None = None,
    target: float | None = None,
    fetched=None,
    max_points: int = MULTI_MAX_POINTS,
    load: bool = True,
    colors: Sequence[str] | None = None,
    dashes: Sequence[str] | None = None,
):
    """A chart with one line per series name, as one :class:`MultiSeries`.

    Registers ``page.sources[key]`` (the segment source, see :func:`line_points`) and
    ``page.sources[key + ":marks"]``. ``band`` shades a healthy range of y and
    ``target`` draws a dashed line; ``load=False`` leaves the chart empty for a later
    :meth:`MultiSeries.load`; ``colors`` and ``dashes`` as for :class:`MultiSeries`.
    Returns ``(multi_series, figure)``.
    """
    ms = MultiSeries(
        names, labels, key, transform=transform, max_points=max_points, colors=colors, dashes=dashes
    )
    if load:
        ms.load(storage, session_id, worker_id, fetched)
    page.sources[key] = ms.source
    page.sources[f"{key}:marks"] = ms.marks
    return ms, multi_chart(ms, title, y_label, band=band, target=target)


def multi_chart(
    ms: MultiSeries,
    title: str,
    y_label: str,
    band: tuple[float, float] | None = None,
    target: float | None = None,
):
    """The figure (named ``ms.key``) drawing ``ms``, as :func:`multi_series_chart` makes
    it; for a page that builds a hidden chart only when it is first shown."""
    p = line_chart(title, y_label, name=ms.key)
    if band is not None:
        p.add_layout(
            BoxAnnotation(
                bottom=band[0], top=band[1], fill_color="#2ca02c", fill_alpha=0.10, line_alpha=0
            )
        )
    if target is not None:
        p.add_layout(
            Span(
                location=target,
                dimension="width",
                line_color="#2ca02c",
                line_dash="dashed",
                line_width=1.5,
            )
        )
    draw_multi(p, ms)
    if not ms.names:
        p.title.text += " — nothing recorded"
    return p
