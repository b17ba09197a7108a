"""The compare page's live part: each offered run (:class:`CompareRun`), the evaluation
chart that draws a run's metrics when they arrive (:class:`EvalChart`), and the notes
beside the charts (:class:`CompareNotes`).

The notes state facts about the data: which ticked runs have evaluations (else the
evaluation chart is hidden and a note says why), which runs have scores of 0 or below
(log y leaves them out), which kinds of runs the page offers (why the others are not
ticked at first), and which sessions were recorded since the page was opened that it
has no room for (new sessions join the page live: :mod:`~.compare_runs`). The
page's periodic refresh keeps those facts per run as records stream in; the notes are
worked out again only when one of them changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bokeh.models import DataRange1d, Legend, LinearAxis

from embedviz.ui.pages.live import LiveSeries, UpdateFeed
from embedviz.ui.pages.widgets import note, note_html

#: the x columns of the three x axes (iteration, relative time, wall time)
X_FIELDS = ("x", "rel", "t")
DASHES = ("solid", "dashed", "dotted", "dotdash")
#: refresh ticks between reads of the evaluations of a run (or overview worker) that
#: sent no new update (one sending updates is read on the tick that brings them)
EVAL_POLL = 4
NO_EVALS = "Evaluation: none of the ticked runs has evaluation records."


@dataclass(eq=False)
class CompareRun:
    """One run offered on the compare page: where it is read, how it is drawn and the
    facts its notes state (kept up to date by the page's refresh)."""

    index: int
    sid: str
    storage: object
    worker: str | None
    color: str
    legend: str  # its name in the score legend and the notes
    eval_legend: str  # its name in the evaluation legend
    kind: str
    rel: Callable[[dict], dict] | None = None
    score: LiveSeries | None = None
    feed: UpdateFeed | None = None
    evals: dict[str, LiveSeries] = field(default_factory=dict)  # metric -> series
    n_evals: int = 0  # evaluation records read so far
    not_positive: bool = False  # a score of 0 or below (log y cannot draw it)
    renderers: list = field(default_factory=list)  # what its checkbox shows and hides
    row: int | None = None  # its row in the configuration table

    @property
    def has_evals(self) -> bool:
        return bool(self.evals)

    def note_scores(self, values) -> bool:
        """Take note of newly drawn scores; True when the run now has one of 0 or below."""
        if self.not_positive:
            return False
        self.not_positive = any(
            v is not None and math.isfinite(v) and v <= 0 for v in map(_float, values)
        )
        return self.not_positive


def _float(v) -> float | None:
    return None if v is None else float(v)


def is_loss(metric: str) -> bool:
    """Whether an evaluation metric is drawn as a loss (its name says so)."""
    return "loss" in metric.lower()


class LossAxis:
    """An evaluation chart's right y axis for losses beside its default one (losses and
    scores such as accuracy differ in scale). The range and axis are made with the
    chart, the axis hidden while unused: BokehJS 3.9 breaks on a y range added to a
    figure it shows ("missing 'loss' range"). Each range follows its own renderers
    (:meth:`add`); put the axis on the right before the legend, next to the frame."""

    def __init__(self, plot, only_visible: bool = False) -> None:
        self.plot = plot
        loss = DataRange1d(only_visible=only_visible)
        plot.extra_y_ranges = {**plot.extra_y_ranges, "loss": loss}
        self.axis = LinearAxis(y_range_name="loss", axis_label="loss", visible=False)
        plot.right = [self.axis, *plot.right]  # next to the frame, left of a legend
        self.ranges: dict[str, list] = {"default": [], "loss": []}

    def add(self, axis: str, renderers: list) -> None:
        """Renderers drawn against ``axis`` ("default" or "loss"); the ranges follow."""
        self.ranges[axis] += renderers
        self.plot.y_range.renderers = list(self.ranges["default"])
        self.plot.extra_y_ranges["loss"].renderers = list(self.ranges["loss"])
        self.axis.visible = bool(self.ranges["loss"])


class EvalChart:
    """The compare page's evaluation chart: losses on a right axis, the rest on the left.

    :meth:`add` draws metrics of a run, at build or live (the first evaluations of a
    run, or a metric it had not recorded); the loss axis shows once a loss is drawn.
    """

    def __init__(self, plot, page) -> None:
        self.plot, self.page = plot, page
        # made now, though empty: a Legend added to a document shown in a browser is
        # broken there (BokehJS 3.9: "Legend.name is unset"); lines added live join it
        plot.add_layout(Legend(items=[]), "right")
        legend_right(plot)
        self.losses = LossAxis(plot, only_visible=True)  # so is a y range added later
        self.x_mode = None  # the x axis choice, set once made (new lines follow it)

    def add(self, run: CompareRun, metrics: list[str]) -> list:
        """Draw ``metrics`` of ``run`` (read now) and return the new renderers."""
        if not metrics:
            return []
        x = X_FIELDS[self.x_mode.active] if self.x_mode is not None else "x"
        new = []
        for m in metrics:
            e = LiveSeries(f"eval/{m}", f"{run.sid} {m}", extra_columns=run.rel)
            e.load(run.storage, run.sid, run.worker)
            self.page.sources[f"eval:{run.sid}:{m}"] = e.source
            dash = DASHES[len(run.evals) % len(DASHES)]
            axis = "loss" if is_loss(m) else "default"
            style = {"source": e.source, "color": run.color, "y_range_name": axis}
            r = self.plot.line(
                x, "y", line_width=2, line_dash=dash, legend_label=f"{run.eval_legend} {m}", **style
            )
            dots = self.plot.scatter(x, "y", size=5, **style)
            self.losses.add(axis, [r, dots])
            new += [r, dots]
            run.evals[m] = e
        run.renderers += new
        return new


# BokehJS 3.9 lays a legend out as an HTML element: when its items change (a run added
# live) it first measures as wide as the whole chart, the frame is laid out left of the
# canvas for a paint, and what that paint drew into the canvas's first pixel column stays
# (its clear is offset by half a pixel): stray marks left of the axis. Sized to its items.
LEGEND_CSS = ":host { width: max-content; }"


def legend_right(p) -> None:
    """``p``'s legend (if any) outside the frame, right of the axes: inside it covered
    the lines; a click hides a line; as wide as its items (:data:`LEGEND_CSS`)."""
    if not p.legend:
        return
    legend = p.legend[0]
    legend.click_policy = "hide"
    legend.label_text_font_size = "11px"
    if LEGEND_CSS not in legend.stylesheets:
        legend.stylesheets = [*legend.stylesheets, LEGEND_CSS]
    if legend not in p.right:
        p.add_layout(legend, "right")


def _named(name: str, model):
    model.name = name
    return model


class CompareNotes:
    """The notes of the compare page, following the runs' facts and the ticked runs.

    ``ticks`` is the run checkboxes (their ``active`` follows the browser), ``toggle``
    their browser callback (told which runs have evaluations), ``first`` the run whose
    kind was ticked at first (None when the user chose the runs: no note on why).
    """

    def __init__(self, eval_plot, ticks, toggle, first: int | None) -> None:
        self.eval_plot, self.ticks, self.toggle, self.first = eval_plot, ticks, toggle, first
        self.no_evals = _named("no_evals", note(NO_EVALS))
        self.log_note = _named("log_note", note(""))
        self.why = _named("ticked_why", note(""))
        self.new_runs = _named("new_runs", note(""))
        # sessions recorded since the page was built that it has no room for
        self.unseen: list[str] = []
        self.max_runs = 12  # the most runs the page offers (set by the page)
        self._key = None
        self.updates = 0  # how often the notes were worked out (a test counts them)

    def update(self, runs: list[CompareRun]) -> bool:
        """Work the notes out again if a fact they state changed; True if they were."""
        active = [i for i in self.ticks.active if 0 <= i < len(runs)]
        has = [r.has_evals for r in runs]
        key = (
            tuple(has),
            tuple(r.not_positive for r in runs),
            tuple(r.kind for r in runs),
            tuple(active),
            tuple(self.unseen),
        )
        if key == self._key:
            return False
        self._key = key
        self.updates += 1
        self.eval_plot.visible = any(has[i] for i in active)
        self.no_evals.visible = not self.eval_plot.visible
        if list(self.toggle.args.get("has_evals", [])) != has:
            self.toggle.args = {**self.toggle.args, "has_evals": has}
        bad = [r.legend for r in runs if r.not_positive]
        self.log_note.visible = bool(bad)
        self.log_note.text = note_html(
            f"log y leaves out scores of 0 or below, which {', '.join(bad)} "
            f"{'has' if len(bad) == 1 else 'have'}"
            if bad
            else ""
        )
        kinds = sorted({r.kind for r in runs})
        first = runs[self.first].kind if self.first is not None else None
        self.why.visible = len(kinds) > 1 and first is not None
        self.why.text = note_html(
            f"Ticked at first: the newest {first} runs. Runs of other kinds "
            f"({', '.join(k for k in kinds if k != first)}) score on other scales: tick "
            "them and choose log y."
            if self.why.visible
            else ""
        )
        self.new_runs.visible = bool(self.unseen)
        shown = ", ".join(self.unseen[:5]) + (" …" if len(self.unseen) > 5 else "")
        self.new_runs.text = note_html(
            f"Recorded since this page was opened, past the {self.max_runs} runs it "
            f"compares: {shown}. Reload the page to compare the newest {self.max_runs}."
            if self.unseen
            else ""
        )
        return True
