"""SQLiteStatsStorage's write path: closing, a failing file, reader connections."""

import threading

import pytest

from embedviz.errors import InputError
from embedviz.stats.records import Update
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
