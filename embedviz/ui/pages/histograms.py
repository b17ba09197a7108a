"""Histogram views of the model page: one iteration with a slider, and percentile bands.

A stored histogram is ``Histogram(lo, hi, counts)`` (equal-width bins). A tensor's
histograms are kept as arrays (:class:`HistogramHistory`: iterations, ``lo``, ``hi``
and one row of counts per histogram), a tenth of the memory of the records.

The slider view shows one histogram per tensor in a *display* source (``left``,
``right``, ``top``). On the Bokeh server the history stays in Python and moving the
slider swaps the bars there (a Python callback): only the newest histograms travel
with the page. In the static report the history goes into a *store* source
(``iteration``, ``lo``, ``hi``, ``counts``) and the slider swaps them in the browser
(CustomJS).

The distribution view draws, per recorded iteration, the 0/7/16/31/50/69/84/93/100th
percentiles (TensorBoard's distributions) as nested bands; a long history is min/max
downsampled on its outer percentiles (spikes and the newest histogram kept).
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, Slider
from bokeh.plotting import figure

from embedviz.stats.series import downsample_minmax
from embedviz.ui.pages.charts import CHART_HEIGHT, MAX_POINTS

PERCENTILES = (0, 7, 16, 31, 50, 69, 84, 93, 100)


def percentiles(lo: float, hi: float, counts) -> np.ndarray:
    """The :data:`PERCENTILES` of a histogram, interpolated linearly inside bins."""
    counts = np.asarray(counts, dtype=np.float64)
    return percentiles_many(np.array([lo]), np.array([hi]), counts[None, :])[0]


def percentiles_many(lo: np.ndarray, hi: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The :data:`PERCENTILES` of ``n`` histograms of ``b`` bins each, shape (n, 9).

    Within a bin the values are taken as spread evenly: a percentile falls at the first
    edge where the cumulative share reaches it, interpolated inside that bin; the 0th is
    the left edge of the first non-empty bin. A histogram with no counts or non-finite
    bounds gives NaN.

    Examples
    --------
    >>> percentiles_many(np.array([0.0]), np.array([4.0]), np.array([[1, 1, 1, 1]]))[0].tolist()
    [0.0, 0.28, 0.64, 1.24, 2.0, 2.76, 3.36, 3.72, 4.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    n, bins = counts.shape
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    total = counts.sum(axis=1)
    ok = (total > 0) & np.isfinite(lo) & np.isfinite(hi)
    safe = np.where(ok, total, 1.0)
    lo, hi = np.where(ok, lo, 0.0), np.where(ok, hi, 1.0)  # NaN rows: no warnings
    cdf = np.concatenate([np.zeros((n, 1)), np.cumsum(counts, axis=1) / safe[:, None]], axis=1)
    width = (hi - lo) / bins
    q = np.asarray(PERCENTILES, dtype=np.float64) / 100.0
    # j: how many cdf entries lie below q (searchsorted "left" along each row)
    j = (cdf[:, None, :] < q[None, :, None]).sum(axis=2)  # (n, 9)
    inside = np.clip(j, 1, bins)
    rows = np.arange(n)[:, None]
    c0, c1 = cdf[rows, inside - 1], cdf[rows, inside]
    step = np.where(c1 > c0, c1 - c0, 1.0)
    frac = np.where(c1 > c0, (q[None, :] - c0) / step, 0.0)
    out = lo[:, None] + width[:, None] * (inside - 1 + frac)
    out = np.where(j == 0, lo[:, None], out)
    out = np.where(j > bins, hi[:, None], out)
    if q[0] == 0:  # the smallest value: the left edge of the first non-empty bin
        first = np.argmax(counts > 0, axis=1)
        out[:, 0] = lo + width * first
    out[~ok] = np.nan
    return out


class HistogramHistory:
    """The histograms of one tensor over iterations, as arrays.

    ``iterations`` (int64), ``lo``, ``hi`` (float64) and ``counts`` (int64, shape
    (histograms, bins)). The rows share one number of bins, the newest histogram's (as
    the storage's :class:`~embedviz.stats.base.HistogramArrays`): histograms recorded with
    another number are left out and ``left_out`` counts them, those of the read and
    those :meth:`extend` drops.

    Examples
    --------
    >>> from embedviz.stats.records import Histogram
    >>> pairs = [(10, Histogram(0.0, 1.0, [1, 2])), (20, Histogram(0.0, 2.0, [3, 1]))]
    >>> h = HistogramHistory.of(pairs)
    >>> h.index_at(15), h.index_at(99), len(h)
    (0, 1, 2)
    """

    def __init__(self, iterations, lo, hi, counts, left_out: int = 0) -> None:
        self.iterations = np.asarray(iterations, dtype=np.int64)
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.int64)
        self.counts = counts if counts.ndim == 2 else counts.reshape(len(self.iterations), -1)
        self.left_out = int(left_out)

    @classmethod
    def of(cls, pairs: list) -> HistogramHistory:
        """From ``[(iteration, Histogram), ...]``, oldest first (as the storage returns
        them); histograms with another number of bins than the newest are left out.

        Examples
        --------
        >>> from embedviz.stats.records import Histogram
        >>> h = HistogramHistory.of([(10, Histogram(0.0, 1.0, [1, 2, 3])),
        ...                          (20, Histogram(0.0, 1.0, [3, 1]))])
        >>> h.iterations.tolist(), h.left_out
        ([20], 1)
        """
        bins = len(pairs[-1][1].counts) if pairs else 0
        kept = [(it, h) for it, h in pairs if len(h.counts) == bins]
        return cls(
            [it for it, _ in kept],
            [h.lo for _, h in kept],
            [h.hi for _, h in kept],
            np.array([h.counts for _, h in kept], dtype=np.int64).reshape(len(kept), bins),
            len(pairs) - len(kept),
        )

    def __len__(self) -> int:
        return len(self.iterations)

    @property
    def last(self) -> int | None:
        """The newest iteration (None when empty)."""
        return int(self.iterations[-1]) if len(self) else None

    @property
    def bins(self) -> int | None:
        """The number of bins (None when empty)."""
        return self.counts.shape[1] if len(self) else None

    def extend(self, pairs: list) -> HistogramHistory:
        """Add the histograms of ``pairs`` newer than the last one; returns them as a
        history.

        The newest histogram's number of bins wins, as in :meth:`of`: when it differs
        from the held one, the new histograms *replace* the held ones (counted in
        ``left_out``), and the returned history is then the whole history, so a view
        sets its data rather than streams it (``len(added) == len(self)``).

        Examples
        --------
        >>> from embedviz.stats.records import Histogram
        >>> h = HistogramHistory.of([(10, Histogram(0.0, 1.0, [1, 2]))])
        >>> len(h.extend([(20, Histogram(0.0, 1.0, [2, 2]))])), len(h)
        (1, 2)
        >>> len(h.extend([(30, Histogram(0.0, 1.0, [1, 1, 1]))])), len(h), h.left_out
        (1, 1, 2)
        """
        last = self.last
        new = HistogramHistory.of([(it, h) for it, h in pairs if last is None or it > last])
        self.left_out += new.left_out
        if not len(new):
            return new
        if len(self) and new.bins != self.bins:  # the number of bins changed
            self.left_out += len(self)
            self.iterations, self.lo, self.hi = new.iterations, new.lo, new.hi
            self.counts = new.counts
            return new
        held = self.counts if len(self) else np.zeros((0, new.bins), np.int64)
        self.counts = np.concatenate([held, new.counts])
        self.iterations = np.concatenate([self.iterations, new.iterations])
        self.lo = np.concatenate([self.lo, new.lo])
        self.hi = np.concatenate([self.hi, new.hi])
        return new

    def index_at(self, iteration: float) -> int:
        """The newest histogram at or before ``iteration`` (the first one if none is)."""
        return max(0, int(np.searchsorted(self.iterations, iteration, side="right")) - 1)

    def bars(self, k: int) -> dict:
        """Columns ``left``, ``right``, ``top`` of histogram ``k``."""
        edges = np.linspace(self.lo[k], self.hi[k], self.counts.shape[1] + 1)
        return {"left": edges[:-1], "right": edges[1:], "top": self.counts[k].astype(np.float64)}

    def store_columns(self) -> dict:
        """Columns of a browser-side store: ``iteration``, ``lo``, ``hi``, ``counts``."""
        return {
            "iteration": self.iterations,
            "lo": self.lo,
            "hi": self.hi,
            "counts": [row for row in self.counts.astype(np.float64)],
        }


def _no_bars() -> dict:
    return {"left": [], "right": [], "top": []}


_SHOW = """
const it = slider.value, d = store.data
let k = -1
for (let i = 0; i < d.iteration.length; i++) { if (d.iteration[i] <= it) k = i }
if (k < 0) k = 0
if (d.iteration.length == 0) return
const lo = d.lo[k], hi = d.hi[k], c = d.counts[k], n = c.length
const left = [], right = [], top = []
for (let i = 0; i < n; i++) {
  left.push(lo + (hi - lo) * i / n); right.push(lo + (hi - lo) * (i + 1) / n); top.push(c[i])
}
show.data = {left: left, right: right, top: top}
plot.title.text = title + " at iteration " + d.iteration[k]
"""


class HistogramSlider:
    """Histograms of several tensors at one iteration, with one slider back through time.

    Parameters
    ----------
    entries : list of (str, str, HistogramHistory)
        Title, source key and history of each chart.
    key : str
        Names the slider (``<key>:slider``).
    in_browser : bool, default=False
        True (the static report): every histogram goes into a ``<skey>:store`` source
        and the slider swaps them in the browser. False (the server): the histories
        stay in Python and a Python callback swaps the bars.
    """

    def __init__(self, entries: list, key: str, in_browser: bool = False) -> None:
        self.entries = entries
        self.in_browser = in_browser
        self.shows, self.plots, self.stores = [], [], []
        self.sources: dict[str, ColumnDataSource] = {}
        known = [h.iterations for _, _, h in entries if len(h)]
        start = int(min(a[0] for a in known)) if known else 0
        end = int(max(a[-1] for a in known)) if known else 1
        self.slider = Slider(
            start=start,
            end=max(end, start + 1),
            value=end,
            step=1,
            title="histogram iteration",
            sizing_mode="stretch_width",
            name=f"{key}:slider",
            disabled=not known or start >= end,
        )
        for title, skey, history in entries:
            k = len(history) - 1
            show = ColumnDataSource(history.bars(k) if k >= 0 else _no_bars(), name=f"{skey}:show")
            suffix = f" at iteration {history.iterations[k]}" if k >= 0 else " — none recorded"
            p = figure(
                title=title + suffix,
                height=200,
                sizing_mode="stretch_width",
                tools="pan,box_zoom,reset,save",
                y_axis_label="count",
            )
            p.quad(
                left="left",
                right="right",
                top="top",
                bottom=0,
                source=show,
                fill_color="#1f77b4",
                line_color="white",
                fill_alpha=0.8,
            )
            p.title.text_font_size = "12px"
            if in_browser:
                store = ColumnDataSource(history.store_columns(), name=f"{skey}:store")
                self.slider.js_on_change(
                    "value",
                    CustomJS(
                        args={
                            "slider": self.slider,
                            "store": store,
                            "show": show,
                            "plot": p,
                            "title": title,
                        },
                        code=_SHOW,
                    ),
                )
                self.stores.append(store)
                self.sources[f"{skey}:store"] = store
            self.shows.append(show)
            self.plots.append(p)
            self.sources[f"{skey}:show"] = show
        if not in_browser:
            self.slider.on_change("value", lambda attr, old, new: self.show_at(new))

    def show_at(self, iteration: float) -> None:
        """Show each tensor's newest histogram at or before ``iteration``."""
        for (title, _, history), show, p in zip(self.entries, self.shows, self.plots, strict=True):
            if not len(history):
                continue
            k = history.index_at(iteration)
            show.data = history.bars(k)
            p.title.text = f"{title} at iteration {history.iterations[k]}"

    def push(self, added: list[HistogramHistory]) -> int:
        """Show what was just added to each chart's history (``added``, as returned by
        :meth:`HistogramHistory.extend`; a history whose number of bins changed was
        replaced, and its chart shows the new one); follow the newest when the slider is
        at its end. Returns how many histograms were added."""
        at_end = self.slider.value >= self.slider.end or self.slider.disabled
        n, newest, replaced = 0, None, False
        for i, ((title, _, history), show, p, new) in enumerate(
            zip(self.entries, self.shows, self.plots, added, strict=True)
        ):
            if not len(new):
                continue
            whole = len(new) == len(history)  # replaced (or empty before)
            replaced = replaced or whole
            if self.in_browser:
                if whole:
                    self.stores[i].data = history.store_columns()
                else:
                    self.stores[i].stream(new.store_columns())
            n += len(new)
            newest = new.last if newest is None else max(newest, new.last)
            if at_end or whole:
                k = len(history) - 1 if at_end else history.index_at(self.slider.value)
                show.data = history.bars(k)
                p.title.text = f"{title} at iteration {history.iterations[k]}"
        if newest is None:
            return n
        if replaced:  # the slider spans the histograms held
            self.slider.start = min(int(h.iterations[0]) for _, _, h in self.entries if len(h))
        self.slider.end = max(self.slider.end, newest)
        self.slider.disabled = self.slider.start >= self.slider.end
        if self.slider.disabled:  # one histogram: Bokeh needs end > start
            self.slider.end = self.slider.start + 1
        if at_end or self.slider.value < self.slider.start:
            self.slider.value = self.slider.end if at_end else self.slider.start
        return n

    def layout(self):
        """The slider above the charts."""
        return column(self.slider, *self.plots, sizing_mode="stretch_width")


def distribution_columns(history: HistogramHistory, max_points: int | None = None) -> dict:
    """Columns ``x`` and ``p0`` .. ``p100`` of a history; with ``max_points``, min/max
    downsampled on the 0th and 100th percentiles (the newest histogram kept)."""
    rows = percentiles_many(history.lo, history.hi, history.counts)
    keep = np.arange(len(history))
    if max_points is not None and len(history) > max_points:
        keep = np.union1d(
            downsample_minmax(rows[:, 0], max_points // 2),
            downsample_minmax(rows[:, -1], max_points // 2),
        )
    out = {"x": history.iterations[keep]}
    for k, q in enumerate(PERCENTILES):
        out[f"p{q}"] = rows[keep, k]
    return out


def distribution_chart(
    title: str, history: HistogramHistory, key: str, max_points: int | None = MAX_POINTS
):
    """Percentile bands of a tensor's histograms over iterations; returns (plot, source)."""
    source = ColumnDataSource(distribution_columns(history, max_points), name=f"{key}:bands")
    p = figure(
        title=title,
        height=CHART_HEIGHT - 40,
        sizing_mode="stretch_width",
        x_axis_label="iteration",
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        active_scroll=None,
    )
    p.title.text_font_size = "12px"
    n = len(PERCENTILES)
    for k in range(n // 2):
        lo, hi = f"p{PERCENTILES[k]}", f"p{PERCENTILES[n - 1 - k]}"
        p.varea(
            x="x", y1=lo, y2=hi, source=source, fill_color="#ff7f0e", fill_alpha=0.15 + 0.12 * k
        )
    median = f"p{PERCENTILES[n // 2]}"
    p.line(x="x", y=median, source=source, color="#a04000", line_width=1.5)
    # the same as a whisker and a dot per iteration: visible with one histogram, where
    # the areas and the line have no width
    outer = f"p{PERCENTILES[0]}", f"p{PERCENTILES[-1]}"
    p.segment(
        x0="x", y0=outer[0], x1="x", y1=outer[1], source=source, color="#ff7f0e", line_alpha=0.5
    )
    p.scatter(x="x", y=median, source=source, size=3, color="#a04000")
    return p, source
