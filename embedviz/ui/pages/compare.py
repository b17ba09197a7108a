"""The compare page (``/train/compare``): several runs' score and evaluation curves overlaid.

As TensorBoard does: tick the runs to show; the x axis is the iteration, the time since
each run's start, or the wall-clock time; the smoothing slider changes the bold line and
never hides the faint raw one; the score's y axis is linear or log (a toggle), and NaN
and inf scores are red x at the frame's edge as on the overview. A table lists each
run's configuration (optimizer, learning rate, batch size: the configured one, else
examples/s over minibatches/s as the listener measured them) beside its final and best
evaluation.
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    CheckboxGroup,
    CustomJS,
    DataRange1d,
    DatetimeTickFormatter,
    Div,
    LinearAxis,
    RadioButtonGroup,
    Slider,
)
from bokeh.models.formatters import BasicTickFormatter

from embedviz.ui.pages._common import Page
from embedviz.ui.pages.charts import (
    SHOW_SCALE,
    add_hover,
    colour,
    line_chart,
    marks_columns_empty,
    new_marks,
)
from embedviz.ui.pages.live import LiveSeries, UpdateFeed, pick_worker
from embedviz.ui.pages.smoothing import SMOOTHING
from embedviz.ui.pages.widgets import NO_VALUE, format_number, heading, note, table

MAX_RUNS = 12
HIGHER_IS_BETTER = ("acc", "f1", "precision", "recall", "auc", "top", "bleu", "map")


def _better_is_higher(metric: str) -> bool:
    m = metric.lower()
    return any(k in m for k in HIGHER_IS_BETTER)


def run_row(storage, session_id: str, worker_id: str | None) -> tuple:
    """(run, kind, optimizer, learning rate, batch size, final eval, best eval); "—"
    where a run has no such value (a t-SNE run has no optimizer, batch or evaluation)."""
    info = storage.get_static_info(session_id, worker_id) if worker_id else None
    optimizer = lr = batch = kind = ""
    if info is not None:
        kind = info.kind
        opt = info.optimizer or {}
        optimizer = str(opt.get("class", ""))
        groups = opt.get("param_groups") or []
        if groups and isinstance(groups[0], dict) and "lr" in groups[0]:
            lr = str(groups[0]["lr"])
        batch = str((info.config or {}).get("batch_size", ""))
        lr = lr if lr != "None" else ""
    if not batch and worker_id:
        batch = derived_batch_size(storage, session_id, worker_id)
    evals = storage.get_evals(session_id, worker_id) if worker_id else []
    final, best = [], []
    metrics = sorted({m for e in evals for m in e.metrics})
    for m in metrics:
        pts = [(e.iteration, e.metrics[m]) for e in evals if m in e.metrics]
        vals = np.array([v for _, v in pts], dtype=np.float64)
        finite = np.isfinite(vals)
        final.append(f"{m} {format_number(pts[-1][1])}")
        if finite.any():
            k = (
                np.nanargmax(np.where(finite, vals, np.nan))
                if _better_is_higher(m)
                else (np.nanargmin(np.where(finite, vals, np.nan)))
            )
            best.append(f"{m} {format_number(vals[k])} @ {pts[k][0]}")
    cells = (kind, optimizer, lr, batch, "; ".join(final), "; ".join(best))
    return (session_id, *(c if c else NO_VALUE for c in cells))


def derived_batch_size(storage, session_id: str, worker_id: str) -> str:
    """The batch size as the listener measured it: examples/s over minibatches/s of the
    newest update that has both (rounded); "" when no update has them.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage()
    >>> st.put(Update("a", "0", 1, 0.0, examples_per_sec=3199.0, minibatches_per_sec=100.0))
    >>> derived_batch_size(st, "a", "0")
    '32'
    """
    ex = storage.get_series(session_id, worker_id, "examples_per_sec", None)
    mb = storage.get_series(session_id, worker_id, "minibatches_per_sec", None)
    both, i, j = np.intersect1d(ex.iterations, mb.iterations, return_indices=True)
    ratio = ex.values[i] / np.where(mb.values[j] > 0, mb.values[j], np.nan)
    ok = np.isfinite(ratio)
    return str(int(round(float(ratio[ok][-1])))) if ok.any() else ""


_X_MODE = """
const f = ["x", "rel", "t"][cb_obj.active]
for (const r of renderers) { r.glyph.x = {field: f} }
for (const a of axes) {
  a.formatter = cb_obj.active == 2 ? dt : basic
  a.axis_label = ["iteration", "seconds since the run started", "wall time"][cb_obj.active]
}
"""

_TOGGLE = """
const on = new Set(cb_obj.active)
for (let i = 0; i < groups.length; i++) {
  for (const r of groups[i]) { r.visible = on.has(i) }
}
"""


def build_compare(runs: list[tuple[str, object]], selected: list[str] | None = None) -> Page:
    """Overlay the score and evaluation curves of several runs.

    Parameters
    ----------
    runs : list of (session_id, storage)
        The runs that can be ticked (the newest 12 are offered).
    selected : list of str, default=None
        The runs ticked at first; None ticks the newest three.

    Returns
    -------
    Page
        ``sources`` holds ``"score:<session>"`` (columns ``x``, ``rel`` seconds since the
        run's first update, ``t`` ms since the epoch, ``y``, ``ys`` smoothed) and
        ``"eval:<session>:<metric>"``, and ``"runs"`` (the configuration table).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage(); st.put(Update("a", "0", 1, 5.0, score=1.0))
    >>> build_compare([("a", st)]).sources["score:a"].data["rel"].tolist()
    [0.0]
    """
    runs = list(runs)[-MAX_RUNS:]
    page = Page(layout=None)
    if not runs:
        page.layout = Div(text="<i>No runs recorded yet.</i>")
        return page
    names = [sid for sid, _ in runs]
    if selected is None or not any(s in names for s in selected):
        selected = names[-3:]
    active = [i for i, n in enumerate(names) if n in selected]

    score_plot = line_chart("Score (faint: raw, bold: smoothed)", "score", name="compare_score")
    # the same lines on a log y axis (Bokeh cannot switch an axis's type): a run that
    # blows up no longer flattens the others onto a line at 0
    log_plot = line_chart(
        "Score, log scale (faint: raw, bold: smoothed)",
        "score",
        y_axis_type="log",
        name="compare_score_log",
    )
    log_plot.visible = False
    eval_plot = line_chart("Evaluation (not smoothed)", "value", name="compare_eval")
    groups, all_lines, series, feeds, rows = [], [], [], [], []
    eval_ranges = {"default": [], "loss": []}
    for i, (sid, storage) in enumerate(runs):
        worker = pick_worker(storage, sid, None)
        color = colour(i, len(runs))
        mine = []
        if worker is None:
            groups.append(mine)
            continue
        first = storage.get_series(sid, worker, "score", max_points=None)
        t0 = float(first.timestamps[0]) if len(first) else 0.0

        def rel(line, t0=t0):
            return {"rel": np.asarray(line["t"], dtype=np.float64) / 1000.0 - t0}

        marks = new_marks(f"score:{sid}:marks")
        marks.data = {**marks_columns_empty(), "t": np.zeros(0), "rel": np.zeros(0)}
        s = LiveSeries("score", sid, smooth=SMOOTHING, extra_columns=rel)
        s.load(storage, sid, worker, marks)
        page.sources[f"score:{sid}"] = s.source
        page.sources[f"score:{sid}:marks"] = marks
        for p in (score_plot, log_plot):
            raw = p.line("x", "y", source=s.source, color=color, alpha=0.3, line_width=1)
            bold = p.line(
                "x", "ys", source=s.source, color=color, line_width=2, legend_label=sid[:40]
            )
            # NaN/inf as red x at the frame's edge, as on the overview (the tooltip names the run)
            mine += [raw, bold, *add_hover(p, [], marks)]
        series.append(s)
        evals = storage.get_evals(sid, worker)
        metrics = sorted({m for e in evals for m in e.metrics})
        ev_series = []
        for k, m in enumerate(metrics):
            e = LiveSeries(f"eval/{m}", f"{sid} {m}", extra_columns=rel).load(storage, sid, worker)
            page.sources[f"eval:{sid}:{m}"] = e.source
            dash = ("solid", "dashed", "dotted", "dotdash")[k % 4]
            # losses on the right axis, scores (accuracy) on the left
            axis = "loss" if "loss" in m.lower() else "default"
            r = eval_plot.line(
                "x",
                "y",
                source=e.source,
                color=color,
                line_width=2,
                line_dash=dash,
                legend_label=f"{sid[:30]} {m}",
                y_range_name=axis,
            )
            dots = eval_plot.scatter(
                "x", "y", source=e.source, color=color, size=5, y_range_name=axis
            )
            eval_ranges[axis] += [r, dots]
            mine += [r, dots]
            ev_series.append((m, e))
        for r in mine:
            r.visible = i in active
        groups.append(mine)
        all_lines += mine
        rows.append(run_row(storage, sid, worker))
        feeds.append(
            (UpdateFeed(storage, sid, worker, s.last_iteration), s, storage, sid, worker, ev_series)
        )
    eval_plot.x_range = score_plot.x_range
    eval_plot.y_range.renderers = eval_ranges["default"]
    if eval_ranges["loss"]:
        eval_plot.extra_y_ranges["loss"] = DataRange1d(
            renderers=eval_ranges["loss"], only_visible=True
        )
        eval_plot.add_layout(LinearAxis(y_range_name="loss", axis_label="loss"), "right")
    log_plot.x_range = score_plot.x_range
    for p in (score_plot, log_plot, eval_plot):
        if p.legend:
            # outside the frame, right of the loss axis: inside it covered the accuracy line
            p.legend.click_policy = "hide"
            p.legend.label_text_font_size = "11px"
            p.add_layout(p.legend[0], "right")
    for p in (score_plot, log_plot, eval_plot):
        p.y_range.only_visible = True
    score_plot.x_range.only_visible = True

    ticks = CheckboxGroup(labels=names, active=active, name="runs_select")
    ticks.js_on_change("active", CustomJS(args={"groups": groups}, code=_TOGGLE))
    x_mode = RadioButtonGroup(
        labels=["iteration", "relative time", "wall time"], active=0, name="x_mode"
    )
    x_mode.js_on_change(
        "active",
        CustomJS(
            args={
                "renderers": all_lines,
                "axes": [score_plot.xaxis[0], log_plot.xaxis[0], eval_plot.xaxis[0]],
                "dt": DatetimeTickFormatter(),
                "basic": BasicTickFormatter(),
            },
            code=_X_MODE,
        ),
    )
    scale = RadioButtonGroup(labels=["linear y", "log y"], active=0, name="score_scale")
    scale.js_on_change(
        "active",
        CustomJS(
            args={"linear": score_plot, "log": log_plot},
            code=SHOW_SCALE,
        ),
    )
    smoothing = Slider(
        start=0.0,
        end=0.99,
        step=0.01,
        value=SMOOTHING,
        title="smoothing",
        width=260,
        name="smoothing",
    )

    def on_smoothing(attr, old, new) -> None:
        for s in series:
            s.resmooth(new)

    smoothing.on_change("value", on_smoothing)
    runs_table = table(
        rows,
        ["run", "kind", "optimizer", "lr", "batch size", "final eval", "best eval"],
        name="runs",
        # the evaluations get the room (they were cut off at the right edge)
        widths=[240, 70, 80, 60, 70, 260, 340],
    )
    page.sources["runs"] = runs_table.source

    def refresh() -> int:
        n = 0
        for feed, s, storage, sid, worker, ev_series in feeds:
            updates = feed()
            if updates:
                n += s.push_updates(updates)
            evals = storage.get_evals(sid, worker) if ev_series else []
            for m, e in ev_series:
                new = [
                    ev
                    for ev in evals
                    if e.last_iteration is None or ev.iteration > e.last_iteration
                ]
                n += e.push(
                    [ev.iteration for ev in new],
                    [ev.timestamp for ev in new],
                    [ev.metrics.get(m) for ev in new],
                )
        return n

    page.refreshers.append(refresh)
    controls = column(
        heading("Runs"),
        ticks,
        heading("x axis", 4),
        x_mode,
        heading("score axis", 4),
        scale,
        smoothing,
        note(
            "Smoothing: debiased exponential moving average; the raw line stays drawn. "
            "On short runs the weight is lowered so the average spans at most a tenth "
            "of the points."
        ),
        width=300,
    )
    page.layout = column(
        row(
            controls,
            column(score_plot, log_plot, eval_plot, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        ),
        heading("Configuration and results"),
        runs_table,
        sizing_mode="stretch_width",
    )
    return page
