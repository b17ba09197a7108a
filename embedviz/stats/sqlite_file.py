"""Opening a statistics file of :class:`~embedviz.stats.sqlite_storage.SQLiteStatsStorage`:
is it ours, how to connect to it, its schema, and its errors as one message each.

Plain functions of a path and a connection (no storage object). The checks run before
any setting of an existing file is changed (WAL, the schema), so a foreign or damaged
file is refused and left as it was. The layout itself is in
:mod:`embedviz.stats.sqlite_layout`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from embedviz.errors import FileFormatError
from embedviz.stats.sqlite_layout import (
    FILE_SCHEMA_VERSION,
    FORMAT_NAME,
    SCHEMA_SQL,
    SQLITE_MAGIC,
)

#: seconds a connection waits for another's lock on the file before giving up
BUSY_TIMEOUT = 30.0
#: seconds a read waits for a lock on the file. In WAL mode reads never wait for
#: writers, embedviz's or another's ``BEGIN EXCLUSIVE``; a read meets a lock only when
#: another program keeps readers out (``PRAGMA locking_mode = EXCLUSIVE``, a file not in
#: WAL mode inside a write, a WAL recovery after a crash), and is then refused soon
#: with :func:`locked`'s message instead of waiting the writers' 30 s
READ_BUSY_TIMEOUT = 2.0

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" or "busy" (another
    connection's lock), not a fault of the file.

    Examples
    --------
    >>> is_locked(sqlite3.OperationalError("database is locked"))
    True
    """
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def locked(path: Path, exc: sqlite3.Error) -> FileFormatError:
    """The one error for a statistics file another program keeps locked.

    Examples
    --------
    >>> str(locked(Path("runs.db"), sqlite3.OperationalError("database is locked")))[:48]
    'runs.db: the statistics file is locked by anothe'
    """
    return FileFormatError(
        f"{path}: the statistics file is locked by another program "
        f"({type(exc).__name__}: {exc}); embedviz's own writers never keep readers out, so "
        f"a program holds it exclusively (an SQLite tool inside a transaction on a file not "
        f"in WAL mode, or one that set PRAGMA locking_mode = EXCLUSIVE); end that program "
        f"or its transaction, then try again"
    )


def damaged(path: Path, exc: sqlite3.Error) -> FileFormatError:
    """The one error for a file SQLite cannot read as a database.

    Examples
    --------
    >>> str(damaged(Path("runs.db"), sqlite3.DatabaseError("file is not a database")))[:45]
    'runs.db: damaged statistics file (file is not'
    """
    if type(exc) is sqlite3.DatabaseError:  # "malformed", "not a database"
        return FileFormatError(
            f"{path}: damaged statistics file ({exc}); restore it from a copy, or recover "
            f"what is readable with: sqlite3 {path} .recover | sqlite3 NEW.db"
        )
    if is_locked(exc):
        return locked(path, exc)
    if "full" in str(exc).lower():  # "database or disk is full"
        return FileFormatError(
            f"{path}: cannot write the statistics file: the disk is full "
            f"({type(exc).__name__}: {exc}); free some space or give a path on another disk"
        )
    return FileFormatError(  # cannot open, I/O
        f"{path}: cannot open the statistics file ({type(exc).__name__}: {exc}); check that "
        f"it is a file written by SQLiteStatsStorage and that no other program holds it"
    )


@contextmanager
def file_errors(path: Path):
    """SQLite's "malformed" and "not a database" inside the block as :func:`damaged`'s
    FileFormatError (a file damaged in its data pages opens, then fails on the first
    read); locked, busy, I/O and closed-connection errors pass as they are."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:
            raise
        raise damaged(path, exc) from None


@contextmanager
def read_errors(path: Path):
    """:func:`file_errors` for a read, which also turns a lock that kept it out
    (another program's, after :data:`READ_BUSY_TIMEOUT`) into :func:`locked`'s
    FileFormatError naming the file."""
    try:
        with file_errors(path):
            yield
    except sqlite3.OperationalError as exc:
        if not is_locked(exc):
            raise
        raise locked(path, exc) from None


def check_path(path: Path, read_only: bool) -> None:
    """Refuse a folder, a missing file to read, and a file that is not SQLite."""
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory; give a file path such as runs.db")
    if not path.exists():
        if read_only:
            raise FileFormatError(f"{path}: no such statistics file; check the path")
        return
    with open(path, "rb") as f:
        head = f.read(16)
    if head and head != SQLITE_MAGIC:
        raise FileFormatError(
            f"{path}: not an embedviz statistics file (not SQLite); give a file written "
            f"by SQLiteStatsStorage or a new path"
        )


def check_writable(path: Path) -> None:
    """Refuse a path whose folder is missing, or that this user cannot write."""
    folder = path.resolve().parent
    if not folder.is_dir():
        raise FileFormatError(
            f"{path}: the folder {folder} does not exist; create it or give another path"
        )
    where = path if path.exists() else folder
    if not os.access(where, os.W_OK) or not os.access(folder, os.W_OK):
        raise FileFormatError(
            f"{path}: cannot write here ({where} is read-only for this user); record into a "
            f"file in a writable folder, or open it with read_only=True to view it"
        )


def connect(path: Path, read_only: bool) -> tuple[sqlite3.Connection, bool]:
    """A connection (usable from any thread) and whether it reads the file as it is
    (``immutable``, see :func:`_connect_read_only`); a writer's is switched to WAL. A
    file this call creates is removed again when it cannot be set up (a full disk)."""
    new = not read_only and not path.exists()
    con = None
    try:
        immutable = False
        if read_only:
            con, immutable = _connect_read_only(path)
        else:
            con = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        busy = READ_BUSY_TIMEOUT if read_only else BUSY_TIMEOUT
        con.execute(f"PRAGMA busy_timeout = {round(busy * 1000)}")
        if not read_only:
            for attempt in range(50):
                try:
                    con.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.05)
            con.execute("PRAGMA synchronous = NORMAL")
        return con, immutable
    except sqlite3.DatabaseError as exc:
        if con is not None:
            con.close()
        if new:
            _remove_new(path)
        raise damaged(path, exc) from None


def _remove_new(path: Path) -> None:
    """Remove a database file (and its WAL files) that a failed open has just created."""
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            pass


def _connect_read_only(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A connection that cannot change the data.

    Where the file and its folder are writable it is opened read-write with
    ``query_only`` set, so that when the last connection closes SQLite checkpoints and
    removes the ``-wal`` and ``-shm`` files (a ``mode=ro`` connection leaves them behind
    after ``embedviz check``). Elsewhere ``mode=ro``; and where that cannot open the file
    (a WAL file in a folder this user cannot write, without its ``-shm`` file: SQLite
    cannot create it), ``immutable=1``: SQLite then reads the file as it is and does not
    see what a live writer changes afterwards (the second value returned is True).
    """
    path = path.resolve()
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    uri = "file:" + quote(path.as_posix())

    def connect_uri(query: str) -> sqlite3.Connection:
        return sqlite3.connect(
            f"{uri}?{query}", uri=True, timeout=READ_BUSY_TIMEOUT, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip

    if writable:
        con = connect_uri("mode=rw")
        con.execute("PRAGMA query_only = ON")
        return con, False
    con = connect_uri("mode=ro")
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con, False
    except sqlite3.OperationalError as exc:
        con.close()
        if is_locked(exc):  # not the missing -shm file: read it as it is only then
            raise
    return connect_uri("mode=ro&immutable=1"), True


def create_schema(con: sqlite3.Connection, path: Path) -> None:
    """Create the tables in a new file, or add version 2's to a version 1 file; a file
    of another program or of a newer version is left alone (:func:`check_meta` says
    why)."""
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        if tables and "meta" not in tables:
            return  # foreign file
        if "updates" in tables and "histogram_sets" in tables:
            return
        if "updates" in tables:  # version 1 (or newer)
            version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is None or version[0] != "1":
                return
        con.execute("BEGIN IMMEDIATE")
        try:  # a new file, or version 1 gaining version 2's tables
            for statement in SCHEMA_SQL.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute(
                "INSERT OR IGNORE INTO meta VALUES ('format', ?), ('schema_version', ?)",
                (FORMAT_NAME, str(FILE_SCHEMA_VERSION)),
            )
            con.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version' AND value = '1'",
                (str(FILE_SCHEMA_VERSION),),
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from None


def check_meta(con: sqlite3.Connection, path: Path, allow_empty: bool = False) -> None:
    """Refuse a file without embedviz's format marker or of a newer schema version
    (``allow_empty``: an SQLite file with no table passes, for the writer to fill)."""
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        meta = dict(con.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from None
    if not tables and allow_empty:
        return
    if not tables:
        raise FileFormatError(
            f"{path}: an empty SQLite file with no statistics in it; record into it "
            f"with SQLiteStatsStorage first"
        )
    if meta.get("format") != FORMAT_NAME:
        raise FileFormatError(
            f"{path}: an SQLite file of another program (no embedviz-stats format "
            f"marker); give a file written by SQLiteStatsStorage or a new path"
        )
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        version = -1
    if version > FILE_SCHEMA_VERSION:
        raise FileFormatError(
            f"{path}: written with statistics schema version {version}, this "
            f"embedviz reads up to version {FILE_SCHEMA_VERSION}; upgrade embedviz"
        )
    if version < 1:
        raise FileFormatError(
            f"{path}: bad schema_version {meta.get('schema_version')!r} in the meta "
            f"table; the file is damaged"
        )
