"""What a page builder returns: :class:`Page`.

A page builder is a plain function ``build_X(storage, session_id, worker_id=None, ...)``
returning a :class:`Page`: the Bokeh ``layout``, the named ``sources`` (tests read their
values) and ``refresh()``, which reads what arrived since the last call and streams only
those points into the sources (``ColumnDataSource.stream``). The Bokeh server calls
``refresh()`` from a periodic callback; the static report never does.

The pieces the pages share live beside it: :mod:`~embedviz.ui.pages.live` (series that
grow), :mod:`~embedviz.ui.pages.charts` (line charts, NaN/inf marks),
:mod:`~embedviz.ui.pages.widgets` (tables, headings, cell text) and
:mod:`~embedviz.ui.pages.smoothing` (log10 and the moving average, plain numpy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bokeh.models import ColumnDataSource


def _call_now(fn: Callable[[], object]) -> None:
    fn()


@dataclass
class Page:
    """What a page builder returns: the layout, its named sources and how to go live.

    ``deferred`` holds ``(read, fill)`` pairs the server runs once the page is shown:
    ``read()`` in a background thread, then ``fill(read())`` in the document's thread.
    ``background(fn)`` runs a slow read for a Python callback of the page and
    ``call_soon(fn)`` applies its result to the document; both call ``fn`` at once
    unless the server sets them (its page builders and the document's next tick).
    ``on_sessions(sessions)``, when a page sets it, is told the sessions the tab offers,
    as ``(name, storage)`` pairs, each time the server re-reads them (the compare page
    adds those recorded since it was built).
    """

    layout: object
    sources: dict[str, ColumnDataSource] = field(default_factory=dict)
    refreshers: list[Callable[[], int]] = field(default_factory=list)
    deferred: list[tuple[Callable[[], object], Callable[[object], None]]] = field(
        default_factory=list
    )
    background: Callable[[Callable[[], object]], object] = _call_now
    call_soon: Callable[[Callable[[], object]], object] = _call_now
    on_sessions: Callable[[list[tuple[str, object]]], None] | None = None

    def refresh(self) -> int:
        """Stream whatever arrived since the last call; returns how many points were added."""
        # a copy: a refresher may add one (a chart drawn when its first data arrive)
        return sum(f() for f in list(self.refreshers))
