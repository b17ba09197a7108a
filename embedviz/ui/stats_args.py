"""The statistics file, ``--session`` and ``--worker`` of ``embedviz ui``, ``report`` and
``check``: opened and checked alike, with one wording for each mistake and the advice
that fits the command (only ``ui --enable-remote`` may take a new file; ``check``
checks every session without ``--session``, ``report`` shows the newest).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from embedviz.errors import FileFormatError, InputError
from embedviz.stats.limits import escape_controls

#: the advice the storage gives for a file that is not ours; right only where a new
#: file may be created (``embedviz ui --enable-remote``'s first file)
_STORAGE_ADVICE = "give a file written by SQLiteStatsStorage or a new path"
#: what each command reads, for the advice that replaces it
_ADVICE = {
    "check": "give the statistics file a training wrote (SQLiteStatsStorage, e.g. runs.db)",
    "report": "give the statistics file a training wrote (SQLiteStatsStorage, e.g. runs.db)",
    "ui": "give the statistics file a training wrote (SQLiteStatsStorage, e.g. runs.db)",
    "ui-remote": (
        "give a file written by SQLiteStatsStorage, or a new path to receive remote records into"
    ),
}
_VECTOR_SUFFIXES = {".txt", ".bin", ".vec", ".kv", ".model", ".gz", ".bz2", ".wordvectors"}
#: the most session or worker names an error message lists
SHOWN_NAMES = 5


def open_stats(path: str | os.PathLike, command: str, *, create: bool = False, writable=None):
    """Open the statistics file ``path`` for ``command`` (``"check"``, ``"report"`` or
    ``"ui"``): a file that is not ours is refused with the advice that fits the command
    (only ``ui --enable-remote`` can take a new path instead).

    Parameters
    ----------
    path : str or Path
        The statistics file.
    command : str
        The command asking, for the advice.
    create : bool, default=False
        A missing file may be created (it receives remote records).
    writable : bool or None, default=None
        Open for writing; None means ``create``.

    Raises
    ------
    FileFormatError
        The file is missing, a folder, not SQLite, or another program's SQLite file.

    Examples
    --------
    >>> open_stats("w2v.txt", "check")  # doctest: +SKIP
    Traceback (most recent call last):
    FileFormatError: w2v.txt: not an embedviz statistics file (not SQLite); give the ...
    """
    from embedviz.stats.storage import SQLiteStatsStorage

    writable = create if writable is None else writable
    p = Path(path).expanduser()
    try:
        return SQLiteStatsStorage(p, read_only=not writable)
    except FileFormatError as exc:
        text = str(exc)
        if not text.endswith(_STORAGE_ADVICE):
            raise
        advice = _ADVICE["ui-remote" if command == "ui" and create else command]
        if "(not SQLite)" in text and p.suffix.lower() in _VECTOR_SUFFIXES:
            advice += f"; word vectors are mapped with: embedviz tsne {p}"
        raise FileFormatError(text[: -len(_STORAGE_ADVICE)] + advice) from None


def printable(text: str) -> str:
    """``text`` with control characters escaped, as
    :func:`embedviz.stats.diagnostics.printable` shows names (one rule:
    :func:`~embedviz.stats.limits.escape_controls`, light enough for the command line's
    parser, which imports this module)."""
    return escape_controls(str(text))


def names_text(names: list[str], what: str) -> str:
    """``3 sessions: 'a', 'b', 'c'`` or ``40 sessions, the newest 5: ...``."""
    shown = ", ".join(f"'{printable(n)}'" for n in names[-SHOWN_NAMES:])
    count = f"{len(names)} {what}{'' if len(names) == 1 else 's'}"
    if len(names) > SHOWN_NAMES:
        return f"{count}, the last {SHOWN_NAMES} (newest): {shown}"
    return f"{count}: {shown}"


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean '{printable(close[0])}'?)" if close else ""


def check_session(path, session_id: str | None, sessions: list[str], default: str) -> str:
    """``session_id`` if ``sessions`` holds it, else the newest session when it is None;
    an InputError worded alike by ``check`` and ``report`` otherwise.

    ``default`` says what the command does without ``--session`` (``"check every
    one"``).

    Examples
    --------
    >>> check_session("runs.db", None, ["a", "b"], "report the newest")
    'b'
    >>> try:
    ...     check_session("runs.db", "x", ["a", "b"], "report the newest")
    ... except InputError as e:
    ...     print(*str(e).split("; "), sep=";\\n")
    --session: no session 'x' in runs.db, which holds 2 sessions: 'a', 'b';
    give one of these, or leave out --session to report the newest
    """
    if not sessions:
        raise InputError(
            f"{path}: holds no session yet; record a run into it first (was the training's "
            "storage this file, and was it closed or flushed?)"
        )
    if session_id is None:
        return sessions[-1]
    if session_id not in sessions:
        raise InputError(
            f"--session: no session '{printable(session_id)}' in {printable(str(path))}, "
            f"which holds {names_text(sessions, 'session')}{_did_you_mean(session_id, sessions)}; "
            f"give one of these, or leave out --session to {default}"
        )
    return session_id


def check_worker(path, session_id: str, worker_id: str, workers: list[str], default: str) -> None:
    """An InputError when session ``session_id`` has no worker ``worker_id``, worded
    alike by ``check`` and ``report``.

    Examples
    --------
    >>> check_worker("runs.db", "a", "0", ["0", "1"], "check every worker")
    """
    if worker_id not in workers:
        has = names_text(workers, "worker") if workers else "no worker (no update recorded)"
        raise InputError(
            f"--worker: session '{printable(session_id)}' has no worker "
            f"'{printable(worker_id)}' in {printable(str(path))}; it has {has}; give one "
            f"of these, or leave out --worker to {default}"
        )
