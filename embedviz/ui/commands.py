"""``embedviz ui``, ``embedviz report`` and ``embedviz check``: the functions the command
line calls.

:func:`run_ui`, :func:`run_report` and :func:`run_check_command` take plain values and
return the exit status; :func:`add_ui_command`, :func:`add_report_command` and
:func:`add_check_command` register the subcommands in the style of :mod:`embedviz.cli`
(``"embedviz.ui.commands:add_ui_command"`` ... in its ``COMMANDS``). User errors raise
:class:`~embedviz.errors.EmbedvizError` subclasses with one message, which the command
line prints on one line. The three commands word a file that is not ours, an unknown
``--session`` and an unknown ``--worker`` alike (:mod:`embedviz.ui.stats_args`), with
the advice that fits the command; ``check`` lives in :mod:`embedviz.ui.check_command`
(imported here).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from embedviz._defaults import UI_DEFAULTS
from embedviz.errors import EmbedvizError, FileFormatError, InputError
from embedviz.ui.check_command import add_check_command, run_check_command  # noqa: F401
from embedviz.ui.stats_args import check_session, check_worker, open_stats, printable

log = logging.getLogger(__name__)

#: a shorter token gets a warning: 16 random characters (openssl rand -hex 16 gives
#: 32) are out of reach of guessing over HTTP
MIN_TOKEN_CHARS = 16

# the names the library's messages use -> the options of the command line
_OPTIONS = {
    "session_id": "--session",
    "worker_id": "--worker",
    "token": "--token",
    "port": "--port",
    "host": "--host",
}


def in_option_words(exc: EmbedvizError) -> EmbedvizError:
    """``exc`` with a message that starts with a parameter's name (``session_id: ...``)
    reworded to start with the command line's option (``--session: ...``).

    Examples
    --------
    >>> str(in_option_words(InputError("session_id: no session 'x'")))
    "--session: no session 'x'"
    """
    text = str(exc)
    name, sep, rest = text.partition(":")
    option = _OPTIONS.get(name.strip())
    if not sep or option is None:
        return exc
    rest = rest.replace(f" ({option})", "")
    return type(exc)(f"{option}:{rest}")


def unique_paths(paths: list[str]) -> list[str]:
    """``paths`` without a file given again (under the same or another name), in order;
    a warning names each one dropped.

    Examples
    --------
    >>> unique_paths(["runs.db", "./runs.db", "dup.db"])  # doctest: +SKIP
    ['runs.db', 'dup.db']
    """
    out, seen = [], {}
    for path in paths:
        p = Path(path).expanduser()
        try:
            key = p.resolve()
        except OSError:  # pragma: no cover - an unresolvable path is reported on opening
            key = p
        if key in seen:
            log.warning("%s is the same file as %s: showing it once", path, seen[key])
            continue
        seen[key] = path
        out.append(path)
    return out


def open_for_ui(path: str, create: bool = False, writable: bool | None = None):
    """Open a statistics file for the UI.

    Only the file that receives remote records is opened for writing (``writable``,
    by default ``create``); every other file is opened read-only, so viewing never
    changes it (a version 1 file stays version 1, readable by an older embedviz).

    Parameters
    ----------
    path : str
        The statistics file.
    create : bool, default=False
        Create the file when missing (it receives remote records).
    writable : bool or None, default=None
        Open for writing; None means ``create``.

    Examples
    --------
    >>> open_for_ui("runs.db")  # doctest: +SKIP
    """
    writable = create if writable is None else writable
    p = Path(path).expanduser()
    if p.is_dir():
        raise FileFormatError(f"{p}: is a directory; give a statistics file such as runs.db")
    if not p.exists():
        if not create:
            raise FileFormatError(
                f"{p}: no such statistics file; check the path, start the training first, "
                "or add --enable-remote to receive remote records into a new file"
            )
        log.info("creating %s to receive remote records", p)
    return open_stats(p, "ui", create=create, writable=writable)


def read_token_file(path: str | os.PathLike) -> str:
    """The bearer token kept in the file ``path`` (its first line, surrounding blanks removed).

    A token on the command line (``--token``) is visible to every user in ``ps``; a file
    readable by its owner only is not. A group- or world-readable file is used, with a
    warning.

    Raises
    ------
    InputError
        The file cannot be read, or holds no token.

    Examples
    --------
    >>> read_token_file("~/.embedviz-token")  # doctest: +SKIP
    's3cret'
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise InputError(
            f"--token-file: cannot read {p} ({reason}); give a readable file holding the "
            "token on its first line (e.g. created with: umask 077; openssl rand -hex 32 > FILE)"
        ) from None
    lines = text.splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise InputError(
            f"--token-file: {p} is empty or its first line is blank; write the token on "
            "the first line"
        )
    try:
        if p.stat().st_mode & 0o077:
            log.warning("%s can be read by other users; chmod 600 it to keep the token", p)
    except OSError:  # pragma: no cover - the file was just read
        pass
    return token


def run_ui(
    paths: list[str],
    *,
    host: str = UI_DEFAULTS["host"],
    port: int = UI_DEFAULTS["port"],
    enable_remote: bool = False,
    token: str | None = None,
    open_browser: bool = False,
    token_file: str | os.PathLike | None = None,
) -> int:
    """Serve the training UI for the statistics files in ``paths`` until Ctrl-C.

    Parameters
    ----------
    paths : list of str
        SQLite statistics files (may be empty with ``enable_remote``: records are then
        kept in memory). A missing file is an error, unless ``enable_remote``, which
        creates the first one to receive into.
    host, port : str, int
        Where to listen (127.0.0.1:9000 by default, ``embedviz._defaults.UI_DEFAULTS``).
        This and every later parameter are keyword-only.
    enable_remote : bool
        Accept ``POST /api/records`` from remote routers.
    token : str or None
        The token the whole UI requires: pages, websockets, ``/api/sessions`` and the
        receiver (``Authorization: Bearer``; a browser opens the logged URL, which
        carries ``?token=``, once). Visible in ``ps``: prefer ``token_file``.
    open_browser : bool
        Open the overview in the default browser.
    token_file : str or Path or None
        File whose first line is the bearer token (see :func:`read_token_file`); not
        together with ``token``.

    Returns
    -------
    int
        0 after a clean shutdown.

    Examples
    --------
    >>> run_ui(["runs.db"])  # doctest: +SKIP
    """
    from embedviz.stats.limits import check_token
    from embedviz.ui.server import UIServer

    if token_file is not None:
        if token is not None:
            raise InputError("--token-file: give either --token or --token-file, not both")
        token = check_token(read_token_file(token_file), "--token-file")
    elif token is not None:
        if isinstance(token, str) and not token.strip():
            raise InputError(
                "--token: expected a token, got an empty one; give at least "
                f"{MIN_TOKEN_CHARS} random characters (e.g. openssl rand -hex 16), or no --token"
            )
        check_token(token, "--token")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        log.warning(
            "the token has %d characters; one this short can be guessed: use at least %d "
            "random ones (e.g. openssl rand -hex 16)",
            len(token),
            MIN_TOKEN_CHARS,
        )
    if isinstance(paths, str | os.PathLike):
        raise InputError(
            f"paths: expected a list of statistics files, got the one path {paths!r:.80}; "
            f"give it in a list: run_ui([{str(paths)!r:.80}])"
        )
    paths = unique_paths(list(paths))
    if not paths and not enable_remote:
        raise InputError(
            "STORAGE: give at least one statistics file (e.g. embedviz ui runs.db), or "
            "--enable-remote to receive records from remote training processes"
        )
    try:
        ui = UIServer(port=port, host=host, enable_remote=enable_remote, token=token)
    except InputError as exc:
        raise in_option_words(exc) from None
    storages = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        # a SIGTERM between start() and run_until_shutdown() still stops cleanly
        previous = signal.signal(signal.SIGTERM, lambda *_: ui.shutdown_requested.set())
    try:
        for i, path in enumerate(paths):
            # only the first file receives remote records; the others are only read
            storages.append(ui.attach(open_for_ui(path, create=enable_remote and i == 0)))
        ui.start()
        url = ui.page_url("/train/overview")  # carries ?token= when a token is set
        log.info("serving the UI at %s (Ctrl-C stops it)", url)
        if enable_remote:
            log.info(
                "remote receiver on at %s/api/records%s",
                ui.url,
                " (Authorization: Bearer token required)" if token else "",
            )
        if open_browser:
            _open_browser(url)
        ui.run_until_shutdown()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        ui.stop()
        for s in storages:
            _close_received(s)
    return 0


def _open_browser(url: str) -> None:
    """``--open``: the default browser, or one line saying to open the URL (no display,
    no browser installed)."""
    import webbrowser

    try:
        opened = webbrowser.open(url)
    except Exception:  # a broken BROWSER setting
        opened = False
    if not opened:
        log.warning("could not start a browser here; open %s yourself", url)


def _close_received(storage) -> None:
    """Close an attached file at the UI's end. While the file cannot be written (disk
    full), the records received meanwhile were answered 503, so their senders keep them
    and send them again: one warning says so, bounded in time, instead of the storage's
    advice to call close() again and a second report at exit."""
    from embedviz.errors import StatsWriteError
    from embedviz.stats.sqlite_close import CLOSE_WAIT
    from embedviz.stats.storage import SQLiteStatsStorage

    if not isinstance(storage, SQLiteStatsStorage):
        storage.close()
        return
    try:
        storage.close(timeout=CLOSE_WAIT, drop_unwritten=True)
    except StatsWriteError as exc:
        log.warning(
            "%s: %d received record(s) are not written (%s); their senders were answered "
            "503 and keep them to send again",
            exc.path, exc.unwritten, exc.cause,
        )  # fmt: skip


def run_report(
    path: str, output: str, session_id: str | None = None, worker_id: str | None = None
) -> int:
    """Write the static HTML report of the statistics file ``path`` to ``output``.

    The output is checked first (a folder, a missing folder, a read-only place, the
    statistics file itself), then the file, the session and the worker.

    Examples
    --------
    >>> run_report("runs.db", "report.html")  # doctest: +SKIP
    0
    """
    from embedviz._paths import same_file
    from embedviz.plot._command_files import check_writable
    from embedviz.ui.report import write_report

    out = Path(output).expanduser()
    if Path(path).expanduser().exists() and same_file(path, out):
        raise InputError(
            f"-o: the report would overwrite the statistics file {path}: both name one file; "
            "choose another output path"
        )
    try:
        check_writable(out, "report")
    except InputError as exc:
        raise InputError(f"-o: {exc}") from None
    storage = open_stats(path, "report")
    try:
        sessions = storage.list_sessions()
        chosen = check_session(path, session_id, sessions, "report the newest")
        if session_id is None and len(sessions) > 1:
            log.info(
                "report on session '%s', the newest of %d; choose another with --session NAME",
                printable(chosen),
                len(sessions),
            )
        if worker_id is not None:
            workers = storage.list_workers(chosen)
            check_worker(path, chosen, worker_id, workers, "report the first")
        try:
            written = write_report(storage, out, session_id=chosen, worker_id=worker_id)
        except EmbedvizError as exc:
            raise in_option_words(exc) from None
    finally:
        storage.close()
    log.info("wrote %s", written)
    return 0


def add_ui_command(subparsers) -> None:
    """Register ``embedviz ui [STORAGE ...]``."""
    p = subparsers.add_parser(
        "ui",
        help="serve the live training UI for statistics files",
        description=(
            "Serve the training UI (overview, model, system, compare, embeddings) for SQLite "
            "statistics files; pages update live while training writes."
        ),
        epilog=(
            f"example: embedviz ui runs.db, then open "
            f"http://{UI_DEFAULTS['host']}:{UI_DEFAULTS['port']}/"
        ),
    )
    p.add_argument("storage", nargs="*", metavar="STORAGE", help="statistics file(s)")
    p.add_argument(
        "--port", type=int, default=UI_DEFAULTS["port"], help="port (default %(default)s)"
    )
    p.add_argument(
        "--host", default=UI_DEFAULTS["host"], help="interface to bind (default %(default)s)"
    )
    p.add_argument(
        "--enable-remote",
        action="store_true",
        help="accept POST /api/records from RemoteStatsRouter",
    )
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--token",
        help=(
            "token for the whole UI: scripts and remote routers send 'Authorization: "
            "Bearer T', a browser opens the printed URL with ?token=T once (then a "
            "cookie); visible in ps, prefer --token-file"
        ),
    )
    secret.add_argument(
        "--token-file",
        metavar="PATH",
        help="file whose first line is the token (chmod 600); as --token",
    )
    p.add_argument("--open", action="store_true", help="open the UI in a browser")
    p.add_argument("-q", "--quiet", action="store_true", help="no messages")
    p.set_defaults(
        func=lambda a: run_ui(
            a.storage,
            host=a.host,
            port=a.port,
            enable_remote=a.enable_remote,
            token=a.token,
            open_browser=a.open,
            token_file=a.token_file,
        )
    )


def add_report_command(subparsers) -> None:
    """Register ``embedviz report DB -o report.html``."""
    p = subparsers.add_parser(
        "report",
        help="write a static HTML report of a recorded run",
        description="Write the overview, model and system views of a run as one HTML file.",
        epilog="example: embedviz report runs.db -o report.html",
    )
    p.add_argument("storage", metavar="DB", help="statistics file")
    p.add_argument(
        "-o", "--output", default="report.html", help="HTML file to write (default report.html)"
    )
    p.add_argument("--session", help="session to report (default: the newest)")
    p.add_argument(
        "--worker",
        help="worker (rank) of a distributed run whose overview and model views to show "
        "(default: the first; the system view shows every worker)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no messages")
    p.set_defaults(func=lambda a: run_report(a.storage, a.output, a.session, a.worker))
