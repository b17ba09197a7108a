"""One layer's panel of the model page, built empty and filled by two reads.

The panel of a layer: its table (parameters, shapes, counts), the log10
update:parameter ratio of its tensors, the log10 mean magnitudes of parameters (solid)
and updates (dashed), activations mean ± 2 std, the learning rate per parameter group
(linear or log y, a toggle; log at first when it spans more than a decade), each chart
one :class:`~embedviz.ui.pages.multiline.MultiSeries`, and the parameter, update and
activation histograms (:mod:`embedviz.ui.pages.histogram_panel`).

Reading a long run is most of the cost of a page, so the panel is built with its charts
empty and reads twice, each read filling its own charts: :meth:`LayerPanel.read_series`
takes every series in one pass over the storage (``get_series_many`` with a limit per
series: 1000 drawn points each, the activations' mean and std whole so that the band
pairs them at the same iterations), :meth:`LayerPanel.read_histograms` the layer's
histograms. The Bokeh server runs both after the page is shown (``Page.deferred``, two
page-builder threads), so the browser lays the page out meanwhile.
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, CustomJS, RadioButtonGroup

from embedviz.stats.series import downsample_minmax
from embedviz.ui.pages._common import Page
from embedviz.ui.pages.charts import MAX_POINTS, SHOW_SCALE, colour, line_chart
from embedviz.ui.pages.histogram_panel import KINDS, HistogramPanel
from embedviz.ui.pages.histograms import HistogramHistory
from embedviz.ui.pages.live import UpdateFeed, fetch_many
from embedviz.ui.pages.multiline import draw_multi, multi_series_chart
from embedviz.ui.pages.widgets import escape, heading, layer_label, layer_types, note, table

LR_LOG_SPAN = 10.0  # learning rates spanning more than this factor open on a log y axis


def _layer_rows(info, layer: str, params: list[str]) -> list[tuple]:
    kind, shapes = "", {}
    if info is not None:
        for li in info.layers:
            if li.name == layer:
                kind, shapes = li.type, li.param_shapes
    rows = []
    for full in params:
        local = full[len(layer) + 1 :] if layer and full.startswith(layer + ".") else full
        shape = shapes.get(local)
        count = int(np.prod(shape)) if shape is not None else None
        rows.append(
            (
                full,
                kind,
                "×".join(map(str, shape)) if shape else "",
                f"{count:,}" if count is not None else "",
            )
        )
    if not rows:
        rows.append(("(no parameters)", kind, "", ""))
    return rows


class ActivationBand:
    """Activations mean ± 2 std of one layer over iterations (source ``x, mean, lo, hi``).

    Built empty; :meth:`load` fills it from the whole mean and std series (read whole so
    that both hold the same iterations), min/max downsampled on the mean.
    """

    def __init__(self, layer: str, key: str, label: str | None = None) -> None:
        self.layer = layer
        self.label = layer if label is None else label  # "1 (ReLU)" in the title
        self.source = ColumnDataSource(
            {"x": np.zeros(0, np.int64), "mean": [], "lo": [], "hi": []}, name=f"{key}:act_band"
        )
        self.last: int | None = None

    def load(self, mean, std) -> ActivationBand:
        """Fill from the ``mean`` and ``std`` Series; returns self."""
        n = min(len(mean), len(std))
        self.source.data = self._columns(mean.iterations[:n], mean.values[:n], std.values[:n])
        self.last = int(mean.iterations[n - 1]) if n else None
        return self

    @staticmethod
    def _columns(x, mean, std) -> dict:
        keep = downsample_minmax(np.asarray(mean, np.float64), MAX_POINTS)
        x, mean, std = np.asarray(x)[keep], np.asarray(mean)[keep], np.asarray(std)[keep]
        return {"x": x, "mean": mean, "lo": mean - 2 * std, "hi": mean + 2 * std}

    def push(self, updates) -> int:
        rows = [
            (u.iteration, u.activations[self.layer])
            for u in updates
            if self.layer in u.activations and (self.last is None or u.iteration > self.last)
        ]
        if not rows:
            return 0
        x = np.array([r[0] for r in rows])
        m = np.array([r[1].mean for r in rows], dtype=np.float64)
        s = np.array([r[1].std for r in rows], dtype=np.float64)
        self.source.stream({"x": x, "mean": m, "lo": m - 2 * s, "hi": m + 2 * s}, rollover=6000)
        self.last = int(x[-1])
        return len(rows)

    def chart(self):
        p = line_chart(f"Activations of {self.label}: mean ± 2 std", "activation")
        p.varea(x="x", y1="lo", y2="hi", source=self.source, fill_color="#9467bd", fill_alpha=0.25)
        p.line(x="x", y="mean", source=self.source, color="#9467bd", line_width=2)
        return p


class LayerPanel:
    """The panel of one layer, built with its charts empty and filled by two reads.

    :attr:`jobs` holds two ``(read, fill)`` pairs: the series (every series the panel
    draws in one pass over the storage, :func:`fetch_many` with a limit per series) and
    the histograms. ``read`` runs in any thread, ``fill`` in the document's: it loads
    what was read, streams what was recorded after the panel was built, and makes
    :meth:`refresh` stream into those charts from then on. ``in_browser`` keeps every
    histogram in the page for the slider (the static report).
    """

    def __init__(
        self,
        storage,
        session_id: str,
        worker_id: str,
        layer: str,
        params: list[str],
        page: Page,
        key: str,
        info,
        latest,
        in_browser: bool = False,
    ) -> None:
        self.storage, self.session_id, self.worker_id = storage, session_id, worker_id
        self.page, self.key, self.layer, self.in_browser = page, key, layer, in_browser
        self.after = latest.iteration if latest is not None else None
        self.feed = UpdateFeed(storage, session_id, worker_id, self.after)
        self.loaded = False
        has_act = latest is not None and layer in latest.activations
        params = [p for p in params if latest is None or p in latest.params] or params
        self.params = params
        n_lr = len(latest.learning_rates) if latest is not None else 0
        table_box = table(
            _layer_rows(info, layer, params),
            ["parameter", "type", "shape", "count"],
            name=f"{key}:table",
        )
        self.ratio, ratio_chart = multi_series_chart(
            storage,
            session_id,
            worker_id,
            [f"params/{n}/update_param_ratio" for n in params],
            params,
            "log10 update:parameter ratio",
            "log10 ratio",
            page,
            f"{key}:ratio",
            band=(-4.0, -2.0),
            target=-3.0,
            max_points=MAX_POINTS,
            load=False,
        )
        stats = (
            ("param_mean_magnitude", "param", "solid"),
            ("update_mean_magnitude", "update", "dashed"),
        )
        self.mags, mag_chart = multi_series_chart(
            storage,
            session_id,
            worker_id,
            [f"params/{n}/{stat}" for n in params for stat, _, _ in stats],
            [f"{n} {word}" for n in params for _, word, _ in stats],
            "log10 mean magnitude: parameters (solid) and updates (dashed)",
            "log10 mean |x|",
            page,
            f"{key}:magnitude",
            max_points=MAX_POINTS,
            load=False,
            colors=[colour(i, len(params)) for i in range(len(params)) for _ in stats],
            dashes=[dash for _ in params for _, _, dash in stats],
        )
        self.lr, lr_chart = multi_series_chart(
            storage,
            session_id,
            worker_id,
            [f"lr/{i}" for i in range(n_lr)],
            [f"group {i}" for i in range(n_lr)],
            "Learning rate (per parameter group)",
            "learning rate",
            page,
            f"{key}:lr",
            transform=None,
            max_points=MAX_POINTS,
            load=False,
        )
        self.lr_box, self.lr_scale = self._lr_views(lr_chart, key, page)
        self.band = None
        self.limits: dict[str, int | None] = {
            n: MAX_POINTS for ms in (self.ratio, self.mags, self.lr) for n in ms.names
        }
        if has_act:
            self.band = ActivationBand(layer, key, layer_label(layer, layer_types(info)))
            page.sources[f"{key}:act_band"] = self.band.source
            for stat in ("mean", "std"):
                self.limits[f"activations/{layer}/{stat}"] = None
        self.hist_specs = [(kind, n) for n in params for kind in ("params", "updates")]
        if has_act:
            self.hist_specs.append(("activations", layer))
        self.hist: HistogramPanel | None = None
        self.left_out_note = note("")
        self.left_out_note.visible = False
        self.left_out_note.name = f"{key}:hist_left_out"
        self.hist_box = column(
            heading("Histograms", 4), note("Reading the histograms…"), sizing_mode="stretch_width"
        )
        self.layout = column(
            heading(f"Layer {layer_label(layer, layer_types(info))}" if layer else "Model"),
            table_box,
            row(ratio_chart, mag_chart, sizing_mode="stretch_width"),
            row(
                self.band.chart() if self.band else note("No activations recorded for this layer."),
                self.lr_box,
                sizing_mode="stretch_width",
            ),
            self.hist_box,
            sizing_mode="stretch_width",
        )
        self.jobs = [
            (self.read_series, self.fill_series),
            (self.read_histograms, self.fill_histograms),
        ]

    def _lr_views(self, linear, key: str, page):
        """The learning rate on a linear and a log y axis (a toggle shows one; Bokeh
        cannot switch an axis's type): a step or cosine schedule reads better on log y."""
        if not self.lr.names:
            return linear, None
        log_chart = line_chart(
            "Learning rate (per parameter group), log scale",
            "learning rate",
            y_axis_type="log",
            name=f"{key}:lr_log",
        )
        draw_multi(log_chart, self.lr)
        log_chart.x_range = linear.x_range
        log_chart.visible = False
        scale = RadioButtonGroup(labels=["linear y", "log y"], active=0, name=f"{key}:lr_scale")
        scale.js_on_change(
            "active",
            CustomJS(
                args={"linear": linear, "log": log_chart},
                code=SHOW_SCALE,
            ),
        )
        page.sources[f"{key}:lr_scale"] = scale
        return column(scale, linear, log_chart, sizing_mode="stretch_width"), scale

    def _lr_log_by_default(self, series: dict) -> None:
        """Log y when the recorded learning rates span more than a decade."""
        if self.lr_scale is None:
            return
        values = [np.asarray(series[n].values, dtype=np.float64) for n in self.lr.names]
        v = np.concatenate(values) if values else np.zeros(0)
        v = v[np.isfinite(v) & (v > 0)]
        if len(v) and v.max() > LR_LOG_SPAN * v.min():
            _, linear, log_chart = self.lr_box.children
            self.lr_scale.active = 1
            linear.visible, log_chart.visible = False, True

    def _late(self) -> list:
        """The updates recorded after the panel was built."""
        if self.after is None:
            return []
        return self.storage.get_updates(self.session_id, self.worker_id, after_iteration=self.after)

    def read_series(self) -> dict:
        """Every series of the panel, in one pass; any thread."""
        return fetch_many(
            self.storage, self.session_id, self.worker_id, list(self.limits), self.limits
        )

    def fill_series(self, series: dict) -> None:
        """Load the series (the document's thread) and stream them from then on."""
        for ms in (self.ratio, self.mags, self.lr):
            ms.load(self.storage, self.session_id, self.worker_id, series)
        self._lr_log_by_default(series)
        if self.band is not None:
            self.band.load(
                series[f"activations/{self.layer}/mean"], series[f"activations/{self.layer}/std"]
            )
        self.loaded = True
        self._push_series(self._late())

    def _read_kinds(self, kinds) -> dict:
        st, sid, wid = self.storage, self.session_id, self.worker_id
        items = [(kind, name) for kind, name in self.hist_specs if kind in kinds]
        got = st.get_histogram_arrays(sid, wid, items)  # one pass for all, as arrays
        return {
            item: HistogramHistory(a.iterations, a.lo, a.hi, a.counts, a.left_out)
            for item, a in got.items()
        }

    def _show_left_out(self) -> None:
        """Say in one note how many older histograms (another number of bins) the
        slider and the bands leave out, those read and those dropped while live; the
        document's thread."""
        left_out = {item: h.left_out for item, h in self.hist.histories.items()}
        n = sum(left_out.values())
        names = [f"{KINDS[kind]} {name}" for (kind, name), k in left_out.items() if k]
        shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
        text = (
            f"Left out: {n} older histogram{'s' if n > 1 else ''} ({shown}) recorded "
            "with another number of bins than the newest."
        )
        self.left_out_note.text = f"<span style='color:#666'>{escape(text)}</span>" if n else ""
        self.left_out_note.visible = bool(n)

    def read_histograms(self) -> tuple[dict, list[str]]:
        """The histograms shown first, (kind, tensor) -> HistogramHistory, and the kinds
        left to read when chosen; any thread. On the server only the first kind is
        read (all of them when it has none), in the browser every kind."""
        kinds = list(dict.fromkeys(kind for kind, _ in self.hist_specs))
        if self.in_browser or not kinds:
            return self._read_kinds(kinds), []
        got = self._read_kinds(kinds[:1])
        if any(len(h) for h in got.values()):
            return got, kinds[1:]
        got.update(self._read_kinds(kinds[1:]))
        return got, []

    def fill_histograms(self, read: tuple[dict, list[str]]) -> None:
        """Build the histogram views (the document's thread) and stream them from then on."""
        histories, unread = read
        self.hist = HistogramPanel(
            histories,
            self.key,
            self.page,
            in_browser=self.in_browser,
            read_kind=lambda kind: self._read_kinds([kind]),
            unread=unread,
            late=self._late,
            changed=self._show_left_out,
        )
        self.hist_box.children = [*self.hist.layout.children, self.left_out_note]
        self.hist.push(self._late())  # and the note, by ``changed``

    def _push_series(self, updates) -> int:
        n = sum(ms.push_updates(updates) for ms in (self.ratio, self.mags, self.lr))
        if self.band is not None:
            n += self.band.push(updates)
        return n

    def refresh(self) -> int:
        """Stream what arrived since the last call into the charts filled so far."""
        updates = self.feed()
        if not updates:
            return 0
        n = self._push_series(updates) if self.loaded else 0
        if self.hist is not None:
            n += self.hist.push(updates)
        return n
