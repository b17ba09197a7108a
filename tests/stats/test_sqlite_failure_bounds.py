"""How long SQLiteStatsStorage waits for a statistics file another connection holds
locked, and what its StatsWriteError counts (review 8, findings 1 and 2): a file known
to fail is not waited for with the busy timeout again, flush/close take a timeout, the
records a write in progress holds are counted, interpreter exit is bounded and says
one line. Real SQLite locks; the busy timeout is patched short (30 s in use)."""

import os
import subprocess
import sys
import threading
import time

import pytest
from sqlite_lock import Lock

from embedviz.errors import InputError, StatsWriteError
from embedviz.stats import sqlite_file, sqlite_writer
from embedviz.stats.records import Update
from embedviz.stats.storage import SQLiteStatsStorage

BUSY = 1.5  # the busy timeout while the file works
RETRY_BUSY = 0.1  # once it is known to fail


@pytest.fixture
def short_waits(monkeypatch):
    """Short waits for another connection's lock, set before a storage connects."""
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT", BUSY)
    monkeypatch.setattr(sqlite_writer, "BUSY_TIMEOUT", BUSY)
    monkeypatch.setattr(sqlite_writer, "_RETRY_BUSY", RETRY_BUSY, raising=False)


def _update(i):
    return Update("run", "0", i, float(i), score=float(i))


def _iterations(path):
    with SQLiteStatsStorage(path, read_only=True) as reader:
        return [u.iteration for u in reader.get_updates("run")]


def _wait_until(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def _timed(call):
    start = time.monotonic()
    with pytest.raises(StatsWriteError) as raised:
        call()
    return time.monotonic() - start, raised.value


def test_flush_counts_the_records_a_write_in_progress_holds(tmp_path, short_waits):
    """The writer thread has taken every record and waits for the lock: a flush with a
    timeout raises within it, and counts those records (not 0, as the buffer is empty);
    the fields say what the message says."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=0.02)
    lock = Lock(path)
    try:
        storage.put_many([_update(i) for i in range(7)])
        assert _wait_until(lambda: storage._taken == 7)  # the thread's try, in progress
        assert storage._buffer == []
        elapsed, error = _timed(lambda: storage.flush(timeout=0.2))
        assert elapsed < 0.2 + 0.5, elapsed
        assert error.unwritten == 7 and error.path == path
        assert "slow, or locked by another process" in error.cause
        assert f"{path}: cannot write statistics ({error.cause}); 7 record(s) are not" in str(error)
    finally:
        lock.release()
    storage.close()
    assert _iterations(path) == list(range(7))


def test_flush_and_close_on_a_file_known_to_fail_do_not_wait_the_busy_timeout_again(
    tmp_path, short_waits
):
    """Once a write failed, flush() and close() raise within the short retry wait, with
    every record counted, instead of the busy timeout each (close waited twice: the
    writer thread's try, then its own); the records stay buffered and are written once
    the lock goes. A file merely busy for a moment, once it works again, is still
    waited for (up to the busy timeout)."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=0.02)
    lock = Lock(path)
    try:
        storage.put_many([_update(i) for i in range(5)])
        assert _wait_until(lambda: storage.failing is not None)  # the thread's first try
        elapsed, error = _timed(storage.flush)
        assert elapsed < BUSY - 0.5, elapsed
        assert error.unwritten == 5 and "database is locked" in error.cause
        assert "5 record(s) are not written" in str(error)
        storage.put(_update(5))
        elapsed, error = _timed(storage.close)
        assert elapsed < BUSY - 0.5, elapsed  # not the thread's try, then its own
        assert error.unwritten == 6
    finally:
        lock.release()
    storage.close()  # again, once the file works
    assert _iterations(path) == list(range(6))

    storage = SQLiteStatsStorage(path, flush_interval=60)
    storage.put(_update(6))
    lock = Lock(path)
    timer = threading.Timer(0.5, lock.release)  # busy for longer than the retry wait
    timer.start()
    try:
        storage.flush()  # waits for it: the file has not failed
    finally:
        timer.join()
        lock.release()
    storage.close()
    assert _iterations(path) == list(range(7))


def test_close_with_a_timeout_returns_while_the_writer_thread_waits(tmp_path, short_waits):
    """close(timeout) on a file whose lock the writer thread is still waiting for (its
    first try) raises within the timeout, counting what that try holds; the storage
    stays open, and a later close writes everything."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=0.02)
    lock = Lock(path)
    try:
        storage.put_many([_update(i) for i in range(4)])
        assert _wait_until(lambda: storage._taken == 4)
        elapsed, error = _timed(lambda: storage.close(timeout=0.2))
        assert elapsed < 0.2 + 0.5, elapsed
        assert error.unwritten == 4
    finally:
        lock.release()
    storage.close()
    assert _iterations(path) == list(range(4))


def _ended(storage, seconds=BUSY + 3.0):
    """The writer thread has ended (its try of the lock is over)."""
    storage._thread.join(seconds)
    return not storage._thread.is_alive()


def test_close_dropping_the_unwritten_records_closes_within_the_timeout(tmp_path, short_waits):
    """close(timeout, drop_unwritten=True), for a program about to end: it raises
    within the timeout saying how many records are dropped, counts them in dropped, and
    the storage is closed (a put is refused). The writer thread's write in progress,
    which gets the lock once it goes, rolls back instead of committing them: the file
    holds exactly what was written before, and the thread closes its connection."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=0.02)
    storage.put(_update(0))
    storage.flush()
    lock = Lock(path)
    try:
        storage.put_many([_update(i) for i in range(1, 4)])
        assert _wait_until(lambda: storage._taken == 3)  # the thread waits for the lock
        elapsed, error = _timed(lambda: storage.close(timeout=0.2, drop_unwritten=True))
        assert elapsed < 0.2 + 0.5, elapsed
        assert error.unwritten == 3 and storage.dropped == 3
        assert "3 record(s) are not written and are dropped" in str(error)
        assert "may yet be written" not in str(error)
        with pytest.raises(InputError, match="closed"):
            storage.put(_update(4))
        storage.close()  # closed: nothing to do
    finally:
        lock.release()  # the thread's BEGIN now succeeds, within its busy timeout
    assert _ended(storage)
    assert _iterations(path) == [0]  # what the error says was not dropped
    assert storage.dropped == 3
    assert storage._writer is None  # closed by the thread as its write ended


def test_close_dropping_counts_only_what_a_write_has_not_committed(tmp_path, short_waits):
    """A write in transactions of 4 records (batch_size 1) meets the lock after its
    first: close(drop_unwritten=True) drops the 4 the file has not got, not all 8."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, batch_size=1, flush_interval=60)
    write, locks = storage._write, []

    def write_then_lock(records):
        write(records)
        if not locks:  # another process takes the file after the first transaction
            locks.append(Lock(path))

    storage._write = write_then_lock
    try:
        storage.put_many([_update(i) for i in range(8)])
        assert _wait_until(lambda: bool(locks))
        error = _timed(lambda: storage.close(timeout=0.2, drop_unwritten=True))[1]
        assert error.unwritten == 4 and storage.dropped == 4, str(error)
        assert "4 record(s) are not written and are dropped" in str(error)
    finally:
        for lock in locks:
            lock.release()
    assert _ended(storage)
    assert _iterations(path) == [0, 1, 2, 3]


class _SlowCommit:
    """The writer connection, its COMMIT held until ``go`` is set."""

    def __init__(self, con):
        self.con, self.committing, self.go = con, threading.Event(), threading.Event()

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self.committing.set()
            self.go.wait(10)
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_close_dropping_words_apart_the_records_a_commit_under_way_may_write(tmp_path):
    """Records whose COMMIT is under way when close(drop_unwritten=True) gives up are
    not counted as dropped: the error says they may yet be written, and they are."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=0.02)
    slow = storage._writer = _SlowCommit(storage._writer)
    storage.put_many([_update(i) for i in range(3)])
    assert slow.committing.wait(10)
    error = _timed(lambda: storage.close(timeout=0.2, drop_unwritten=True))[1]
    slow.go.set()
    assert error.unwritten == 0 and storage.dropped == 0, str(error)
    assert "0 record(s) are not written and are dropped" in str(error)
    assert "; 3 more were being committed at that moment and may yet be written" in str(error)
    assert _ended(storage)
    assert storage._writer is None
    assert _iterations(path) == [0, 1, 2]


@pytest.mark.parametrize("timeout", [1e7, 1e10, 1e300])
def test_a_timeout_too_long_to_wait_waits_as_long_as_it_takes(tmp_path, short_waits, timeout):
    """flush(timeout)/close(timeout) longer than threading can wait (1e10 s) or SQLite's
    busy timeout can hold (2**31 ms; beyond, SQLite waited 0 s) wait for a lock that
    goes, as a long timeout should, and the file is never taken as failing for it."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=60)
    for i, call in enumerate([storage.flush, storage.close]):
        storage.put(_update(i))
        lock = Lock(path)
        timer = threading.Timer(0.3, lock.release)
        timer.start()
        try:
            call(timeout=timeout)
        finally:
            timer.join()
            lock.release()
        assert storage.failing is None
    assert _iterations(path) == [0, 1]
    with pytest.raises(InputError, match="timeout: expected a number >= 0, got inf"):
        SQLiteStatsStorage(path).close(timeout=float("inf"))


_EXIT_SCRIPT = """
import logging, sqlite3, sys, time
logging.basicConfig(format="%(levelname)s %(message)s")
from embedviz.stats import sqlite_close, sqlite_file, sqlite_writer
from embedviz.stats.records import Update
from embedviz.stats.storage import SQLiteStatsStorage
sqlite_file.BUSY_TIMEOUT = sqlite_writer.BUSY_TIMEOUT = 4.0
sqlite_close.CLOSE_WAIT = 0.3
path = sys.argv[1]
storage = SQLiteStatsStorage(path, flush_interval=float(sys.argv[2]))
other = sqlite3.connect(path, isolation_level=None)
other.execute("BEGIN EXCLUSIVE")  # held until the process ends
storage.put_many([Update("run", "0", i, float(i), score=1.0) for i in range(9)])
time.sleep(0.2)
if sys.argv[3] == "drop":
    try:
        storage.close(timeout=0.2, drop_unwritten=True)
    except Exception as exc:
        print(type(exc).__name__, exc.unwritten, flush=True)
print("end", flush=True)
"""


@pytest.mark.parametrize(
    ("flush_interval", "close"),
    [(60, "no"), (0.02, "no"), (0.02, "drop")],
    ids=["idle-thread", "thread-waiting", "dropped-at-close"],
)
def test_interpreter_exit_on_a_locked_file_is_bounded_and_says_one_line(
    tmp_path, flush_interval, close
):
    """A script ending with records buffered for a locked file: the exit handler waits
    at most its bound (not the busy timeout, not until the lock goes), and one error
    says how many records are lost and why, whether the writer thread is idle or in
    its first try; after close(drop_unwritten=True), which said it, exit says nothing."""
    script = tmp_path / "ends.py"
    script.write_text(_EXIT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "runs.db"), str(flush_interval), close],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if close == "drop":
        assert proc.stdout.readline() == "StatsWriteError 9\n"
    assert proc.stdout.readline() == "end\n"
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, err
    assert elapsed < 2.5, elapsed  # the bound 0.3 s and the interpreter's end
    lines = err.strip().splitlines()
    if close == "drop":
        assert lines == [], err
        return
    assert len(lines) == 1, err
    assert lines[0].startswith("ERROR at exit: ") and "9 statistics record(s) are lost" in err
    assert str(tmp_path / "runs.db") in err and "locked" in err
