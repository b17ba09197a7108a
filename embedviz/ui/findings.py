"""The diagnostics' findings as a page section (severity, where, evidence, advice).

The findings come from :mod:`embedviz.stats.diagnostics` (the statistics package owns
the rules); this module only asks for them and lays them out. Every text is escaped:
layer names and evidence can hold anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bokeh.models import Div

from embedviz.stats.diagnostics import iterations_text, where_of
from embedviz.ui.diagnose import get_findings
from embedviz.ui.pages.widgets import escape, layer_label, layer_types

__all__ = ["FINDINGS_STYLE", "LiveFindings", "findings_html", "findings_view", "get_findings"]

log = logging.getLogger(__name__)

# while a run grows, its findings are diagnosed again at most this often (in the
# findings runner: a child process at low priority, never on the page's hot path)
REFRESH_S = 15.0
# and at most this share of the time: a diagnosis that took d seconds is not repeated
# for d / MAX_SHARE seconds from its start. Low priority is not free on a machine whose
# other cores train: a diagnosis of a long run (about 5 s for 100k iterations x 50
# tensors) every 15 s keeps a core a third busy streaming the file, and that memory
# traffic slows the training beside it (a memory-bound loop on the other vCPU: +32 %)
MAX_SHARE = 0.1

FINDINGS_STYLE = {"max-height": "480px", "overflow-y": "auto"}
_COLOURS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}


def _as_of(iteration: int | None) -> str:
    if iteration is None:
        return ""
    return (
        "<div style='color:#666;font-size:12px;margin-bottom:4px'>"
        f"As of iteration {int(iteration):,}.</div>"
    )


def named_with_type(types: dict[str, str]):
    """A layer or tensor name with its layer's class: ``1 (Conv2d)``, ``0.weight (Linear)``.

    Examples
    --------
    >>> named = named_with_type({"0": "Linear", "1": "ReLU"})
    >>> named("1"), named("0.weight"), named("head.bias")
    ('1 (ReLU)', '0.weight (Linear)', 'head.bias')
    """

    def named(name: str) -> str:
        if name in types:
            return layer_label(name, types)
        owner = name.rpartition(".")[0]
        return f"{name} ({types[owner]})" if owner in types else name

    return named


def findings_html(
    findings: list[dict], as_of: int | None = None, types: dict[str, str] | None = None
) -> str:
    """HTML for the findings list (all text escaped); ``as_of``: the newest iteration
    the diagnostics saw, said above the list; ``types``: layer name -> class, shown
    beside the names (``1 (Conv2d)``)."""
    if not findings:
        return _as_of(as_of) + "<span style='color:#2ca02c'>No problems found.</span>"
    order = {"error": 0, "warning": 1, "info": 2}
    parts = []
    for f in sorted(findings, key=lambda f: order.get(str(f.get("severity")), 3)):
        sev = str(f.get("severity") or "info")
        named = named_with_type(types) if types else None
        parts_where = [where_of(str(f.get("check")), f["layer"], named)] if f.get("layer") else []
        its = f.get("iterations")
        if isinstance(its, list | tuple) and len(its) == 2:
            parts_where.append(iterations_text((int(its[0]), int(its[1]))))
        where = ", ".join(parts_where)
        title = (f.get("check") or f.get("title") or "").replace("_", " ")
        parts.append(
            "<div style='margin:4px 0;padding:6px 10px;border-left:4px solid "
            f"{_COLOURS.get(sev, '#777')};background:#fafafa'>"
            f"<b style='color:{_COLOURS.get(sev, '#777')}'>{escape(sev.upper())}</b> "
            f"<b>{escape(title)}</b> <span style='color:#666'>{escape(where)}</span><br>"
            f"{escape(f.get('evidence') or '')}<br>"
            f"<span style='color:#333'><i>{escape(f.get('advice') or '')}</i></span></div>"
        )
    return _as_of(as_of) + "".join(parts)


def findings_view(storage, session_id: str, worker_id: str | None = None) -> Div:
    """A Div listing the findings, most severe first."""
    types = {}
    workers = [worker_id] if worker_id is not None else storage.list_workers(session_id)
    if workers:
        types = layer_types(storage.get_static_info(session_id, workers[0]))
    return Div(
        text=findings_html(get_findings(storage, session_id, worker_id), types=types),
        sizing_mode="stretch_width",
        name="findings",
        styles=FINDINGS_STYLE,
    )


class LiveFindings:
    """Keeps a findings Div current while the run grows.

    :meth:`start` asks ``runner`` (a :class:`~embedviz.ui.diagnose.FindingsRunner`) for
    the findings; :meth:`tick` (the tab's periodic callback) asks again when at least
    ``every_s`` passed since the last diagnosis started, and at least its duration
    divided by ``max_share`` (a slow diagnosis of a long run is repeated less often),
    none is running, and the worker's newest iteration moved. The Div says "As of
    iteration N". ``call_soon`` puts the text into the document (its next-tick callback).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> from embedviz.ui.diagnose import FindingsRunner
    >>> st = InMemoryStatsStorage(); st.put(Update("s", "0", 5, 0.0, score=1.0))
    >>> runner = FindingsRunner(); div = Div()
    >>> live = LiveFindings(div, runner, st, "s", "0", call_soon=lambda f: f())
    >>> live.start(); runner.shutdown(); "As of iteration 5" in div.text
    True
    """

    def __init__(
        self,
        div: Div,
        runner,
        storage,
        session_id: str,
        worker_id: str | None,
        call_soon: Callable[[Callable[[], None]], object],
        every_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
        max_share: float = MAX_SHARE,
    ) -> None:
        self.div, self.runner, self.storage = div, runner, storage
        self.session_id, self.call_soon = session_id, call_soon
        if worker_id is None:
            workers = storage.list_workers(session_id)
            worker_id = workers[0] if workers else None
        self.worker_id = worker_id
        self.every_s, self.clock = float(every_s), clock
        self.max_share = float(max_share)
        self.took = 0.0  # seconds the last diagnosis took (clock() from start to answer)
        self.busy = False
        self.stopped = False
        self.types: dict[str, str] = {}  # layer name -> class, from the static info
        self.started_at: float | None = None  # clock() when the last diagnosis started
        self.asked: int | None = None  # the newest iteration when it started
        self.shown: int | None = None  # the iteration the Div speaks for

    def _newest(self) -> int | None:
        if self.worker_id is None:
            return None
        u = self.storage.get_latest_update(self.session_id, self.worker_id)
        return None if u is None else int(u.iteration)

    def start(self) -> None:
        """Diagnose now (the tab calls it once the page is drawn)."""
        self.busy, self.started_at = True, self.clock()
        self.asked = at = self._newest()
        if self.worker_id is not None and not self.types:
            self.types = layer_types(self.storage.get_static_info(self.session_id, self.worker_id))
        types = self.types
        try:
            future = self.runner.submit(self.storage, self.session_id, self.worker_id)
        except Exception:
            log.exception("diagnostics could not start")
            self.busy = False
            self.div.text = "<i>The diagnostics failed; see the UI's log.</i>"
            return

        started = self.started_at

        def done(future) -> None:
            self.took = max(0.0, self.clock() - started)
            try:
                text = findings_html(future.result(), as_of=at, types=types)
            except Exception:
                log.exception("diagnostics failed")
                text = "<i>The diagnostics failed; see the UI's log.</i>"

            def put() -> None:
                self.busy = False
                if not self.stopped:
                    self.div.text, self.shown = text, at

            try:
                self.call_soon(put)
            except Exception:  # the tab was closed meanwhile
                self.busy = False

        future.add_done_callback(done)

    def tick(self) -> bool:
        """Diagnose again when due and the run grew; returns whether it started."""
        if self.stopped or self.busy or self.started_at is None:
            return False
        if self.clock() - self.started_at < max(self.every_s, self.took / self.max_share):
            return False
        newest = self._newest()
        if newest is None or newest == self.asked:
            return False
        self.start()
        return True

    def stop(self) -> None:
        """The page was replaced: no more diagnoses, and a late answer is dropped."""
        self.stopped = True
