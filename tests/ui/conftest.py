"""Fixtures for the UI tests: storages filled with planted records, a headless Chromium."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
from ui_records import fill, fill_tsne

from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


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
    """A headless Chromium; skipped (with the reason) where it is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    if not Path(CHROMEDRIVER).exists():
        pytest.skip(f"{CHROMEDRIVER} is missing: apt-get install -y chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 15.0, *args):
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for: {script}")
        time.sleep(0.1)
