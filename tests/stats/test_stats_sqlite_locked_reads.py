"""Reads of a statistics file while another connection holds a lock on it (issue 4): in
WAL mode a read never waits for a writer (another's ``BEGIN EXCLUSIVE`` included, and
a writing storage's read waits at most READ_FLUSH_WAIT for its own buffered records);
a lock that does keep readers out (another program's exclusive locking mode, a file
not in WAL mode inside a write) refuses the read within READ_BUSY_TIMEOUT, with one
FileFormatError naming the file. Real SQLite locks; the writers' busy timeout is
patched to 8 s (30 s in use) and the reads' to 1 s (2 s), so that waiting the former
shows and the tests stay short."""

import sqlite3
import time

import pytest

from embedviz.errors import FileFormatError
from embedviz.stats import sqlite_file, sqlite_read, sqlite_writer
from embedviz.stats.records import Update
from embedviz.stats.storage import SQLiteStatsStorage

WRITERS_BUSY = 8.0
READ_BUSY = 1.0


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT", WRITERS_BUSY)
    monkeypatch.setattr(sqlite_writer, "BUSY_TIMEOUT", WRITERS_BUSY)
    monkeypatch.setattr(sqlite_file, "READ_BUSY_TIMEOUT", READ_BUSY)
    monkeypatch.setattr(sqlite_read, "READ_BUSY_TIMEOUT", READ_BUSY)


def _update(i, session="run"):
    return Update(session, "0", i, float(i), score=float(i))


def _file_with(path, n):
    with SQLiteStatsStorage(path) as storage:
        storage.put_many([_update(i) for i in range(n)])


def _timed(call):
    start = time.monotonic()
    result = call()
    return time.monotonic() - start, result


def test_a_writing_storage_reads_promptly_while_another_connection_holds_the_write_lock(tmp_path):
    """The storage's own records are buffered and the file is locked (BEGIN EXCLUSIVE):
    the read shows what the file holds within about READ_FLUSH_WAIT (it waited the
    busy timeout for its flush), and the buffered records are written once the lock
    goes, nothing lost."""
    path = tmp_path / "runs.db"
    _file_with(path, 5)
    storage = SQLiteStatsStorage(path, flush_interval=0.05)
    lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        storage.put_many([_update(i) for i in range(5, 8)])
        for _ in range(3):  # the writer thread's try in progress, then reads again
            elapsed, updates = _timed(lambda: storage.get_updates("run"))
            assert elapsed < sqlite_read.READ_FLUSH_WAIT + 1.0, elapsed
            assert [u.iteration for u in updates] == list(range(5))
        elapsed, sessions = _timed(storage.list_sessions)
        assert elapsed < sqlite_read.READ_FLUSH_WAIT + 1.0 and sessions == ["run"]
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    storage.close()
    with SQLiteStatsStorage(path, read_only=True) as reader:
        assert [u.iteration for u in reader.get_updates("run")] == list(range(8))


def test_a_writing_storage_still_reads_what_it_wrote(tmp_path):
    """With the file free, a read writes the buffer first (a process reads what it
    wrote), long before the writer thread would."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=60, batch_size=1000)
    storage.put_many([_update(i) for i in range(3)])
    assert [u.iteration for u in storage.get_updates("run")] == [0, 1, 2]
    storage.close()


def _locking_mode_exclusive(path):
    """Another connection in SQLite's exclusive locking mode after a write: it keeps
    every other connection out, readers too, until it closes."""
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA locking_mode = EXCLUSIVE")
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO meta VALUES ('other', 'program')")
    con.execute("COMMIT")
    return con


@pytest.mark.parametrize("read_only", [True, False])
def test_opening_a_file_another_program_keeps_exclusive_fails_soon_and_says_so(tmp_path, read_only):
    path = tmp_path / "runs.db"
    _file_with(path, 3)
    holder = _locking_mode_exclusive(path)
    try:
        start = time.monotonic()
        with pytest.raises(FileFormatError, match="the statistics file is locked by another") as e:
            SQLiteStatsStorage(path, read_only=read_only)
        elapsed = time.monotonic() - start
    finally:
        holder.close()
    assert elapsed < READ_BUSY + 1.5, elapsed  # was the busy timeout
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "end that program or its transaction" in message
    with SQLiteStatsStorage(path, read_only=True) as reader:  # once it is gone
        assert len(reader.get_updates("run")) == 3


def test_a_read_of_a_file_not_in_wal_mode_locked_for_a_write_fails_soon_and_says_so(tmp_path):
    """A file another program switched out of WAL mode: its write lock does keep
    readers out. An open read-only storage's read is refused within READ_BUSY_TIMEOUT
    with one FileFormatError (was: SQLite's bare OperationalError after the busy
    timeout); it reads again once the lock goes."""
    path = tmp_path / "runs.db"
    _file_with(path, 4)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    assert other.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    reader = SQLiteStatsStorage(path, read_only=True)
    assert len(reader.get_updates("run")) == 4
    other.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        with pytest.raises(FileFormatError, match=r"runs\.db: the statistics file is locked"):
            reader.get_updates("run")
        elapsed = time.monotonic() - start
        for read in (reader.poll, reader.quick_check):  # the UI's poll, embedviz check
            with pytest.raises(FileFormatError, match=r"runs\.db: the statistics file is locked"):
                read()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert elapsed < READ_BUSY + 1.5, elapsed
    assert len(reader.get_updates("run")) == 4
    reader.close()


def test_only_lock_errors_count_as_locked():
    assert sqlite_file.is_locked(sqlite3.OperationalError("database is locked"))
    assert not sqlite_file.is_locked(sqlite3.OperationalError("disk I/O error"))
    assert not sqlite_file.is_locked(sqlite3.DatabaseError("file is not a database"))
    assert not sqlite_file.is_locked(OSError("database is locked"))
