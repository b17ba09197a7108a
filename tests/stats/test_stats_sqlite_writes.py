"""SQLiteStatsStorage's write path: closing, a failing file, reader connections."""

import os
import re
import sqlite3
import threading
import time

import pytest

from embedviz.errors import InputError
from embedviz.stats.records import Update
from embedviz.stats.sqlite_storage import StatsWriteError
from embedviz.stats.storage import SQLiteStatsStorage


def _update(i, session="run"):
    return Update(session, "0", i, float(i), score=float(i))


def _iterations(path, session="run"):
    with SQLiteStatsStorage(path, read_only=True) as reader:
        return [u.iteration for u in reader.get_updates(session)]


def test_put_racing_with_close_is_refused_never_lost(tmp_path, monkeypatch):
    """Another thread's put arriving after close()'s final write (forced there by
    wrapping flush) is refused with an error naming the file, not accepted and lost."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=60)
    storage.put(_update(0))
    real_flush = storage.flush
    outcomes = []

    def flush_then_another_thread_puts():
        real_flush()
        if storage._stopping and not outcomes:  # close()'s final flush is done

            def put():
                try:
                    storage.put(_update(1))
                    outcomes.append("accepted")
                except InputError as exc:
                    outcomes.append(exc)

            t = threading.Thread(target=put)
            t.start()
            t.join()

    monkeypatch.setattr(storage, "flush", flush_then_another_thread_puts)
    storage.close()
    assert len(outcomes) == 1 and isinstance(outcomes[0], InputError), outcomes
    assert str(path) in str(outcomes[0]) and "closing" in str(outcomes[0])
    assert storage._buffer == []
    assert _iterations(path) == [0]
    with pytest.raises(InputError, match="closed"):
        storage.put(_update(2))


class _FailingFile:
    """``_write`` patched to fail like a full disk while ``broken`` is set."""

    def __init__(self, storage, monkeypatch):
        self.real = storage._write
        self.broken = True
        self.tries = 0
        monkeypatch.setattr(storage, "_write", self)

    def __call__(self, records):
        if self.broken:
            self.tries += 1
            raise sqlite3.OperationalError("database or disk is full")
        self.real(records)


def _wait_until(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_a_failing_file_never_raises_from_put_drops_beyond_the_bound_and_resumes(
    tmp_path, monkeypatch, caplog
):
    """Disk full: put goes on; the records stay buffered up to 32 x batch_size, the
    newer ones are dropped and counted; one error names the file and the cause (not
    one per retry); once the file works the writer thread writes the kept ones by
    itself, in order."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, batch_size=2, flush_interval=0.02)
    bound = 32 * 2
    disk = _FailingFile(storage, monkeypatch)
    with caplog.at_level("WARNING", logger="embedviz.stats.sqlite_storage"):
        for i in range(bound):
            storage.put(_update(i))  # never raises
        assert _wait_until(lambda: disk.tries >= 3)  # the writer thread keeps trying
        assert storage.dropped == 0 and len(storage._buffer) == bound
        storage.put_many([_update(i) for i in range(bound, bound + 10)])
        for i in range(bound + 10, bound + 15):
            storage.put(_update(i))
        assert storage.dropped == 15 and len(storage._buffer) == bound
        assert _wait_until(lambda: disk.tries >= 6)
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 2, errors  # the failure, the first drop: not one per try
        assert str(path) in errors[0] and "database or disk is full" in errors[0]
        assert str(path) in errors[1] and "dropping the newest records" in errors[1]
        assert storage.count_updates("run") == 0  # reads show the file, and do not raise
        disk.broken = False

        def resumed():
            return [
                r.getMessage() for r in caplog.records if "statistics works again" in r.getMessage()
            ]

        assert _wait_until(resumed)  # by itself
    assert len(resumed()) == 1 and "15 record(s) were dropped" in resumed()[0]
    storage.put(_update(1000))
    storage.close()
    assert _iterations(path) == [*range(bound), 1000]  # nothing lost below the bound
    assert storage.dropped == 15


def test_put_writing_itself_on_a_failing_file_does_not_raise(tmp_path, monkeypatch):
    """The writer thread asleep (long flush_interval, batch_size above what is put): the
    put that reaches the bound writes in its caller's thread; that write fails, put still
    returns, and the buffer is cut to the bound."""
    storage = SQLiteStatsStorage(tmp_path / "runs.db", batch_size=100, flush_interval=60)
    bound = 32 * 100
    disk = _FailingFile(storage, monkeypatch)
    storage.put(_update(0))
    storage.put_many([_update(i) for i in range(1, bound + 5)])  # the put that writes
    assert 1 <= disk.tries <= 2  # put's own write (and perhaps the thread's)
    assert len(storage._buffer) == bound and storage.dropped == 5
    disk.broken = False
    storage.close()
    assert _iterations(tmp_path / "runs.db") == list(range(bound))


def test_put_never_waits_for_a_file_another_process_locks(tmp_path, caplog):
    """Another connection holds the write lock (the writer thread waits on it, up to the
    30 s busy timeout): every put returns at once; past the bound the newest records are
    dropped and counted, with one error; once the lock is released the kept ones (the
    bound's worth, or what the writer thread took before it blocked if that is more) are
    written, in order."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, batch_size=1, flush_interval=0.05)
    bound, n = 32 * 1, 100
    storage.put(_update(0))
    storage.flush()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        slowest = 0.0
        with caplog.at_level("ERROR", logger="embedviz.stats.sqlite_storage"):
            for i in range(1, n + 1):
                start = time.perf_counter()
                storage.put(_update(i))
                slowest = max(slowest, time.perf_counter() - start)
        assert slowest < 0.5, f"a put waited {slowest:.2f} s for the locked file"
        assert storage.dropped > 0
        assert storage.failing is not None
        errors = [r.getMessage() for r in caplog.records]
        assert len(errors) == 2, errors  # the failure, the first drop
        assert str(path) in errors[1] and "dropping the newest records" in errors[1]
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert _wait_until(lambda: storage.failing is None)  # the writer thread got the lock
    storage.close()
    written = _iterations(path)
    assert written == list(range(len(written)))  # the oldest kept, in order
    assert len(written) == 1 + n - storage.dropped >= 1 + bound


def test_the_writer_thread_retries_what_another_threads_failed_write_put_back(
    tmp_path, monkeypatch
):
    """The writer thread asleep with an empty buffer; a put that does not wake it (its
    notify suppressed, as when flush() takes the buffer first), then flush() fails and
    puts the records back: the writer thread must wake and retry them, or nothing is
    written until the next put (the UI's receiver refuses puts while the file fails)."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, batch_size=100, flush_interval=0.02)
    storage.put(_update(0))
    storage.flush()
    time.sleep(0.1)  # the thread waits for the next record, without a timeout
    disk = _FailingFile(storage, monkeypatch)
    notify = storage._wake.notify
    storage._wake.notify = lambda n=1: None
    storage.put(_update(1))
    storage._wake.notify = notify
    with pytest.raises(StatsWriteError):
        storage.flush()
    assert storage.failing is not None
    disk.broken = False
    assert _wait_until(lambda: storage.failing is None, 2.0)  # retried by the thread
    assert storage._buffer == []
    storage.close()
    assert _iterations(path) == [0, 1]


def test_flush_and_close_on_a_failing_file_raise_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=60)
    disk = _FailingFile(storage, monkeypatch)
    storage.put_many([_update(i) for i in range(3)])
    expected = (
        rf"{re.escape(str(path))}: cannot write statistics \(OperationalError: database or "
        r"disk is full\); 3 record\(s\) are not written and stay buffered; free disk space"
    )
    with pytest.raises(StatsWriteError, match=expected) as raised:
        storage.flush()
    assert not isinstance(raised.value, sqlite3.Error) and isinstance(raised.value, OSError)
    with pytest.raises(StatsWriteError, match=expected):
        storage.close()  # stays open, its records buffered
    with pytest.raises(InputError, match="closing"):
        storage.put(_update(3))
    disk.broken = False
    storage.close()  # again, now that the file works
    assert _iterations(path) == [0, 1, 2]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_reader_connections_of_ended_threads_are_closed(tmp_path):
    """A thread-per-request reader (a notebook, a web app) must not leave a connection
    and its file descriptors open per thread it ever ran."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path)
    storage.put(_update(0))
    storage.flush()
    assert storage.get_updates("run")[0].iteration == 0

    def fds():
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    seen = []
    for _ in range(200):
        t = threading.Thread(target=lambda: seen.append(len(storage.get_updates("run"))))
        t.start()
        t.join()
    assert seen == [1] * 200  # every thread read
    assert fds() <= before + 4  # the newest ended thread's connection at most
    assert len(storage._readers) <= 2
    storage.close()
    assert fds() < before


def test_a_really_full_file_keeps_the_bound_and_writes_it_in_order_once_there_is_room(
    tmp_path,
):
    """A real SQLITE_FULL (``PRAGMA max_page_count`` on the writer connection), not a
    patched write: it counts as a failure of the file (retried, never a record's fault:
    nothing is rejected); records stay buffered up to the bound, the newer ones are
    dropped and counted; once there is room again everything kept is written, in order."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, batch_size=4, flush_interval=0.02)
    bound = 32 * 4
    storage.put(_update(0))
    storage.flush()
    with storage._write_lock:  # the writer thread is not using the connection
        pages = storage._writer.execute("PRAGMA page_count").fetchone()[0]
        storage._writer.execute(f"PRAGMA max_page_count = {pages + 1}")
    n = 3000
    for i in range(1, n):
        storage.put(_update(i))  # never raises
    assert _wait_until(lambda: "full" in (storage.failing or "")), storage.failing
    assert storage.dropped > 0 and storage.rejected == 0
    held = len(storage._buffer) + storage._taken
    assert held > 0  # kept for later (the bound's exact count: the patched tests above)
    with storage._write_lock:
        storage._writer.execute("PRAGMA max_page_count = 1000000")
    assert _wait_until(lambda: storage.failing is None)  # by itself
    storage.close()
    written = _iterations(path)
    assert written == list(range(len(written)))  # in order, none missing below the cut
    assert len(written) == n - storage.dropped > bound
