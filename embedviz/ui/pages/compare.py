"""The compare page (``/train/compare``): several runs' score and evaluation curves overlaid.

As TensorBoard does: tick the runs to show; the x axis is the iteration, the time since
each run's start, or the wall-clock time; the smoothing slider changes the bold line and
never hides the faint raw one; the score's y axis is linear or log (a toggle), and NaN
and inf scores are red x at the frame's edge as on the overview. At first the newest
runs of the newest run's kind (torch, word2vec, tsne) are ticked: runs of one kind share
the meaning and scale of their score, while a word2vec loss (~1e5) drawn beside an MLP's
loss (~1) flattens it to a line at 0. Every run stays offered and a ticked run is always
drawn (a note names the runs whose scores of 0 or below log y leaves out). Long run
names are shortened in the middle in the legends and the checkboxes, keeping the
``(file.db)`` that tells two files' runs apart; the table below keeps the full names.
The evaluation chart shows while a ticked run has evaluations (a note says so
otherwise). A table lists each run's configuration (optimizer, learning rate, batch
size: the configured one, else examples/s over minibatches/s as the listener measured
them) beside its final and best evaluation. While the page is open, the notes, the
evaluation chart and the table's results follow the records as they arrive (a run's
first evaluations are drawn then; :mod:`~embedviz.ui.pages.compare_live`), and sessions
recorded since the page was opened join it, up to :data:`MAX_RUNS` runs
(:mod:`~embedviz.ui.pages.compare_runs`).
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    CheckboxGroup,
    CustomJS,
    DatetimeTickFormatter,
    Div,
    Legend,
    RadioButtonGroup,
    Slider,
)
from bokeh.models.formatters import BasicTickFormatter

from embedviz.ui.pages._common import Page
from embedviz.ui.pages.charts import (
    SHOW_SCALE,
    colour,
    line_chart,
)
from embedviz.ui.pages.compare_live import (
    EVAL_POLL,
    CompareNotes,
    CompareRun,
    EvalChart,
    legend_right,
)
from embedviz.ui.pages.compare_runs import (
    CHECKBOX_CHARS,
    EVAL_LEGEND_CHARS,
    LEGEND_CHARS,
    NewRuns,
    draw_score,
    read_score,
    short_labels,
    unique_label,
    x_field,
)
from embedviz.ui.pages.live import pick_worker
from embedviz.ui.pages.smoothing import SMOOTHING
from embedviz.ui.pages.widgets import (
    NO_VALUE,
    format_number,
    heading,
    note,
    set_table_rows,
    table,
)

MAX_RUNS = 12
#: runs ticked at first (the newest of the newest run's kind)
DEFAULT_TICKED = 3
HIGHER_IS_BETTER = ("acc", "f1", "precision", "recall", "auc", "top", "bleu", "map")


def _better_is_higher(metric: str) -> bool:
    m = metric.lower()
    return any(k in m for k in HIGHER_IS_BETTER)


def default_ticked(kinds: list[str], starts: list[float], n: int = DEFAULT_TICKED) -> list[int]:
    """The runs ticked at first: the ``n`` newest (by start time, then by position) of
    the newest run's kind, in their order.

    Examples
    --------
    >>> default_ticked(["torch", "tsne", "word2vec", "torch"], [1.0, 2.0, 3.0, 0.5])
    [2]
    """
    if not kinds:
        return []
    order = sorted(range(len(kinds)), key=lambda i: (starts[i], i))
    newest_kind = kinds[order[-1]]
    return sorted([i for i in order if kinds[i] == newest_kind][-n:])


def _kind_and_start(storage, session_id: str, worker_id: str | None) -> tuple[str, float]:
    """A run's kind (``"other"`` without static info) and start time (its static
    info's, else its first update's, else -inf)."""
    info = storage.get_static_info(session_id, worker_id) if worker_id else None
    if info is not None:
        return info.kind or "other", float(info.timestamp)
    first = storage.get_series(session_id, worker_id, "score", max_points=None) if worker_id else []
    return "other", float(first.timestamps[0]) if len(first) else -np.inf


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
// the evaluation chart only while a ticked run has evaluations (else it is empty)
ev.visible = cb_obj.active.some((i) => has_evals[i])
ev_none.visible = !ev.visible
"""


def build_compare(
    runs: list[tuple[str, object]],
    selected: list[str] | None = None,
) -> Page:
    """Overlay the score and evaluation curves of several runs.

    Parameters
    ----------
    runs : list of (session_id, storage)
        The runs that can be ticked (the newest 12 are offered).
    selected : list of str, default=None
        The runs ticked at first; None (or none of them offered) ticks the newest three
        of the newest run's kind (see :func:`default_ticked`).

    Returns
    -------
    Page
        ``sources`` holds ``"score:<session>"`` (columns ``x``, ``rel`` seconds since the
        run's first update, ``t`` ms since the epoch, ``y``, ``ys`` smoothed) and
        ``"eval:<session>:<metric>"``, and ``"runs"`` (the configuration table).
        ``refresh()`` streams new points, draws a run's evaluations when its first
        arrive, draws the runs recorded since the page was built, and keeps the notes
        and the table's results up to date; ``on_sessions([(name, storage), ...])``
        starts reading the sessions the page does not have (past :data:`MAX_RUNS`
        runs a note names them).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage(); st.put(Update("a", "0", 1, 5.0, score=1.0))
    >>> build_compare([("a", st)]).sources["score:a"].data["rel"].tolist()
    [0.0]
    """
    runs = list(runs)
    older = {sid for sid, _ in runs[:-MAX_RUNS]}  # listed at build, not offered: not new
    runs = runs[-MAX_RUNS:]
    page = Page(layout=None)
    if not runs:
        page.layout = Div(text="<i>No runs recorded yet.</i>")
        return page
    names = [sid for sid, _ in runs]
    workers = [pick_worker(storage, sid, None) for sid, storage in runs]
    kinds, starts = zip(
        *(_kind_and_start(st, sid, w) for (sid, st), w in zip(runs, workers, strict=True)),
        strict=True,
    )
    by_default = selected is None or not any(s in names for s in selected)
    if by_default:
        active = default_ticked(list(kinds), list(starts))
    else:
        active = [i for i, n in enumerate(names) if n in selected]
    legend_names = short_labels(names, LEGEND_CHARS)
    eval_names = short_labels(names, EVAL_LEGEND_CHARS)

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
    evals_chart = EvalChart(eval_plot, page)
    shown: list[CompareRun] = []  # every offered run, in order
    lines = {score_plot: [], log_plot: []}  # the score lines (the marks have their own range)
    rows = []
    for i, (sid, storage) in enumerate(runs):
        run = CompareRun(
            i, sid, storage, workers[i], colour(i, len(runs)), legend_names[i], eval_names[i],
            kinds[i],
        )  # fmt: skip
        shown.append(run)
        if run.worker is None:
            continue
        read_score(run, SMOOTHING)
        page.sources[f"score:{sid}"] = run.score.source
        page.sources[f"score:{sid}:marks"] = run.score.marks
        draw_score(run, (score_plot, log_plot), lines)
        evals = storage.get_evals(sid, run.worker)
        run.n_evals = len(evals)
        evals_chart.add(run, sorted({m for e in evals for m in e.metrics}))
        run.row = len(rows)
        rows.append(run_row(storage, sid, run.worker))
    for run in shown:
        for r in run.renderers:
            r.visible = run.index in active
    eval_plot.x_range = score_plot.x_range
    log_plot.x_range = score_plot.x_range
    for p, drawn in lines.items():
        p.y_range.renderers = drawn
    for p in (score_plot, log_plot):
        if not p.legend:  # made now: runs recorded later join it (see compare_runs)
            p.add_layout(
                Legend(items=[], click_policy="hide", label_text_font_size="11px"), "right"
            )
        legend_right(p)
    for p in (score_plot, log_plot, eval_plot):
        p.y_range.only_visible = True
    score_plot.x_range.only_visible = True

    ticks = CheckboxGroup(
        labels=short_labels(names, CHECKBOX_CHARS), active=active, name="runs_select"
    )
    toggle = CustomJS(
        args={"groups": [r.renderers for r in shown], "has_evals": [], "ev": eval_plot},
        code=_TOGGLE,
    )
    notes = CompareNotes(eval_plot, ticks, toggle, active[-1] if by_default and active else None)
    notes.max_runs = MAX_RUNS
    toggle.args = {**toggle.args, "ev_none": notes.no_evals}
    notes.update(shown)
    ticks.js_on_change("active", toggle)
    x_mode = RadioButtonGroup(
        labels=["iteration", "relative time", "wall time"], active=0, name="x_mode"
    )
    axes = [score_plot.xaxis[0], log_plot.xaxis[0], eval_plot.xaxis[0]]
    x_switch = CustomJS(
        args={
            "renderers": [r for run in shown for r in run.renderers],
            "axes": axes,
            "dt": DatetimeTickFormatter(),
            "basic": BasicTickFormatter(),
        },
        code=_X_MODE,
    )
    x_mode.js_on_change("active", x_switch)
    evals_chart.x_mode = x_mode
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
    series = [run.score for run in shown if run.score is not None]

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
    ticked = [0]

    def make(index, sid, storage, worker, color) -> CompareRun:
        kind = _kind_and_start(storage, sid, worker)[0]
        return CompareRun(index, sid, storage, worker, color, sid, sid, kind)

    def read_rest(run: CompareRun) -> tuple:
        evals = run.storage.get_evals(run.sid, run.worker)
        metrics = sorted({m for e in evals for m in e.metrics})
        return run_row(run.storage, run.sid, run.worker), metrics, len(evals)

    new_runs = NewRuns(
        page, names, MAX_RUNS - len(names), make, read_rest, lambda: smoothing.value, older
    )
    colours = {run.color for run in shown}

    def add(run: CompareRun, rest: tuple) -> int:
        """Draw a run recorded since the page was built (read by ``new_runs``)."""
        row, metrics, n_evals = rest
        run.legend = unique_label(run.sid, [r.legend for r in shown], LEGEND_CHARS)
        run.eval_legend = unique_label(run.sid, [r.eval_legend for r in shown], EVAL_LEGEND_CHARS)
        ticked_kinds = {shown[i].kind for i in ticks.active if i < len(shown)}
        tick = len(ticks.active) < DEFAULT_TICKED and ticked_kinds == {run.kind}
        shown.append(run)
        page.sources[f"score:{run.sid}"] = run.score.source
        page.sources[f"score:{run.sid}:marks"] = run.score.marks
        draw_score(run, (score_plot, log_plot), lines, x_field(x_mode))
        for p, drawn in lines.items():
            p.y_range.renderers = list(drawn)
        series.append(run.score)
        run.n_evals = n_evals
        evals_chart.add(run, metrics)
        for r in run.renderers:
            r.visible = tick
        run.row = len(rows)
        rows.append(row)
        set_table_rows(runs_table, rows)
        runs_table.height = min(30 + 25 * len(rows), 420)  # as table() sizes it
        label = unique_label(run.sid, list(ticks.labels), CHECKBOX_CHARS)
        ticks.labels = [*ticks.labels, label]
        # the browser's callbacks reach its lines before its checkbox is ticked
        toggle.args = {**toggle.args, "groups": [r.renderers for r in shown]}
        x_switch.args = {**x_switch.args, "renderers": [r for s in shown for r in s.renderers]}
        if tick:
            ticks.active = [*ticks.active, run.index]
        return len(run.score.source.data["x"]) + 1

    def refresh() -> int:
        ticked[0] += 1
        poll = ticked[0] % EVAL_POLL == 0
        n = sum(add(run, rest) for run, rest in new_runs.take())
        drawn, changed = [], False
        for run in shown:
            if run.feed is None:
                continue
            updates = run.feed()
            if updates:
                n += run.score.push_updates(updates)
                run.note_scores(u.score for u in updates)
            if poll and run.kind == "other":  # its static info may have come since
                run.kind = _kind_and_start(run.storage, run.sid, run.worker)[0]
            if not (updates or poll or run.evals):
                continue
            evals = run.storage.get_evals(run.sid, run.worker)
            if len(evals) == run.n_evals:
                continue
            run.n_evals = len(evals)
            metrics = sorted({m for e in evals for m in e.metrics})
            new = [m for m in metrics if m not in run.evals]
            for m, e in run.evals.items():  # push() keeps those after its newest point
                n += e.push(
                    [ev.iteration for ev in evals],
                    [ev.timestamp for ev in evals],
                    [ev.metrics.get(m) for ev in evals],
                )
            if new:  # drawn now (read whole), shown while the run is ticked
                added = evals_chart.add(run, new)
                for r in added:
                    r.visible = run.index in ticks.active
                drawn += added
                n += sum(len(run.evals[m].source.data["x"]) for m in new)
            rows[run.row] = run_row(run.storage, run.sid, run.worker)
            changed = True
        if drawn:  # the browser's callbacks reach the new lines too
            toggle.args = {**toggle.args, "groups": [r.renderers for r in shown]}
            x_switch.args = {**x_switch.args, "renderers": [r for s in shown for r in s.renderers]}
        if changed:
            set_table_rows(runs_table, rows)
        notes.update(shown)
        return n

    def on_sessions(listed: list[tuple[str, object]]) -> None:
        unseen = new_runs.offer(listed, colours)
        if unseen != notes.unseen:
            notes.unseen = unseen
            notes.update(shown)

    page.refreshers.append(refresh)
    page.on_sessions = on_sessions
    controls = column(
        heading("Runs"),
        ticks,
        notes.why,
        notes.new_runs,
        heading("x axis", 4),
        x_mode,
        heading("score axis", 4),
        scale,
        notes.log_note,
        smoothing,
        note(
            "Smoothing: debiased exponential moving average; the raw line stays drawn. "
            "On short runs the weight is lowered so the average spans at most a tenth "
            "of the points."
        ),
        width=330,
    )
    page.layout = column(
        row(
            controls,
            column(score_plot, log_plot, eval_plot, notes.no_evals, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        ),
        heading("Configuration and results"),
        runs_table,
        sizing_mode="stretch_width",
    )
    return page
