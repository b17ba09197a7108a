"""Real-browser tests of what a live update costs the open page: a streamed point must
not make BokehJS rebuild a chart's legend (its entries stay the same DOM elements), and
a legend entry still hides its own line.
"""

from __future__ import annotations

import pytest
from ui_browser_tools import VIEWS, open_page, severe, wait_for
from ui_records import PARAMS, fill, make_update

from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.server import UIServer

pytestmark = pytest.mark.browser

# the legend view of the figure named arguments[0]
LEGEND = (
    VIEWS
    + """
const fig = Bokeh.documents[0].get_model_by_name(arguments[0])
const legend = fig.right.find(m => m.items !== undefined)
const view = view_of(legend)
"""
)

# the drawn line of the series arguments[1] in the figure arguments[0] (GroupFilter)
LINE = """
const fig = Bokeh.documents[0].get_model_by_name(arguments[0])
const line = fig.renderers.find(r => r.view && r.view.filter && r.view.filter.group == arguments[1])
"""


@pytest.fixture
def live():
    storage = InMemoryStatsStorage()
    fill(storage)
    ui = UIServer(port=0, refresh_interval=0.25)
    ui.attach(storage)
    ui.start()
    try:
        yield ui, storage
    finally:
        ui.stop()


def test_streamed_points_keep_the_legend_entries(browser, live):
    ui, storage = live
    open_page(browser, ui.url + "/train/overview?session=mlp")
    for fig in ("ratio", "std_act"):
        browser.execute_script(LEGEND + "window['kept_' + arguments[0]] = view.entries", fig)
    newest = max(u.iteration for u in storage.get_updates("mlp", "0"))
    for i in range(newest + 1, newest + 4):  # three ticks' worth of new points
        storage.put(make_update("mlp", "0", i, hist=False))
        wait_for(
            browser,
            "const s = Bokeh.documents[0].get_model_by_name('lines:ratio');"
            f"return s.data.xs.some(x => x[x.length - 1] == {i})",
            timeout=10,
        )
    browser.execute_script("return new Promise(r => requestAnimationFrame(() => r()))")
    for fig in ("ratio", "std_act"):
        same = browser.execute_script(
            LEGEND + "const kept = window['kept_' + arguments[0]];"
            "return view.entries.length == kept.length && "
            "view.entries.every((e, i) => e.el === kept[i].el)",
            fig,
        )
        assert same, f"the {fig} chart's legend was rebuilt by a streamed point"
    assert severe(browser) == []


def test_every_legend_entry_draws_its_line_swatch(browser, live):
    """The stand-ins' swatches are painted (on an empty source BokehJS painted none: the
    entries were names without colours)."""
    ui, _ = live
    open_page(browser, ui.url + "/train/overview?session=mlp")
    painted = (
        LEGEND + "return view.entries.map(e => {"
        "const c = e.el.querySelector('canvas.bk-glyph');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let k = 3; k < d.length; k += 4) n += d[k] > 0; return n })"
    )
    for fig in ("ratio", "std_act"):
        counts = browser.execute_script(painted, fig)
        assert counts and all(n > 0 for n in counts), (fig, counts)


def test_a_legend_entry_hides_and_shows_its_line(browser, live):
    ui, _ = live
    open_page(browser, ui.url + "/train/overview?session=mlp")
    label = PARAMS[2]
    visible = LINE + "return [line.visible, fig.renderers.filter(r => !r.visible).length]"
    assert browser.execute_script(visible, "ratio", label) == [True, 0]
    click = (
        LEGEND + "const e = view.entries.find(e => e.label == arguments[1]);"
        "e.el.dispatchEvent(new PointerEvent('pointerdown', {bubbles: true}))"
    )
    browser.execute_script(click, "ratio", label)
    # its line, and only its line, is hidden; the entry is greyed out
    wait_for(browser, LINE + "return line.visible === false", 5, "ratio", label)
    hidden = browser.execute_script(
        LINE + "return fig.renderers.filter(r => !r.visible && r.data_source.data.xs)"
        ".map(r => r.view.filter.group)",
        "ratio",
        label,
    )
    assert hidden == [label]
    browser.execute_script(click, "ratio", label)
    wait_for(browser, LINE + "return line.visible === true", 5, "ratio", label)
    assert severe(browser) == []
