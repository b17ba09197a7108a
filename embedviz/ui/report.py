"""``embedviz report``: a training run's overview, model and system views as one HTML file.

The file is self-contained (BokehJS inlined, no network needed), written atomically
(temporary file, then rename) by :func:`embedviz.plot.export.save_html`, so it can be
mailed or kept as a CI artefact. The views are those of the live UI (the same page
builders), without the live updates; the model view holds every layer and its selector
switches between them in the browser.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bokeh.layouts import column
from bokeh.models import Div, TabPanel, Tabs

from embedviz.errors import FileFormatError, InputError
from embedviz.ui.pages.model import build_model
from embedviz.ui.pages.overview import build_overview
from embedviz.ui.pages.system import build_system
from embedviz.ui.pages.widgets import escape

log = logging.getLogger(__name__)


def open_storage(path: str | os.PathLike, read_only: bool = True):
    """Open an existing statistics file; one clear error for a missing or foreign file."""
    from embedviz.stats.storage import SQLiteStatsStorage

    p = Path(path).expanduser()
    if not p.exists():
        raise FileFormatError(
            f"{p}: no such statistics file; give a file written by SQLiteStatsStorage "
            "(e.g. runs.db)"
        )
    return SQLiteStatsStorage(p, read_only=read_only)


def report_layout(storage, session_id: str | None = None, worker_id: str | None = None):
    """The report's Bokeh layout for one session (None: the newest session) and one of
    its workers (None: the first; the system view shows every worker)."""
    sessions = storage.list_sessions()
    if not sessions:
        raise InputError("the statistics storage holds no session yet; record a run first")
    if session_id is None:
        session_id = sessions[-1]
        if len(sessions) > 1:
            log.info(
                "report on session %r (newest of %d); choose another with --session (session_id=)",
                session_id,
                len(sessions),
            )
    elif session_id not in sessions:
        shown = ", ".join(repr(s) for s in sessions[:10])
        raise InputError(f"session_id: no session {session_id!r} in this storage; it holds {shown}")
    workers = storage.list_workers(session_id)
    worker = workers[0] if workers else None
    if worker_id is not None:
        if worker_id not in workers:
            shown = ", ".join(repr(w) for w in workers[:20])
            raise InputError(
                f"worker_id: session {session_id!r} has no worker {worker_id!r}; it has "
                f"{shown or 'none'} (--worker)"
            )
        worker = worker_id
    overview = build_overview(storage, session_id, worker)
    model = build_model(storage, session_id, worker, mode="static")
    system = build_system(storage, session_id)
    another = [
        f"<code>--{what} NAME</code>"
        for what, n in (("session", len(sessions)), ("worker", len(workers)))
        if n > 1
    ]
    another = f" (report another with {' or '.join(another)})" if another else ""
    header = Div(
        text=(
            f"<h2 style='margin:4px 0'>embedviz training report</h2>"
            f"<div style='color:#555'>session <b>{escape(session_id)}</b>, worker "
            f"<b>{escape(worker)}</b> of {len(workers)}; sessions in this file: "
            f"{escape(', '.join(sessions[:20]))}"
            f"{' …' if len(sessions) > 20 else ''}"
            f"{another}</div>"
        ),
        sizing_mode="stretch_width",
    )
    tabs = Tabs(
        tabs=[
            TabPanel(child=overview.layout, title="Overview"),
            TabPanel(child=model.layout, title="Model"),
            TabPanel(child=system.layout, title="System"),
        ],
        sizing_mode="stretch_width",
    )
    return column(header, tabs, sizing_mode="stretch_width"), session_id


def write_report(
    storage_or_path, output, session_id: str | None = None, worker_id: str | None = None
) -> Path:
    """Write the overview, model and system views of a session as one static HTML file.

    Parameters
    ----------
    storage_or_path : StatsStorage or str or Path
        A storage, or the path of a SQLite statistics file (opened read-only).
    output : str or Path
        The HTML file to write (replaced atomically).
    session_id : str, default=None
        The session to report; None: the newest one.
    worker_id : str, default=None
        The worker whose overview and model views to show (a distributed run has one per
        rank); None: the first. The system view shows every worker.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    FileFormatError
        The statistics file is missing or not ours.
    InputError
        No such session or worker, or the output cannot be written.

    Examples
    --------
    >>> write_report("runs.db", "report.html")  # doctest: +SKIP
    PosixPath('report.html')
    """
    from embedviz._paths import same_file
    from embedviz.plot.export import save_html

    own = isinstance(storage_or_path, str | os.PathLike)
    source = storage_or_path if own else getattr(storage_or_path, "path", None)
    if source is not None and same_file(source, output):
        raise InputError(
            f"the report would overwrite the statistics file {source}: both name one file; "
            "choose another output path (-o)"
        )
    storage = open_storage(storage_or_path) if own else storage_or_path
    try:
        layout, session = report_layout(storage, session_id, worker_id)
        return save_html(layout, output, title=f"embedviz report: {session}")
    finally:
        if own:
            storage.close()
