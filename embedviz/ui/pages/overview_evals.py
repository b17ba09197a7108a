"""The overview's evaluation chart: a worker's evaluation metrics, never smoothed.

Losses and scores (accuracy) differ in scale: when a chart holds both, the losses are
drawn against an axis of their own on the right. A metric first recorded after the page
was built (a worker that starts logging ``val_loss`` later) joins the chart live, as a
run joins the compare page: its line and dots, a legend entry and, for a loss beside
scores, the right axis. The loss range and axis are made with the chart (hidden while
unused): BokehJS 3.9 breaks on a y range added to a figure it shows. The legend sits
right of the frame, sized to its entries (:func:`~embedviz.ui.pages.compare_live.legend_right`),
and an entry hides its metric's line and dots.
"""

from __future__ import annotations

from bokeh.models import HoverTool, Legend

from embedviz.ui.pages._common import Page
from embedviz.ui.pages.charts import add_hover, colour, line_chart, new_marks
from embedviz.ui.pages.compare_live import LossAxis, is_loss, legend_right
from embedviz.ui.pages.live import LiveSeries


class EvalChart:
    """The evaluation chart of one worker (:func:`eval_view` makes it).

    ``series`` holds a :class:`~embedviz.ui.pages.live.LiveSeries` per metric drawn, in
    the order drawn; :meth:`refresh` streams new evaluations and draws new metrics.
    """

    def __init__(self, storage, session_id: str, worker_id: str, page: Page, metrics) -> None:
        self.storage, self.session_id, self.worker_id = storage, session_id, worker_id
        self.page = page
        self.plot = p = line_chart(
            "Evaluation (held-out set, not smoothed)", "value", name="eval_chart"
        )
        self.marks = new_marks("eval:marks")
        page.sources["eval:marks"] = self.marks
        # losses go right when the chart holds scores too (decided by the metrics read
        # now: a chart of losses only keeps them, and later metrics, on the left axis)
        self.losses_right = not all(is_loss(m) for m in metrics)
        self.losses = LossAxis(p)
        self.series: list[LiveSeries] = []
        self.drawn: list = []  # each metric's line (the hover tool's renderers)
        # made before any line (as on the compare page): legend_label finds it
        p.add_layout(Legend(items=[]), "right")
        legend_right(p)  # outside the frame: inside, it hid the first or last points
        add_hover(p, [], self.marks)  # the NaN/inf marks and their tooltips
        self.line_hover = HoverTool(
            line_policy="nearest",
            tooltips=[("", "$name"), ("iteration", "@x"), ("value", "@y{0.0000g}")],
        )
        p.add_tools(self.line_hover)
        for m in metrics:
            self._draw(m)
        last = [s.last_iteration for s in self.series if s.last_iteration is not None]
        self.after = max(last, default=-1)

    def _draw(self, metric: str) -> LiveSeries:
        """Read ``metric`` whole and draw it (line, dots, legend entry)."""
        s = LiveSeries(f"eval/{metric}", metric)
        s.load(self.storage, self.session_id, self.worker_id, self.marks)
        self.page.sources[f"eval/{metric}"] = s.source
        axis = "loss" if self.losses_right and is_loss(metric) else "default"
        style = {"source": s.source, "color": colour(len(self.series), 10)}
        if axis == "loss":
            style["y_range_name"] = "loss"
        line = self.plot.line("x", "y", line_width=2, name=metric, legend_label=metric, **style)
        dots = self.plot.scatter("x", "y", size=6, legend_label=metric, **style)
        self.losses.add(axis, [line, dots])  # the loss axis shows once a loss is on it
        self.series.append(s)
        self.drawn.append(line)
        self.line_hover.renderers = list(self.drawn)
        return s

    @property
    def metrics(self) -> list[str]:
        return [s.label for s in self.series]

    def refresh(self) -> int:
        """Stream the evaluations recorded since the last call; a metric seen for the
        first time is drawn (read whole). Returns how many points were added."""
        new = [
            e
            for e in self.storage.get_evals(self.session_id, self.worker_id)
            if e.iteration > self.after
        ]
        if not new:
            return 0
        self.after = new[-1].iteration
        n = 0
        known = set(self.metrics)
        for m in sorted({m for e in new for m in e.metrics} - known):
            n += len(self._draw(m).source.data["x"])
        for s in self.series:
            if s.label in known:
                n += s.push(
                    [e.iteration for e in new],
                    [e.timestamp for e in new],
                    [e.metrics.get(s.label) for e in new],
                )
        return n


def eval_view(storage, session_id: str, worker_id: str, page: Page):
    """``(series, chart)`` of a worker's evaluation metrics; ``([], None)`` when none
    were recorded. The chart's live refresh is registered in ``page``.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import EvalRecord
    >>> st = InMemoryStatsStorage()
    >>> st.put(EvalRecord("run", "0", 10, 1.0, {"accuracy": 0.5}))
    >>> page = Page(layout=None)
    >>> series, chart = eval_view(st, "run", "0", page)
    >>> st.put(EvalRecord("run", "0", 20, 2.0, {"accuracy": 0.6, "val_loss": 0.9}))
    >>> page.refresh(), page.sources["eval/val_loss"].data["y"].tolist()
    (2, [0.9])
    """
    evals = storage.get_evals(session_id, worker_id)
    metrics = sorted({m for e in evals for m in e.metrics})
    if not metrics:
        return [], None
    chart = EvalChart(storage, session_id, worker_id, page, metrics)
    page.refreshers.append(chart.refresh)
    return chart.series, chart.plot
