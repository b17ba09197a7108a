"""The histograms of one layer: a choice of kind, then per tensor the histogram at an
iteration (one slider back through time) and the percentile bands over time.

A layer records up to three kinds of histograms (parameters, updates, activations), two
charts per tensor. One kind is shown at a time (a button group, as the overview's std
tabs): on the Bokeh server only the first kind is read with the page, and another kind
is read and its charts built when it is first chosen (a Python callback, the read in
the server's page builders), so a page opens with the charts of one kind only; the
static report reads and builds them all and switches in the browser. A kind not read
yet is offered when the layer may hold it; if it holds none, its part says so.
"""

from __future__ import annotations

import logging

from bokeh.layouts import column, row
from bokeh.models import CustomJS, RadioButtonGroup

from embedviz.ui.pages.charts import MAX_POINTS
from embedviz.ui.pages.histograms import (
    HistogramHistory,
    HistogramSlider,
    distribution_chart,
    distribution_columns,
)
from embedviz.ui.pages.widgets import heading, note

log = logging.getLogger(__name__)

KINDS = {"params": "parameters", "updates": "updates", "activations": "activations"}


class HistogramPanel:
    """Histogram views of one layer.

    Parameters
    ----------
    histories : dict of (kind, tensor) -> HistogramHistory
        What was read so far (kinds of :data:`KINDS`).
    key : str
        Prefix of the source names: ``<key>:hist:<kind>:<tensor>:show`` / ``:bands``
        (``:store`` in the browser), ``<key>:<kind>:slider``, ``<key>:hist_kind``.
    page : Page
        Where the sources are registered; its ``background`` and ``call_soon`` run a
        later read.
    in_browser : bool, default=False
        Build every kind now and keep every histogram in the page (static report).
    read_kind : callable, default=None
        ``read_kind(kind) -> histories`` of the kinds not read yet (any thread).
    unread : sequence of str, default=()
        Kinds that may hold histograms but were not read: offered, read when chosen.
    late : callable, default=None
        ``late() -> updates`` recorded since the page was built, streamed into a kind
        read later.
    changed : callable, default=None
        ``changed()``, called in the document's thread after histograms were added (a
        kind read later, or :meth:`push`): a histogram's ``left_out`` may have grown.
    """

    def __init__(
        self,
        histories: dict,
        key: str,
        page,
        in_browser: bool = False,
        read_kind=None,
        unread=(),
        late=None,
        changed=None,
    ) -> None:
        self.histories = dict(histories)
        self.key, self.page, self.in_browser = key, page, in_browser
        self.read_kind, self.late, self.changed = read_kind, late, changed
        self.unread = set(unread)
        held = {k for (k, _), h in self.histories.items() if len(h)}
        self.kinds = [k for k in KINDS if k in held or k in self.unread]
        # per built kind: its slider view and [(tensor, history, bands source)]
        self.built: dict[str, tuple[HistogramSlider, list]] = {}
        self.boxes = {k: column(sizing_mode="stretch_width") for k in self.kinds}
        if not self.kinds:
            self.layout = column(
                note("No histograms recorded for this layer."), sizing_mode="stretch_width"
            )
            return
        for i, kind in enumerate(self.kinds):
            self.boxes[kind].visible = i == 0
            if i == 0 or in_browser:
                self._build(kind)
        choice = RadioButtonGroup(
            labels=[KINDS[k] for k in self.kinds], active=0, name=f"{key}:hist_kind"
        )
        choice.js_on_change(
            "active",
            CustomJS(
                args={"boxes": list(self.boxes.values())},
                code="boxes.forEach((b, i) => { b.visible = i == cb_obj.active })",
            ),
        )
        if not in_browser:
            choice.on_change("active", lambda attr, old, new: self._choose(self.kinds[new]))
        page.sources[f"{key}:hist_kind"] = choice
        self.layout = column(
            heading("Histograms", 4), choice, *self.boxes.values(), sizing_mode="stretch_width"
        )

    def _choose(self, kind: str) -> None:
        """Show ``kind``: build its charts, reading its histograms first if needed."""
        if kind in self.built:
            return
        if kind not in self.unread or self.read_kind is None:
            self._build(kind)
            return
        self.unread.discard(kind)
        self.boxes[kind].children = [note(f"Reading the histograms of {KINDS[kind]}…")]

        def work() -> None:
            try:
                got = self.read_kind(kind)
            except Exception:  # a storage gone bad must not end the tab
                log.exception("reading the histograms of %s failed", kind)
                self.unread.add(kind)  # try again when chosen again
                return
            self.page.call_soon(lambda: self._add(kind, got))

        self.page.background(work)

    def _add(self, kind: str, histories: dict) -> None:
        self.histories.update(histories)
        self._build(kind)
        self.push(self.late() if self.late is not None else [])

    def _build(self, kind: str) -> None:
        """The charts of ``kind`` (once)."""
        if kind in self.built:
            return
        entries, charts, views = [], [], []
        for (k, name), history in self.histories.items():
            if k != kind or not len(history):
                continue
            skey = f"{self.key}:hist:{kind}:{name}"
            entries.append((f"{KINDS[kind]} {name}", skey, history))
            chart, src = distribution_chart(
                f"Distribution of {KINDS[kind]} {name} (percentiles)", history, skey
            )
            self.page.sources[f"{skey}:bands"] = src
            views.append((name, history, src))
            charts.append(chart)
        if not entries:
            self.boxes[kind].children = [note(f"No histograms of {KINDS[kind]} recorded.")]
            return
        slider = HistogramSlider(entries, f"{self.key}:{kind}", in_browser=self.in_browser)
        self.page.sources.update(slider.sources)
        self.page.sources[f"{self.key}:{kind}:slider"] = slider.slider
        self.built[kind] = (slider, views)
        self.boxes[kind].children = [
            row(
                slider.layout(),
                column(*charts, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            )
        ]

    def push(self, updates) -> int:
        """Add the histograms in ``updates`` (Update records, by iteration) to every
        history read and stream them into the charts built (a history replaced by
        histograms with another number of bins is drawn again); returns how many were
        added."""
        n = 0
        added: dict[tuple[str, str], HistogramHistory] = {}
        for (kind, name), history in self.histories.items():
            new = history.extend(
                [
                    (u.iteration, u.histograms[kind][name])
                    for u in updates
                    if name in u.histograms.get(kind, {})
                ]
            )
            added[(kind, name)] = new
            if kind not in self.built:
                n += len(new)
        for kind, (slider, views) in self.built.items():
            for name, history, src in views:
                new = added[(kind, name)]
                if len(new) and len(new) == len(history):  # replaced
                    src.data = distribution_columns(history, MAX_POINTS)
                elif len(new):
                    src.stream(distribution_columns(new), rollover=6000)
            n += slider.push([added[(kind, name)] for name, _, _ in views])
        if self.changed is not None:
            self.changed()
        return n
