"""SQLiteStatsStorage: training statistics in one SQLite file.

The file layout is described in :mod:`embedviz.stats.sqlite_layout` (with the packing of
updates into rows), the checks and connections of a file in
:mod:`embedviz.stats.sqlite_file`, the reads in :mod:`embedviz.stats.sqlite_read`.

Writes are buffered and committed by a writer thread, so a training loop that puts
records never waits for the disk, and a file that cannot be written never stops training
(a bounded buffer, retries, drops counted in ``dropped``, the cause in
:attr:`~SQLiteStatsStorage.failing`): :mod:`embedviz.stats.sqlite_writer` describes the
thread and that policy.

Readers use their own connections (one per thread; those of threads that ended are
closed when another thread connects), so a reader never holds up the writer; several
processes (DDP ranks) may write one file.

Series (:meth:`SQLiteStatsStorage.get_series_many`) are read in one snapshot and in
chunks of rows, each chunk downsampled as it arrives, so opening a page on a file of
100k updates holds a chunk and the kept points, not the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from embedviz._check import check_int, check_number
from embedviz.errors import InputError, StatsWriteError
from embedviz.stats.base import StatsStorage, StorageEvent
from embedviz.stats.sqlite_close import _OPEN
from embedviz.stats.sqlite_file import (
    check_meta,
    check_path,
    check_writable,
    connect,
    create_schema,
    read_errors,
)
from embedviz.stats.sqlite_layout import HistogramLayouts, UpdatePacker
from embedviz.stats.sqlite_read import SQLiteReading
from embedviz.stats.sqlite_writer import SQLiteWriting, check_timeout

__all__ = ["SQLiteStatsStorage", "StatsWriteError"]  # StatsWriteError: raised by flush/close

log = logging.getLogger(__name__)


class SQLiteStatsStorage(SQLiteReading, SQLiteWriting, StatsStorage):
    """Training statistics in one SQLite file (the embedded default).

    Parameters
    ----------
    path : str or Path
        Created when missing (unless ``read_only``).
    read_only : bool, default=False
        Open an existing file for reading only (the UI, ``embedviz check``); it is never
        changed. In a folder this user cannot write, a WAL file is read as it is
        (``immutable``): changes a live writer makes afterwards are not seen.
    batch_size : int, default=512
        Buffered records that wake the writer thread; it then writes everything buffered,
        in transactions of up to ``4 * batch_size`` records. At most ``32 * batch_size``
        records are buffered while the file cannot be written.
    flush_interval : float, default=0.5
        Seconds a record may wait in the buffer; also the pause between tries while the
        file cannot be written.

    Attributes
    ----------
    dropped : int
        Records dropped because the file could not be written and the buffer was full
        (see the module docstring; logged as an error).
    rejected : int
        Records set aside because SQLite refused them (each logged as an error naming
        its session, worker and iteration); records are checked when put, so this stays
        0 unless something bypassed the check.

    Raises
    ------
    StatsWriteError
        From :meth:`flush` and :meth:`close` while the file cannot be written (``put``
        never raises for that).
    FileFormatError
        The file is not SQLite, is damaged, belongs to another program, or was written
        by a newer embedviz (a higher schema version).

    Examples
    --------
    >>> import tempfile, os
    >>> from embedviz.stats.records import Update
    >>> path = os.path.join(tempfile.mkdtemp(), "runs.db")
    >>> with SQLiteStatsStorage(path) as storage:
    ...     storage.put(Update("run", "0", 10, 0.0, score=1.5))
    >>> SQLiteStatsStorage(path, read_only=True).get_updates("run")[0].score
    1.5
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        read_only: bool = False,
        batch_size: int = 512,
        flush_interval: float = 0.5,
    ) -> None:
        super().__init__()
        if not isinstance(path, str | os.PathLike) or isinstance(path, bytes):
            raise InputError(
                f"path: expected a file path (str or pathlib.Path), got {type(path).__name__} "
                f"{path!r:.60}; give the statistics file such as 'runs.db'"
            )
        self.path = Path(path)
        self.read_only = bool(read_only)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.flush_interval = check_number("flush_interval", flush_interval, low=0, low_open=True)
        # records waiting for the next transaction, updates already packed into rows
        # (tuples the garbage collector does not track, see UpdatePacker)
        self._buffer: list = []
        self._packer = UpdatePacker()
        self._hist_layouts = HistogramLayouts()
        self._has_sets = False  # the file has the histogram_sets table (version 2)
        self._buffer_lock = threading.Lock()
        self._wake = threading.Condition(self._buffer_lock)
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopping = False
        self._failure: str | None = None  # why the last write of the file failed
        self._dropped_now = 0  # records dropped since the file last worked
        self._taken = 0  # records taken from the buffer by the write in progress, not committed
        self._committing = 0  # records of the transaction whose COMMIT is under way
        self._given_up = False  # close(drop_unwritten=True) dropped what was not written
        self.dropped = 0  # records dropped because the file failed and the buffer is full
        self._local = threading.local()
        # every reader connection with its thread; those of ended threads are closed
        # when another thread connects, so they stay as many as the live readers
        self._readers: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._readers_lock = threading.Lock()
        self._wids: dict[tuple[str, str], int] = {}
        self._layout_ids: dict[tuple[str, ...], int] = {}
        self._worker_layouts: set[tuple[int, int]] = set()
        self._plans: dict[int, tuple[list[str], list]] = {}
        self._closed = False
        self.rejected = 0  # records set aside because SQLite refused them (see flush)
        self._immutable = False  # read with immutable=1 (a read-only folder)
        self._writer: sqlite3.Connection | None = None
        self._own_rows: list[tuple[str, int, int]] | None = None
        check_path(self.path, self.read_only)
        try:
            self._open()
        except BaseException:
            self._close_connections()  # a refused file is left as it was, and closed
            raise

    # -- opening -------------------------------------------------------------------
    def _open(self) -> None:
        """Check the format marker before changing any setting of an existing file
        (WAL, the schema), then open the writer; a foreign file is never touched."""
        if not self.read_only:
            check_writable(self.path)
            if self.path.exists() and self.path.stat().st_size > 0:
                probe = self._connect(read_only=True)
                try:
                    check_meta(probe, self.path, allow_empty=True)
                finally:
                    probe.close()
            self._writer = self._connect()
            create_schema(self._writer, self.path)
        check_meta(self._reader(), self.path)
        with self._read_errors():
            self._poll_from = self._max_ids()

    def _read_errors(self):
        """SQLite's "malformed", and a lock that keeps a read out, as a FileFormatError
        naming the file (see :func:`~embedviz.stats.sqlite_file.read_errors`)."""
        return read_errors(self.path)

    def _close_connections(self) -> None:
        self._close_writer()
        self._close_readers()

    def _close_writer(self) -> None:
        con, self._writer = self._writer, None
        if con is not None:
            con.close()

    def _close_readers(self) -> None:
        with self._readers_lock:
            for _, con in self._readers:
                con.close()
            self._readers.clear()
        self._local = threading.local()

    def _connect(self, read_only: bool | None = None) -> sqlite3.Connection:
        read_only = self.read_only if read_only is None else read_only
        con, immutable = connect(self.path, read_only)
        if immutable and not self._immutable:  # once per storage (a connection a thread)
            log.info("%s: read-only folder; reading the file as it is (immutable)", self.path)
            self._immutable = True
        return con

    def _reader(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if self._closed:
                raise InputError(f"{self.path}: the storage is closed; open it again")
            con = self._connect()
            self._local.con = con
            with self._readers_lock:
                ended = [c for thread, c in self._readers if not thread.is_alive()]
                self._readers = [r for r in self._readers if r[0].is_alive()]
                self._readers.append((threading.current_thread(), con))
            for old in ended:  # their threads cannot use them any more
                old.close()
        return con

    def close(self, timeout: float | None = None, *, drop_unwritten: bool = False) -> None:
        """Write what is buffered and close every connection.

        From its start, ``put`` raises InputError (a record accepted then would be lost).

        Parameters
        ----------
        timeout : float or None, default=None
            Seconds to wait at most for the writer thread's write in progress and for
            another process's lock on the file (beyond ``threading.TIMEOUT_MAX / 2``,
            about 146 years, the same as that). None, the default, sets no deadline
            (see :meth:`flush`): the write in progress is waited for as long as it
            takes; another process's lock up to the 30 s busy timeout while the file
            works, 0.5 s once it is known to fail, so a locked file takes about 30 s
            (the writer thread's first try) and one that already failed well under 1 s.
        drop_unwritten : bool, default=False
            When the file cannot be written: False keeps the records (see Raises);
            True gives up on them: they are dropped (counted in ``dropped``), a write
            in progress rolls back instead of committing them, the storage is closed
            all the same and interpreter exit does not try them again (for a program
            about to end that reports the loss itself, such as ``embedviz tsne
            --stats``). Only records whose ``COMMIT`` is already under way are not
            dropped (they may yet be written); the error counts them apart.

        Raises
        ------
        StatsWriteError
            The file cannot be written (or no write finished within ``timeout``): the
            storage stays open with its records buffered (the writer thread stops
            after its write in progress), and ``close()`` may be called again once the
            file works (unless ``drop_unwritten``: then closed, the records dropped).
            Its ``path``, ``cause`` and ``unwritten`` say the same as its message
            (with ``drop_unwritten``, ``unwritten`` counts the records dropped).

        Examples
        --------
        >>> storage.close(timeout=5)  # doctest: +SKIP
        """
        if self._closed:
            return
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._buffer_lock:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:  # ends after its write in progress
            self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        try:
            if deadline is None:
                self.flush()
            else:
                self.flush(max(0.0, deadline - time.monotonic()))
        except StatsWriteError as exc:
            if not drop_unwritten:
                raise
            raise self._give_up(exc) from exc.__cause__
        with self._buffer_lock:  # empty: puts are refused from _stopping on
            left = len(self._buffer)
        if left:
            log.error("%s: %d record(s) still buffered at close were not written", self.path, left)
        self._closed = True
        _OPEN.discard(self)
        self._close_connections()

    def _give_up(self, exc: StatsWriteError) -> StatsWriteError:
        """``close(drop_unwritten=True)`` on a file that cannot be written: drop the
        buffered records and those a write in progress holds (that write checks
        ``_given_up`` before its ``COMMIT`` and rolls back), close, and return the
        error saying so. Records whose ``COMMIT`` is already under way are left to it
        and counted apart. The writer connection is closed now, or by the write in
        progress when it ends (:meth:`_flush_into`)."""
        with self._buffer_lock:
            committing = self._committing
            n = len(self._buffer) + self._taken - committing
            self._buffer = []
            self.dropped += n
            self._given_up = True
            self._closed = True
        _OPEN.discard(self)
        self._close_readers()
        if self._write_lock.acquire(blocking=False):  # else its holder closes it as it ends
            try:
                self._close_writer()
            finally:
                self._write_lock.release()
        more = (
            f"; {committing} more were being committed at that moment and may yet be written"
            if committing
            else ""
        )
        error = StatsWriteError(
            f"{self.path}: cannot write statistics ({exc.cause}); {n} record(s) are not "
            f"written and are dropped (close(drop_unwritten=True)){more}; free disk space "
            f"or end what locks the file before the next run"
        )
        error.path, error.cause, error.unwritten = self.path, exc.cause, n
        return error

    def quick_check(self, limit: int = 10) -> list[str]:
        """SQLite's ``PRAGMA quick_check``: the problems found in the file (``[]`` when
        it is sound), at most ``limit``; reads every page, so it takes a while on a
        large file.

        Examples
        --------
        >>> storage.quick_check()  # doctest: +SKIP
        []
        """
        limit = check_int("limit", limit, low=1)
        with self._read_errors():
            rows = self._read().execute(f"PRAGMA quick_check({limit})").fetchall()
        problems = [str(r[0]) for r in rows]
        return [] if problems == ["ok"] else problems

    # -- polling for other writers --------------------------------------------------
    _POLL_TABLES = ("static", "updates", "evals", "snapshots")

    def _max_ids(self, con: sqlite3.Connection | None = None) -> dict[str, int]:
        con = con or self._reader()
        return {
            t: con.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
            for t in self._POLL_TABLES
        }

    def poll(self) -> list[StorageEvent]:
        """Announce records other processes wrote since the previous poll.

        Returns the events (records written through this object are announced when
        written, not again here) and calls the registered listeners with them.
        """
        self.flush()
        if self._own_rows is None:
            self._own_rows = []
        with self._read_errors():
            events = self._new_events()
        self._notify(events)
        return events

    def _new_events(self) -> list[StorageEvent]:
        """The events of rows other writers added since the previous poll."""
        con = self._reader()
        events: list[StorageEvent] = []
        kinds = {"static": "static", "updates": "update", "evals": "eval", "snapshots": "snapshot"}
        own, self._own_rows = self._own_rows, []
        for table, kind in kinds.items():
            it = "NULL" if table == "static" else "t.iteration"
            rows = con.execute(
                f"SELECT t.id, w.session, w.worker, {it} FROM {table} t "
                f"JOIN workers w ON w.id = t.wid WHERE t.id > ? ORDER BY t.id",
                (self._poll_from[table],),
            ).fetchall()
            mine = [(lo, hi) for t, lo, hi in own if t == table]
            for rid, session, worker, iteration in rows:
                if not any(lo < rid <= hi for lo, hi in mine):
                    events.append(StorageEvent(kind, session, worker, iteration))
                self._poll_from[table] = max(self._poll_from[table], rid)
        return events
