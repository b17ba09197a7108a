"""The writing side of :class:`~embedviz.stats.sqlite_storage.SQLiteStatsStorage`:
the buffer, the writer thread, the transactions, and what happens while the file cannot
be written. A mixin over the storage's attributes (set in its ``__init__``), as
:mod:`embedviz.stats.sqlite_read` is for the reads.

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
:attr:`SQLiteStatsStorage.failing <embedviz.stats.sqlite_storage.SQLiteStatsStorage.failing>`
says why while it lasts. The policy is that of
:class:`~embedviz.stats.remote.RemoteStatsRouter`:

* ``put`` never raises for trouble with the file. The records stay buffered, at most
  ``32 * batch_size`` of them; the writer thread tries again every ``flush_interval``
  seconds, and one logged error names the file and the cause.
* Beyond that bound the newest records are dropped: one logged error says so and why,
  the storage's ``dropped`` counts them, and when writing works again a second error
  says how many were dropped.
* Writing resumes by itself when the file works again; what was buffered is written
  first, in order.
* ``flush()`` and ``close()``, which the user calls, raise :class:`StatsWriteError` with
  one message (the file, the cause, how many records are not written, what to do) and
  the same as fields (``path``, ``cause``, ``unwritten``: those buffered and those a
  write in progress holds); the records stay buffered, so either can be called again
  once the file works. Both take a ``timeout``.
* How long a write waits for another process's lock: the 30 s busy timeout while the
  file works (DDP ranks writing one file take turns), ``_RETRY_BUSY`` (0.5 s) once a
  write has failed, until one succeeds: the writer thread's tries, ``flush()`` and
  ``close()`` on a file known to fail do not wait 30 s each.
* The producers (:class:`~embedviz.stats.listener.StatsListener`, ...) flush with
  :func:`~embedviz.stats.sqlite_close.flush_at_close` when their work ends, and
  interpreter exit flushes what is left: both wait at most
  :data:`~embedviz.stats.sqlite_close.CLOSE_WAIT` seconds and log one error instead of
  raising (the producer's work is done; what exit cannot write is lost). Both live in
  :mod:`embedviz.stats.sqlite_close`, the one place to import them from (and to patch
  ``CLOSE_WAIT``: it is read there).
* ``close(timeout, drop_unwritten=True)`` gives up on what the file cannot take: the
  buffer is dropped, and so is a write in progress, which rolls back instead of
  committing (a flag it checks before ``COMMIT``); only a commit already under way may
  still write its records, and the error says how many those are.
* Once ``close()`` has begun, ``put`` raises InputError: a record accepted after
  close's final write would be lost.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time

import numpy as np

from embedviz._check import check_number
from embedviz.errors import InputError, StatsWriteError
from embedviz.stats.base import StorageEvent, event_for
from embedviz.stats.records import EvalRecord, Record, Snapshot, Update, to_dict
from embedviz.stats.sqlite_close import _OPEN
from embedviz.stats.sqlite_file import BUSY_TIMEOUT
from embedviz.stats.sqlite_layout import check_update_values

# the storage's logger: one name to configure for everything the storage says
log = logging.getLogger("embedviz.stats.sqlite_storage")

_BACKLOG = 32  # batches buffered at most: put() writes itself (the writer is far behind)
_PUT_BUSY = 0.1  # seconds put's own write waits for another process's lock on the file
_RETRY_BUSY = 0.5  # seconds a write waits for another process's lock once the file failed
_SLOW = "a write has not finished: the file is slow, or locked by another process"
# the longest wait: a longer timeout means the same (threading refuses waits beyond
# TIMEOUT_MAX, about 292 years, with OverflowError)
_LONGEST = threading.TIMEOUT_MAX / 2
_MAX_BUSY_MS = 2**31 - 1  # SQLite's busy_timeout is a C int: a larger one means 0 (no wait)


class _Abandoned(Exception):
    """A write rolled back because ``close(drop_unwritten=True)`` gave its records up."""


def check_timeout(timeout: float | None) -> float | None:
    """``flush``'s and ``close``'s ``timeout``: None, or seconds >= 0 (InputError
    otherwise), at most :data:`_LONGEST`."""
    if timeout is None:
        return None
    return min(check_number("timeout", timeout, low=0), _LONGEST)


class SQLiteWriting:
    """Writing for :class:`~embedviz.stats.sqlite_storage.SQLiteStatsStorage` (see the
    module docstring)."""

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

    def _put_update_flat(
        self,
        update: Update,
        params: tuple[str, ...],
        layers: tuple[str, ...],
        values: list[float],
        arrays: list[tuple] | None,
    ) -> None:
        """Store an update (made valid by its producer) whose parameter and activation
        statistics are given as one list of floats (see
        :meth:`~embedviz.stats.sqlite_layout.UpdatePacker.pack_flat`), its histograms
        as arrays or None. The listener's path: the row ``put`` would write for the
        objects, packed without making them."""
        self._check_open_for_writing()
        packer = self._packer
        row = packer.pack_flat(update, params, layers, values)
        self._enqueue([packer.with_histogram_arrays(row, arrays)])

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
            if self._write_buffer(time.monotonic() + _PUT_BUSY, busy=_PUT_BUSY):
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

    def flush(self, timeout: float | None = None) -> None:
        """Write every buffered record (in transactions of up to ``4 * batch_size``).

        A transaction that fails because of a record (SQLite refuses a value) is written
        again record by record; a record that fails on its own is set aside with one
        logged error naming it and counted in :attr:`rejected`, so that one bad record
        never blocks the file.

        Parameters
        ----------
        timeout : float or None, default=None
            Seconds to wait at most for the writer thread's write in progress and for
            another process's lock on the file (a timeout beyond
            ``threading.TIMEOUT_MAX / 2``, about 146 years, means the same as that).
            None, the default, sets no deadline, unlike
            :meth:`RemoteStatsRouter.flush <embedviz.stats.remote.RemoteStatsRouter.flush>`
            (whose default waits 5 s): the write in progress is waited for as long as
            it takes, and another process's lock up to the 30 s busy timeout while the
            file works, 0.5 s once it is known to fail (a write failed since it last
            worked). Pass seconds to bound the whole call.

        Raises
        ------
        StatsWriteError
            The file cannot be written (locked, disk full), or no write finished within
            ``timeout``; every record not yet written stays buffered for the next try.
            Its ``path``, ``cause`` and ``unwritten`` (the records buffered or held by
            a write in progress) say the same as its message.

        Examples
        --------
        >>> storage.flush(timeout=5)  # doctest: +SKIP
        """
        self._flush_within(check_timeout(timeout))

    def _flush_within(self, timeout: float | None, quiet: bool = False) -> None:
        """:meth:`flush`'s work; ``quiet``: a failure of the file is noted without the
        storage's error (its caller logs one that says more)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            done = self._write_buffer(deadline, quiet=quiet)
        except (sqlite3.Error, OSError) as exc:
            raise self._write_error(f"{type(exc).__name__}: {exc}") from exc
        if not done:
            raise self._write_error(self._failure or _SLOW)

    def _write_error(self, cause: str) -> StatsWriteError:
        """flush's and close's error: the message, and the same as fields."""
        with self._buffer_lock:  # those a write in progress took are not written either
            n = len(self._buffer) + self._taken
        error = StatsWriteError(
            f"{self.path}: cannot write statistics ({cause}); {n} record(s) are not "
            f"written and stay buffered; free disk space or end what locks the file, then "
            f"call flush() or close() again"
        )
        error.path, error.cause, error.unwritten = self.path, cause, n
        return error

    def _write_buffer(
        self, deadline: float | None = None, busy: float | None = None, quiet: bool = False
    ) -> bool:
        """Write the buffer; a failure of the file is noted (logged once unless
        ``quiet``), then raised as it came. False when another write has not finished by
        ``deadline`` (a ``time.monotonic()``; None: no limit); see :meth:`_flush_into`
        for ``busy``."""
        if self._writer is None:
            return True
        written: list = []
        try:
            tried = self._flush_into(written, deadline, busy)
        except Exception as exc:
            if self._given_up:  # close(drop_unwritten=True) said what became of them
                return True
            self._note_failure(exc, quiet)
            raise
        finally:  # listeners run outside the lock (one may read, which flushes)
            self._announce(written)
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

    def _note_failure(self, exc: Exception | str, quiet: bool = False) -> None:
        """Remember why the file failed (an exception, or the cause in words); the
        first failure since it worked is logged (unless ``quiet``: the caller says it)."""
        cause = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        with self._buffer_lock:
            first = self._failure is None
            self._failure = cause
            n = len(self._buffer)
        if first and not quiet:
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

    def _announce(self, written: list) -> None:
        """Tell the listeners about records just written (rows packed from updates, or
        records)."""
        if written:
            self._notify(
                StorageEvent("update", r[0], r[1], r[2]) if type(r) is tuple else event_for(r)
                for r in written
            )

    def _flush_into(
        self, written: list, deadline: float | None = None, busy: float | None = None
    ) -> int | None:
        """Write the buffer, appending what it wrote to ``written``; the number of
        records taken (0: nothing to write; None: another write has not finished by
        ``deadline``).

        Another process's lock is waited for ``busy`` seconds at most, and never past
        ``deadline``; None: until ``deadline``, or without one the busy timeout while
        the file works and ``_RETRY_BUSY`` once it failed."""
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._write_lock.acquire(timeout=wait):
            return None
        try:
            if self._writer is None:  # closed meanwhile (close gave up)
                return 0
            if busy is None and deadline is None:  # under the write lock: noted if failed
                busy = BUSY_TIMEOUT if self._failure is None else _RETRY_BUSY
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                busy = left if busy is None else min(busy, left)
            if busy == BUSY_TIMEOUT:
                return self._flush_locked(written)
            self._writer.execute(f"PRAGMA busy_timeout = {min(round(busy * 1000), _MAX_BUSY_MS)}")
            try:
                return self._flush_locked(written)
            finally:
                self._writer.execute(f"PRAGMA busy_timeout = {round(BUSY_TIMEOUT * 1000)}")
        finally:  # close(drop_unwritten=True) closes the writer unless it is in use:
            with self._buffer_lock:  # then it is closed here (_give_up sets the flag
                closing = self._given_up  # under this lock, then tries the write lock)
                if not closing:
                    self._write_lock.release()
            if closing:
                self._close_writer()
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
                            with self._buffer_lock:
                                self._taken -= 1
                        else:
                            written.append(record)
                        done += 1
                    continue
                written.extend(chunk)
                done += len(chunk)
        except BaseException:
            with self._buffer_lock:  # keep them: nothing is dropped silently
                if not self._given_up:  # else close counted them as dropped
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
        """One transaction; once committed, the records no longer count in ``_taken``.
        Rolled back instead (:class:`_Abandoned`) when ``close(drop_unwritten=True)``
        gave the records up before its ``COMMIT``."""
        con = self._writer
        updates, hist_sets, evals, snaps, statics = [], [], [], [], []
        committing = False
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
            if ids_before is not None:  # before COMMIT: a poll never sees them as others'
                after = self._max_ids(con)
                self._own_rows.extend(
                    (t, ids_before[t], after[t]) for t in after if after[t] > ids_before[t]
                )
            with self._buffer_lock:  # decided here: either close drops them, or this commits
                if self._given_up:
                    raise _Abandoned
                self._committing = len(records)
            committing = True
            con.execute("COMMIT")
        except BaseException:
            if committing:
                with self._buffer_lock:
                    self._committing = 0
                    if self._given_up:  # close left them to this commit, which failed
                        self.dropped += len(records)
            if con.in_transaction:
                con.execute("ROLLBACK")
            # ids handed out inside the rolled-back transaction no longer exist
            self._wids.clear()
            self._layout_ids.clear()
            self._worker_layouts.clear()
            self._hist_layouts.forget_ids()
            raise
        with self._buffer_lock:
            self._committing = 0
            self._taken -= len(records)


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
