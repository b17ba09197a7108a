"""Pieces every page shares: live series, charts that mark NaN/inf, tables, escaping.

A page builder is a plain function ``build_X(storage, session_id, worker_id=None, ...)``
returning a :class:`Page`: the Bokeh ``layout``, the named ``sources`` (tests read their
values) and ``refresh()``, which reads what arrived since the last call and streams only
those points into the sources (``ColumnDataSource.stream``). The Bokeh server calls
``refresh()`` from a periodic callback; the static report never does.

Series come from the storage already downsampled by min/max per bucket (spikes and the
newest point survive, see :func:`embedviz.stats.series.downsample_minmax`). Non-finite
values are never drawn as 0: the line has a gap there and a red marker sits at the top
(NaN, +inf) or bottom (-inf) edge of the frame, on a private 0..1 range, with the value
in its tooltip. An exact 0 in a log10 chart is no blow-up: it gets a grey circle at the
bottom edge (``kind`` ``"zero"`` in the marks source; the rest are ``"bad"``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from bokeh.models import (
    BasicTickFormatter,
    CDSView,
    ColumnDataSource,
    DataTable,
    Div,
    GroupFilter,
    HoverTool,
    Legend,
    LegendItem,
    LinearScale,
    Range1d,
    TableColumn,
)
from bokeh.palettes import Category10_10, Category20_20
from bokeh.plotting import figure

from embedviz.stats.base import scalar_getter
from embedviz.stats.series import downsample_minmax, limits_of

MAX_POINTS = 1000  # per drawn series: 500 min/max pairs, about one per pixel of a chart
# per series of a chart with one line per parameter tensor or layer (often 50 lines):
# 150 min/max pairs each keep such a chart light for the browser (about 3 s saved when
# opening the overview of a 100k-iteration x 50-tensor run)
MULTI_MAX_POINTS = 300
CHART_HEIGHT = 240
SMOOTHING = 0.8  # TensorBoard-style exponential moving average weight (on long series)
SMOOTHING_WINDOW = 0.1  # the average spans at most this fraction of a series' points
MARK_TOP, MARK_BOTTOM = 0.96, 0.04
NO_VALUE = "—"  # a table cell whose value applies but was not recorded
MARKS_RANGE = "embedviz_marks"
# a linear/log toggle's callback (args ``linear``, ``log``: the two charts): show one;
# the one shown fits its ranges again (a chart hidden so far kept the ranges of the
# data it had when the page was drawn)
SHOW_SCALE = """
linear.visible = cb_obj.active == 0
log.visible = cb_obj.active == 1
const shown = cb_obj.active == 1 ? log : linear
setTimeout(() => shown.reset.emit(), 0)
"""


def escape(text: object) -> str:
    """``text`` as HTML text (for Div contents: words and layer names can hold anything)."""
    return html.escape(str(text), quote=True)


def colour(i: int, n: int) -> str:
    """The ``i``-th of ``n`` distinguishable colours."""
    return (Category10_10 if n <= 10 else Category20_20)[i % (10 if n <= 10 else 20)]


def layer_types(info) -> dict[str, str]:
    """Layer name -> class name from the static info (empty without one)."""
    if info is None:
        return {}
    return {li.name: li.type for li in getattr(info, "layers", []) or [] if li.type}


def layer_label(name: str, types: dict[str, str]) -> str:
    """A layer's name with its class when known: ``"1 (Conv2d)"``; ``"(model)"`` for
    the whole model's empty name.

    Examples
    --------
    >>> layer_label("1", {"1": "Conv2d"}), layer_label("fc", {})
    ('1 (Conv2d)', 'fc')
    """
    shown = name if name else "(model)"
    kind = types.get(name)
    return f"{shown} ({kind})" if kind else shown


def log10_or_nonfinite(values: np.ndarray) -> np.ndarray:
    """log10 of positive values; 0 becomes -inf, negatives and NaN become NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    pos = values > 0
    out[pos] = np.log10(values[pos])
    out[values == 0] = -np.inf
    out[np.isposinf(values)] = np.inf
    return out


def smoothing_weight(weight: float, n_points: int) -> float:
    """The EMA weight used on a series of ``n_points``: ``weight``, lowered on short series.

    An exponential moving average of weight ``w`` spans about ``1 / (1 - w)`` points and
    lags ``w / (1 - w)`` points behind the raw line; that span is kept to at most
    :data:`SMOOTHING_WINDOW` of the series, so 15 points are barely smoothed (weight 1/3)
    while a series of 50 or more gets the full ``weight``. 10 points or fewer are not
    smoothed at all.

    Examples
    --------
    >>> smoothing_weight(0.8, 1000), round(smoothing_weight(0.8, 15), 4), smoothing_weight(0.8, 8)
    (0.8, 0.3333, 0.0)
    """
    span = max(1.0, SMOOTHING_WINDOW * n_points)
    return max(0.0, min(float(weight), 1.0 - 1.0 / span))


def _ema_sums(v: np.ndarray, w: float, acc: float) -> np.ndarray:
    """``acc_j = w * acc_(j-1) + (1 - w) * v_j`` for every j, vectorised by blocks:
    within a block ``acc_j = w**(j+1) * acc + (1 - w) * m * w**(j+1) * cumsum(x_i *
    w**-(i+1))`` with ``x = v / m``, ``m`` the block's largest magnitude. The block is
    short enough that ``w**-len`` stays below 1e200 and the scaled values are at most
    1, so nothing overflows whatever the values (up to float64's largest)."""
    if w >= 1.0:  # nothing new ever counts
        return np.full(len(v), acc)
    if w < 1e-100:  # the previous average weighs nothing next to a new value
        return (1.0 - w) * v
    n = len(v)
    block = max(1, int(200.0 / -math.log10(w)))
    decay = w ** np.arange(1, min(block, n) + 1, dtype=np.float64)
    grow = 1.0 / decay
    out = np.empty(n)
    for start in range(0, n, block):
        x = v[start : start + block]
        k = len(x)
        m = float(np.max(np.abs(x)))
        part = decay[:k] * acc
        if m > 0:
            part += (1.0 - w) * m * (decay[:k] * np.cumsum((x / m) * grow[:k]))
        out[start : start + k] = part
        acc = out[start + k - 1]
    return out


def ema(values: np.ndarray, weight: float, state: tuple[float, float] = (0.0, 0.0)):
    """Debiased exponential moving average over the finite values (TensorBoard's smoothing).

    Returns ``(smoothed, state)``; pass ``state`` back to continue the average on new
    points. Non-finite inputs give NaN and do not disturb the average. Vectorised (100k
    points in a few ms rather than 40 ms point by point): the running sum by blocks
    (:func:`_ema_sums`), its weight after ``k`` finite points ``w**k * norm0 + 1 - w**k``.

    Examples
    --------
    >>> np.round(ema(np.array([1.0, np.nan, 3.0]), 0.5)[0], 4).tolist()
    [1.0, nan, 2.3333]
    """
    acc, norm = float(state[0]), float(state[1])
    w = float(weight)
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    ok = np.isfinite(values)
    v = values[ok]
    if len(v):
        sums = _ema_sums(v, w, acc)
        decay = w ** np.arange(1, len(v) + 1, dtype=np.float64)
        norms = decay * norm + (1.0 - decay)
        out[ok] = sums / norms
        acc, norm = float(sums[-1]), float(norms[-1])
    return out, (acc, norm)


def _mark_columns(x: np.ndarray, values: np.ndarray, label: str, zeros: bool = False) -> dict:
    """Marks for the non-finite drawn ``values``; ``zeros``: a drawn -inf is an exact 0
    under :func:`log10_or_nonfinite` (kind ``"zero"``, its own marker), not a blow-up."""
    bad = ~np.isfinite(values)
    v = values[bad]
    zero = np.isneginf(v) if zeros else np.zeros(len(v), bool)
    return {
        "x": x[bad],
        "y": np.where(v < 0, MARK_BOTTOM, MARK_TOP),
        "value": [
            "0" if z else ("NaN" if math.isnan(a) else ("+inf" if a > 0 else "-inf"))
            for a, z in zip(v, zero, strict=True)
        ],
        "series": [label] * int(bad.sum()),
        "kind": ["zero" if z else "bad" for z in zero],
    }


def marks_columns_empty() -> dict:
    """The columns of an empty marks source."""
    return {"x": np.zeros(0, np.int64), "y": np.zeros(0), "value": [], "series": [], "kind": []}


def fetch_many(storage, session_id: str, worker_id: str, names, max_points=MAX_POINTS):
    """Several downsampled series in one pass (``get_series_many``), name -> Series.

    ``max_points`` is one limit for all or a mapping of name to limit (None: whole).
    """
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    many = getattr(storage, "get_series_many", None)
    if many is not None:
        return many(session_id, worker_id, names, max_points=max_points)
    limits = limits_of(names, max_points)
    return {n: storage.get_series(session_id, worker_id, n, limits[n]) for n in names}


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
    (``zeros``: a drawn -inf is an exact 0 of a log10 series, see :func:`_mark_columns`)."""
    x = np.asarray(iterations, dtype=np.int64)
    t = np.asarray(timestamps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    y = np.where(np.isfinite(v), v, np.nan)
    marks = _mark_columns(x, v, label, zeros)
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
        return len(rows)

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


def line_chart(
    title: str,
    y_label: str,
    *,
    height: int = CHART_HEIGHT,
    x_label: str = "iteration",
    y_axis_type: str = "linear",
    x_axis_type: str = "linear",
    name: str | None = None,
):
    """An empty figure with our look and an invisible 0..1 range for the NaN/inf marks."""
    p = figure(
        title=title,
        height=height,
        sizing_mode="stretch_width",
        x_axis_label=x_label,
        y_axis_label=y_label,
        y_axis_type=y_axis_type,
        x_axis_type=x_axis_type,
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        active_scroll=None,
        toolbar_location="right",
        name=name,
    )
    p.extra_y_ranges = {MARKS_RANGE: Range1d(0, 1)}
    # the marks sit at the frame's edges on a log y axis too (its scale would put 0..1
    # on a log scale, and the marks out of sight)
    p.extra_y_scales = {MARKS_RANGE: LinearScale()}
    if y_axis_type == "linear":
        # 150000 rather than 1.500e+5 (word2vec losses, words/s); tiny values keep exponents
        p.yaxis.formatter = BasicTickFormatter(power_limit_high=9)
    p.title.text_font_size = "13px"
    p.outline_line_color = None
    p.grid.grid_line_alpha = 0.35
    p.min_border_left = 60
    return p


def draw_series(
    p,
    s: LiveSeries,
    color: str,
    *,
    width: float = 1.5,
    smoothed_too: bool = False,
    x: str = "x",
):
    """Draw ``s`` on ``p``: its line (raw faint and smoothed bold, or plain).

    Returns the line renderer, named after the series (the tooltip of
    :func:`add_hover` shows that name; BokehJS inserts it as text, not HTML).
    """
    if smoothed_too:
        p.line(x, "y", source=s.source, color=color, line_width=1, alpha=0.35)
        return p.line(x, "ys", source=s.source, color=color, line_width=2, name=s.label)
    return p.line(x, "y", source=s.source, color=color, line_width=width, name=s.label)


def add_hover(
    p,
    drawn: Sequence,
    marks: ColumnDataSource | None = None,
    y_format: str = "{0.0000g}",
    x: str = "x",
) -> list:
    """One tooltip for the lines in ``drawn``; red x markers (with tooltips) for ``marks``,
    grey circles for its exact zeros. Returns the markers' renderers."""
    if drawn:
        p.add_tools(
            HoverTool(
                renderers=list(drawn),
                line_policy="nearest",
                tooltips=[("", "$name"), ("iteration", "@x"), ("value", f"@y{y_format}")],
            )
        )
    if marks is not None:
        bad = p.scatter(
            x,
            "y",
            source=marks,
            view=CDSView(filter=GroupFilter(column_name="kind", group="bad")),
            y_range_name=MARKS_RANGE,
            marker="x",
            size=11,
            line_width=2,
            color="#d62728",
        )
        # an exact 0 of a log10 series: its own marker at the bottom edge (a dead unit or
        # a frozen tensor is no numerical blow-up)
        zero = p.scatter(
            x,
            "y",
            source=marks,
            view=CDSView(filter=GroupFilter(column_name="kind", group="zero")),
            y_range_name=MARKS_RANGE,
            marker="circle",
            size=7,
            line_width=1.5,
            line_color="#555555",
            fill_color="white",
        )
        p.add_tools(
            HoverTool(
                renderers=[bad],
                description="NaN / inf",
                tooltips=[("", "@series"), ("iteration", "@x"), ("value", "@value")],
            ),
            HoverTool(
                renderers=[zero],
                description="exactly zero",
                tooltips=[("", "@series"), ("iteration", "@x"), ("value", "exactly zero")],
            ),
        )
        return [bad, zero]
    return []


def add_legend(p, renderers: Sequence, labels: Sequence[str], limit: int = 12) -> None:
    """A legend right of the frame naming each line (when there are at most ``limit``);
    clicking an entry hides its line."""
    if not renderers or len(renderers) > limit:
        return
    items = [
        LegendItem(label=str(lab)[:40], renderers=[r])
        for lab, r in zip(labels, renderers, strict=True)
    ]
    legend = Legend(
        items=items,
        click_policy="hide",
        label_text_font_size="11px",
        spacing=0,
        padding=4,
        margin=4,
    )
    p.add_layout(legend, "right")


def new_marks(name: str) -> ColumnDataSource:
    """An empty marks source (NaN/inf points) shared by the series of one chart."""
    return ColumnDataSource(marks_columns_empty(), name=name)


def table(
    rows: Sequence[tuple],
    columns: Sequence[str],
    *,
    name: str | None = None,
    height: int | None = None,
    widths: Sequence[int] | None = None,
) -> DataTable:
    """A read-only table of text cells (Bokeh's DataTable shows them as text, not HTML)."""
    data = {c: [("" if r[i] is None else str(r[i])) for r in rows] for i, c in enumerate(columns)}
    cols = [
        TableColumn(field=c, title=c, **({"width": widths[i]} if widths else {}))
        for i, c in enumerate(columns)
    ]
    return DataTable(
        source=ColumnDataSource(data, name=f"{name}:source" if name else None),
        columns=cols,
        index_position=None,
        sortable=False,
        reorderable=False,
        height=height or min(30 + 25 * max(len(rows), 1), 420),
        sizing_mode="stretch_width",
        name=name,
    )


def set_table_rows(t: DataTable, rows: Sequence[tuple]) -> None:
    """Replace the rows of a :func:`table` so that the browser shows them.

    BokehJS redraws a table's grid when its view changes, not when new data holds as
    many rows as before (a live table's rows keep their number): the view's ``tags``
    are bumped after the data.
    """
    columns = list(t.source.data)
    t.source.data = {
        c: [("" if r[i] is None else str(r[i])) for r in rows] for i, c in enumerate(columns)
    }
    t.view.tags = [int(t.view.tags[0]) + 1 if t.view.tags else 1]


def heading(text: str, level: int = 3) -> Div:
    """A section heading (escaped)."""
    return Div(
        text=f"<h{level} style='margin:8px 0 2px 0'>{escape(text)}</h{level}>",
        sizing_mode="stretch_width",
    )


def note(text: str) -> Div:
    """A grey line of explanation (escaped)."""
    return Div(text=f"<span style='color:#666'>{escape(text)}</span>", sizing_mode="stretch_width")


def _call_now(fn: Callable[[], object]) -> None:
    fn()


@dataclass
class Page:
    """What a page builder returns: the layout, its named sources and how to go live.

    ``deferred`` holds ``(read, fill)`` pairs the server runs once the page is shown:
    ``read()`` in a background thread, then ``fill(read())`` in the document's thread.
    ``background(fn)`` runs a slow read for a Python callback of the page and
    ``call_soon(fn)`` applies its result to the document; both call ``fn`` at once
    unless the server sets them (its page builders and the document's next tick).
    """

    layout: object
    sources: dict[str, ColumnDataSource] = field(default_factory=dict)
    refreshers: list[Callable[[], int]] = field(default_factory=list)
    deferred: list[tuple[Callable[[], object], Callable[[object], None]]] = field(
        default_factory=list
    )
    background: Callable[[Callable[[], object]], object] = _call_now
    call_soon: Callable[[Callable[[], object]], object] = _call_now

    def refresh(self) -> int:
        """Stream whatever arrived since the last call; returns how many points were added."""
        return sum(f() for f in self.refreshers)


def pick_worker(storage, session_id: str, worker_id: str | None) -> str | None:
    """``worker_id`` if given, else the session's first worker (None when it has none)."""
    if worker_id is not None:
        return worker_id
    workers = storage.list_workers(session_id)
    return workers[0] if workers else None


class UpdateFeed:
    """New updates of one worker since the last call, shared by a page's series."""

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


def last_iteration(storage, session_id: str, worker_id: str) -> int | None:
    """The newest recorded iteration of a worker (None when it has no update)."""
    u = storage.get_latest_update(session_id, worker_id)
    return None if u is None else u.iteration


def format_duration(seconds: float | None) -> str:
    """``3h 02m 05s`` style."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else (f"{m}m {sec:02d}s" if m else f"{sec}s")


def format_speed(value: float | None) -> str:
    """A rate for a table cell: ``101,000`` or ``18.4`` (3 significant digits, no
    exponent), NaN/inf spelled out, "—" when not recorded.

    Examples
    --------
    >>> format_speed(100720.5), format_speed(18.37), format_speed(None)
    ('101,000', '18.4', '—')
    """
    if value is None:
        return NO_VALUE
    if not math.isfinite(value) or abs(value) < 100:
        return format_number(value, 3)
    digits = len(str(int(abs(value))))
    return f"{round(value, 3 - digits):,.0f}"


def format_number(value: float | None, digits: int = 4) -> str:
    """A number for a table cell: NaN/inf spelled out, None empty."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
    return f"{value:.{digits}g}"
