"""The overview page (``/train/overview``): how is this run doing, at one glance.

Score against iteration (raw faint, smoothed bold, linear or log y), the evaluation
metrics when recorded (a worker without them has a taller score chart and no empty band
beside the tables; its first evaluations draw the chart live), the model and
performance tables, the log10 update:parameter ratio of every parameter tensor with the
healthy band around 1e-3 shaded, the log10 standard deviation of activations,
gradients and updates (tabs), and the findings of :mod:`embedviz.stats.diagnostics`
with their severity, evidence and advice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from bokeh.layouts import column, row
from bokeh.models import CustomJS, Div, RadioButtonGroup

from embedviz.ui.findings import FINDINGS_STYLE, findings_view
from embedviz.ui.pages._common import Page
from embedviz.ui.pages.charts import (
    CHART_HEIGHT,
    MULTI_MAX_POINTS,
    add_hover,
    draw_series,
    line_chart,
)
from embedviz.ui.pages.compare_live import EVAL_POLL
from embedviz.ui.pages.info_tables import first_point, model_rows, performance_rows
from embedviz.ui.pages.kinds import (
    PhaseShading,
    exaggeration_span,
    kind_charts,
    score_titles,
    session_kind,
    step_name,
)
from embedviz.ui.pages.live import LiveSeries, SeriesFeed, fetch_many, pick_worker
from embedviz.ui.pages.multiline import MultiSeries, multi_chart, multi_series_chart
from embedviz.ui.pages.overview_evals import eval_view
from embedviz.ui.pages.smoothing import SMOOTHING
from embedviz.ui.pages.widgets import heading, layer_label, layer_types, note, set_table_rows, table

log = logging.getLogger(__name__)

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
    lazy: bool = False,
    height: int = CHART_HEIGHT,
):
    """Score chart with a linear/log toggle; the series is registered in ``page``.

    ``kind`` names the score (KL divergence for t-SNE, loss per epoch for word2vec);
    ``shading`` marks the early exaggeration phase of a t-SNE run on both charts.
    ``lazy`` (the Bokeh server): the series is left empty for the caller to
    :meth:`~LiveSeries.load`, and the log-scale chart, hidden at first, is built when
    the toggle first asks for it (a Python callback), so the page is lighter to send
    and lay out; otherwise both charts are in the page and the toggle works alone.
    ``height``: the charts' (a chart made later takes the linear one's height then).
    """
    s = LiveSeries("score", "score", smooth=SMOOTHING)
    if lazy:
        s.empty()  # read with the page's deferred pass (build_overview)
    else:
        s.load(storage, session_id, worker_id)
    page.sources[key] = s.source
    page.sources[f"{key}:marks"] = s.marks
    title, y_label = score_titles(kind)
    x_label = step_name(kind)
    names = [f"{key}_linear", f"{key}_log"]

    def chart(log_y: bool, height: int):
        p = line_chart(
            f"{title}, log scale" if log_y else f"{title} — raw and smoothed",
            y_label,
            height=height,
            x_label=x_label,
            y_axis_type="log" if log_y else "linear",
            name=names[log_y],
        )
        if shading is not None:
            shading.add_to(p)
        add_hover(p, [draw_series(p, s, "#1f77b4", smoothed_too=True)], s.marks)
        return p

    linear = chart(False, height)
    toggle = RadioButtonGroup(labels=["linear y", "log y"], active=0, name=f"{key}_scale")
    box = column(toggle, linear, sizing_mode="stretch_width")
    toggle.js_on_change(
        "active",
        CustomJS(
            args={"box": box, "names": names},
            code="for (const c of box.children) {"
            " const i = names.indexOf(c.name); if (i >= 0) c.visible = i == cb_obj.active }",
        ),
    )

    def add_log() -> None:
        log = chart(True, linear.height)
        log.x_range = linear.x_range
        log.visible = toggle.active == 1
        box.children = [*box.children, log]

    if lazy:

        def on_choice(attr, old, new) -> None:
            if new == 1 and len(box.children) == 2:
                add_log()

        toggle.on_change("active", on_choice)
    else:
        add_log()
    return s, box


def late_points(storage, session_id: str, worker_id: str, names, after: int | None) -> dict:
    """The points of ``names`` after iteration ``after`` (none when ``after`` is None:
    nothing was recorded when the page was built, so its read has everything)."""
    if after is None:
        return {}
    return fetch_many(storage, session_id, worker_id, names, None, after_iteration=after)


def multi_reader(group: list, live: list, feed: SeriesFeed):
    """``(read, fill)`` for charts left empty at build: ``read()`` (any thread) reads
    their series in one pass; ``fill(fetched)`` (the document's thread) loads them,
    streams what arrived after the live feed's newest iteration when ``multi_reader``
    was called and makes them live.
    """
    after = feed.after
    storage, session_id, worker_id = feed.storage, feed.session_id, feed.worker_id
    names = [n for ms in group for n in ms.names]

    def read():
        return fetch_many(storage, session_id, worker_id, names, group[0].max_points)

    def fill(fetched) -> None:
        late = late_points(storage, session_id, worker_id, names, after)
        for ms in group:
            ms.load(storage, session_id, worker_id, fetched)
            ms.push_series(late)
            live.append(ms)

    return read, fill


def _load_on_choice(page: Page, pending: dict, live: list, feed: SeriesFeed, box, choice):
    """A callback for the std choice that builds a tab's chart when it is first chosen
    (into ``box``) and reads its series through ``page.background`` (the server's page
    builders), filled in by ``page.call_soon`` (the document's next tick)."""

    def on_choice(attr, old, new) -> None:
        got = pending.pop(new, None)
        if got is None:
            return
        ms, make = got
        if make is not None:
            chart = make()
            chart.visible = choice.active == new
            box.children = [*box.children, chart]
        read, fill = multi_reader([ms], live, feed)

        def work() -> None:
            try:
                fetched = read()
            except Exception:  # a storage gone bad must not end the tab
                log.exception("reading the %s tab failed", ms.key)
                pending[new] = (ms, None)  # read again when chosen again
                return
            page.call_soon(lambda: fill(fetched))

        page.background(work)

    return on_choice


def build_overview(
    storage,
    session_id: str,
    worker_id: str | None = None,
    findings: bool = True,
    defer_reads: bool = False,
    prefetch: Callable | None = None,
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
    defer_reads : bool, default=False
        For the Bokeh server: the charts with one line per tensor come back empty, with
        their read in ``page.deferred`` (one pass over the storage; the server runs it
        after the page is shown, so the browser lays the page out meanwhile), and the
        std of gradients and of updates (tabs hidden at first) are built and read when
        their tab is first chosen, the log-scale score chart when the toggle first asks
        for it (Python callbacks). False (the static report, tests) builds and reads
        everything now.
    prefetch : callable, default=None
        With ``defer_reads``, a function such as ``executor.submit``: the deferred read
        is started through it as soon as the series to read are known, before the
        page's charts are built, and ``page.deferred`` waits for its result.

    Returns
    -------
    Page
        ``sources`` holds ``"score"`` (columns ``x`` iteration, ``y`` value with NaN gaps,
        ``ys`` smoothed, ``t`` ms since the epoch), ``"ratio"`` (log10 ratio),
        ``"std_act"``, ``"std_grad"``, ``"std_update"`` (one line per tensor or layer, a
        row per line segment: read one line with
        :func:`~embedviz.ui.pages.multiline.line_points`), each with a ``...:marks``
        source for NaN/inf, and ``"performance"`` (table).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage(); st.put(Update("run", "0", 1, 0.0, score=2.0))
    >>> build_overview(st, "run").sources["score"].data["y"].tolist()
    [2.0]
    """
    worker_id = pick_worker(storage, session_id, worker_id)
    if worker_id is None:
        return Page(
            layout=column(
                heading(f"Session {session_id}: nothing recorded yet"),
                sizing_mode="stretch_width",
            )
        )
    return _Overview(storage, session_id, worker_id, defer_reads).build(findings, prefetch)


class _Overview:
    """The overview page of one worker, built one panel at a time (:func:`build_overview`).

    What the panels and the live refresh share: ``live`` (the series that
    :meth:`refresh` streams into; a chart read later joins it once filled), ``now`` (the
    charts with one line per tensor read with the page) and ``first`` (the first
    recorded point, for the rates of the performance table; None until it is read).
    """

    def __init__(self, storage, session_id: str, worker_id: str, defer_reads: bool) -> None:
        self.storage, self.session_id, self.worker_id = storage, session_id, worker_id
        self.defer_reads = defer_reads
        self.page = Page(layout=None)
        self.info = info = storage.get_static_info(session_id, worker_id)
        latest = storage.get_latest_update(session_id, worker_id)
        self.kind = session_kind(info, latest)
        self.params = list(latest.params) if latest else []
        acts = list(latest.activations) if latest else []
        # the newest point when the page was built; the live feed starts after it
        self.after = latest.iteration if latest is not None else None
        self.newest = (latest.iteration, latest.timestamp) if latest is not None else None
        self.feed = SeriesFeed(storage, session_id, worker_id, self.after)
        self.shading = None
        if self.kind == "tsne":
            spans = exaggeration_span(storage.get_updates(session_id, worker_id))
            self.shading = PhaseShading(spans)
        self.groups = {
            "ratio": [f"params/{n}/update_param_ratio" for n in self.params],
            "std_act": [f"activations/{n}/std" for n in acts],
            "std_grad": [f"params/{n}/grad_std" for n in self.params],
            "std_update": [f"params/{n}/update_std" for n in self.params],
        }
        self.std_specs = [
            (key, title, labels)
            for key, title, labels in (
                ("std_act", "activations", [layer_label(n, layer_types(info)) for n in acts]),
                ("std_grad", "gradients", self.params),
                ("std_update", "updates", self.params),
            )
            if labels
        ]
        self.live: list = []
        self.now: list = []
        self.first: tuple[int, float] | None = None
        self.score: LiveSeries | None = None
        self.perf_table = None

    def build(self, findings: bool, prefetch: Callable | None) -> Page:
        """Every panel, then the page's layout and refresh."""
        read = None
        if self.defer_reads:
            read = self._read
            if prefetch is not None:  # started now, beside the building of the page
                read = prefetch(read).result
        charts = self.score_panel()
        ratio_panel = self.ratio_panel()
        std_panel = self.std_tabs()
        if self.now and not self.defer_reads:
            read_now, fill_now = multi_reader(self.now, self.live, self.feed)
            fill_now(read_now())
        tables = self.performance_tables()
        if self.defer_reads:
            self.page.deferred.append((read, self._fill))
        findings_div = (
            findings_view(self.storage, self.session_id, self.worker_id)
            if findings
            else Div(text="", sizing_mode="stretch_width", name="findings", styles=FINDINGS_STYLE)
        )
        self.page.refreshers.insert(0, self.refresh)
        self.page.layout = column(
            row(charts, tables, sizing_mode="stretch_width"),
            *ratio_panel,
            *std_panel,
            heading("Findings"),
            findings_div,
            sizing_mode="stretch_width",
        )
        return self.page

    def _read(self):
        """The deferred read (any thread): the score (whole, for the exact smoothing) and
        the charts shown at first with one line per tensor, in one pass over the rows
        (the storage's scan is most of the cost of either); ``(series, first point)``."""
        limits = dict.fromkeys(self.groups["ratio"], MULTI_MAX_POINTS)
        if self.std_specs:
            limits.update(dict.fromkeys(self.groups[self.std_specs[0][0]], MULTI_MAX_POINTS))
        limits["score"] = None
        st, sid, wid = self.storage, self.session_id, self.worker_id
        fetched = fetch_many(st, sid, wid, list(limits), limits)
        s = fetched["score"]
        if len(s):
            return fetched, (int(s.iterations[0]), float(s.timestamps[0]))
        return fetched, first_point(st, sid, wid)

    def _fill(self, got) -> None:
        """Load what :meth:`_read` read (the document's thread), stream what arrived
        after the page was built, and make those charts live."""
        st, sid, wid = self.storage, self.session_id, self.worker_id
        fetched, self.first = got
        names = [n for s in (self.score, *self.now) for n in s.names]
        late = late_points(st, sid, wid, names, self.after)
        self.score.load(st, sid, wid, series=fetched[self.score.name])
        self.score.push_series(late)
        for ms in self.now:
            ms.load(st, sid, wid, fetched)
            ms.push_series(late)
        self.live.extend([self.score, *self.now])
        self._show_performance(self.newest)

    def score_panel(self):
        """The score (linear or log y), the evaluation metrics and the charts of the
        run's kind (t-SNE, word2vec), with the t-SNE's phase note."""
        st, sid, wid = self.storage, self.session_id, self.worker_id
        _, evals = eval_view(st, sid, wid, self.page)
        extra_series, extra_charts = kind_charts(
            st, sid, wid, self.kind, self.page, shading=self.shading
        )
        # alone beside the tables, the score takes the evaluation's room too: no empty
        # band under it (a worker without evaluations, in a run whose others have some)
        alone = evals is None and not extra_charts
        self.score, score_box = score_view(
            st,
            sid,
            wid,
            self.page,
            kind=self.kind,
            shading=self.shading,
            lazy=self.defer_reads,
            height=2 * CHART_HEIGHT if alone else CHART_HEIGHT,
        )
        self.live.extend(extra_series if self.defer_reads else [self.score, *extra_series])
        kind_panel = list(extra_charts)
        if self.shading is not None:
            kind_panel.append(
                note(
                    "Shaded: the early exaggeration phase (attractive forces multiplied); the KL "
                    "divergence usually drops when it ends. Red x: NaN or infinite values."
                )
            )
        # beside the tables, where a network's evaluation goes (no gap under a short chart)
        panel = column(
            score_box,
            *([evals] if evals is not None else []),
            *kind_panel,
            sizing_mode="stretch_width",
        )
        if evals is None:
            self.page.refreshers.append(self._watch_evals(panel, score_box))
        return panel

    def _watch_evals(self, panel, score_box):
        """A refresher that draws the evaluation chart when this worker's first
        evaluations arrive (looked for on a tick that brings updates, else every
        :data:`~embedviz.ui.pages.compare_live.EVAL_POLL` ticks, as on the compare page):
        the score chart gives its room back; once drawn, the chart streams as one built
        with the page. While there are none, a note says so if another worker of the
        session has some."""
        st, sid, wid = self.storage, self.session_id, self.worker_id
        others = sorted({e.worker_id for e in st.get_evals(sid)} - {wid})
        waiting = note(
            f"Evaluation: worker {wid} has no evaluation records (worker "
            f"{', '.join(others[:5])} {'has' if len(others) == 1 else 'have'}); the chart "
            "shows when they arrive."
        )
        waiting.name = "eval_waiting"
        waiting.visible = bool(others)
        panel.children.insert(1, waiting)
        state = {"ticks": 0, "after": self.feed.after, "done": False}

        def watch() -> int:
            if state["done"]:
                return 0
            state["ticks"] += 1
            moved = self.feed.after != state["after"]  # this tick brought updates
            state["after"] = self.feed.after
            if not (moved or state["ticks"] % EVAL_POLL == 0):
                return 0
            if not st.get_evals(sid, wid):
                return 0
            series, chart = eval_view(st, sid, wid, self.page)
            if chart is None:  # records without metrics: looked for again
                return 0
            state["done"] = True
            for c in score_box.children:
                if c.name in ("score_linear", "score_log"):
                    c.height = CHART_HEIGHT
            rest = [c for c in panel.children if c is not waiting]
            panel.children = [rest[0], chart, *rest[1:]]
            return sum(len(s.source.data["x"]) for s in series)

        return watch

    def ratio_panel(self) -> list:
        """The log10 update:parameter ratio of every tensor (a network's panels only when
        it recorded them), read with the page."""
        if not self.params:
            return []
        ratio, ratio_chart = multi_series_chart(
            self.storage,
            self.session_id,
            self.worker_id,
            self.groups["ratio"],
            self.params,
            "log10 update:parameter ratio (healthy band 1e-4..1e-2, target 1e-3)",
            "log10 ratio",
            self.page,
            "ratio",
            band=RATIO_BAND,
            target=RATIO_TARGET,
            load=False,
        )
        self.now.append(ratio)
        return [
            ratio_chart,
            note(
                "Each line is one parameter tensor: mean |update| / mean |parameter| per "
                "reported iteration. Far above the band: the learning rate is too high; far "
                "below: too low or vanishing gradients. Red x: NaN or infinite values; grey "
                "circle at the bottom edge: exactly zero (no log10)."
            ),
        ]

    def std_tabs(self) -> list:
        """The log10 std of activations, gradients and updates, one shown at a time; with
        ``defer_reads`` the hidden ones are built and read when first chosen."""
        if not self.std_specs:
            return []
        std_box = column(sizing_mode="stretch_width", name="std_charts")
        pending = {}
        for i, (key, title, labels) in enumerate(self.std_specs):
            ms = MultiSeries(self.groups[key], labels, key)
            self.page.sources[key] = ms.source
            self.page.sources[f"{key}:marks"] = ms.marks
            make = partial(multi_chart, ms, f"log10 std of {title}", "log10 std")
            if i > 0 and self.defer_reads:
                pending[i] = (ms, make)  # built and read when first chosen
                continue
            chart = make()
            chart.visible = i == 0
            std_box.children.append(chart)
            self.now.append(ms)
        # a button group, not Tabs: a figure inside Tabs may be laid out at zero size
        # when the Bokeh server swaps the page in
        std_choice = RadioButtonGroup(
            labels=[title for _, title, _ in self.std_specs], active=0, name="std_choice"
        )
        std_choice.js_on_change(
            "active",
            CustomJS(
                args={"box": std_box, "keys": [key for key, _, _ in self.std_specs]},
                code="for (const c of box.children) c.visible = c.name == keys[cb_obj.active]",
            ),
        )
        if pending:
            std_choice.on_change(
                "active",
                _load_on_choice(self.page, pending, self.live, self.feed, std_box, std_choice),
            )
        return [
            std_choice,
            std_box,
            note(
                "Red x: NaN or infinite values; grey circle at the bottom edge: exactly "
                "zero (a dead layer or a frozen tensor, no log10)."
            ),
        ]

    def performance_tables(self):
        """The model and performance tables. The first point gives the iterations/s;
        while the score is read (deferred), the newest point stands in (the rate reads
        "—" until then)."""
        st, sid, wid = self.storage, self.session_id, self.worker_id
        model_table = table(
            model_rows(self.info, self.kind),
            ["property", "value"],
            name="model_table",
            widths=[130, 310],
        )
        if not self.defer_reads:
            self.first = self.score.first or first_point(st, sid, wid)
        self.perf_table = table(
            performance_rows(st, sid, wid, self.info, self.first or self.newest, self.kind),
            ["property", "value"],
            name="performance",
        )
        self.page.sources["performance"] = self.perf_table.source
        self.page.sources["model"] = model_table.source
        return column(
            heading("Model"),
            model_table,
            heading("Performance"),
            self.perf_table,
            width=440,
        )

    def _show_performance(self, newest, latest=None) -> None:
        st, sid, wid = self.storage, self.session_id, self.worker_id
        rows = performance_rows(
            st, sid, wid, self.info, self.first or newest, self.kind, latest=latest
        )
        set_table_rows(self.perf_table, rows)

    def refresh(self) -> int:
        """Stream what arrived since the last call into the live series and the tables.

        Reads the new points of the series drawn (:class:`~embedviz.ui.pages.live.
        SeriesFeed`: a few columns of the new rows) and the newest update (the
        performance table), never every new record whole; a t-SNE run's phase shading
        also reads its new records (a handful of scalars each, no histograms).
        """
        after = self.feed.after
        series, latest = self.feed([n for s in self.live for n in s.names])
        if latest is None:
            return 0
        if self.shading is not None:
            st, sid, wid = self.storage, self.session_id, self.worker_id
            self.shading.update(st.get_updates(sid, wid, after_iteration=after))
        if self.first is None and self.score in self.live:  # not while the deferred read runs
            self.first = first_point(self.storage, self.session_id, self.worker_id)
        n = sum(s.push_series(series) for s in self.live)
        self._show_performance((latest.iteration, latest.timestamp), latest)
        return n
