"""Histogram views shared by the model page: one iteration with a slider, and percentile bands.

A stored histogram is ``Histogram(lo, hi, counts)`` (equal-width bins). The slider view
keeps every recorded histogram of one tensor in a *store* source (``iteration``, ``lo``,
``hi``, ``counts``) and shows one of them in a *display* source (``left``, ``right``,
``top``); moving the slider swaps them in the browser (CustomJS), so it works in the
static report too. The distribution view draws, per recorded iteration, the 0/7/16/31/
50/69/84/93/100th percentiles (TensorBoard's distributions) as nested bands.
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, Slider
from bokeh.plotting import figure

from embedviz.ui.pages._common import CHART_HEIGHT

PERCENTILES = (0, 7, 16, 31, 50, 69, 84, 93, 100)


def percentiles(lo: float, hi: float, counts) -> np.ndarray:
    """The :data:`PERCENTILES` of a histogram, interpolated linearly inside bins."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0 or not np.isfinite(lo) or not np.isfinite(hi):
        return np.full(len(PERCENTILES), np.nan)
    edges = np.linspace(lo, hi, len(counts) + 1)
    cdf = np.concatenate([[0.0], np.cumsum(counts) / total])
    q = np.asarray(PERCENTILES, dtype=np.float64) / 100.0
    # the first edge where the cdf reaches q, interpolated within that bin
    out = np.empty(len(q))
    for k, qk in enumerate(q):
        j = int(np.searchsorted(cdf, qk, side="left"))
        if j == 0:
            out[k] = edges[0]
        elif j >= len(cdf):
            out[k] = edges[-1]
        else:
            c0, c1 = cdf[j - 1], cdf[j]
            frac = 0.0 if c1 == c0 else (qk - c0) / (c1 - c0)
            out[k] = edges[j - 1] + frac * (edges[j] - edges[j - 1])
    if q[0] == 0:  # the smallest value: the left edge of the first non-empty bin
        out[0] = edges[int(np.flatnonzero(counts > 0)[0])]
    return out


def _bars(lo: float, hi: float, counts) -> dict:
    edges = np.linspace(lo, hi, len(counts) + 1)
    return {"left": edges[:-1], "right": edges[1:], "top": np.asarray(counts, dtype=np.float64)}


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
    """Histograms of several tensors at one iteration, with one slider back through time."""

    def __init__(self, entries: list[tuple[str, str, list]], key: str) -> None:
        """``entries``: (title, source key, [(iteration, Histogram), ...]) per chart."""
        self.stores, self.shows, self.plots, self.titles = [], [], [], []
        iterations = sorted({it for _, _, hs in entries for it, _ in hs})
        start = iterations[0] if iterations else 0
        end = iterations[-1] if iterations else 1
        self.slider = Slider(
            start=start,
            end=max(end, start + 1),
            value=end,
            step=1,
            title="histogram iteration",
            sizing_mode="stretch_width",
            name=f"{key}:slider",
            disabled=len(iterations) < 2,
        )
        self.sources: dict[str, ColumnDataSource] = {}
        for title, skey, hs in entries:
            store = ColumnDataSource(
                {
                    "iteration": [it for it, _ in hs],
                    "lo": [h.lo for _, h in hs],
                    "hi": [h.hi for _, h in hs],
                    "counts": [list(h.counts) for _, h in hs],
                },
                name=f"{skey}:store",
            )
            show = ColumnDataSource(
                _bars(hs[-1][1].lo, hs[-1][1].hi, hs[-1][1].counts)
                if hs
                else {"left": [], "right": [], "top": []},
                name=f"{skey}:show",
            )
            suffix = f" at iteration {hs[-1][0]}" if hs else " — none recorded"
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
            self.shows.append(show)
            self.plots.append(p)
            self.titles.append(title)
            self.sources[f"{skey}:store"] = store
            self.sources[f"{skey}:show"] = show

    def push(self, new: list[list]) -> int:
        """Add new histograms, one list of (iteration, Histogram) per chart; follow the newest."""
        n, newest = 0, None
        for store, show, p, title, hs in zip(
            self.stores, self.shows, self.plots, self.titles, new, strict=True
        ):
            if not hs:
                continue
            store.stream(
                {
                    "iteration": [it for it, _ in hs],
                    "lo": [h.lo for _, h in hs],
                    "hi": [h.hi for _, h in hs],
                    "counts": [list(h.counts) for _, h in hs],
                }
            )
            n += len(hs)
            it, h = hs[-1]
            newest = it if newest is None else max(newest, it)
            if self.slider.value >= self.slider.end or self.slider.disabled:
                show.data = _bars(h.lo, h.hi, h.counts)
                p.title.text = f"{title} at iteration {it}"
        if newest is not None:
            at_end = self.slider.value >= self.slider.end or self.slider.disabled
            self.slider.end = max(self.slider.end, newest)
            if newest > self.slider.start:
                self.slider.disabled = False
            if at_end:
                self.slider.value = self.slider.end
        return n

    def layout(self):
        """The slider above the charts."""
        return column(self.slider, *self.plots, sizing_mode="stretch_width")


def distribution_columns(hs: list) -> dict:
    """Columns ``x`` and ``p0`` .. ``p100`` for a list of (iteration, Histogram)."""
    rows = np.array([percentiles(h.lo, h.hi, h.counts) for _, h in hs]).reshape(
        len(hs), len(PERCENTILES)
    )
    out = {"x": np.asarray([it for it, _ in hs], dtype=np.int64)}
    for k, q in enumerate(PERCENTILES):
        out[f"p{q}"] = rows[:, k]
    return out


def distribution_chart(title: str, hs: list, key: str):
    """Percentile bands of a tensor's histograms over iterations; returns (plot, source)."""
    source = ColumnDataSource(distribution_columns(hs), name=f"{key}:bands")
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
    p.line(x="x", y=f"p{PERCENTILES[n // 2]}", source=source, color="#a04000", line_width=1.5)
    return p, source
