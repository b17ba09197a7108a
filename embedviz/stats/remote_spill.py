"""The records a :class:`~embedviz.stats.remote.RemoteStatsRouter` could not send yet.

A :class:`SpillQueue` holds records (JSON texts, as
:func:`embedviz.stats.records.to_dict` and :func:`json.dumps` write them), oldest first,
in two places:

* the *spill file*, a SQLite file with the tables ``spill(id, payload)`` (waiting, in
  ``id`` order; a batch that was in flight goes back in front with smaller ids) and
  ``rejected(id, reason, payload)`` (refused by the server for good, kept for a human);
* *memory*, when the file cannot be written (its folder removed, disk full): at most
  ``memory_size`` records; beyond that the newest are dropped, with one error.

The order rule: the file's rows are older than the memory's records, which are older
than anything added later. So while memory holds any, new records join it rather than
the file; a batch put back in front goes to the file (it is older than both).

:meth:`close` says what is left: how many records were dropped, how many the file keeps
(and why they were not sent, how to send them: the sender says), and what memory still
holds goes to a JSON-lines file beside the spill file (or in the temporary directory):
:attr:`unsent_path` says where, and an error says how many were lost if neither could be
written. A spill file left with nothing in it (and no rejected records, this run's or
an earlier one's) is removed, and an INFO line says so. A file kept only for its
rejected records is reported once, as a warning saying how to read their reasons and
that the file may then be deleted (by the router that rejected them); a later router
using the same file mentions it at INFO only.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from embedviz.errors import InputError

log = logging.getLogger(__name__)

#: where the waiting records of :meth:`SpillQueue.oldest` came from: (from the file?,
#: their row ids)
Where = tuple[bool, list[int]]


def check_spill_path(path: Path) -> None:
    """Refuse a spill file that cannot be written from the start: a folder, a file in a
    folder that does not exist or that this user cannot write (as
    :class:`~embedviz.stats.storage.SQLiteStatsStorage` refuses its file). A folder
    that goes away later is met by the memory fallback.

    Examples
    --------
    >>> check_spill_path(Path("/no/such/folder/spill.db"))
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: spill_path: the folder /no/such/folder does not exist ...
    """
    instead = "; or None (a new file in the temporary directory)"
    if path.is_dir():
        raise InputError(
            f"spill_path: {path} is a folder; give a file path such as {path / 'spill.db'}{instead}"
        )
    folder = path.resolve().parent
    if not folder.is_dir():
        raise InputError(
            f"spill_path: the folder {folder} does not exist (spill_path={str(path)!r}); "
            f"create it or give a file in an existing folder{instead}"
        )
    where = path if path.exists() else folder
    if not os.access(where, os.W_OK):
        raise InputError(
            f"spill_path: cannot write {where} (read-only for this user); give a file in "
            f"a writable folder{instead}"
        )


class SpillQueue:
    """Records waiting to be sent: a SQLite spill file, and memory when it fails.

    Parameters
    ----------
    path : Path
        The spill file; rows already in it (an earlier run's) are the oldest. Its
        folder must exist and be writable (:func:`check_spill_path`).
    memory_size : int
        Records held in memory at most when the file cannot be written.
    label : str
        Names the sender in log messages (the router's URL).
    on_drop : callable, optional
        ``on_drop(n)`` when ``n`` records are dropped (the router stops waiting for them).
    name : callable, optional
        ``name(payloads) -> payloads``: what every record added becomes on the way in
        (the router's session names, :meth:`RunNames.named
        <embedviz.stats.remote_names.RunNames.named>`); applied under the lock that
        :meth:`rewrite` takes, so a record added while a rename is made ends up under
        the new name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> q = SpillQueue(pathlib.Path(tempfile.mkdtemp()) / "s.db", memory_size=10, label="t")
    >>> q.add(['{"i": 1}', '{"i": 2}']); q.add(['{"i": 0}'], front=True)
    >>> where, payloads = q.oldest(2); payloads
    ['{"i": 0}', '{"i": 1}']
    >>> q.forget(where, 2); len(q)
    1
    >>> q.close()
    """

    def __init__(
        self,
        path: Path,
        memory_size: int,
        label: str,
        on_drop: Callable[[int], None] | None = None,
        name: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.path = Path(path)
        check_spill_path(self.path)
        self._name = name
        self.memory_size = memory_size
        self.label = label
        self._on_drop = on_drop
        self._file_lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        #: records waiting in the spill file
        self.in_file = 0
        self._memory_lock = threading.Lock()
        #: records waiting in memory (the file could not take them), oldest first
        self.in_memory: list[str] = []
        #: why the file could not be written ("" while it could)
        self.error = ""
        self._drop_logged = False
        #: records dropped because neither the file nor memory could take them
        self.dropped = 0
        #: records the server refused for good (:meth:`reject`)
        self.rejected = 0
        #: rejected records an earlier run left in the file's ``rejected`` table
        self.rejected_before = 0
        #: where :meth:`close` wrote the records memory still held (None: none)
        self.unsent_path: Path | None = None
        self._frozen = False
        self._closed = False
        if self.path.exists():
            with self._file_lock:
                self._open()

    def __len__(self) -> int:
        return self.in_file + len(self.in_memory)

    # -- the file ------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        """The connection (opened on first use; call with the file lock held)."""
        if self._con is None:
            con = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("CREATE TABLE IF NOT EXISTS spill(id INTEGER PRIMARY KEY, payload TEXT)")
            con.execute(
                "CREATE TABLE IF NOT EXISTS rejected(id INTEGER PRIMARY KEY, reason TEXT, "
                "payload TEXT)"
            )
            self.in_file = con.execute("SELECT count(*) FROM spill").fetchone()[0]
            self.rejected_before = con.execute("SELECT count(*) FROM rejected").fetchone()[0]
            self._con = con
        return self._con

    def _write(self, payloads: list[str], front: bool) -> None:
        with self._file_lock:
            con = self._open()
            if self._name is not None:
                payloads = self._name(payloads)
            con.execute("BEGIN IMMEDIATE")
            try:
                if front:
                    first = con.execute("SELECT coalesce(min(id), 1) FROM spill").fetchone()[0]
                    start = first - len(payloads)
                    rows = [(start + i, p) for i, p in enumerate(payloads)]
                    con.executemany("INSERT INTO spill(id, payload) VALUES (?, ?)", rows)
                else:
                    con.executemany(
                        "INSERT INTO spill(payload) VALUES (?)", [(p,) for p in payloads]
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self.in_file += len(payloads)

    # -- adding ----------------------------------------------------------------------
    def add(self, payloads: list[str], front: bool = False, bound: bool = True) -> None:
        """Append (``front``: prepend, for a batch that was in flight) to the file, or
        to memory when the file cannot be written or memory holds older records;
        ``bound=False`` keeps every record in memory (for :meth:`close`'s file)."""
        if not payloads:
            return
        if self.in_memory and not front:  # older records wait in memory: keep the order
            self.hold(payloads, front, bound)
            return
        try:
            self._write(payloads, front)
        except (sqlite3.Error, OSError) as exc:  # disk full, no such folder: keep them
            self.error = str(exc)
            if not self.in_memory:
                log.error(
                    "cannot write the spill file %s (%s); keeping up to %d unsent records "
                    "in memory, sent first when the server answers",
                    self.path,
                    exc,
                    self.memory_size,
                )
            self.hold(payloads, front, bound)

    def hold(self, payloads: list[str], front: bool = False, bound: bool = True) -> None:
        """Add to memory; beyond ``memory_size`` records the newest are dropped."""
        with self._memory_lock:
            if self._name is not None:
                payloads = self._name(payloads)
            if front:
                self.in_memory[:0] = payloads
            else:
                self.in_memory.extend(payloads)
            over = len(self.in_memory) - self.memory_size if bound else 0
            if over > 0:
                del self.in_memory[-over:]
        if over <= 0:
            return
        self.dropped += over
        if self._on_drop is not None:
            self._on_drop(over)
        if not self._drop_logged:
            self._drop_logged = True
            log.error(
                "remote UI %s: dropped %d record(s): the spill file %s could not be "
                "written (%s) and %d records already wait in memory (queue_size); newer "
                "records are dropped too until the server takes them (router.dropped "
                "counts all)",
                self.label,
                over,
                self.path,
                self.error,
                self.memory_size,
            )

    def reject(self, payloads: list[str], reason: str) -> None:
        """Keep records the server refused for good in the ``rejected`` table."""
        self.rejected += len(payloads)
        try:
            with self._file_lock:
                self._open().executemany(
                    "INSERT INTO rejected(reason, payload) VALUES (?, ?)",
                    [(reason, p) for p in payloads],
                )
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot keep rejected records in %s: %s", self.path, exc)

    # -- taking ----------------------------------------------------------------------
    def oldest(self, n: int) -> tuple[Where, list[str]]:
        """The ``n`` oldest waiting records (fewer if fewer wait) and where they are,
        for :meth:`forget`; they stay until forgotten."""
        if self.in_file:
            with self._file_lock:
                rows = (
                    self._open()
                    .execute("SELECT id, payload FROM spill ORDER BY id LIMIT ?", (n,))
                    .fetchall()
                )
                if not rows:
                    self.in_file = 0
            if rows:
                return (True, [r[0] for r in rows]), [r[1] for r in rows]
        with self._memory_lock:
            return (False, []), self.in_memory[:n]

    def forget(self, where: Where, done: int) -> None:
        """The first ``done`` records that :meth:`oldest` gave from ``where`` were
        answered. Nothing happens after :meth:`freeze`."""
        if done <= 0:
            return
        from_file, ids = where
        if from_file:
            with self._file_lock:
                if self._frozen:
                    return
                self._open().execute(
                    "DELETE FROM spill WHERE id BETWEEN ? AND ?", (ids[0], ids[done - 1])
                )
                self.in_file -= done
            return
        with self._memory_lock:
            if self._frozen:
                return
            del self.in_memory[:done]
            if not self.in_memory:
                self._drop_logged = False  # a later shortage logs its drops again

    def rewrite(self, change: Callable[[list[str]], list[str]]) -> None:
        """Replace every waiting record (file and memory) by what ``change`` makes of
        it (a list of records to a list as long, in order): for records that are to be
        sent differently than they were put (a run sent under another session name).
        A file that cannot be written keeps its records as they are (logged); after
        :meth:`close` nothing happens."""
        with self._memory_lock:
            self.in_memory[:] = change(self.in_memory)
        if not self.in_file:
            return
        try:
            with self._file_lock:
                if self._closed:
                    return
                con = self._open()
                rows = con.execute("SELECT id, payload FROM spill ORDER BY id").fetchall()
                new = change([p for _, p in rows])
                changed = [(p, i) for (i, old), p in zip(rows, new, strict=True) if p != old]
                con.execute("BEGIN IMMEDIATE")
                try:
                    con.executemany("UPDATE spill SET payload = ? WHERE id = ?", changed)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot rewrite the records of the spill file %s: %s", self.path, exc)

    def freeze(self) -> None:
        """From now on answers are moot (the sender gave up on its request): nothing
        is forgotten any more; adding still works."""
        with self._file_lock, self._memory_lock:
            self._frozen = True

    # -- closing ----------------------------------------------------------------------
    def close(self, why: str = "", hint: str = "", level: int = logging.WARNING) -> None:
        """Close the file and say what is left (once; a second call does nothing).

        Logs the records dropped in all (an error), the records the file keeps (at
        ``level``, with ``why`` they were not sent and the ``hint`` how to send them),
        and writes what memory holds to a JSON-lines file (logged). The file is
        removed when nothing is left in it and nothing was rejected.

        Parameters
        ----------
        why : str, default=""
            Why the records were not sent, e.g. ``"the UI is unreachable"``.
        hint : str, default=""
            What to do with the spill file, e.g. ``"send them later with ..."``.
        level : int, default=logging.WARNING
            The level of the message about the records the file keeps.
        """
        with self._file_lock:
            if self._closed:
                return
            self._closed = self._frozen = True
            if self._con is not None:
                self._con.close()
                self._con = None
        with self._memory_lock:
            unsaved = list(self.in_memory)
        if self.dropped:
            log.error(
                "remote UI %s: %d record(s) were dropped in all (the spill file %s could "
                "not be written: %s)",
                self.label,
                self.dropped,
                self.path,
                self.error,
            )
        if unsaved:
            self._save(unsaved)
        if self.in_file:
            log.log(
                level,
                "remote UI %s: %d record(s) not sent%s, kept in %s%s",
                self.label,
                self.in_file,
                f" ({why})" if why else "",
                self.path,
                f"; {hint}" if hint else "",
            )
        elif self.rejected:
            log.warning(
                "remote UI %s: the spill file %s is kept: its 'rejected' table holds %d "
                "record(s) the UI refused for good (%d of them now); nothing else is in "
                "it. Read why with: sqlite3 %s 'SELECT reason, payload FROM rejected' "
                "(or any SQLite reader), then delete the file (later routers with this "
                "spill_path only mention it at INFO)",
                self.label,
                self.path,
                self.rejected + self.rejected_before,
                self.rejected,
                self.path,
            )
        elif self.rejected_before:  # said at WARNING by the router that rejected them
            log.info(
                "remote UI %s: the spill file %s is still kept for the %d record(s) an "
                "earlier router kept in its 'rejected' table; delete the file once you "
                "have read their reasons",
                self.label,
                self.path,
                self.rejected_before,
            )
        elif not unsaved and self.path.exists():
            self.remove_files()
            log.info(
                "remote UI %s: every record of the spill file %s was sent; the file is removed",
                self.label,
                self.path,
            )

    def remove_files(self) -> None:
        """Delete the spill file (and its WAL files): call when nothing is left in it."""
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def _save(self, unsaved: list[str]) -> None:
        n = len(unsaved)
        for folder in (self.path.parent, Path(tempfile.gettempdir())):
            path = folder / f"{self.path.stem}-unsent-{uuid.uuid4().hex[:8]}.jsonl"
            try:
                with open(path, "x", encoding="utf-8") as f:
                    f.writelines(p + "\n" for p in unsaved)
            except OSError:
                continue
            log.error(
                "remote UI %s: %d record(s) not sent and not in the spill file %s; they are "
                "in %s (one JSON record a line, as embedviz.stats.records.to_dict writes)",
                self.label,
                n,
                self.path,
                path,
            )
            self.unsent_path = path
            return
        log.error(
            "remote UI %s: %d record(s) not sent and LOST: neither the spill file %s nor "
            "a file in %s could be written",
            self.label,
            n,
            self.path,
            tempfile.gettempdir(),
        )
