"""TSNEStats' close and Word2VecStats' end of training on a statistics file another
connection holds locked: like StatsListener's close, they never raise into the run and
wait a bounded time (review 8, findings 1 and 2). Real SQLite locks, short waits."""

import logging
import sqlite3
import time

import numpy as np
import pytest
from gensim.models import Word2Vec

from embedviz.stats import sqlite_close, sqlite_file, sqlite_writer
from embedviz.stats.records import Update
from embedviz.stats.storage import SQLiteStatsStorage
from embedviz.stats.tsne_stats import TSNEStats
from embedviz.stats.word2vec import Word2VecStats


@pytest.fixture
def locked_storage(tmp_path, monkeypatch):
    """A SQLite storage whose file another connection then locks; released after."""
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT", 0.3)
    monkeypatch.setattr(sqlite_writer, "BUSY_TIMEOUT", 0.3)
    monkeypatch.setattr(sqlite_close, "CLOSE_WAIT", 0.3)
    storage = SQLiteStatsStorage(tmp_path / "runs.db")
    storage.put(Update("warm", "0", 0, time.time(), score=1.0))
    storage.flush()
    lock = sqlite3.connect(tmp_path / "runs.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    yield storage
    lock.execute("ROLLBACK")
    lock.close()
    storage.close()


def test_tsne_stats_close_never_raises_for_a_locked_file(locked_storage, caplog):
    stats = TSNEStats(locked_storage, session_id="t")
    stats(50, 1.0, np.zeros((3, 2)), {"phase": "main", "max_iter": 100})
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR):
        stats.close()  # was: StatsWriteError after the 30 s busy timeout
    assert time.monotonic() - t0 < 5
    assert "TSNEStats closed, but" in caplog.text and "stay buffered" in caplog.text


def test_word2vec_training_ends_despite_a_locked_file(locked_storage, caplog):
    sentences = [["king", "queen", "man", "woman"]] * 20
    stats = Word2VecStats(locked_storage, session_id="w")
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR):
        Word2Vec(sentences, vector_size=4, min_count=1, epochs=2, callbacks=[stats], workers=1)
    assert time.monotonic() - t0 < 10
    assert "Word2VecStats closed, but" in caplog.text
