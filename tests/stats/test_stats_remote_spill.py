"""SpillQueue without a server: the spill file, the memory fallback and their order."""

import json
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from embedviz.errors import InputError
from embedviz.stats.remote_spill import SpillQueue


def rec(i):
    return json.dumps({"iteration": i})


def drain(q, batch=3):
    """Every waiting record, oldest first, as a sender takes them."""
    out = []
    while len(q):
        where, payloads = q.oldest(batch)
        out += [json.loads(p)["iteration"] for p in payloads]
        q.forget(where, len(payloads))
    return out


def removed_later(tmp_path):
    """A spill path in a folder that exists now (a missing one is refused up front); the
    test removes the folder after making the queue, which then cannot write its file."""
    folder = tmp_path / "removed-later"
    folder.mkdir()
    return folder / "s.db"


@pytest.fixture
def queues():
    made = []

    def make(path, memory_size=100, **kw):
        made.append(SpillQueue(path, memory_size, label="test", **kw))
        return made[-1]

    yield make
    for q in made:
        q.close()


def test_the_file_keeps_the_order_and_a_batch_put_back_goes_in_front(tmp_path, queues):
    q = queues(tmp_path / "s.db")
    q.add([rec(3), rec(4)])
    q.add([rec(5)])
    q.add([rec(1), rec(2)], front=True)  # the batch that was in flight: older
    assert len(q) == 5 and q.in_file == 5 and q.in_memory == []
    where, payloads = q.oldest(2)
    assert [json.loads(p)["iteration"] for p in payloads] == [1, 2]
    q.forget(where, 1)  # the server answered the first only
    q.close()
    again = queues(tmp_path / "s.db")  # a later run finds the rest, in order
    assert again.in_file == 4 and drain(again) == [2, 3, 4, 5]


def test_what_the_file_cannot_take_waits_in_memory_and_keeps_its_place(
    tmp_path, queues, monkeypatch, caplog
):
    q = queues(tmp_path / "s.db")
    q.add([rec(0), rec(1)])
    write = q._write

    def full(payloads, front):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(q, "_write", full)
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote_spill"):
        q.add([rec(2), rec(3)])
        q.add([rec(4)])
    assert (q.in_file, len(q.in_memory)) == (2, 3)
    assert caplog.text.count("cannot write the spill file") == 1 and "disk is full" in q.error
    monkeypatch.setattr(q, "_write", write)  # the disk has room again ...
    q.add([rec(5)])  # ... but memory holds older records: 5 joins them, not the file
    assert (q.in_file, len(q.in_memory)) == (2, 4)
    assert drain(q) == [0, 1, 2, 3, 4, 5]


def test_memory_is_bounded_the_newest_are_dropped_and_said_once(tmp_path, queues, caplog):
    told = []
    q = queues(removed_later(tmp_path), memory_size=3, on_drop=told.append)
    q.path.parent.rmdir()
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote_spill"):
        for i in range(6):
            q.add([rec(i)])
    assert drain(q) == [0, 1, 2]  # the oldest kept
    assert q.dropped == 3 and sum(told) == 3
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    q.add([rec(9)], bound=False)  # close() keeps everything: no bound
    q.add([rec(10)], bound=False)
    q.add([rec(11)], bound=False)
    q.add([rec(12)], bound=False)
    assert len(q.in_memory) == 4 and q.dropped == 3


def test_after_freeze_answers_are_moot(tmp_path, queues):
    q = queues(tmp_path / "s.db")
    q.add([rec(0), rec(1)])
    where, payloads = q.oldest(2)
    q.freeze()  # the sender gave up on its request: nothing is forgotten
    q.forget(where, 2)
    q.add([rec(2)])
    assert q.in_file == 3


def test_close_writes_what_memory_holds_to_json_lines(tmp_path, caplog):
    q = SpillQueue(removed_later(tmp_path), 10, label="test")
    q.path.parent.rmdir()
    q.add([rec(7), rec(8)])
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote_spill"):
        q.close()
    assert q.unsent_path is not None and str(q.unsent_path) in caplog.text
    lines = q.unsent_path.read_text().splitlines()
    q.unsent_path.unlink()
    assert [json.loads(line)["iteration"] for line in lines] == [7, 8]
    assert "2 record(s) not sent" in caplog.text


def test_rejected_records_are_kept_apart_with_their_reason(tmp_path, queues):
    q = queues(tmp_path / "s.db")
    q.add([rec(0)])
    q.reject([rec(5)], "HTTP 400: bad")
    assert len(q) == 1
    q.close()
    con = sqlite3.connect(tmp_path / "s.db")
    rows = con.execute("SELECT reason, payload FROM rejected").fetchall()
    con.close()
    assert rows == [("HTTP 400: bad", rec(5))]


def test_close_says_what_is_left_once_and_removes_an_empty_file(tmp_path, caplog):
    kept = SpillQueue(tmp_path / "kept.db", 10, label="test")
    kept.add([rec(0), rec(1)])
    with caplog.at_level(logging.INFO, logger="embedviz.stats.remote_spill"):
        kept.close(why="the UI is away", hint="send them later", level=logging.INFO)
        kept.close(why="again")  # a second close says and does nothing
    [said] = caplog.records
    assert said.levelno == logging.INFO
    assert said.getMessage() == (
        f"remote UI test: 2 record(s) not sent (the UI is away), kept in "
        f"{tmp_path / 'kept.db'}; send them later"
    )
    assert (tmp_path / "kept.db").exists()

    empty = SpillQueue(tmp_path / "empty.db", 10, label="test")
    empty.add([rec(0)])
    empty.forget(*empty.oldest(1)[:1], 1)  # sent
    empty.close()
    assert not list(tmp_path.glob("empty.db*"))  # the file and its WAL files

    rejected = SpillQueue(tmp_path / "rejected.db", 10, label="test")
    rejected.reject([rec(5)], "HTTP 400: bad")
    rejected.close()
    assert rejected.rejected == 1 and (tmp_path / "rejected.db").exists()


def test_close_says_how_many_were_dropped_in_all(tmp_path, caplog):
    q = SpillQueue(removed_later(tmp_path), 2, label="test")
    q.path.parent.rmdir()
    for i in range(5):
        q.add([rec(i)])
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote_spill"):
        q.close()
    q.unsent_path.unlink()
    [said] = [r.getMessage() for r in caplog.records if "in all" in r.getMessage()]
    assert "3 record(s) were dropped in all" in said and q.error and q.error in said


def test_a_file_with_an_earlier_runs_rejected_records_is_kept_and_an_empty_one_removed(
    tmp_path, queues, caplog
):
    path = tmp_path / "s.db"
    first = queues(path)
    first.add([rec(0), rec(1)])
    first.reject([rec(0)], "HTTP 400: bad")
    first.forget(first.oldest(2)[0], 2)
    with caplog.at_level(logging.INFO, logger="embedviz.stats.remote_spill"):
        first.close()
    assert path.exists()  # its own rejected record keeps it
    [said] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert said.levelno == logging.WARNING  # said once, with how to clear it
    assert "'rejected' table holds 1 record(s)" in said.getMessage()
    assert f"sqlite3 {path} 'SELECT reason, payload FROM rejected'" in said.getMessage()
    assert "then delete the file" in said.getMessage()
    caplog.clear()
    again = queues(path)  # a later run sends what waits; the rejected row stays
    again.add([rec(2)])
    assert drain(again) == [2]
    with caplog.at_level(logging.INFO, logger="embedviz.stats.remote_spill"):
        again.close()
    assert path.exists()
    [said] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert said.levelno == logging.INFO  # not a warning at every later close
    assert "still kept for the 1 record(s) an earlier router kept" in said.getMessage()
    assert "delete the file" in said.getMessage()
    con = sqlite3.connect(path)
    assert con.execute("SELECT reason FROM rejected").fetchall() == [("HTTP 400: bad",)]
    con.close()
    other = tmp_path / "t.db"
    q = queues(other)
    q.add([rec(3)])
    assert drain(q) == [3]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="embedviz.stats.remote_spill"):
        q.close()
    assert not other.exists()
    assert f"every record of the spill file {other} was sent; the file is removed" in caplog.text


def test_rewrite_changes_the_waiting_records_in_the_file_and_in_memory(tmp_path, queues):
    q = queues(tmp_path / "s.db")
    q.add([rec(1), rec(2)])
    q.hold([rec(3)])
    q.rewrite(lambda ps: [json.dumps({"iteration": 10 * json.loads(p)["iteration"]}) for p in ps])
    assert drain(q) == [10, 20, 30]


def test_a_spill_path_that_cannot_be_written_is_refused_up_front(tmp_path, monkeypatch):
    """Review 13: ``RemoteStatsRouter(url, spill_path="/nonexist/x.db")`` was accepted,
    then logged "keeping them in /nonexist/x.db" and "cannot write the spill file"."""
    from embedviz.stats.remote import RemoteStatsRouter

    missing = tmp_path / "nonexist" / "x.db"
    with pytest.raises(InputError, match=r"spill_path: the folder .*nonexist does not exist"):
        SpillQueue(missing, 10, label="test")
    threads = threading.active_count()
    with pytest.raises(InputError, match=r"create it or give a file in an existing folder"):
        RemoteStatsRouter("http://127.0.0.1:9", spill_path=str(missing))
    assert threading.active_count() == threads  # refused before its sender thread starts
    with pytest.raises(InputError, match=r"spill_path: .* is a folder; give a file path"):
        RemoteStatsRouter("http://127.0.0.1:9", spill_path=tmp_path)
    assert not (tmp_path / "nonexist").exists() and list(tmp_path.iterdir()) == []
    monkeypatch.chdir(tmp_path)
    relative = SpillQueue(Path("spill.db"), 10, label="test")  # in the working folder
    relative.add([rec(0)])
    relative.close()
    assert relative.in_file == 1 and (tmp_path / "spill.db").exists()
