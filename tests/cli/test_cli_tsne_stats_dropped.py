"""``embedviz tsne --stats DB`` when the statistics file fails during the run: the
storage's buffer bound drops records then (each drop logged at the time), and the final
line must count them too, not only what was still buffered at the end (issue 4). The
truth is computed independently: every record the run handed the storage, less every
record the file holds afterwards. Real SQLite locks; short waits and a buffer bound of
one record patched in, so that drops happen within a run of a few updates."""

import re

import pytest
from sqlite_lock import Lock

import embedviz.stats.storage as storage_module
from embedviz.cli import main
from embedviz.stats import sqlite_close, sqlite_file, sqlite_writer
from embedviz.stats.storage import SQLiteStatsStorage


@pytest.fixture
def counting_storage(monkeypatch):
    """The storage ``--stats`` opens, with a buffer bound of 1 record, counting every
    record the run hands it; ``on_drop`` runs once after the first record it drops."""
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT", 0.3)
    monkeypatch.setattr(sqlite_writer, "BUSY_TIMEOUT", 0.3)
    monkeypatch.setattr(sqlite_close, "CLOSE_WAIT", 0.3)
    monkeypatch.setattr(sqlite_writer, "_BACKLOG", 1)
    opened = []

    class Counting(SQLiteStatsStorage):
        on_drop = None

        def __init__(self, path, **kwargs):
            super().__init__(path, batch_size=1, flush_interval=0.05)
            self.handed = 0
            opened.append(self)

        def _store(self, records):
            self.handed += len(records)
            super()._store(records)
            if self.dropped and Counting.on_drop is not None:
                hook, Counting.on_drop = Counting.on_drop, None
                hook()

    monkeypatch.setattr(storage_module, "SQLiteStatsStorage", Counting)
    return Counting, opened


def _records_in(db):
    """Every record the file holds: static infos, updates and snapshots of every run."""
    n = 0
    with SQLiteStatsStorage(db, read_only=True) as reader:
        for session in reader.list_sessions():
            for worker in reader.list_workers(session):
                n += reader.get_static_info(session, worker) is not None
            n += len(reader.get_updates(session)) + len(reader.get_snapshots(session))
    return n


def _run(small_model, fast_args, db, page):
    return main(["tsne", str(small_model[0]), "-o", str(page), "--stats", str(db), *fast_args])


def _last_error(err):
    errors = [line for line in err.splitlines() if line.startswith("embedviz: error:")]
    assert errors, err
    return errors[-1]


def test_the_last_line_counts_records_dropped_during_the_run(
    tmp_path, small_model, fast_args, counting_storage, capsys
):
    """Locked throughout: nothing is written, and the last line counts every record of
    the run (the old line counted only the one still buffered at close)."""
    _, opened = counting_storage
    db, page = tmp_path / "runs.db", tmp_path / "m.html"
    SQLiteStatsStorage(db).close()
    lock = Lock(db)
    try:
        rc = _run(small_model, fast_args, db, page)
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert rc == 1, err
    assert page.stat().st_size > 0
    (storage,) = opened
    lost = storage.handed - _records_in(db)
    assert storage.handed >= 5 and lost == storage.handed  # static, 5 updates, snapshot
    line = _last_error(err)
    assert line.startswith(f"embedviz: error: {db}: {lost} statistics record(s) of this run are")
    dropped_then = re.search(r"\((\d+) dropped during the run, (\d+) not written at the end", line)
    assert dropped_then, line
    assert int(dropped_then[1]) > 0 and int(dropped_then[1]) + int(dropped_then[2]) == lost
    assert "end the program that holds the file locked or free disk space" in line
    assert "the other outputs were written" in line


def test_records_dropped_while_the_file_failed_for_a_while_are_reported(
    tmp_path, small_model, fast_args, counting_storage, capsys
):
    """The lock goes after the first drop, so the file works again and close succeeds:
    the run still lost records, and the last line says how many (the old command ended
    with status 0 and no such line)."""
    counting, opened = counting_storage
    db, page = tmp_path / "runs.db", tmp_path / "m.html"
    SQLiteStatsStorage(db).close()
    lock = Lock(db)
    counting.on_drop = lock.release
    try:
        rc = _run(small_model, fast_args, db, page)
    finally:
        lock.release()
    err = capsys.readouterr().err
    (storage,) = opened
    written = _records_in(db)
    lost = storage.handed - written
    assert written > 0 and lost > 0, err  # the file failed, then worked
    assert rc == 1, err
    assert page.stat().st_size > 0
    line = _last_error(err)
    assert f"{db}: {lost} statistics record(s) of this run are lost: dropped during the run" in line
    assert "end the program that holds the file locked or free disk space" in line


def test_a_run_whose_file_works_ends_with_status_0_and_every_record_written(
    tmp_path, small_model, fast_args, counting_storage, capsys
):
    db, page = tmp_path / "runs.db", tmp_path / "m.html"
    _, opened = counting_storage
    assert _run(small_model, fast_args, db, page) == 0
    (storage,) = opened
    assert storage.handed == _records_in(db) > 0
    assert "lost" not in capsys.readouterr().err
