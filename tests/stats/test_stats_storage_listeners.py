"""The listener contract of every readable storage (issue 4: "listeners notified of new
data"): ``register_listener`` is told of each record written through the storage once it
is readable (SQLite: when it is flushed), a failing listener never reaches the writer,
and ``deregister_listener`` stops the calls."""

from __future__ import annotations

import time

import pytest

from embedviz.errors import InputError
from embedviz.stats.records import EvalRecord, Snapshot, StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, tmp_path):
    if request.param == "memory":
        st = InMemoryStatsStorage()
    else:  # a long interval: the writes reach the file when the test flushes
        st = SQLiteStatsStorage(tmp_path / "runs.db", flush_interval=60.0)
    yield st
    st.close()


def _records(worker: str, start: int) -> list:
    return [
        StaticInfo("run", worker, 1.0, kind="other"),
        Update("run", worker, start, 2.0, score=0.5),
        EvalRecord("run", worker, start + 1, 3.0, {"acc": 0.9}),
        Snapshot("run", worker, start + 2, 4.0, "embedding", ["a"], [[1.0, 2.0]]),
        Update("run", worker, start + 3, 5.0, score=0.25),
    ]


def _wait_for(seen: list, n: int) -> None:
    """The writer thread may be the one that flushes, and it notifies after writing."""
    deadline = time.monotonic() + 5.0
    while len(seen) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_listener_told_of_every_record_once_readable_then_deregistered(storage):
    seen = []

    def on_event(event):  # what the storage holds when it tells
        readable = {
            "static": lambda: storage.get_static_info("run", event.worker_id) is not None,
            "update": lambda: any(
                u.iteration == event.iteration for u in storage.get_updates("run", event.worker_id)
            ),
            "eval": lambda: (
                [e.iteration for e in storage.get_evals("run", event.worker_id)]
                == [event.iteration]
            ),
            "snapshot": lambda: len(storage.get_snapshots("run", event.worker_id)) == 1,
        }[event.kind]()
        seen.append((event.kind, event.session_id, event.worker_id, event.iteration, readable))

    storage.register_listener(on_event)
    records = _records("0", 10)
    storage.put_many(records)
    storage.flush()
    _wait_for(seen, len(records))
    want = [
        ("static", "run", "0", None),
        ("update", "run", "0", 10),
        ("eval", "run", "0", 11),
        ("snapshot", "run", "0", 12),
        ("update", "run", "0", 13),
    ]
    assert sorted((s[:4] for s in seen), key=str) == sorted(want, key=str)  # each once
    assert all(s[4] for s in seen), seen  # each was readable when told
    storage.deregister_listener(on_event)
    storage.deregister_listener(on_event)  # unknown now: ignored
    storage.put_many(_records("1", 20))
    storage.flush()
    time.sleep(0.05)
    assert len(seen) == len(want)  # nothing more after deregistering
    assert storage.count_updates("run", "1") == 2


def test_a_failing_listener_neither_reaches_the_writer_nor_stops_the_others(storage, caplog):
    told = []

    def broken(event):
        raise RuntimeError("a UI gone bad")

    storage.register_listener(broken)
    storage.register_listener(told.append)
    storage.put(Update("run", "0", 1, 1.0, score=1.0))
    storage.flush()
    _wait_for(told, 1)
    assert [(e.kind, e.iteration) for e in told] == [("update", 1)]
    assert "storage listener" in caplog.text and "a UI gone bad" in caplog.text
    assert storage.count_updates("run") == 1


def test_register_listener_refuses_what_cannot_be_called(storage):
    with pytest.raises(InputError, match="callback: expected a callable, got 'on_event'"):
        storage.register_listener("on_event")
