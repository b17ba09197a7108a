"""Fixtures for the UI tests: storages filled with planted records, a headless Chromium."""

from __future__ import annotations

import socket

import pytest
from browser_needed import need_browser
from ui_records import fill, fill_tsne

from embedviz._browser import headless_chromium
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage


@pytest.fixture
def memory_storage():
    st = InMemoryStatsStorage()
    fill(st)
    fill_tsne(st)
    return st


@pytest.fixture
def sqlite_path(tmp_path):
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as st:
        fill(st, workers=("0", "1"))
        fill(st, session="second", n=60)
        fill_tsne(st)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def browser():
    """A headless Chromium; skipped (with the reason) where it is not installed, a
    failure where it is required (CI)."""
    need_browser()
    driver = headless_chromium(window_size=(1400, 1000))
    yield driver
    driver.quit()
