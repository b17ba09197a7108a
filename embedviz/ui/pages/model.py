"""The model page (``/train/model``): one layer at a time.

A selector lists the layers that own parameters or recorded activations. For the chosen
layer: its table (parameters, shapes, counts), the log10 update:parameter ratio of its
tensors, the mean magnitudes of parameters and updates, activations mean ± 2 std over
time, parameter and update histograms at the latest iteration with a slider back
through time, their distribution over time as percentile bands, and the learning rate.

``build_model(..., mode="server")`` builds one layer and swaps the panel when the
selector changes (a Python callback, the Bokeh server runs it); ``mode="static"`` (the
report) builds every layer and the selector shows one of them in the browser.
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, CustomJS, Select

from embedviz.ui.pages._common import (
    MAX_POINTS,
    LiveSeries,
    Page,
    UpdateFeed,
    add_hover,
    add_legend,
    colour,
    draw_series,
    fetch_many,
    heading,
    line_chart,
    log10_or_nonfinite,
    new_marks,
    note,
    pick_worker,
    table,
)
from embedviz.ui.pages.histograms import (
    HistogramSlider,
    distribution_chart,
    distribution_columns,
)
from embedviz.ui.pages.kinds import NO_LAYERS, session_kind
from embedviz.ui.pages.multiline import multi_series_chart

MAX_STATIC_LAYERS = 16


def layer_map(info, latest) -> dict[str, list[str]]:
    """Layer name -> its full parameter names, in model order.

    From the static info when recorded (``<layer>.<local name>``), else from the
    parameter names of the newest update (everything before the last dot).
    """
    out: dict[str, list[str]] = {}
    if info is not None:
        for layer in info.layers:
            names = [f"{layer.name}.{p}" if layer.name else p for p in layer.param_shapes]
            out[layer.name] = names
    if latest is not None:
        for name in latest.params:
            layer = name.rpartition(".")[0]
            if not any(name in v for v in out.values()):
                out.setdefault(layer, []).append(name)
        for layer in latest.activations:
            out.setdefault(layer, [])
    acts = set(latest.activations) if latest is not None else set()
    return {k: v for k, v in out.items() if v or k in acts}


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
    """Activations mean ± 2 std of one layer over iterations (source ``x, mean, lo, hi``)."""

    def __init__(self, storage, session_id, worker_id, layer: str, key: str) -> None:
        self.layer = layer
        mean = storage.get_series(session_id, worker_id, f"activations/{layer}/mean")
        std = storage.get_series(session_id, worker_id, f"activations/{layer}/std")
        n = min(len(mean), len(std))
        self.source = ColumnDataSource(
            self._columns(mean.iterations[:n], mean.values[:n], std.values[:n]),
            name=f"{key}:act_band",
        )
        self.last = int(mean.iterations[n - 1]) if n else None

    @staticmethod
    def _columns(x, mean, std) -> dict:
        from embedviz.stats.series import downsample_minmax

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
        p = line_chart(f"Activations of {self.layer}: mean ± 2 std", "activation")
        p.varea(x="x", y1="lo", y2="hi", source=self.source, fill_color="#9467bd", fill_alpha=0.25)
        p.line(x="x", y="mean", source=self.source, color="#9467bd", line_width=2)
        return p


def build_layer(
    storage,
    session_id: str,
    worker_id: str,
    layer: str,
    params: list[str],
    page: Page,
    key: str = "layer",
):
    """The panel of one layer; its sources are added to ``page`` and its refresher returned."""
    info = storage.get_static_info(session_id, worker_id)
    latest = storage.get_latest_update(session_id, worker_id)
    has_act = latest is not None and layer in latest.activations
    params = [p for p in params if latest is None or p in latest.params] or params
    children = [
        heading(f"Layer {layer}" if layer else "Model"),
        table(
            _layer_rows(info, layer, params),
            ["parameter", "type", "shape", "count"],
            name=f"{key}:table",
        ),
    ]

    stats = ("param_mean_magnitude", "update_mean_magnitude")
    fetched = fetch_many(
        storage,
        session_id,
        worker_id,
        [f"params/{n}/update_param_ratio" for n in params]
        + [f"params/{n}/{stat}" for n in params for stat in stats],
    )
    ratio, ratio_chart = multi_series_chart(
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
        fetched=fetched,
    )
    mag = line_chart(
        "log10 mean magnitude: parameters (solid) and updates (dashed)", "log10 mean |x|"
    )
    mags, drawn = [], []
    mag_marks = new_marks(f"{key}:magnitude:marks")
    for i, name in enumerate(params):
        for stat, dash in (("param_mean_magnitude", "solid"), ("update_mean_magnitude", "dashed")):
            s = LiveSeries(
                f"params/{name}/{stat}",
                f"{name} {stat.split('_')[0]}",
                transform=log10_or_nonfinite,
            ).load(storage, session_id, worker_id, mag_marks, fetched[f"params/{name}/{stat}"])
            page.sources[f"{key}:{stat}:{name}"] = s.source
            d = draw_series(mag, s, colour(i, len(params)))
            d.glyph.line_dash = dash
            drawn.append(d)
            mags.append(s)
    add_hover(mag, drawn, mag_marks)
    add_legend(mag, drawn, [f"{n} {k}" for n in params for k in ("param", "update")])

    band = None
    if has_act:
        band = ActivationBand(storage, session_id, worker_id, layer, key)
        page.sources[f"{key}:act_band"] = band.source

    lrs = [f"lr/{i}" for i in range(len(latest.learning_rates))] if latest else []
    lr_series, lr_chart = multi_series_chart(
        storage,
        session_id,
        worker_id,
        lrs,
        [f"group {i}" for i in range(len(lrs))],
        "Learning rate (per parameter group)",
        "learning rate",
        page,
        f"{key}:lr",
        transform=None,
    )

    hist_entries, dist_charts, dist_sources = [], [], []
    hist_specs = [(kind, n) for n in params for kind in ("params", "updates")]
    if has_act:
        hist_specs.append(("activations", layer))
    for kind, name in hist_specs:
        hs = storage.get_histograms(session_id, worker_id, kind, name)
        if not hs:
            continue
        skey = f"{key}:hist:{kind}:{name}"
        hist_entries.append((f"{kind} {name}", skey, hs))
        chart, src = distribution_chart(f"Distribution of {kind} {name} (percentiles)", hs, skey)
        page.sources[f"{skey}:bands"] = src
        dist_charts.append(chart)
        dist_sources.append((kind, name, src, hs[-1][0]))
    hist = HistogramSlider(hist_entries, key) if hist_entries else None
    if hist is not None:
        page.sources.update(hist.sources)
        page.sources[f"{key}:slider"] = hist.slider

    children.append(row(ratio_chart, mag, sizing_mode="stretch_width"))
    children.append(
        row(
            band.chart() if band else note("No activations recorded for this layer."),
            lr_chart,
            sizing_mode="stretch_width",
        )
    )
    if hist is not None:
        children.append(heading("Histograms", 4))
        children.append(
            row(
                hist.layout(),
                column(*dist_charts, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            )
        )
    else:
        children.append(note("No histograms recorded for this layer."))

    feed = UpdateFeed(storage, session_id, worker_id, latest.iteration if latest else None)
    last_hist = {(kind, name): it for kind, name, _, it in dist_sources}

    def refresh() -> int:
        updates = feed()
        if not updates:
            return 0
        n = sum(s.push_updates(updates) for s in (ratio, *mags, lr_series))
        if band is not None:
            n += band.push(updates)
        if hist is not None:
            new_lists = []
            for kind, name, src, _ in dist_sources:
                after = last_hist[(kind, name)]
                new = [
                    (u.iteration, u.histograms[kind][name])
                    for u in updates
                    if u.iteration > after and name in u.histograms.get(kind, {})
                ]
                if new:
                    src.stream(distribution_columns(new), rollover=6000)
                    last_hist[(kind, name)] = new[-1][0]
                new_lists.append(new)
            n += hist.push(new_lists)
        return n

    return column(*children, sizing_mode="stretch_width"), refresh


def build_model(
    storage,
    session_id: str,
    worker_id: str | None = None,
    layer: str | None = None,
    mode: str = "server",
) -> Page:
    """The model page of one session and worker.

    Parameters
    ----------
    storage : StatsStorage
    session_id : str
    worker_id : str, default=None
        None: the session's first worker.
    layer : str, default=None
        The layer shown first; None: the first layer with parameters.
    mode : {"server", "static"}, default="server"
        "server" builds one layer and rebuilds on selection (Python callback);
        "static" builds every layer (at most 16) and switches in the browser.

    Returns
    -------
    Page
        ``sources`` holds ``"layer:ratio"`` (one row per line segment, see
        :func:`~embedviz.ui.pages.multiline.line_points`), ``"layer:act_band"`` (``x``,
        ``mean``, ``lo``, ``hi``), ``"layer:hist:<kind>:<tensor>:store"`` / ``:show`` /
        ``:bands`` (static mode prefixes keys with ``layer<i>:`` instead of ``layer:``).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update, ParamStats
    >>> st = InMemoryStatsStorage()
    >>> st.put(Update("run", "0", 1, 0.0, params={"fc.weight": ParamStats(0.0, 1.0, 0.8)}))
    >>> "layer:ratio" in build_model(st, "run").sources
    True
    """
    worker_id = pick_worker(storage, session_id, worker_id)
    page = Page(layout=None)
    if worker_id is None:
        page.layout = column(heading(f"Session {session_id}: nothing recorded yet"))
        return page
    info = storage.get_static_info(session_id, worker_id)
    latest = storage.get_latest_update(session_id, worker_id)
    layers = layer_map(info, latest)
    names = list(layers)
    if not names:
        title, where = NO_LAYERS.get(
            session_kind(info, latest),
            ("No layers recorded for this session", "Layers appear once the listener reports."),
        )
        page.layout = column(heading(title), note(where), sizing_mode="stretch_width")
        return page
    chosen = layer if layer in layers else names[0]
    labels = [(n, n if n else "(model)") for n in names]
    select = Select(title="Layer", value=chosen, options=labels, width=320, name="layer_select")

    if mode == "static":
        panels = []
        for i, name in enumerate(names[:MAX_STATIC_LAYERS]):
            panel, _ = build_layer(
                storage, session_id, worker_id, name, layers[name], page, key=f"layer{i}"
            )
            panel.visible = name == chosen
            panels.append(panel)
        select.options = labels[:MAX_STATIC_LAYERS]
        select.js_on_change(
            "value",
            CustomJS(
                args={"panels": panels, "names": names[:MAX_STATIC_LAYERS]},
                code="for (let i = 0; i < panels.length; i++) "
                "panels[i].visible = names[i] == cb_obj.value",
            ),
        )
        page.layout = column(select, *panels, sizing_mode="stretch_width")
        return page

    panel, refresh = build_layer(storage, session_id, worker_id, chosen, layers[chosen], page)
    holder = column(panel, sizing_mode="stretch_width")
    current = {"refresh": refresh}
    page.refreshers.append(lambda: current["refresh"]())

    def on_select(attr, old, new) -> None:
        for k in [k for k in page.sources if k.startswith("layer:")]:
            del page.sources[k]
        panel, refresh = build_layer(storage, session_id, worker_id, new, layers.get(new, []), page)
        current["refresh"] = refresh
        holder.children = [panel]

    select.on_change("value", on_select)
    page.layout = column(select, holder, sizing_mode="stretch_width")
    return page
