"""Headless Chromium for the real-browser tests and the page benchmarks (not public API).

Debian's ``chromium`` and ``chromium-driver`` packages provide the browser and its driver;
selenium drives them. The flags keep a headless Chromium quiet on a machine without a
display, a GPU or a network.
"""

import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


#: Set (to anything but "" or "0") where the browser tests must run, as CI does: a
#: missing or broken Chromium then fails them instead of skipping them.
REQUIRE_ENV = "EMBEDVIZ_REQUIRE_BROWSER"


def required() -> bool:
    """Whether a missing browser is a failure here (:data:`REQUIRE_ENV` is set)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def missing_reason() -> str | None:
    """Why a headless Chromium cannot be started here, or None when it can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver"
    if not Path(CHROMEDRIVER).exists():
        return f"{CHROMEDRIVER} is missing: apt-get install -y chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing: pip install selenium"
    return None


def headless_chromium(window_size=(1280, 900), page_load_timeout=60.0):
    """Start a headless Chromium that keeps the console log (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size={},{}".format(*window_size))
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_load_timeout)
    return driver
