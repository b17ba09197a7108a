"""``embedviz ui``: the live training UI on the Bokeh server.

One Bokeh application per page -- ``/train/overview``, ``/train/model``,
``/train/system``, ``/train/compare``, ``/embeddings`` (``/`` redirects to the
overview) -- plus two tornado routes, ``POST /api/records`` (the remote receiver, off
unless ``enable_remote``) and ``GET /api/sessions`` (:mod:`embedviz.ui.receiver`).

Every browser tab is one Bokeh document: a bar with the page links and the session and
worker dropdowns, and the page built by the page builders of :mod:`embedviz.ui.pages`.
A periodic callback (``refresh_interval``, 0.5 s) calls the page's ``refresh()``, which
reads what arrived after the newest drawn iteration and streams only those points; the
session list is re-read every few ticks, so new sessions appear without a restart.

A page loads only the BokehJS bundles it uses (:data:`PAGE_BUNDLES`: no MathJax, WebGL
only for the embedding maps), not all five a Bokeh server sends by default.

Page builds read through a :class:`~embedviz.ui.cache.SeriesCache` shared by the tabs,
so opening a page again reads only what was recorded since; at start, the newest
session's overview is read into it in the background.

The UI only reads storages (any number, attached with :meth:`UIServer.attach`; a file
attached twice is shown once). A session whose name a storage attached earlier already
shows (two copies of ``runs.db`` both holding ``baseline``) is listed as
``NAME (file.db)``: :meth:`UIServer.sessions` gives it with a
:class:`~embedviz.ui.session_view.SessionView` (the storage's read API, that session
under the label), so the pages read it like any other
and cannot write through it; a warning names such sessions once, and a label, once
given, stays. A page opens on the first file's session of such a name (the one the name
alone means), and a note under the dropdowns says which file holds which
(:func:`~embedviz.ui.shell.same_name_note`). The receiver writes into the first
attached SQLite storage, or into an in-memory storage it attaches itself. It binds
127.0.0.1 unless told otherwise, and accepts websocket connections only from the
address it serves. With a ``token``, every
page, websocket and JSON route requires it (:mod:`embedviz.ui.auth`; the BokehJS files stay open).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from tornado.web import RedirectHandler

from embedviz._check import check_int, check_number
from embedviz._defaults import UI_DEFAULTS
from embedviz._paths import same_file
from embedviz.errors import InputError
from embedviz.ui.auth import HostCheck, TokenAuth, TokenGate, log_request
from embedviz.ui.cache import SeriesCache
from embedviz.ui.diagnose import FindingsRunner
from embedviz.ui.receiver import (
    DEFAULT_MAX_BODY_BYTES,
    ReceiverConfig,
    RecordsHandler,
    SessionsHandler,
)
from embedviz.ui.session_view import SessionView

log = logging.getLogger(__name__)

PAGES = {
    "/train/overview": "Overview",
    "/train/model": "Model",
    "/train/system": "System",
    "/train/compare": "Compare runs",
    "/embeddings": "Embeddings",
}


# the BokehJS bundles besides ``bokeh`` that a page may need (a Bokeh server sends all
# five to every page, 4 MB; MathJax alone is 1.8 MB that every open parses and runs):
# widgets and tables everywhere, WebGL only where a large embedding map asks for it
# (plot/_common.py draws 5,000 points and more with WebGL), MathJax nowhere (no page
# asks for TeX; BokehJS shows such text as it is without the bundle)
PAGE_BUNDLES = {path: {"bokeh-widgets", "bokeh-tables"} for path in PAGES}
PAGE_BUNDLES["/embeddings"] = {"bokeh-widgets", "bokeh-tables", "bokeh-gl"}
_BUNDLE_TAG = re.compile(
    r'<script[^>]*\ssrc="[^"]*/(bokeh-[a-z0-9]+)(?:\.min)?\.js(?:\?[^"]*)?"[^>]*>\s*</script>\s*'
)


def keep_bundles(scripts: str, wanted: set[str]) -> str:
    """``scripts`` (the page's BokehJS ``<script src=...>`` tags) without the optional
    bundles (``bokeh-gl``, ``bokeh-mathjax``, ...) that are not in ``wanted``.

    Scripts inlined or from elsewhere are kept as they are.

    Examples
    --------
    >>> core = '<script src="/static/js/bokeh.min.js?v=1"></script>'
    >>> keep_bundles(core + '<script src="/static/js/bokeh-mathjax.min.js?v=2"></script>', set())
    '<script src="/static/js/bokeh.min.js?v=1"></script>'
    """
    return _BUNDLE_TAG.sub(lambda m: m.group(0) if m.group(1) in wanted else "", scripts)


_TEMPLATE = None


def page_template(path: str) -> tuple[object, dict]:
    """``(template, variables)`` for a document of ``path``: Bokeh's page, loading only
    the bundles of :data:`PAGE_BUNDLES` (set as ``doc.template``,
    ``doc.template_variables``)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        from bokeh.core.templates import get_env

        _TEMPLATE = get_env().from_string(
            "{% extends base %}\n{% block js_resources %}"
            "{{ embedviz_bundles(bokeh_js) if bokeh_js }}{% endblock %}"
        )
    wanted = PAGE_BUNDLES.get(path, {"bokeh-widgets", "bokeh-tables", "bokeh-gl"})
    return _TEMPLATE, {"embedviz_bundles": lambda scripts: keep_bundles(scripts, wanted)}


def _short_name(name: str) -> str:
    """``/data/a/runs.db`` -> ``runs.db`` (a storage's name as a label's suffix)."""
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or name


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class UIServer:
    """The training UI: attach storages, start, browse ``http://host:port/``.

    Parameters
    ----------
    port : int, default=9000
        0 picks a free port (see :attr:`port` after :meth:`start`). The defaults of
        ``port`` and ``host`` are ``embedviz._defaults.UI_DEFAULTS``, shared with
        :func:`~embedviz.ui.commands.run_ui` and ``embedviz ui``.
    host : str, default="127.0.0.1"
        The interface to bind; "0.0.0.0" exposes the UI (and the receiver) to the network.
        This and every later parameter are keyword-only (``run_ui`` takes ``host``
        before ``port``: a positional call could not mean the same in both).
    enable_remote : bool, default=False
        Accept ``POST /api/records`` from :class:`~embedviz.stats.remote.RemoteStatsRouter`.
    token : str, default=None
        When set, the whole UI requires it: scripts and remote routers send
        ``Authorization: Bearer <token>``; a browser opens :meth:`page_url` (``?token=``)
        once and is then let in by a cookie (:mod:`embedviz.ui.auth`). None: open to
        anyone who can reach the address, as the receiver is when enabled.
    max_body_bytes : int, default=8 MiB
        The largest request body the receiver accepts (413 above).
    refresh_interval : float, default=0.5
        Seconds between live updates of an open page.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> ui = UIServer(port=0)
    >>> ui.attach(InMemoryStatsStorage())  # doctest: +ELLIPSIS
    <embedviz.stats.storage.InMemoryStatsStorage object at ...>
    >>> ui.start(); url = ui.url; ui.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        port: int = UI_DEFAULTS["port"],
        *,
        host: str = UI_DEFAULTS["host"],
        enable_remote: bool = False,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        refresh_interval: float = 0.5,
    ) -> None:
        port = check_int("port", port, low=0, high=65535)
        if not isinstance(host, str) or not host:
            raise InputError(f"host: expected an address such as 127.0.0.1, got {host!r:.60}")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise InputError("token: expected a non-empty string or None")
        max_body_bytes = check_int("max_body_bytes", max_body_bytes, low=1024)
        refresh_interval = check_number("refresh_interval", refresh_interval, 0.05, 1.0)
        self.host = host
        self.port = port
        self.refresh_interval = refresh_interval
        self.receiver = ReceiverConfig(bool(enable_remote), token, max_body_bytes)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="embedviz-receiver")
        self.findings = FindingsRunner()
        self.series_cache = SeriesCache()
        # set once the start's warm-up read is done: page builds wait for it rather
        # than read the same rows beside it
        self.warmed = threading.Event()
        self.warmed.set()
        self.builders = ThreadPoolExecutor(2, thread_name_prefix="embedviz-pages")
        self._storages: list[tuple[str, object]] = []
        self._lock = threading.Lock()
        # (id(storage), session id) -> (label, view or None); label -> that key
        self._labels: dict[tuple[int, str], tuple[str, object]] = {}
        self._label_owner: dict[str, tuple[int, str]] = {}
        self._thread: threading.Thread | None = None
        self._loop = None
        self._server = None
        self._error: BaseException | None = None
        self._memory = None
        self.gate: TokenGate | None = None  # set by start() when a token is given
        # set (by SIGTERM) to end run_until_shutdown; the command line sets it from
        # before start(), so a SIGTERM right after the URL is logged is not lost
        self.shutdown_requested = threading.Event()

    # -- storages ------------------------------------------------------------------
    def attach(self, storage, name: str | None = None):
        """Show ``storage`` (in memory or SQLite); may be called while running. Returns it.

        A storage of a file already attached (the same file under another name or
        opened again) is not attached a second time; a warning says so.
        """
        if not all(hasattr(storage, m) for m in ("list_sessions", "get_updates", "get_series")):
            raise InputError(
                f"storage: expected an InMemoryStatsStorage or SQLiteStatsStorage, got "
                f"{type(storage).__name__}"
            )
        if name is None:
            path = getattr(storage, "path", None)
            name = str(path) if path is not None else f"memory-{len(self._storages)}"
        path = getattr(storage, "path", None)
        with self._lock:
            if any(s is storage for _, s in self._storages):
                return storage
            for held_name, held in self._storages:
                held_path = getattr(held, "path", None)
                if path is not None and held_path is not None and same_file(path, held_path):
                    log.warning("%s is already shown (as %s): not attached again", name, held_name)
                    return storage
            self._storages.append((name, storage))
        return storage

    def detach(self, storage) -> None:
        """Stop showing ``storage``."""
        with self._lock:
            self._storages = [(n, s) for n, s in self._storages if s is not storage]
            for key in [k for k in self._labels if k[0] == id(storage)]:
                label, _ = self._labels.pop(key)
                self._label_owner.pop(label, None)
        self.series_cache.clear()

    def named_storages(self) -> list[tuple[str, object]]:
        """(name, storage) of every attached storage, in attach order."""
        with self._lock:
            return list(self._storages)

    def receiving_storage(self):
        """Where remote records go: the first attached SQLite storage, else in memory."""
        from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage

        with self._lock:
            for _, s in self._storages:
                if isinstance(s, SQLiteStatsStorage) and not s.read_only:
                    return s
            if self._memory is None:  # bounded so that the server stays under 300 MB
                # (the estimate is ~1.1-1.6x the memory held; one record up to 16 MiB)
                self._memory = InMemoryStatsStorage(max_bytes=128 * 2**20)
                self._storages.append(("remote (in memory)", self._memory))
            return self._memory

    def sessions(self) -> list[tuple[str, object]]:
        """(name shown, storage) for every session of every attached storage.

        A session is shown under its own id, unless a storage attached earlier holds a
        session of that name: it is then shown as ``NAME (file.db)``, with a
        :class:`SessionView` as its storage (see the module text).
        """
        return [(label, view) for label, _, _, view in self.session_entries()]

    def session_entries(self) -> list[tuple[str, str, object, object]]:
        """(name shown, session id, storage, storage to read it through) for every
        session, storages in attach order (see :meth:`sessions`)."""
        out, added = [], []
        for name, storage in self.named_storages():
            try:
                sids = storage.list_sessions()
            except Exception:  # a storage gone bad must not take the UI down
                log.exception("listing sessions failed")
                continue
            with self._lock:
                for sid in sids:
                    held = self._labels.get((id(storage), sid))
                    if held is None:
                        held = self._label(name, storage, sid)
                        if held[1] is not None:
                            added.append((held[0], sid, name))
                    label, view = held
                    out.append((label, sid, storage, view if view is not None else storage))
        if added:
            shown = ", ".join(f"{sid!r} of {name} as {label!r}" for label, sid, name in added[:10])
            more = f" and {len(added) - 10} more" if len(added) > 10 else ""
            log.warning(
                "%d session(s) have the name of a session of a storage attached before them; "
                "showing %s%s",
                len(added),
                shown,
                more,
            )
        return out

    def _label(self, name: str, storage, sid: str) -> tuple[str, object]:
        """The label of a session seen for the first time (under ``self._lock``)."""
        key = (id(storage), sid)
        labels = [sid, f"{sid} ({_short_name(name)})", f"{sid} ({name})"]
        label = next((x for x in labels if x not in self._label_owner), None)
        n = 1
        while label is None or label in self._label_owner:
            n += 1
            label = f"{sid} ({name} #{n})"
        view = None if label == sid else SessionView(storage, sid, label)
        self._labels[key] = (label, view)
        self._label_owner[label] = key
        return label, view

    # -- running -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def page_url(self, path: str = "/train/overview") -> str:
        """The URL to open ``path`` in a browser: with ``?token=`` when a token is set,
        which the server trades for a cookie and removes from the address bar."""
        if self.receiver.token is None:
            return self.url + path
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path}{sep}token={quote(self.receiver.token, safe='')}"

    def _applications(self) -> dict[str, Application]:
        from embedviz.ui.shell import make_document

        def app(path):
            return Application(FunctionHandler(lambda doc: make_document(self, path, doc)))

        return {path: app(path) for path in PAGES}

    def _serve(self, ready: threading.Event) -> None:
        from bokeh.server.server import Server

        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            from tornado.ioloop import IOLoop

            self._loop = IOLoop.current()
            if self.port == 0:
                self.port = _free_port(self.host)
            origins = [f"localhost:{self.port}", f"127.0.0.1:{self.port}"]
            if self.host not in ("localhost", "127.0.0.1"):
                origins.append(f"{self.host}:{self.port}")
            if self.host in ("0.0.0.0", "::"):
                origins = ["*"]
                if self.receiver.token is None:
                    log.warning(
                        "the UI listens on every interface: anyone who can reach port %d "
                        "can read it (give a token to require one)",
                        self.port,
                    )
            hosts = HostCheck(self.host, self.receiver.token is not None)
            # every page, websocket and redirect: the Host checked (DNS rebinding), and
            # session ids signed with a random secret per server, so a websocket from
            # another site cannot open a session under an id it made up (Bokeh's
            # WSHandler and SessionHandler check it)
            guard = {
                "auth_provider": TokenAuth(None, hosts),
                "sign_sessions": True,
                "secret_key": secrets.token_urlsafe(48).encode(),
            }
            if self.receiver.token is not None:
                self.gate = TokenGate(self.receiver.token, self.port)
                guard = {
                    "auth_provider": TokenAuth(self.gate, hosts),
                    "sign_sessions": True,
                    "secret_key": guard["secret_key"],
                    # the credentials stay out of the session token sent in the page
                    "exclude_headers": ["Authorization", "Cookie"],
                    "exclude_cookies": [self.gate.cookie_name],
                    "log_function": log_request,  # no token in the access log
                }
            redirect = {"url": "/train/overview", "gate": self.gate, "hosts": hosts}
            extra = [
                (r"/", GuardedRedirectHandler, redirect),
                (r"/train/?", GuardedRedirectHandler, redirect),
                (r"/api/records", RecordsHandler, {"server": self}),
                (r"/api/sessions", SessionsHandler, {"server": self}),
            ]
            self._server = Server(
                self._applications(),
                io_loop=self._loop,
                port=self.port,
                address=self.host,
                allow_websocket_origin=origins,
                extra_patterns=extra,
                http_server_kwargs={"max_body_size": 4 * self.receiver.max_body_bytes + 2**20},
                check_unused_sessions_milliseconds=5000,
                unused_session_lifetime_milliseconds=15000,
                **guard,
            )
            self._server.start()
        except BaseException as exc:  # reported to the caller of start()
            self._error = exc
            ready.set()
            return
        ready.set()
        self._loop.start()

    def start(self) -> UIServer:
        """Serve in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="embedviz-ui", daemon=True
        )
        self._thread.start()
        ready.wait(60)
        if self._error is not None:
            err, self._error, self._thread = self._error, None, None
            if isinstance(err, OSError):
                raise InputError(
                    f"cannot listen on {self.host}:{self.port}: {err.strerror or err}; "
                    "choose another --port or --host"
                ) from None
            raise err
        log.debug("embedviz UI at %s/train/overview", self.url)
        self.session_entries()  # names sessions shown under a label, once, at start
        self.warmed.clear()
        self.builders.submit(self._warm_up)
        return self

    def _warm_up(self) -> None:
        """Read the newest session's overview into the series cache (as TensorBoard
        loads its runs at start), so that the page a user opens first is served from
        memory; the diagnostics are not run."""
        from embedviz.ui.pages.overview import build_overview
        from embedviz.ui.shell import default_session

        try:
            session_id = default_session(self, "/train/overview")
            if session_id is None:
                return
            storage = dict(self.sessions())[session_id]
            reads = self.series_cache.wrap(storage)
            page = build_overview(reads, session_id, findings=False, defer_reads=True)
            for read, _ in page.deferred:
                read()
        except Exception:  # only a head start: a failure shows when the page is opened
            log.debug("warming the series cache up failed", exc_info=True)
        finally:
            self.warmed.set()

    def stop(self) -> None:
        """Stop serving; wait for the server thread and for page builds still running.

        Attached storages stay open (the caller closes them).
        """
        if self._thread is None:
            return
        loop, server = self._loop, self._server

        def shutdown() -> None:
            try:
                if server is not None:
                    server.stop()
            finally:
                loop.stop()

        loop.add_callback(shutdown)
        self._thread.join(10)
        self._thread = None
        self.executor.shutdown(wait=True)
        # wait for running page builds and diagnostics: after stop() returns nothing of
        # ours reads the storages, so the caller may close them
        self.findings.shutdown()
        self.builders.shutdown(wait=True, cancel_futures=True)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="embedviz-receiver")
        self.findings = FindingsRunner()
        self.builders = ThreadPoolExecutor(2, thread_name_prefix="embedviz-pages")

    def run_until_shutdown(self) -> None:
        """Start (if needed) and serve until Ctrl-C or SIGTERM, then stop cleanly."""
        import signal

        stop = self.shutdown_requested
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.start()
        try:
            while not stop.is_set() and self._thread is not None and self._thread.is_alive():
                stop.wait(0.5)
        except KeyboardInterrupt:
            log.info("stopping the UI")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.stop()
            stop.clear()

    def __enter__(self) -> UIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class GuardedRedirectHandler(RedirectHandler):
    """``/`` and ``/train``: the redirect to the overview, behind the token when set."""

    def initialize(
        self, url: str, gate: TokenGate | None = None, hosts: HostCheck | None = None, **kwargs
    ) -> None:
        super().initialize(url, **kwargs)
        self.gate = gate
        self.hosts = hosts

    def prepare(self) -> None:
        if self.hosts is not None and not self.hosts.admit(self):
            return
        if self.gate is not None:
            self.gate.admit_page(self)


def nav_html(path: str, session_id: str | None) -> str:
    """The page links, the current one in bold (session carried in the query)."""
    query = f"?session={quote(session_id, safe='')}" if session_id else ""
    links = []
    for p, title in PAGES.items():
        style = "font-weight:bold;color:#000" if p == path else "color:#1f77b4"
        links.append(
            f"<a href='{html.escape(p + query, quote=True)}' style='margin-right:18px;"
            f"text-decoration:none;{style}'>{html.escape(title)}</a>"
        )
    return (
        "<div style='font-size:15px;padding:6px 0'><b style='margin-right:24px'>embedviz</b>"
        + "".join(links)
        + "</div>"
    )
