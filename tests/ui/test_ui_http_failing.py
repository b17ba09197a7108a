"""The receiver while the UI's own file cannot be written: 503, the batch kept by the
sender, never buffered once per retry (review 7, finding 4)."""

from __future__ import annotations

import sys
from pathlib import Path

from test_ui_http import body_of, good_records, post

from embedviz.stats.records import Update, to_dict
from embedviz.stats.storage import SQLiteStatsStorage
from embedviz.ui.receiver import ReceiverConfig, store_records_impl
from embedviz.ui.server import UIServer

sys.path.insert(0, str(Path(__file__).parents[1] / "stats"))
from test_stats_sqlite_writes import _FailingFile, _iterations, _wait_until  # noqa: E402


def _batch(iterations, session="run") -> bytes:
    return body_of([to_dict(Update(session, "0", i, float(i), score=1.0)) for i in iterations])


def test_posts_while_the_file_fails_store_nothing_and_a_retry_stores_the_batch_once(
    tmp_path, monkeypatch, caplog
):
    """The router retries one batch five times while the file is full, and another
    worker posts its own: every answer is a one-line 503 naming the cause, at most one
    copy is buffered, one error is logged by the receiver (not one per post); once the
    file works the retry is answered 200 and the file holds the batch once."""
    path = tmp_path / "ui.db"
    storage = SQLiteStatsStorage(path, batch_size=8, flush_interval=0.02)
    disk = _FailingFile(storage, monkeypatch)
    config = ReceiverConfig(enabled=True)
    body = _batch([0, 1, 2])
    with caplog.at_level("WARNING", logger="embedviz.ui.receiver"):
        for _ in range(5):
            status, answer = store_records_impl(config, body, lambda: storage)
            assert status == 503, answer
            assert "database or disk is full" in answer["error"]
            assert "\n" not in answer["error"] and str(path) not in answer["error"]
        other = _batch([0, 1], session="other")
        assert store_records_impl(config, other, lambda: storage)[0] == 503
        assert len(storage._buffer) <= 3  # one copy of the first batch at most
        assert storage.count_updates("run") == 0 and disk.tries >= 1
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        # one from the storage (its file fails), one from the receiver (answering 503)
        assert sorted(r.name for r in errors) == [
            "embedviz.stats.sqlite_storage",
            "embedviz.ui.receiver",
        ], errors
        assert all(not r.exc_info and str(path) in r.getMessage() for r in errors)
        disk.broken = False
        assert _wait_until(lambda: storage.failing is None)
        assert store_records_impl(config, body, lambda: storage) == (200, {"accepted": 3})
        assert store_records_impl(config, other, lambda: storage) == (200, {"accepted": 2})
        assert store_records_impl(config, body, lambda: storage) == (200, {"accepted": 3})
    assert any("works again" in r.getMessage() for r in caplog.records)
    storage.close()
    assert _iterations(path) == [0, 1, 2]
    assert _iterations(path, "other") == [0, 1]


def test_the_server_answers_503_as_json_without_a_traceback(tmp_path, monkeypatch, caplog):
    storage = SQLiteStatsStorage(tmp_path / "ui.db", flush_interval=0.02)
    disk = _FailingFile(storage, monkeypatch)
    ui = UIServer(port=0, enable_remote=True)
    ui.attach(storage)
    ui.start()
    try:
        with caplog.at_level("ERROR"):
            for _ in range(3):
                status, answer = post(ui, body_of(good_records()))
                assert status == 503 and "disk is full" in answer["error"], answer
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        disk.broken = False
        assert _wait_until(lambda: storage.failing is None)
        assert post(ui, body_of(good_records())) == (200, {"accepted": 4})
    finally:
        ui.stop()
        storage.close()
    assert len(_iterations(tmp_path / "ui.db", "remote")) == len(
        [r for r in good_records() if r["type"] == "update"]
    )


def test_records_buffered_while_the_file_failed_are_not_stored_again_in_another_batch(
    tmp_path, monkeypatch
):
    """The batch in flight when the disk filled stays buffered in the storage; the router
    resends its records regrouped with later ones (review 9: iteration 115 was stored
    twice). Each record is stored once."""
    path = tmp_path / "ui.db"
    storage = SQLiteStatsStorage(path, batch_size=8, flush_interval=0.02)
    disk = _FailingFile(storage, monkeypatch)
    config = ReceiverConfig(enabled=True)
    assert store_records_impl(config, _batch([0, 1, 2]), lambda: storage)[0] == 503
    disk.broken = False
    assert _wait_until(lambda: storage.failing is None)
    # the same records, regrouped: new bytes, so the batch digest cannot tell
    assert store_records_impl(config, _batch([1, 2, 3, 4]), lambda: storage) == (
        200,
        {"accepted": 4},
    )
    assert store_records_impl(config, _batch([0]), lambda: storage) == (200, {"accepted": 1})
    storage.close()
    assert _iterations(path) == [0, 1, 2, 3, 4]


def test_the_ui_ending_while_its_file_fails_says_what_its_senders_keep(
    tmp_path, monkeypatch, caplog
):
    """Review 9: Ctrl-C on a UI whose disk is full exited 2 with 'call flush() or close()
    again' and called a record lost that its sender still held."""
    from embedviz.ui.commands import _close_received

    storage = SQLiteStatsStorage(tmp_path / "ui.db", batch_size=8, flush_interval=0.02)
    _FailingFile(storage, monkeypatch)
    config = ReceiverConfig(enabled=True)
    assert store_records_impl(config, _batch([0, 1]), lambda: storage)[0] == 503
    with caplog.at_level("WARNING"):
        _close_received(storage)  # no exception
    assert "2 received record(s) are not written" in caplog.text
    assert "their senders were answered 503 and keep them" in caplog.text
    assert "close() again" not in caplog.text and storage._closed


def test_open_without_a_browser_says_to_open_the_url(monkeypatch, caplog):
    import webbrowser

    from embedviz.ui.commands import _open_browser

    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    with caplog.at_level("WARNING"):
        _open_browser("http://127.0.0.1:9000/train/overview")
    assert "open http://127.0.0.1:9000/train/overview yourself" in caplog.text
