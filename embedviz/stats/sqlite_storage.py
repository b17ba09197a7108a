"""SQLiteStatsStorage: training statistics in one SQLite file.

The file layout is described in :mod:`embedviz.stats.sqlite_layout` (with the packing of
updates into rows), the checks and connections of a file in
:mod:`embedviz.stats.sqlite_file`, the reads in :mod:`embedviz.stats.sqlite_read`.

Writes are buffered and committed by a writer thread (``BEGIN IMMEDIATE``, WAL,
``synchronous=NORMAL``), so a training loop that puts records never waits for the disk:
the thread wakes when ``batch_size`` records wait or the oldest has waited
``flush_interval`` seconds, and writes everything buffered, in transactions of up to
``4 * batch_size`` records; ``flush()``, ``close()``, reads through this object and
interpreter exit write too. Only when the writer thread falls far behind (``32 *
batch_size`` records buffered while the file works) does ``put`` write in its caller's
thread, so the buffer stays bounded; it waits at most 0.1 s for the writer thread's
write in progress and as long for another process's lock. A write that has not finished
by then (the file slow, or locked by another process: the writer thread waits up to the
30 s busy timeout) counts as a file that cannot be written, so ``put`` never waits for
it. A record that SQLite refuses on its own is set aside (logged, counted in
``rejected``) and the others are written.

A file that cannot be written (disk full, locked, an I/O error) never stops training;
:attr:`~SQLiteStatsStorage.failing` says why while it lasts. The policy is that of
:class:`~embedviz.stats.remote.RemoteStatsRouter`:

* ``put`` never raises for trouble with the file. The records stay buffered, at most
  ``32 * batch_size`` of them; the writer thread tries again every ``flush_interval``
  seconds, and one logged error names the file and the cause.
* Beyond that bound the newest records are dropped: one logged error says so and why,
  :attr:`~SQLiteStatsStorage.dropped` counts them, and when writing works again a second
  error says how many were dropped.
* Writing resumes by itself when the file works again; what was buffered is written
  first, in order.
* ``flush()`` and ``close()``, which the user calls, raise :class:`StatsWriteError` with
  one message (the file, the cause, how many records are not written, what to do); the
  records stay buffered, so either can be called again once the file works.
* Once ``close()`` has begun, ``put`` raises InputError: a record accepted after
  close's final write would be lost.

Readers use their own connections (one per thread; those of threads that ended are
closed when another thread connects), so a reader never holds up the writer; several
processes (DDP ranks) may write one file.

Series (:meth:`SQLiteStatsStorage.get_series_many`) are read in one snapshot and in
chunks of rows, each chunk downsampled as it arrives, so opening a page on a file of
100k updates holds a chunk and the kept points, not the file.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path

import numpy as np

from embedviz._check import check_int, check_number
from embedviz.errors import InputError, StatsWriteError
from embedviz.stats.base import (
    StatsStorage,
    StorageEvent,
    event_for,
)
from embedviz.stats.records import (
    EvalRecord,
    Record,
    Snapshot,
    Update,
    to_dict,
)
from embedviz.stats.sqlite_file import (
    BUSY_TIMEOUT,
    check_meta,
    check_path,
    check_writable,
    connect,
    create_schema,
    file_errors,
)
from embedviz.stats.sqlite_layout import HistogramLayouts, UpdatePacker, check_update_values
from embedviz.stats.sqlite_read import SQLiteReading

log = logging.getLogger(__name__)

_BACKLOG = 32  # batches buffered at most: put() writes itself (the writer is far behind)
_PUT_BUSY = 0.1  # seconds put's own write waits for another process's lock on the file
_SLOW = "a write has not finished: the file is slow, or locked by another process"
_OPEN: weakref.WeakSet = weakref.WeakSet()  # storages with a writer thread


@atexit.register
def _flush_at_exit() -> None:
    """Write what open storages still buffer (their writer threads are daemons); never
    in a forked child, which holds a copy of its parent's buffer and connection."""
    for storage in list(_OPEN):
        if storage._pid != os.getpid():
            continue
        try:
            storage.flush()
        except StatsWriteError as exc:
            log.error("at exit: %s (they are lost now)", exc)
        except Exception:
            log.exception("writing statistics to %s at exit failed", storage.path)


class SQLiteStatsStorage(SQLiteReading, StatsStorage):
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
        self._taken = 0  # records taken from the buffer by the write in progress
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
        with self._file_errors():
            self._poll_from = self._max_ids()

    def _file_errors(self):
        """SQLite's "malformed" as a FileFormatError naming the file (see
        :func:`~embedviz.stats.sqlite_file.file_errors`)."""
        return file_errors(self.path)

    def _close_connections(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
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

    # -- writing -------------------------------------------------------------------
    def _store(self, records: list[Record]) -> None:
        self._check_open_for_writing()
        try:
            rows = [self._packer.pack(r) if isinstance(r, Update) else r for r in records]
        except (TypeError, ValueError, OverflowError):  # a value that is no number
            for r in records:  # says which, as the in-memory storage does
                if isinstance(r, Update):
                    check_update_values(r)
            raise
        self._enqueue(rows)

    def _put_update_arrays(self, update: Update, arrays: list[tuple]) -> None:
        """Store an update (made valid by its producer, without histograms) with its
        histograms given as arrays: ``(kind, names, lohi (n, 2), counts (n, bins))`` per
        kind. The listener's path: the same row as ``put`` would write for the
        :class:`Histogram` objects, packed straight from the arrays."""
        self._check_open_for_writing()
        self._enqueue([self._packer.pack_with_arrays(update, arrays)])

    def _check_open_for_writing(self) -> None:
        if self.read_only:
            raise InputError(f"{self.path}: opened with read_only=True; cannot write")
        if self._closed:
            raise InputError(f"{self.path}: the storage is closed; open it again to write")

    def _enqueue(self, rows: list) -> None:
        """Hand rows to the writer thread (started with the first).

        Refused once :meth:`close` has begun (checked under the buffer lock, which
        ``close`` takes to begin): a row accepted after its final write would be lost."""
        with self._buffer_lock:
            if self._stopping:
                raise InputError(
                    f"{self.path}: the storage is closing (close() was called), so this "
                    f"record would not be written; put every record before closing the "
                    f"storage (stop the threads that put first)"
                )
            bound = _BACKLOG * self.batch_size
            dropping = None
            held = len(self._buffer) + self._taken  # buffered, or being written
            if self._failure is not None and held + len(rows) > bound:
                keep = max(0, bound - held)
                dropping = self._drop(len(rows) - keep)
                rows = rows[:keep]
            self._buffer.extend(rows)
            n = len(self._buffer)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_loop, name=f"embedviz-writer:{self.path.name}", daemon=True
                )
                self._thread.start()
                _OPEN.add(self)
            if n == len(rows) or n >= self.batch_size:  # the first record, or a batch
                self._wake.notify()
            behind = n >= bound and self._failure is None
        if dropping:
            log.error(dropping)
        if behind:  # the writer thread is far behind a working file: bounded memory
            self._write_behind()

    def _drop(self, n: int) -> str | None:
        """Count ``n`` records dropped (under the buffer lock); the error to log when
        they are the first since the file last worked."""
        first = self._dropped_now == 0
        self._dropped_now += n
        self.dropped += n
        if not first:
            return None
        return (
            f"{self.path}: cannot write statistics ({self._failure}) and "
            f"{_BACKLOG * self.batch_size} records are buffered (32 x batch_size, the "
            f"bound): dropping the newest records until the file works again (counted in "
            f"the storage's .dropped); free disk space or end what locks the file"
        )

    def _write_behind(self) -> None:
        """``put``'s own write, which bounds the buffer. It never waits long for the
        file: ``_PUT_BUSY`` seconds at most for the writer thread's write in progress,
        and as long for another process's lock. A write that has not finished by then
        (the file is slow or locked) counts as a failure of the file. On a failure the
        buffer is cut to its bound (the newest records dropped, counted) and the writer
        thread tries again."""
        try:
            if self._write_buffer(wait=False):
                return
            self._note_failure(_SLOW)
        except Exception:
            pass  # noted (logged once) by _write_buffer
        with self._buffer_lock:
            held = len(self._buffer) + self._taken
            extra = min(held - _BACKLOG * self.batch_size, len(self._buffer))
            dropping = None
            if extra > 0:
                del self._buffer[-extra:]
                dropping = self._drop(extra)
        if dropping:
            log.error(dropping)

    def _flush_for_read(self) -> None:
        """Write the buffer before a read (a process reads what it wrote); while the
        file fails, reads see what it holds (the writer thread keeps trying)."""
        if self._buffer and self._failure is None:
            try:
                self._write_buffer()
            except Exception:
                pass  # logged by _note_failure

    def _write_loop(self) -> None:
        """The writer thread: a batch when full, or when its oldest record has waited
        ``flush_interval``; while the file fails, a try every ``flush_interval``."""
        while True:
            with self._buffer_lock:
                if self._failure is not None:
                    self._wake.wait_for(lambda: self._stopping, timeout=self.flush_interval)
                else:
                    if not self._buffer:  # the next record starts the clock
                        self._wake.wait_for(lambda: self._buffer or self._stopping)
                    self._wake.wait_for(
                        lambda: len(self._buffer) >= self.batch_size or self._stopping,
                        timeout=self.flush_interval,
                    )
                if self._stopping:
                    return
            try:
                self._write_buffer()
            except Exception:
                pass  # logged once by _note_failure; kept for the next try

    def flush(self) -> None:
        """Write every buffered record (in transactions of up to ``4 * batch_size``).

        A transaction that fails because of a record (SQLite refuses a value) is written
        again record by record; a record that fails on its own is set aside with one
        logged error naming it and counted in :attr:`rejected`, so that one bad record
        never blocks the file.

        Raises
        ------
        StatsWriteError
            The file cannot be written (locked, disk full); every record not yet
            written stays buffered for the next try.
        """
        try:
            self._write_buffer()
        except (sqlite3.Error, OSError) as exc:
            with self._buffer_lock:
                n = len(self._buffer)
            raise StatsWriteError(
                f"{self.path}: cannot write statistics ({type(exc).__name__}: {exc}); "
                f"{n} record(s) are not written and stay buffered; free disk space or end "
                f"what locks the file, then call flush() or close() again"
            ) from exc

    def _write_buffer(self, wait: bool = True) -> bool:
        """Write the buffer; a failure of the file is noted (logged once), then raised
        as it came. Without ``wait``: False when another write has not finished within
        ``_PUT_BUSY`` seconds, and another process's lock is waited for as long at most."""
        if self._writer is None:
            return True
        written: list = []
        try:
            tried = self._flush_into(written, wait)
        except Exception as exc:
            self._note_failure(exc)
            raise
        finally:  # listeners run outside the lock (one may read, which flushes)
            if written:
                self._notify(
                    StorageEvent("update", r[0], r[1], r[2]) if type(r) is tuple else event_for(r)
                    for r in written
                )
        if tried is None:
            return False
        if tried and self._failure is not None:
            self._note_recovery()
        return True

    @property
    def failing(self) -> str | None:
        """Why the file cannot be written now (such as ``"OperationalError: database or
        disk is full"``), or None while writing works.

        Set by a write that fails (or, for ``put``, by a write still in progress when
        the buffer reaches its bound), cleared by the next that succeeds; the writer
        thread tries again every ``flush_interval`` seconds while records are buffered.
        A caller that keeps its records itself (the UI's receiver, whose senders retry)
        can refuse them while this is set rather than have them buffered.

        Examples
        --------
        >>> storage.failing is None  # doctest: +SKIP
        True
        """
        return self._failure

    def _note_failure(self, exc: Exception | str) -> None:
        """Remember why the file failed (an exception, or the cause in words); the
        first failure since it worked is logged."""
        cause = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        with self._buffer_lock:
            first = self._failure is None
            self._failure = cause
            n = len(self._buffer)
        if first:
            log.error(
                "%s: cannot write statistics (%s); %d record(s) kept in memory (at most "
                "%d, newer ones beyond are dropped), tried again every %g s; training goes on",
                self.path, cause, n, _BACKLOG * self.batch_size, self.flush_interval,
                exc_info=not isinstance(exc, str | sqlite3.Error | OSError),  # a bug: its traceback
            )  # fmt: skip

    def _note_recovery(self) -> None:
        with self._buffer_lock:
            self._failure = None
            dropped, self._dropped_now = self._dropped_now, 0
        if dropped:
            log.error(
                "%s: writing statistics works again; %d record(s) were dropped while it "
                "failed (%d in all)", self.path, dropped, self.dropped,
            )  # fmt: skip
        else:
            log.warning("%s: writing statistics works again; nothing was lost", self.path)

    def _flush_into(self, written: list, wait: bool = True) -> int | None:
        """Write the buffer, appending what it wrote to ``written``; the number of
        records taken (0: nothing to write; None: ``wait`` is false and another write
        has not finished within ``_PUT_BUSY`` seconds)."""
        if not self._write_lock.acquire(timeout=-1 if wait else _PUT_BUSY):
            return None
        try:
            if wait:
                return self._flush_locked(written)
            self._writer.execute(f"PRAGMA busy_timeout = {round(_PUT_BUSY * 1000)}")
            try:
                return self._flush_locked(written)
            finally:
                self._writer.execute(f"PRAGMA busy_timeout = {round(BUSY_TIMEOUT * 1000)}")
        finally:
            self._write_lock.release()

    def _flush_locked(self, written: list) -> int:
        """:meth:`_flush_into`'s work, under the write lock."""
        with self._buffer_lock:
            records, self._buffer = self._buffer, []
            self._taken = len(records)
        if not records:
            return 0
        done = 0  # records[:done] are written or set aside
        try:
            step = 4 * self.batch_size
            while done < len(records):
                chunk = records[done : done + step]
                try:
                    self._write(chunk)
                except Exception as exc:
                    if not _record_fault(exc):
                        raise
                    for record in chunk:
                        try:
                            self._write([record])
                        except Exception as exc:
                            if not _record_fault(exc):
                                raise
                            self._reject(record, exc)
                        else:
                            written.append(record)
                        done += 1
                    continue
                written.extend(chunk)
                done += len(chunk)
        except BaseException:
            with self._buffer_lock:  # keep them: nothing is dropped silently
                self._buffer[:0] = records[done:]
                self._taken = 0
                # the writer thread may have found the buffer empty meanwhile (this
                # write was another thread's) and sleep until the next put: wake it
                self._wake.notify()
            raise
        with self._buffer_lock:
            self._taken = 0
        return len(records)

    def _reject(self, record, exc: BaseException) -> None:
        """Set aside a record that SQLite refuses on its own, with one logged error."""
        self.rejected += 1
        if type(record) is tuple:  # a packed update
            kind, (session, worker, iteration) = "update", record[:3]
        else:
            kind = event_for(record).kind
            session, worker = record.session_id, record.worker_id
            iteration = getattr(record, "iteration", None)
        log.error(
            "%s: set aside a record that cannot be written (%s, session %.60r, worker %.60r, "
            "iteration %r): %s: %s; the others are written (%d set aside so far)",
            self.path, kind, session, worker, iteration, type(exc).__name__, exc,
            self.rejected,
        )  # fmt: skip

    def _wid(self, con: sqlite3.Connection, session: str, worker: str) -> int:
        key = (session, worker)
        wid = self._wids.get(key)
        if wid is None:
            con.execute(
                "INSERT OR IGNORE INTO workers(session, worker, first_seen) VALUES (?, ?, ?)",
                (session, worker, time.time()),
            )
            wid = con.execute(
                "SELECT id FROM workers WHERE session = ? AND worker = ?", key
            ).fetchone()[0]
            self._wids[key] = wid
        return wid

    def _layout(self, con: sqlite3.Connection, names: tuple[str, ...]) -> int:
        lid = self._layout_ids.get(names)
        if lid is None:
            text = json.dumps(list(names))
            con.execute("INSERT OR IGNORE INTO layouts(names) VALUES (?)", (text,))
            lid = con.execute("SELECT id FROM layouts WHERE names = ?", (text,)).fetchone()[0]
            self._layout_ids[names] = lid
        return lid

    def _write(self, records: list[Record]) -> None:
        con = self._writer
        updates, hist_sets, evals, snaps, statics = [], [], [], [], []
        con.execute("BEGIN IMMEDIATE")
        try:
            ids_before = self._max_ids(con) if self._own_rows is not None else None
            for r in records:
                if type(r) is tuple:  # a packed update
                    session, worker, iteration, timestamp, names, blob, tags, hists = r
                    wid = self._wid(con, session, worker)
                    lid = self._layout(con, names)
                    if (wid, lid) not in self._worker_layouts:
                        con.execute(
                            "INSERT OR IGNORE INTO worker_layouts VALUES (?, ?)", (wid, lid)
                        )
                        self._worker_layouts.add((wid, lid))
                    updates.append((wid, iteration, timestamp, lid, blob, tags))
                    if hists is not None:  # key, limits, counts
                        lay = self._hist_layouts.id_of(con, hists[0])
                        hist_sets.append((wid, iteration, lay, hists[1], hists[2]))
                    continue
                wid = self._wid(con, r.session_id, r.worker_id)
                if isinstance(r, EvalRecord):
                    evals.append((wid, r.iteration, r.timestamp, json.dumps(r.metrics)))
                elif isinstance(r, Snapshot):
                    vectors = np.asarray(r.vectors, dtype=np.float64).tolist()
                    data = json.dumps({"labels": list(r.labels), "vectors": vectors})
                    snaps.append((wid, r.iteration, r.timestamp, r.kind, data))
                else:
                    statics.append((wid, r.timestamp, json.dumps(to_dict(r))))
            con.executemany(
                "INSERT INTO updates(wid, iteration, timestamp, layout, scalars, tags) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                updates,
            )
            con.executemany(
                "INSERT INTO histogram_sets(wid, iteration, layout, limits, counts) "
                "VALUES (?, ?, ?, ?, ?)",
                hist_sets,
            )
            con.executemany(
                "INSERT INTO evals(wid, iteration, timestamp, metrics) VALUES (?, ?, ?, ?)", evals
            )
            con.executemany(
                "INSERT INTO snapshots(wid, iteration, timestamp, kind, data) "
                "VALUES (?, ?, ?, ?, ?)",
                snaps,
            )
            con.executemany(
                "INSERT OR REPLACE INTO static(wid, timestamp, data) VALUES (?, ?, ?)", statics
            )
            if ids_before is not None:
                after = self._max_ids(con)
                self._own_rows.extend(
                    (t, ids_before[t], after[t]) for t in after if after[t] > ids_before[t]
                )
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            # ids handed out inside the rolled-back transaction no longer exist
            self._wids.clear()
            self._layout_ids.clear()
            self._worker_layouts.clear()
            self._hist_layouts.forget_ids()
            raise

    def close(self) -> None:
        """Write what is buffered and close every connection.

        From its start, ``put`` raises InputError (a record accepted then would be lost).

        Raises
        ------
        StatsWriteError
            The file cannot be written: the storage stays open with its records
            buffered, and ``close()`` may be called again once the file works.
        """
        if self._closed:
            return
        with self._buffer_lock:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        with self._buffer_lock:  # empty: puts are refused from _stopping on
            left = len(self._buffer)
        if left:
            log.error("%s: %d record(s) still buffered at close were not written", self.path, left)
        self._closed = True
        _OPEN.discard(self)
        self._close_connections()

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
        with self._file_errors():
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
        with self._file_errors():
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


def _record_fault(exc: BaseException) -> bool:
    """Whether a failed write is the fault of a record (a value SQLite or JSON refuses),
    not of the file (locked, full, read-only: those are retried)."""
    if isinstance(exc, sqlite3.OperationalError):
        return False
    return isinstance(
        exc,
        sqlite3.IntegrityError | sqlite3.InterfaceError | sqlite3.DataError | ValueError
        | TypeError | OverflowError,
    )  # fmt: skip
