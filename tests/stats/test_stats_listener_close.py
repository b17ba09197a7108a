"""StatsListener's close (the end of its ``with`` block) on a statistics file another
connection holds locked: the README's "trouble with the storage never stops the
training" (review 8, finding 1). Real SQLite locks, short waits patched in."""

import time

import pytest

torch = pytest.importorskip("torch")

from sqlite_lock import Lock  # noqa: E402  (another connection's lock)

from embedviz.errors import StatsWriteError  # noqa: E402
from embedviz.stats import sqlite_close, sqlite_file, sqlite_writer  # noqa: E402
from embedviz.stats.listener import StatsListener  # noqa: E402
from embedviz.stats.records import Update  # noqa: E402
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage  # noqa: E402

pytestmark = pytest.mark.torch

BUSY = 0.5  # the busy timeout while the file works (30 s in use)
CLOSE_WAIT = 0.3  # the producer's bound at close (5 s in use)


@pytest.fixture
def short_waits(monkeypatch):
    """Short waits for another connection's lock, set before a storage connects."""
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT", BUSY)
    monkeypatch.setattr(sqlite_writer, "BUSY_TIMEOUT", BUSY)
    monkeypatch.setattr(sqlite_writer, "_RETRY_BUSY", 0.1, raising=False)
    monkeypatch.setattr(sqlite_close, "CLOSE_WAIT", CLOSE_WAIT)


def _wait_until(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    X, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    return model, opt, X, y


def _steps(listener, model, opt, X, y, n):
    for _ in range(n):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        listener.step(loss)


def _errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("known", [False, True], ids=["first-try-at-close", "known-failing"])
def test_with_block_on_a_locked_file_returns_within_the_bound_with_one_error(
    tmp_path, short_waits, caplog, known
):
    """The ``with`` block ends within the bound, without StatsWriteError, and logs one
    error naming the file, the cause and every record not written: whether the writer
    thread had already met the lock during training (its own error then, before the
    block ends) or the close's flush is the first to. Once the lock is released, the
    records are written without any further call (the writer thread), and the model's
    later code runs."""
    path = tmp_path / "runs.db"
    # known: the writer thread tries every 0.05 s; else it never wakes by itself
    storage = SQLiteStatsStorage(path, flush_interval=0.05 if known else 60)
    model, opt, X, y = _setup()
    lock = None
    try:
        with caplog.at_level("ERROR", logger="embedviz"):
            with StatsListener(storage, model, opt, frequency=1, session_id="run") as listener:
                lock = Lock(path)
                _steps(listener, model, opt, X, y, 12)
                if known:
                    assert _wait_until(lambda: storage.failing is not None)
                    assert len(_errors(caplog)) == 1  # the storage's, during training
                    caplog.clear()
                held = len(storage._buffer) + storage._taken
                start = time.monotonic()
            elapsed = time.monotonic() - start  # the script goes on after the block
        assert elapsed < CLOSE_WAIT + 0.6, elapsed
        errors = _errors(caplog)
        assert len(errors) == 1, errors
        assert str(path) in errors[0] and "database is locked" in errors[0]
        assert f"{held} statistics record(s) are not written" in errors[0]
        assert "stay buffered" in errors[0] and "close()" in errors[0]
        assert held >= 13  # the static record and 12 updates
        if known:
            lock.release()  # the writer thread writes them by itself
            with SQLiteStatsStorage(path, read_only=True) as reader:
                assert _wait_until(lambda: reader.count_updates("run") == 12)
                assert [u.iteration for u in reader.get_updates("run")] == list(range(12))
    finally:
        if lock is not None:
            lock.release()
        storage.close()
    with SQLiteStatsStorage(path, read_only=True) as reader:
        assert [u.iteration for u in reader.get_updates("run")] == list(range(12))
        assert reader.get_static_info("run", "0") is not None


def test_storage_close_after_the_listener_reports_what_is_not_written(tmp_path, short_waits):
    """After the listener closed on a locked file, the storage's own close() says how
    many records are not written (every one the listener put) and raises; once the lock
    is released a second close() writes them all."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=60)
    model, opt, X, y = _setup(1)
    lock = None
    try:
        with StatsListener(storage, model, opt, frequency=2, session_id="run") as listener:
            lock = Lock(path)
            _steps(listener, model, opt, X, y, 10)
        start = time.monotonic()
        with pytest.raises(StatsWriteError) as raised:
            storage.close()
        assert time.monotonic() - start < BUSY  # known to fail: no busy timeout again
        assert raised.value.unwritten == 6  # the static record and 5 updates
        assert raised.value.path == path
        assert "database is locked" in raised.value.cause
        assert "6 record(s) are not written" in str(raised.value)
        lock.release()
        storage.close()
    finally:
        if lock is not None:
            lock.release()
        storage.close()
    with SQLiteStatsStorage(path, read_only=True) as reader:
        assert [u.iteration for u in reader.get_updates("run")] == [0, 2, 4, 6, 8]


def test_flush_at_close_flushes_other_storages_and_lets_bugs_through(tmp_path, monkeypatch):
    """Only trouble with the file is turned into a logged error: a storage without the
    bounded flush is flushed as it is, and a bug (not an SQLite or OS error) raises."""
    memory = InMemoryStatsStorage()
    sqlite_close.flush_at_close(memory, "StatsListener")  # no timeout parameter there
    storage = SQLiteStatsStorage(tmp_path / "runs.db", flush_interval=60)
    storage.put(Update("run", "0", 0, 0.0, score=1.0))

    def bug(records):
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(storage, "_write", bug)
    with pytest.raises(RuntimeError, match="a bug in the writer"):
        sqlite_close.flush_at_close(storage, "StatsListener")
    monkeypatch.undo()
    storage.close()
    with SQLiteStatsStorage(tmp_path / "runs.db", read_only=True) as reader:
        assert reader.count_updates("run") == 1
