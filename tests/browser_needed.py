"""A test helper: skip a test that needs headless Chromium where it is missing, or fail
it where the browser tests are required (CI sets ``EMBEDVIZ_REQUIRE_BROWSER``); not a
test module."""

import pytest

from embedviz._browser import missing_reason, required


def need_browser() -> None:
    """Skip (naming why) or, where the browser is required, fail when Chromium, its
    driver or selenium is missing."""
    reason = missing_reason()
    if reason:
        (pytest.fail if required() else pytest.skip)(reason)
