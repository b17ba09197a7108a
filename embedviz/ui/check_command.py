"""``embedviz check``: the diagnostics of :mod:`embedviz.stats.diagnostics` for every run
of a statistics file, or the session and worker asked for.

A file that is not ours, an unknown ``--session`` or ``--worker`` is one line (exit
status 2) worded as ``report`` words it, before anything else is printed.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import TextIO

from embedviz.errors import FileFormatError, InputError
from embedviz.ui.stats_args import (
    check_session,
    check_worker,
    names_text,
    open_stats,
    printable,
)


def run_check_command(
    path: str,
    session_id: str | None = None,
    worker_id: str | None = None,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``embedviz check``: print the diagnostics of every run (session and worker) of a
    statistics file, or of the one session and worker asked for; the exit status.

    Returns 1 when a finding is an error, or when the file holds no session or the
    runs checked hold no update (a CI gate over a training that recorded nothing
    fails), else 0; a run without updates is a warning (``no_updates``), not "no
    problems found". ``quiet`` prints only the warnings
    and errors, each under its run's line, and no summary. A file that cannot be read,
    or an unknown session or worker, raises (the command line prints one line, exit
    status 2) before anything is printed. Names are printed with control characters
    escaped.

    Parameters
    ----------
    path : str
        The statistics file.
    session_id, worker_id : str or None
        Check only this session / this worker (of each session that has it).
    quiet : bool, default=False
        Only the warnings and errors.
    stream, err : text files, default=None
        Where the findings / the error lines go (standard output and error).

    Examples
    --------
    >>> run_check_command("runs.db", worker_id="1")  # doctest: +SKIP
    0
    """
    from embedviz.stats.diagnostics import diagnose, format_finding

    stream = sys.stdout if stream is None else stream
    err = sys.stderr if err is None else err
    storage = open_stats(path, "check")
    errors = warnings = recorded = 0
    try:
        problems = storage.quick_check()
        if problems:
            raise FileFormatError(
                f"{path}: damaged statistics file (SQLite quick_check: "
                f"{'; '.join(problems)[:300]}); restore it from a copy, or recover what is "
                "readable with: sqlite3 FILE .recover | sqlite3 NEW.db"
            )
        sessions = storage.list_sessions()
        if not sessions:
            print(
                f"embedviz: error: no session recorded in {printable(path)}; the training "
                "wrote nothing (was the listener's storage this file, and was it closed or "
                "flushed?)",
                file=err,
            )
            return 1
        chosen = sessions
        if session_id is not None:
            chosen = [check_session(path, session_id, sessions, "check every one")]
        runs = []
        for sid in chosen:
            workers = storage.list_workers(sid)
            if worker_id is not None and session_id is not None:
                check_worker(path, sid, worker_id, workers, "check every worker")
            runs += [(sid, w) for w in workers if worker_id is None or w == worker_id]
        if worker_id is not None and not runs:
            seen = sorted({w for sid in chosen for w in storage.list_workers(sid)})
            raise InputError(
                f"--worker: no session in {printable(path)} has a worker "
                f"'{printable(worker_id)}'; its sessions have {names_text(seen, 'worker')}; "
                "give one of these, or leave out --worker to check every worker"
            )
        if not quiet:
            print(f"{printable(path)}: {len(sessions)} session(s)", file=stream)
        for sid, wid in runs:
            found = diagnose(storage, sid, wid)
            errors += sum(f.severity == "error" for f in found)
            warnings += sum(f.severity == "warning" for f in found)
            shown = [f for f in found if f.severity != "info"] if quiet else found
            info = storage.get_static_info(sid, wid)
            kind = f"{info.kind}, {info.model_class}" if info is not None else "no static info"
            n = storage.count_updates(sid, wid)
            recorded += n
            if n == 0:  # nothing to check is not "no problems found"
                warnings += 1
                nothing = _no_updates(sid, wid)
                found, shown = [nothing, *found], [nothing, *shown]
            elif quiet and not shown:
                continue
            header = f"session {sid} worker {wid} ({kind}; {n} update{'s' if n != 1 else ''})"
            print(printable(header), file=stream)
            if not found:
                print("  no problems found", file=stream)
            for f in shown:
                print(format_finding(f), file=stream)
        if not quiet:
            print(f"summary: {errors} error(s), {warnings} warning(s)", file=stream)
        if runs and not recorded:
            print(
                f"embedviz: error: no updates recorded in {printable(path)} for the runs "
                "checked; the training reported nothing (did it stop before its first "
                "report, or run no iteration?)",
                file=err,
            )
            return 1
    except sqlite3.DatabaseError as exc:  # a damaged page met while reading
        raise FileFormatError(f"{path}: damaged statistics file ({exc})") from None
    finally:
        storage.close()
    return 1 if errors else 0


def _no_updates(session_id: str, worker_id: str):
    """The warning of a run that recorded no update: nothing of it could be checked."""
    from embedviz.stats.diagnostics import Finding

    return Finding(
        "warning", "no_updates", session_id, worker_id, None, None,
        "no updates recorded, so nothing could be checked",
        "the training stopped before its first report or ran no iteration; call "
        "listener.step() once per iteration (a run in progress reports at iteration 0, "
        "after its first step)",
        where="run",
    )  # fmt: skip


def add_check_command(subparsers) -> None:
    """Register ``embedviz check DB``: the diagnostics of :mod:`embedviz.stats.diagnostics`."""
    p = subparsers.add_parser(
        "check",
        help="diagnose recorded runs (exit status 1 when a finding is an error)",
        description=(
            "Read a statistics file and print findings (exploding or vanishing updates, loss "
            "spikes, dead units, divergence, ...) with their evidence and advice, for every "
            "session and worker (or those given). Exit status: 0, 1 when a finding is an "
            "error or the file holds no session or no update, 2 when the file or an "
            "option is wrong."
        ),
        epilog="example: embedviz check runs.db (in CI: embedviz check -q runs.db)",
    )
    p.add_argument("storage", metavar="DB", help="statistics file")
    p.add_argument("--session", help="check only this session (default: every one)")
    p.add_argument(
        "--worker",
        help="check only this worker (rank) of a distributed run, in each session that has "
        "it (default: every worker)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the warnings and errors found, each under its run's line (no "
        "summary); the exit status is the same",
    )
    p.set_defaults(func=lambda a: run_check_command(a.storage, a.session, a.worker, quiet=a.quiet))
