"""The overview page (``/train/overview``): how is this run doing, at one glance.

Score against iteration (raw faint, smoothed bold, linear or log y), the evaluation
metrics when recorded, the model and performance tables, the log10 update:parameter
ratio of every parameter tensor with the healthy band around 1e-3 shaded, the log10
standard deviation of activations, gradients and updates (tabs), and the findings of
:mod:`embedviz.stats.diagnostics` with their severity, evidence and advice.
"""

from __future__ import annotations

from bokeh.layouts import column, row
from bokeh.models import (
    BoxAnnotation,
    CustomJS,
    DataRange1d,
    Div,
    LinearAxis,
    RadioButtonGroup,
    Span,
)

from embedviz.ui.findings import FINDINGS_STYLE, findings_view
from embedviz.ui.pages._common import (
    MULTI_MAX_POINTS,
    SMOOTHING,
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
from embedviz.ui.pages.info_tables import first_point, model_rows, performance_rows
from embedviz.ui.pages.kinds import (
    PhaseShading,
    exaggeration_span,
    kind_charts,
    score_titles,
    session_kind,
    step_name,
)

RATIO_BAND = (-4.0, -2.0)  # log10 of the healthy range of update:parameter ratios
RATIO_TARGET = -3.0


def score_view(
    storage,
    session_id: str,
    worker_id: str,
    page: Page,
    key: str = "score",
    kind: str = "torch",
    shading: PhaseShading | None = None,
):
    """Score chart with a linear/log toggle; the series is registered in ``page``.

    ``kind`` names the score (KL divergence for t-SNE, loss per epoch for word2vec);
    ``shading`` marks the early exaggeration phase of a t-SNE run on both charts.
    """
    s = LiveSeries("score", "score", smooth=SMOOTHING).load(storage, session_id, worker_id)
    page.sources[key] = s.source
    page.sources[f"{key}:marks"] = s.marks
    title, y_label = score_titles(kind)
    x_label = step_name(kind)
    linear = line_chart(
        f"{title} — raw and smoothed", y_label, x_label=x_label, name=f"{key}_linear"
    )
    log = line_chart(
        f"{title}, log scale", y_label, x_label=x_label, y_axis_type="log", name=f"{key}_log"
    )
    log.x_range = linear.x_range
    if shading is not None:
        shading.add_to(linear)
        shading.add_to(log)
    log.visible = False
    add_hover(linear, [draw_series(linear, s, "#1f77b4", smoothed_too=True)], s.marks)
    add_hover(log, [draw_series(log, s, "#1f77b4", smoothed_too=True)], s.marks)
    toggle = RadioButtonGroup(labels=["linear y", "log y"], active=0, name=f"{key}_scale")
    toggle.js_on_change(
        "active",
        CustomJS(
            args={"lin": linear, "log": log},
            code="lin.visible = cb_obj.active == 0; log.visible = cb_obj.active == 1",
        ),
    )
    return s, column(toggle, linear, log, sizing_mode="stretch_width")


def eval_view(storage, session_id: str, worker_id: str, page: Page):
    """Evaluation metrics (never smoothed) or None when none were recorded."""
    evals = storage.get_evals(session_id, worker_id)
    metrics = sorted({m for e in evals for m in e.metrics})
    if not metrics:
        return [], None
    p = line_chart("Evaluation (held-out set, not smoothed)", "value", name="eval_chart")
    drawn, series = [], []
    marks = new_marks("eval:marks")
    page.sources["eval:marks"] = marks
    # losses and scores (accuracy) differ in scale: losses get their own axis on the right
    losses = [m for m in metrics if "loss" in m.lower()]
    split = 0 < len(losses) < len(metrics)
    if split:
        p.extra_y_ranges["loss"] = DataRange1d()
        p.add_layout(LinearAxis(y_range_name="loss", axis_label="loss"), "right")
    for i, m in enumerate(metrics):
        s = LiveSeries(f"eval/{m}", m).load(storage, session_id, worker_id, marks)
        page.sources[f"eval/{m}"] = s.source
        axis = {"y_range_name": "loss"} if split and m in losses else {}
        color = colour(i, len(metrics))
        d = p.line("x", "y", source=s.source, color=color, line_width=2, name=m, **axis)
        dots = p.scatter("x", "y", source=s.source, color=color, size=6, legend_label=m, **axis)
        if axis:
            p.extra_y_ranges["loss"].renderers = [*p.extra_y_ranges["loss"].renderers, d, dots]
        elif split:
            p.y_range.renderers = [*p.y_range.renderers, d, dots]
        drawn.append(d)
        series.append(s)
    # outside the frame: inside, it hid the first evaluations (top left) or the last
    p.legend.click_policy = "hide"
    p.add_layout(p.legend[0], "right")
    add_hover(p, drawn, marks)

    state = {"after": max((s.last_iteration or -1) for s in series)}

    def refresh() -> int:
        new = storage.get_evals(session_id, worker_id)
        new = [e for e in new if e.iteration > state["after"]]
        if not new:
            return 0
        state["after"] = new[-1].iteration
        n = 0
        for s, m in zip(series, metrics, strict=True):
            n += s.push(
                [e.iteration for e in new],
                [e.timestamp for e in new],
                [e.metrics.get(m) for e in new],
            )
        return n

    page.refreshers.append(refresh)
    return series, p


def multi_series_chart(
    storage,
    session_id,
    worker_id,
    names,
    labels,
    title,
    y_label,
    page,
    key,
    transform=log10_or_nonfinite,
    band=None,
    fetched=None,
    max_points=MULTI_MAX_POINTS,
):
    """A chart with one line per series name; series registered under ``key:<label>``.

    ``fetched``: series already read (name -> Series, downsampled to ``max_points``); the
    others are read in one pass.
    """
    fetched = dict(fetched or {})
    missing = [n for n in names if n not in fetched]
    fetched.update(fetch_many(storage, session_id, worker_id, missing, max_points))
    p = line_chart(title, y_label, name=key)
    if band is not None:
        p.add_layout(
            BoxAnnotation(
                bottom=band[0], top=band[1], fill_color="#2ca02c", fill_alpha=0.10, line_alpha=0
            )
        )
        p.add_layout(
            Span(
                location=RATIO_TARGET,
                dimension="width",
                line_color="#2ca02c",
                line_dash="dashed",
                line_width=1.5,
            )
        )
    series, drawn = [], []
    marks = new_marks(f"{key}:marks")
    page.sources[f"{key}:marks"] = marks
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        s = LiveSeries(name, label, transform=transform, max_points=max_points).load(
            storage, session_id, worker_id, marks, fetched[name]
        )
        page.sources[f"{key}:{label}"] = s.source
        drawn.append(draw_series(p, s, colour(i, len(names))))
        series.append(s)
    add_hover(p, drawn, marks)
    add_legend(p, drawn, labels)
    if not names:
        p.title.text += " — nothing recorded"
    return series, p


def build_overview(
    storage, session_id: str, worker_id: str | None = None, findings: bool = True
) -> Page:
    """The overview page of one session and worker.

    Parameters
    ----------
    storage : StatsStorage
        Any storage with the read API (in memory or SQLite).
    session_id : str
    worker_id : str, default=None
        None means the session's first worker.
    findings : bool, default=True
        Run the diagnostics now; False leaves the ``"findings"`` Div empty for the
        caller to fill (the server does it in a background thread).

    Returns
    -------
    Page
        ``sources`` holds ``"score"`` (columns ``x`` iteration, ``y`` value with NaN gaps,
        ``ys`` smoothed, ``t`` ms since the epoch), ``"ratio:<tensor>"`` (log10 ratio),
        ``"std_act:<layer>"``, ``"std_grad:<tensor>"``, ``"std_update:<tensor>"``, each
        with a ``...:marks`` source for NaN/inf, and ``"performance"`` (table).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage(); st.put(Update("run", "0", 1, 0.0, score=2.0))
    >>> build_overview(st, "run").sources["score"].data["y"].tolist()
    [2.0]
    """
    worker_id = pick_worker(storage, session_id, worker_id)
    page = Page(layout=None)
    if worker_id is None:
        page.layout = column(
            heading(f"Session {session_id}: nothing recorded yet"), sizing_mode="stretch_width"
        )
        return page
    info = storage.get_static_info(session_id, worker_id)
    latest = storage.get_latest_update(session_id, worker_id)
    kind = session_kind(info, latest)
    params = list(latest.params) if latest else []
    acts = list(latest.activations) if latest else []
    feed = UpdateFeed(storage, session_id, worker_id, latest.iteration if latest else None)

    shading = None
    if kind == "tsne":
        shading = PhaseShading(exaggeration_span(storage.get_updates(session_id, worker_id)))
    groups = {
        "ratio": [f"params/{n}/update_param_ratio" for n in params],
        "std_act": [f"activations/{n}/std" for n in acts],
        "std_grad": [f"params/{n}/grad_std" for n in params],
        "std_update": [f"params/{n}/update_std" for n in params],
    }
    fetched = fetch_many(
        storage,
        session_id,
        worker_id,
        [n for g in groups.values() for n in g],
        MULTI_MAX_POINTS,
    )
    score, score_box = score_view(storage, session_id, worker_id, page, kind=kind, shading=shading)
    _, evals = eval_view(storage, session_id, worker_id, page)
    extra_series, extra_charts = kind_charts(
        storage, session_id, worker_id, kind, page, shading=shading
    )
    ratio, ratio_chart = [], None
    if params:  # a network's panels only when it recorded them
        ratio, ratio_chart = multi_series_chart(
            storage,
            session_id,
            worker_id,
            groups["ratio"],
            params,
            "log10 update:parameter ratio (healthy band 1e-4..1e-2, target 1e-3)",
            "log10 ratio",
            page,
            "ratio",
            band=RATIO_BAND,
            fetched=fetched,
        )
    std_charts, std_series, std_labels = [], [], []
    for key, title, labels in (
        ("std_act", "activations", acts),
        ("std_grad", "gradients", params),
        ("std_update", "updates", params),
    ):
        if not labels:
            continue
        series, chart = multi_series_chart(
            storage,
            session_id,
            worker_id,
            groups[key],
            labels,
            f"log10 std of {title}",
            "log10 std",
            page,
            key,
            fetched=fetched,
        )
        chart.visible = not std_charts
        std_series += series
        std_charts.append(chart)
        std_labels.append(title)
    std_panel = []
    if std_charts:
        # a button group, not Tabs: a figure inside Tabs may be laid out at zero size
        # when the Bokeh server swaps the page in
        std_choice = RadioButtonGroup(labels=std_labels, active=0, name="std_choice")
        std_choice.js_on_change(
            "active",
            CustomJS(
                args={"charts": std_charts},
                code="charts.forEach((c, i) => { c.visible = i == cb_obj.active })",
            ),
        )
        std_panel = [std_choice, *std_charts]

    model_table = table(
        model_rows(info, kind), ["property", "value"], name="model_table", widths=[130, 310]
    )
    first = score.first or first_point(storage, session_id, worker_id)
    perf_table = table(
        performance_rows(storage, session_id, worker_id, info, first, kind),
        ["property", "value"],
        name="performance",
    )
    page.sources["performance"] = perf_table.source
    page.sources["model"] = model_table.source
    findings_div = (
        findings_view(storage, session_id, worker_id)
        if findings
        else Div(text="", sizing_mode="stretch_width", name="findings", styles=FINDINGS_STYLE)
    )
    live = [score, *extra_series, *ratio, *std_series]

    def refresh() -> int:
        nonlocal first
        updates = feed()
        if not updates:
            return 0
        if shading is not None:
            shading.update(updates)
        if first is None:
            first = first_point(storage, session_id, worker_id)
        n = sum(s.push_updates(updates) for s in live)
        rows = performance_rows(storage, session_id, worker_id, info, first, kind)
        perf_table.source.data = {"property": [r[0] for r in rows], "value": [r[1] for r in rows]}
        return n

    page.refreshers.insert(0, refresh)
    tables = column(
        heading("Model"),
        model_table,
        heading("Performance"),
        perf_table,
        width=440,
    )
    kind_panel = list(extra_charts)
    if shading is not None:
        kind_panel.append(
            note(
                "Shaded: the early exaggeration phase (attractive forces multiplied); the KL "
                "divergence usually drops when it ends. Red x: NaN or infinite values."
            )
        )
    # beside the tables, where a network's evaluation goes (no gap under a short chart)
    charts = column(
        score_box,
        *([evals] if evals is not None else []),
        *kind_panel,
        sizing_mode="stretch_width",
    )
    ratio_panel = []
    if ratio_chart is not None:
        ratio_panel = [
            ratio_chart,
            note(
                "Each line is one parameter tensor: mean |update| / mean |parameter| per "
                "reported iteration. Far above the band: the learning rate is too high; far "
                "below: too low or vanishing gradients. Red x: NaN or infinite values."
            ),
        ]
    page.layout = column(
        row(charts, tables, sizing_mode="stretch_width"),
        *ratio_panel,
        *std_panel,
        heading("Findings"),
        findings_div,
        sizing_mode="stretch_width",
    )
    return page
