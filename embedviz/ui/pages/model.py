"""The model page (``/train/model``): one layer at a time.

A selector lists the layers that own parameters or recorded activations. For the chosen
layer: its table (parameters, shapes, counts), the log10 update:parameter ratio of its
tensors, the mean magnitudes of parameters and updates, activations mean ± 2 std over
time, parameter and update histograms at the latest iteration with a slider back
through time, their distribution over time as percentile bands, and the learning rate.

``build_model(..., mode="server")`` builds one layer (:class:`~embedviz.ui.pages.
layer_panel.LayerPanel`) with its charts empty and its read deferred until the page is
shown, and swaps the panel when the selector changes (a Python callback, the Bokeh
server runs it; the new layer is read in the server's page builders). The histograms
stay in the server until the slider moves. ``mode="static"`` (the report) builds every
layer with everything read, and the selector shows one of them in the browser.
"""

from __future__ import annotations

import logging

from bokeh.layouts import column
from bokeh.models import CustomJS, Select

from embedviz.errors import InputError
from embedviz.ui.pages._common import Page
from embedviz.ui.pages.kinds import NO_LAYERS, session_kind
from embedviz.ui.pages.layer_panel import LayerPanel
from embedviz.ui.pages.live import pick_worker
from embedviz.ui.pages.prune import prune_on_swap
from embedviz.ui.pages.widgets import heading, layer_label, layer_types, note

log = logging.getLogger(__name__)

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


def build_model(
    storage,
    session_id: str,
    worker_id: str | None = None,
    layer: str | None = None,
    mode: str = "server",
    defer_reads: bool | None = None,
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
        "server" builds one layer and rebuilds on selection (Python callback; the new
        layer's read runs through ``page.background``); "static" builds every layer (at
        most 16), switches in the browser and keeps every histogram in the page.
    defer_reads : bool, default=None
        True: the layer's charts come back empty with their read (one pass over the
        storage, then its histograms) in ``page.deferred``, which the Bokeh server runs
        once the page is shown. None: True in "server" mode, False in "static" mode.

    Returns
    -------
    Page
        ``sources`` holds ``"layer:ratio"`` and ``"layer:magnitude"`` (one row per line
        segment, see :func:`~embedviz.ui.pages.multiline.line_points`; magnitudes are
        labelled ``"<tensor> param"`` and ``"<tensor> update"``), ``"layer:lr"``,
        ``"layer:act_band"`` (``x``, ``mean``, ``lo``, ``hi``),
        ``"layer:hist:<kind>:<tensor>:show"`` / ``:bands`` (``:store`` too in static
        mode) and ``"layer:slider"`` (static mode prefixes keys with ``layer<i>:``).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update, ParamStats
    >>> st = InMemoryStatsStorage()
    >>> st.put(Update("run", "0", 1, 0.0, params={"fc.weight": ParamStats(0.0, 1.0, 0.8)}))
    >>> page = build_model(st, "run", defer_reads=False)
    >>> page.sources["layer:magnitude"].data["label"]
    ['fc.weight param']
    """
    if mode not in ("server", "static"):
        raise InputError(f"mode: expected 'server' or 'static', got {mode!r}")
    if defer_reads is None:
        defer_reads = mode == "server"
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
    # the first layer that owns parameters (a CNN's first module may be a reshape)
    chosen = layer if layer in layers else next((n for n in names if layers[n]), names[0])
    types = layer_types(info)
    labels = [(n, layer_label(n, types)) for n in names]
    select = Select(title="Layer", value=chosen, options=labels, width=320, name="layer_select")

    def panel_of(name: str, key: str) -> LayerPanel:
        return LayerPanel(
            storage,
            session_id,
            worker_id,
            name,
            layers.get(name, []),
            page,
            key,
            info,
            latest,
            in_browser=mode == "static",
        )

    if mode == "static":
        panels = []
        for i, name in enumerate(names[:MAX_STATIC_LAYERS]):
            panel = panel_of(name, f"layer{i}")
            for read, fill in panel.jobs:
                if defer_reads:
                    page.deferred.append((read, fill))
                else:
                    fill(read())
            panel.layout.visible = name == chosen
            panels.append(panel.layout)
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

    panel = panel_of(chosen, "layer")
    for read, fill in panel.jobs:
        if defer_reads:
            page.deferred.append((read, fill))
        else:
            fill(read())
    holder = prune_on_swap(column(panel.layout, sizing_mode="stretch_width"))
    current = {"panel": panel}
    page.refreshers.append(lambda: current["panel"].refresh())

    def on_select(attr, old, new) -> None:
        nonlocal info, latest
        for k in [k for k in page.sources if k.startswith("layer:")]:
            del page.sources[k]
        info = storage.get_static_info(session_id, worker_id)
        latest = storage.get_latest_update(session_id, worker_id)
        panel = current["panel"] = panel_of(new, "layer")
        holder.children = [panel.layout]

        for read, fill in panel.jobs:

            def work(read=read, fill=fill) -> None:
                if current["panel"] is not panel:
                    return  # another layer was chosen meanwhile
                try:
                    data = read()
                except Exception:  # a storage gone bad must not end the tab
                    log.exception("reading layer %r failed", new)
                    return
                page.call_soon(lambda: fill(data) if current["panel"] is panel else None)

            page.background(work)

    select.on_change("value", on_select)
    page.layout = column(select, holder, sizing_mode="stretch_width")
    return page
