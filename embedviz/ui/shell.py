"""One browser tab of the live UI: the navigation bar, the dropdowns and the live page.

:func:`make_document` is what each Bokeh application runs for a new tab. It reads
``?session=`` and ``?worker=`` from the URL, builds the page with its builder, and adds
the periodic callback that streams new points (``page.refresh()``) and notices new
sessions and workers. Choosing another session or worker rebuilds the page in place.
A page may come back with some charts empty and their reads deferred
(``page.deferred``): they run in the server's page builders once the page is shown,
while the browser lays it out (the overview starts its read while the page is being
built), and the nav bar is tagged ``ready`` when they are filled in. The document's
template loads only the BokehJS bundles the page uses
(:func:`~embedviz.ui.server.page_template`). The overview's findings come from
:class:`~embedviz.ui.diagnose.FindingsRunner` (a child process for SQLite files),
started a second after the page is ready, and are filled in when done, so a large
run's page opens without waiting for (or competing with) the diagnostics. While the run
grows they are diagnosed again (:class:`~embedviz.ui.findings.LiveFindings`, at most
every 15 s) and say which iteration they speak for.
"""

from __future__ import annotations

import logging
import time

from bokeh.layouts import column, row
from bokeh.models import Div, Select

from embedviz.ui.findings import LiveFindings
from embedviz.ui.pages._common import Page
from embedviz.ui.pages.prune import prune_on_swap
from embedviz.ui.pages.widgets import escape, note_html
from embedviz.ui.session_view import SessionView

log = logging.getLogger(__name__)

SESSION_EVERY = 4  # ticks between re-reading the session list
# a tick that streams new points makes the browser repaint every chart they belong to
# (about 0.1 s of CPU for the overview in headless Chromium); while a run streams
# steadily, new points are sent at most this often, and the first point after a quiet
# tick at once (so a single new record still shows within one refresh interval)
STEADY_PUSH_S = 1.0
# the diagnostics start this long after a page is shown: a long run's take seconds of
# CPU, which the browser needs first to draw the page
FINDINGS_DELAY_MS = 1000


def _arg(doc, name: str) -> str | None:
    try:
        values = doc.session_context.request.arguments.get(name)
    except AttributeError:
        return None
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def build_page(
    server, path: str, session_id: str | None, worker_id: str | None, selected=None
) -> Page:
    """The page at ``path`` for a session (the builders of :mod:`embedviz.ui.pages`)."""
    from embedviz.ui.pages.compare import build_compare
    from embedviz.ui.pages.embeddings import build_embeddings
    from embedviz.ui.pages.model import build_model
    from embedviz.ui.pages.overview import build_overview
    from embedviz.ui.pages.system import build_system

    sessions = dict(server.sessions())
    if path == "/train/compare":
        return build_compare(list(sessions.items()), selected)
    if session_id is None or session_id not in sessions:
        return Page(
            layout=Div(
                text="<i>No session recorded yet: this page fills in as soon as "
                "a training run writes to an attached storage.</i>",
                sizing_mode="stretch_width",
            )
        )
    storage = server.series_cache.wrap(sessions[session_id])
    if path == "/train/overview":
        return build_overview(
            storage,
            session_id,
            worker_id,
            findings=False,
            defer_reads=True,
            prefetch=server.builders.submit,
        )
    if path == "/train/model":
        return build_model(storage, session_id, worker_id)
    if path == "/train/system":
        return build_system(storage, session_id, worker_id)
    return build_embeddings(storage, session_id, worker_id)


EMBEDDING_KINDS = ("tsne", "word2vec")  # the sessions /embeddings has something to show


def has_embeddings(storage, session_id: str) -> bool | None:
    """Whether a session is a t-SNE or word2vec run (snapshots, KL or loss to show on
    /embeddings); None while none of its workers recorded its static info yet."""
    known = False
    for w in storage.list_workers(session_id):
        info = storage.get_static_info(session_id, w)
        if info is not None:
            if info.kind in EMBEDDING_KINDS:
                return True
            known = True
    return False if known else None


def listed_sessions(server, path: str, kinds: dict | None = None) -> list[str]:
    """The sessions a page offers: all of them, but on /embeddings only t-SNE and
    word2vec runs (a torch run has no embedding to show). ``kinds`` caches
    :func:`has_embeddings` per session once its static info is known."""
    sessions = server.sessions()
    if path != "/embeddings":
        return [sid for sid, _ in sessions]
    kinds = {} if kinds is None else kinds
    out = []
    for sid, storage in sessions:
        key = sid  # unique among the server's sessions (a storage view may be made anew)
        if key not in kinds:
            got = has_embeddings(storage, sid)
            if got is None:
                continue  # not known yet: asked again on the next look
            kinds[key] = got
        if kinds[key]:
            out.append(sid)
    return out


def _session_id(label: str, storage) -> str:
    """The storage's own id of the session shown as ``label``."""
    return storage.session_id if isinstance(storage, SessionView) else label


def default_session(server, path: str) -> str | None:
    """The newest session (the last listed); on the embeddings page the newest
    t-SNE/word2vec one (the newest session when there is none).

    When that one is a second file's session of a name an earlier file holds too
    (shown as ``NAME (file.db)``), the first file's session of that name: the one the
    name alone means (``?session=NAME``), as in the order the files were given.
    """
    sessions = server.sessions()
    if not sessions:
        return None
    newest = sessions[-1][0]
    if path == "/embeddings":
        listed = listed_sessions(server, path)
        if listed:
            newest = listed[-1]
    storages = dict(sessions)
    sid = _session_id(newest, storages[newest])
    return next(label for label, st in sessions if _session_id(label, st) == sid)


def same_name_note(server, path: str, session_id: str | None) -> str:
    """Which file holds which session, where several attached files hold a session of
    one name ("" where none do): on the compare page for every such name, on the others
    for the session shown.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> from embedviz.ui.server import UIServer
    >>> ui, a, b = UIServer(port=0), InMemoryStatsStorage(), InMemoryStatsStorage()
    >>> for st, name in ((a, "a.db"), (b, "b.db")):
    ...     st.put(Update("mlp", "0", 1, 0.0, score=1.0)); _ = ui.attach(st, name)
    >>> same_name_note(ui, "/train/overview", "mlp")
    "Files a.db and b.db both hold a session 'mlp': 'mlp' is a.db's, 'mlp (b.db)' is b.db's."
    """
    named = getattr(server, "named_storages", None)
    if named is None:
        return ""
    names = {id(st): name for name, st in named()}
    groups: dict[str, list[tuple[str, str]]] = {}
    for label, st in server.sessions():
        real = st.storage if isinstance(st, SessionView) else st
        groups.setdefault(_session_id(label, st), []).append((label, names.get(id(real), "?")))
    texts = []
    for sid, group in groups.items():
        if len(group) < 2 or (
            path != "/train/compare" and all(label != session_id for label, _ in group)
        ):
            continue
        files = [name for _, name in group]
        both = "both" if len(files) == 2 else "all"
        texts.append(
            f"Files {', '.join(files[:-1])} and {files[-1]} {both} hold a session {sid!r}: "
            + ", ".join(f"{label!r} is {name}'s" for label, name in group)
            + "."
        )
    return " ".join(texts)


class Tab:
    """The state of one open browser tab."""

    def __init__(self, server, path: str, doc) -> None:
        from embedviz.ui.server import nav_html

        self.server, self.path, self.doc = server, path, doc
        self.nav_html = nav_html
        self.kinds: dict = {}  # has_embeddings per session, for /embeddings
        every = [sid for sid, _ in server.sessions()]
        known = listed_sessions(server, path, self.kinds)
        session = _arg(doc, "session")
        if session in every and session not in known:
            known = [*known, session]  # named in the URL: offered although it has no embedding
        # a session named in the URL but not recorded yet is shown once it appears (the
        # UI may be opened before the training starts)
        self.wanted = session if session and session not in known else None
        self.session_id = session if session in known else None
        if self.session_id is None and self.wanted is None:
            self.session_id = default_session(server, path)
            if self.session_id is not None and self.session_id not in known:
                known = [*known, self.session_id]  # /embeddings with no t-SNE/word2vec run
        self.worker_id = _arg(doc, "worker")
        self.selected = [session] if session in known else None  # ticked on /train/compare
        self.known = known
        self.ticks = 0
        self.last_push: float | None = None  # when the last tick streamed new points
        self.generation = 0
        self.findings: LiveFindings | None = None  # the overview's, re-run as the run grows
        self.nav = Div(
            text=nav_html(path, self.session_id), sizing_mode="stretch_width", name="nav"
        )
        self.session_select = Select(
            title="Session",
            options=known or [""],
            value=self.session_id or "",
            width=340,
            name="session_select",
        )
        self.worker_select = Select(
            title="Worker", options=[""], value="", width=140, name="worker_select"
        )
        self._set_worker_options()
        # which file holds the session shown, where two files hold one of that name
        self.origin = Div(text="", visible=False, sizing_mode="stretch_width", name="origin")
        self._show_origin()
        self.session_select.on_change("value", self._on_session)
        self.worker_select.on_change("value", self._on_worker)
        controls = [self.session_select]
        if path not in ("/train/compare",):
            controls.append(self.worker_select)
        # the browser drops a replaced page's models at once (BokehJS 3.9 kept them)
        self.holder = prune_on_swap(column(sizing_mode="stretch_width", name="page_holder"))
        self.page = Page(layout=None)
        self.show()
        bar = row(*controls, sizing_mode="stretch_width") if path != "/train/compare" else None
        doc.add_root(
            column(
                self.nav,
                *([bar] if bar else []),
                self.origin,
                self.holder,
                sizing_mode="stretch_width",
                name="root",
            )
        )
        doc.title = f"embedviz — {path.rsplit('/', 1)[-1]}"
        doc.add_periodic_callback(self.tick, int(server.refresh_interval * 1000))

    # -- building --------------------------------------------------------------------
    def _show_origin(self) -> None:
        text = same_name_note(self.server, self.path, self.session_id)
        self.origin.text = note_html(text) if text else ""
        self.origin.visible = bool(text)

    def _storage(self):
        return dict(self.server.sessions()).get(self.session_id)

    def _set_worker_options(self) -> None:
        storage = self._storage()
        workers = storage.list_workers(self.session_id) if storage is not None else []
        options = list(workers) or [""]
        if self.path == "/train/system":
            options = ["all", *workers]
        if self.worker_id not in options:
            self.worker_id = options[0] if options[0] not in ("", "all") else None
        self.worker_select.options = options
        self.worker_select.value = self.worker_id or options[0]

    def show(self) -> None:
        """Rebuild the page for the current choice, in a background thread.

        Reading a long run takes a while; the IOLoop (other tabs, the receiver) never
        waits for it. The page is swapped in by a next-tick callback; until then the tab
        says it is loading, and ``nav.tags`` is ``["ready"]`` once it is shown.
        """
        self.generation += 1
        generation = self.generation
        self._show_origin()
        if self.findings is not None:
            self.findings.stop()
            self.findings = None
        self.page = Page(layout=None)
        self.nav.tags = []
        self.nav.text = self.nav_html(self.path, self.session_id)
        self.holder.children = [Div(text="<i>Loading…</i>", name="loading")]
        args = (self.server, self.path, self.session_id, self.worker_id, self.selected)
        doc = self.doc
        wanted = self.wanted if self.session_id is None else None

        def work() -> None:
            try:
                self.server.warmed.wait(30)
                page = build_page(*args)
                if wanted is not None and self.path != "/train/compare":
                    page = Page(
                        layout=Div(
                            text=f"<i>Waiting for session {escape(wanted)}: this page "
                            "shows it as soon as a training run records it.</i>",
                            sizing_mode="stretch_width",
                        )
                    )
            except Exception:
                log.exception("building %s for session %r failed", args[1], args[2])
                page = Page(
                    layout=Div(
                        text=f"<b>Could not build this page for session "
                        f"{escape(args[2])}</b>; see the UI's log."
                    )
                )

            def attach() -> None:
                if generation != self.generation:
                    return  # the user chose something else meanwhile
                self.page = page
                page.background = self.server.builders.submit
                page.call_soon = doc.add_next_tick_callback
                findings = page.layout.select_one({"name": "findings"})
                if findings is not None:  # before the page is in the document: one message
                    findings.text = "<i>Running the diagnostics…</i>"
                self.holder.children = [page.layout]
                self._run_deferred(page, generation, findings)

            try:
                doc.add_next_tick_callback(attach)
            except Exception:  # the tab was closed meanwhile
                log.debug("tab closed before its page was built")

        self.server.builders.submit(work)

    def _run_deferred(self, page: Page, generation: int, findings=None) -> None:
        """Run the page's deferred reads (the browser lays the page out meanwhile), fill
        them in, then mark the nav bar ``ready`` and, :data:`FINDINGS_DELAY_MS` later
        (the browser draws meanwhile), start the diagnostics."""
        jobs = list(page.deferred)
        left = [len(jobs)]

        def start_findings() -> None:
            if generation == self.generation:
                self._fill_findings(findings)

        def done() -> None:
            left[0] -= 1
            if left[0] <= 0 and generation == self.generation:
                self.nav.tags = ["ready"]
                if findings is not None:
                    self.doc.add_timeout_callback(start_findings, FINDINGS_DELAY_MS)

        if not jobs:
            done()
            return

        for read, fill in jobs:

            def work(read=read, fill=fill) -> None:
                try:
                    data = read()
                except Exception:
                    log.exception("a deferred read of %s failed", self.path)
                    self.doc.add_next_tick_callback(done)
                    return

                def apply() -> None:
                    try:
                        if generation == self.generation:
                            fill(data)
                    finally:
                        done()

                try:
                    self.doc.add_next_tick_callback(apply)
                except Exception:  # the tab was closed meanwhile
                    log.debug("tab closed before its deferred read was shown")

            self.server.builders.submit(work)

    def _fill_findings(self, div) -> None:
        """Diagnose the session now, and again as it grows (:class:`LiveFindings`,
        from :meth:`tick`)."""
        self.findings = LiveFindings(
            div,
            self.server.findings,
            self._storage(),
            self.session_id,
            self.worker_id,
            self.doc.add_next_tick_callback,
        )
        self.findings.start()

    # -- events ----------------------------------------------------------------------
    def _on_session(self, attr, old, new) -> None:
        if not new or new == self.session_id:
            return
        self.session_id, self.wanted = new, None
        self.worker_id = None
        self._set_worker_options()
        self.show()

    def _on_worker(self, attr, old, new) -> None:
        worker = None if new in ("", "all") else new
        if worker == self.worker_id:
            return
        self.worker_id = worker
        self.show()

    def tick(self) -> None:
        self.ticks += 1
        try:
            if self.ticks % SESSION_EVERY == 0 or self.session_id is None:
                self._refresh_sessions()
            if self.findings is not None:
                self.findings.tick()  # at most every findings.REFRESH_S, off this thread
            now = time.monotonic()
            if self.last_push is not None and now - self.last_push < STEADY_PUSH_S:
                return  # a steady stream is drawn once every STEADY_PUSH_S
            self.doc.hold("combine")  # one message to the browser per tick
            try:
                added = self.page.refresh()
            finally:
                self.doc.unhold()
            self.last_push = now if added else None
        except Exception:  # a storage hiccup must not end the tab's updates
            log.exception("live update of %s failed", self.path)

    def _refresh_sessions(self) -> None:
        known = listed_sessions(self.server, self.path, self.kinds)
        if self.page.on_sessions is not None:  # the compare page adds the new ones
            storages = dict(self.server.sessions())
            self.page.on_sessions([(s, storages[s]) for s in known if s in storages])
        if self.session_id is not None and self.session_id not in known:
            known = [*known, self.session_id]
        if known != self.known:
            self.known = known
            self.session_select.options = known or [""]
            self._show_origin()  # a new session may share a name with another file's
            if self.session_id is None and known:
                if self.wanted is None:
                    self.session_id = default_session(self.server, self.path)
                elif self.wanted in known:
                    self.session_id, self.wanted = self.wanted, None
                else:
                    return
                self.session_select.value = self.session_id
                self._set_worker_options()
                self.show()
                return
        if self.session_id is not None and self.path != "/train/compare":
            storage = self._storage()
            workers = storage.list_workers(self.session_id) if storage is not None else []
            have = [o for o in self.worker_select.options if o not in ("", "all")]
            if workers != have:
                self._set_worker_options()


def make_document(server, path: str, doc) -> None:
    """Fill a new Bokeh document for ``path`` (called by the Bokeh application)."""
    from embedviz.ui.server import page_template

    doc.template, variables = page_template(path)
    doc.template_variables.update(variables)
    Tab(server, path, doc)
