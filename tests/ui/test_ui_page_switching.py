"""Switching a tab's session or worker leaves only the new page behind (issue 5, session 8).

The server's Document (a tab driven without a browser) and the browser's (headless
Chromium) are counted after switches: before the fix, BokehJS 3.9 kept every replaced
page in ``Bokeh.documents[0].all_models`` while the server sent patches (bokeh#15289).
"""

from __future__ import annotations

import gc
import queue
import time
import weakref

import pytest
from bokeh.document import Document
from ui_browser_tools import READY, open_page, severe, wait_for
from ui_records import fill

from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.server import UIServer


@pytest.fixture(scope="module")
def two_runs():
    storage = InMemoryStatsStorage()
    fill(storage, "a", workers=("0", "1"), n=60)
    fill(storage, "b", workers=("0", "1"), n=60)
    return storage


SWITCHES = 8  # 20 in the measurement reported in pages/prune.py


class LoopDocument(Document):
    """A Document whose next-tick callbacks wait in a queue the test runs (the
    server's IOLoop); the diagnostics' delayed start is dropped. Once a page is shown
    its new models count as sent (the server's session does that after each patch)."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: queue.Queue = queue.Queue()

    def add_next_tick_callback(self, callback, *args, **kwargs):
        self.queue.put(callback)

    def add_timeout_callback(self, callback, timeout_milliseconds, *args, **kwargs):
        return None

    def run_until(self, done, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not done():
            left = end - time.monotonic()
            assert left > 0, "the page was not shown in time"
            try:
                self.queue.get(timeout=left)()
            except queue.Empty:
                continue
        self.models.flush_synced()


def _shown(tab):
    return lambda: tab.nav.tags == ["ready"]


@pytest.mark.parametrize(
    ("path", "choice"), [("/train/overview", "session"), ("/train/model", "worker")]
)
def test_switches_leave_the_server_document_with_one_page(two_runs, path, choice):
    from embedviz.ui.shell import Tab

    ui = UIServer(port=0)
    ui.attach(two_runs)
    try:
        doc = LoopDocument()
        tab = Tab(ui, path, doc)
        doc.run_until(_shown(tab))
        tab.tick()
        first = len(doc.models)
        assert first > 100 and len(doc.roots) == 1
        old = []
        for k in range(SWITCHES):
            old.append(weakref.ref(tab.page))
            if choice == "session":
                tab.session_select.value = "ab"[k % 2]  # opened on the newest, b
            else:
                tab.worker_select.value = "10"[k % 2]
            doc.run_until(_shown(tab))
            tab.tick()
        assert tab.session_id == "b" and tab.worker_id in (None, "0")  # an even count
        assert len(doc.models) == first and len(doc.roots) == 1
        # the tab's one periodic callback; no old page is still referenced
        assert len(doc.session_callbacks) == 1
        gc.collect()
        assert [r for r in old if r() is not None] == []
        # the holder tells the browser to drop what it lets go of
        assert list(tab.holder.js_property_callbacks) == ["change:children"]
    finally:
        ui.builders.shutdown(wait=True)


# -- in a real browser -----------------------------------------------------------------
COUNT = (
    "const ms = [...Bokeh.documents[0].all_models];"
    "return [ms.length, ms.filter(m => m.name == arguments[0]).length]"
)


def _switch(browser, select: str, value: str, nav_has: str | None = None) -> None:
    browser.execute_script(
        f"Bokeh.documents[0].get_model_by_name('{select}').value = arguments[0]", value
    )
    if nav_has is not None:
        wait_for(
            browser,
            "return Bokeh.documents[0].get_model_by_name('nav').text.includes(arguments[0])",
            30,
            nav_has,
        )
    else:
        time.sleep(0.5)  # the nav bar says nothing of the worker; its tag is reset meanwhile
    wait_for(browser, READY, timeout=60)


@pytest.mark.browser
@pytest.mark.slow
def test_switches_leave_only_the_new_page_in_the_browser(browser, two_runs):
    ui = UIServer(port=0, refresh_interval=0.25)
    ui.attach(two_runs)
    ui.start()
    try:
        open_page(browser, ui.url + "/train/overview?session=a")
        first, charts = browser.execute_script(COUNT, "eval_chart")
        assert charts == 1
        for sid in "ba":
            _switch(browser, "session_select", sid, f"session={sid}")
        # within seconds, not the 30 s of quiet BokehJS waits for
        wait_for(
            browser, COUNT.replace("return", "const c =") + "; return c[1] == 1", 5, "eval_chart"
        )
        count, _ = browser.execute_script(COUNT, "eval_chart")
        assert count <= first + 5, (first, count)  # each switch kept a whole page before
        # a layer and a worker chosen on the model page
        open_page(browser, ui.url + "/train/model?session=a")
        first, _ = browser.execute_script(COUNT, "layer:table")
        browser.execute_script("Bokeh.documents[0].get_model_by_name('layer_select').value = '2'")
        wait_for(
            browser,
            "const t = Bokeh.documents[0].get_model_by_name('layer:table');"
            "return t != null && t.source.data.parameter.some(p => p.startsWith('2.'))",
            10,
        )
        for worker in "10":
            _switch(browser, "worker_select", worker)
        wait_for(
            browser, COUNT.replace("return", "const c =") + "; return c[1] == 1", 5, "layer:table"
        )
        count, _ = browser.execute_script(COUNT, "layer:table")
        assert count <= first + 5, (first, count)
        assert severe(browser) == []
    finally:
        ui.stop()
