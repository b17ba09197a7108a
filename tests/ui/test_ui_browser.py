"""Real-browser tests: headless Chromium opens every page of a running UI and the report.

Skipped with a reason where /usr/bin/chromium or chromedriver is missing (CI installs
Debian's ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import json
import math
import time

import pytest
from ui_browser_tools import DRAWN, READY, VIEWS, open_page, severe, wait_for
from ui_records import (
    EVIL,
    fill,
    fill_tsne,
    fill_word2vec,
    make_update,
    ratio_of,
    static_info,
)

from embedviz.stats.records import EvalRecord, Update
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.report import write_report
from embedviz.ui.server import UIServer

pytestmark = pytest.mark.browser

# the text of every table cell drawn in the page (the grids live in shadow roots)
GRID_CELLS = """
const cells = []
const walk = n => {
  if (n.shadowRoot) walk(n.shadowRoot)
  for (const c of n.children || []) {
    if (c.classList && c.classList.contains('slick-cell')) cells.push(c.textContent)
    walk(c)
  }
}
walk(document.body)
"""


@pytest.fixture(scope="module")
def live():
    storage = InMemoryStatsStorage()
    fill(storage)
    fill(storage, session="second", n=40)
    fill_tsne(storage)
    fill_word2vec(storage)
    ui = UIServer(port=0, refresh_interval=0.25)
    ui.attach(storage)
    ui.start()
    try:
        yield ui, storage
    finally:
        ui.stop()


@pytest.mark.parametrize(
    ("path", "min_plots"),
    [
        ("/train/overview?session=mlp", 4),
        ("/train/model?session=mlp", 6),
        ("/train/system?session=mlp", 2),
        ("/train/compare?session=mlp", 2),
        ("/embeddings?session=tsne-run", 2),
    ],
)
def test_each_page_opens_without_errors_and_draws(browser, live, path, min_plots):
    ui, _ = live
    open_page(browser, ui.url + path)
    plots, drawn, empty_frames = browser.execute_script(DRAWN)
    assert empty_frames == 0, "a visible chart was laid out at zero size"
    assert plots >= min_plots and drawn >= min_plots, (plots, drawn)
    assert severe(browser) == []
    assert browser.execute_script("return window.__xss") is None
    # only the BokehJS bundles the page uses: no MathJax, WebGL only for the maps
    bundles = browser.execute_script(
        "return [...document.scripts].map(s => s.src).filter(s => s.includes('/static/js/'))"
        ".map(s => s.split('/').pop().split('.')[0])"
    )
    wanted = ["bokeh", "bokeh-widgets", "bokeh-tables"]
    if path.startswith("/embeddings"):
        wanted.insert(1, "bokeh-gl")
    assert bundles == wanted


@pytest.mark.parametrize(
    ("session", "titles"),
    [
        ("tsne-run", ["KL divergence", "Gradient norm"]),
        ("w2v-run", ["Loss per epoch", "Learning rate alpha", "Training speed"]),
    ],
)
def test_overview_of_a_tsne_or_word2vec_run_draws_only_what_it_records(
    browser, live, session, titles
):
    ui, _ = live
    open_page(browser, ui.url + f"/train/overview?session={session}")
    plots, drawn, empty_frames = browser.execute_script(DRAWN)
    assert empty_frames == 0 and plots == drawn == len(titles), (plots, drawn)
    text = browser.execute_script(
        "return [...Bokeh.documents[0].all_models].filter(m => m.title && m.title.text)"
        ".map(m => m.title.text).join('|')"
    )
    assert all(t in text for t in titles) and "nothing recorded" not in text, text
    assert severe(browser) == []


def test_root_redirects_to_the_overview(browser, live):
    ui, _ = live
    open_page(browser, ui.url + "/")
    assert browser.current_url.endswith("/train/overview")


def test_a_new_record_appears_within_seconds(browser, live):
    ui, storage = live
    open_page(browser, ui.url + "/train/overview?session=mlp")
    read = (
        "const s = Bokeh.documents[0].get_model_by_name('series:score');"
        "return [Array.from(s.data.x), Array.from(s.data.y)]"
    )
    xs, _ = browser.execute_script(read)
    assert 500 not in xs
    u = make_update("mlp", "0", 500, hist=False)
    u.score = 7.25
    t0 = time.monotonic()
    storage.put(u)
    wait_for(
        browser,
        "const s = Bokeh.documents[0].get_model_by_name('series:score');"
        "return Array.from(s.data.x).includes(500)",
        timeout=5,
    )
    assert time.monotonic() - t0 < 5
    xs, ys = browser.execute_script(read)
    assert xs[-1] == 500 and ys[-1] == 7.25
    assert len(xs) == len(set(xs))  # streamed once, not re-sent
    # the ratio chart (one MultiLine, a row per segment) got the new point of each tensor
    last = wait_for(
        browser,
        "const s = Bokeh.documents[0].get_model_by_name('lines:ratio');"
        "const i = s.data.label.lastIndexOf('0.weight'), x = s.data.xs[i], y = s.data.ys[i];"
        "return x[x.length - 1] == 500 && [x.length, y[y.length - 1]]",
        timeout=5,
    )
    assert last[1] == pytest.approx(math.log10(ratio_of(500, 0)))
    # the performance table's grid shows the new iteration (not only its data source)
    wait_for(browser, GRID_CELLS + "return cells.includes('500')", timeout=5)
    assert severe(browser) == []


def test_a_new_session_appears_in_the_dropdown(browser, live):
    ui, storage = live
    open_page(browser, ui.url + "/train/overview?session=mlp")
    storage.put(Update("brand-new", "0", 1, 0.0, score=1.0))
    wait_for(
        browser,
        "return Bokeh.documents[0].get_model_by_name('session_select')"
        ".options.includes('brand-new')",
        timeout=10,
    )


def test_a_page_opened_before_its_session_shows_it_when_recorded(browser, live):
    ui, storage = live
    open_page(browser, ui.url + "/train/overview?session=waited-for")
    text = "return Bokeh.documents[0].get_model_by_name('page_holder').children[0].text"
    assert "Waiting for session waited-for" in browser.execute_script(text)
    storage.put(Update("waited-for", "0", 3, 0.0, score=4.5))
    wait_for(
        browser,
        "const s = Bokeh.documents[0].get_model_by_name('series:score');"
        "return s != null && s.data.y[0] == 4.5",
        timeout=10,
    )
    select = "return Bokeh.documents[0].get_model_by_name('session_select').value"
    assert browser.execute_script(select) == "waited-for"


def test_choosing_a_layer_with_a_hostile_name_keeps_it_text(browser, live):
    ui, _ = live
    open_page(browser, ui.url + "/train/model?session=mlp")
    browser.execute_script(
        "Bokeh.documents[0].get_model_by_name('layer_select').value = arguments[0]", EVIL
    )
    wait_for(
        browser,
        # the old panel's models leave the document right after the new one comes
        # (get_model_by_name throws on two of a name: tried again)
        "try { const t = Bokeh.documents[0].get_model_by_name('layer:table');"
        "return t != null && t.source.data.parameter[0].endsWith('.bias') }"
        "catch (e) { return false }",
        timeout=15,
    )
    wait_for(browser, READY, timeout=30)
    assert browser.execute_script("return window.__xss") is None
    assert severe(browser) == []


def test_log_toggle_switches_the_score_chart(browser, live):
    ui, _ = live
    open_page(browser, ui.url + "/train/overview?session=mlp")
    shown = (
        "const d = Bokeh.documents[0], log = d.get_model_by_name('score_log');"
        "return [d.get_model_by_name('score_linear').visible, log != null && log.visible]"
    )
    assert browser.execute_script(shown) == [True, False]  # the log chart is not built yet
    browser.execute_script("Bokeh.documents[0].get_model_by_name('score_scale').active = 1")
    # built by the server when first asked for, with the score's source
    wait_for(browser, shown + ".every((v, i) => v == (i == 1))", timeout=10)
    drawn = "return Bokeh.documents[0].get_model_by_name('series:score').data.x.length"
    assert browser.execute_script(drawn) > 0
    wait_for(browser, READY, timeout=30)
    assert browser.execute_script(DRAWN)[2] == 0  # laid out at its size
    browser.execute_script("Bokeh.documents[0].get_model_by_name('score_scale').active = 0")
    assert browser.execute_script(shown) == [True, False]  # back at once (in the browser)
    assert severe(browser) == []


def test_first_evaluations_arriving_live_are_drawn_on_the_overview_and_compare(browser):
    """A worker's and a run's first evaluations draw the chart then, in the browser
    too: BokehJS broke on a Legend or a y range added to a document it shows."""
    storage = InMemoryStatsStorage()
    for sid in ("ov", "cmp"):
        storage.put(static_info(sid, "0"))
        storage.put_many([make_update(sid, "0", i, hist=False) for i in range(40)])
    ui = UIServer(port=0, refresh_interval=0.25)
    ui.attach(storage)
    ui.start()
    try:
        for path, sid, name in (
            ("/train/overview?session=ov", "ov", "eval_chart"),
            ("/train/compare?session=cmp", "cmp", "compare_eval"),
        ):
            shown = (
                f"const c = Bokeh.documents[0].get_model_by_name('{name}');"
                "return c != null && c.visible"
            )
            open_page(browser, ui.url + path)
            assert not browser.execute_script(shown)
            storage.put(make_update(sid, "0", 40, hist=False))
            storage.put(EvalRecord(sid, "0", 40, 1.8e9, {"accuracy": 0.5, "val_loss": 0.7}))
            wait_for(browser, shown, timeout=10)
            wait_for(browser, READY, timeout=30)
            plots, drawn, empty_frames = browser.execute_script(DRAWN)
            assert empty_frames == 0 and drawn == plots, (path, plots, drawn)
            assert severe(browser) == []
    finally:
        ui.stop()


def test_a_metric_first_recorded_later_is_drawn_on_the_overview(browser):
    """A worker with evaluations that starts recording a loss: its line, dots, legend
    entry and right axis appear in the browser (the loss range was made with the chart:
    BokehJS breaks on a y range added to a figure it shows)."""
    storage = InMemoryStatsStorage()
    storage.put(static_info("late", "0"))
    storage.put_many([make_update("late", "0", i, hist=False) for i in range(40)])
    storage.put(EvalRecord("late", "0", 20, 1.7e9 + 2.0, {"accuracy": 0.5}))
    ui = UIServer(port=0, refresh_interval=0.25)
    ui.attach(storage)
    ui.start()
    try:
        open_page(browser, ui.url + "/train/overview?session=late")
        storage.put(make_update("late", "0", 40, hist=False))
        storage.put(EvalRecord("late", "0", 40, 1.7e9 + 4.0, {"accuracy": 0.6, "val_loss": 0.7}))
        drawn = (
            "const d = Bokeh.documents[0], c = d.get_model_by_name('eval_chart');"
            "const s = d.get_model_by_name('series:eval/val_loss');"
            "const legend = c.right.find(m => m.items !== undefined);"
            "const axis = c.right.find(m => m.y_range_name == 'loss');"
            "return s != null && s.data.y.length == 1 && axis.visible && "
            "legend.items.map(i => i.label.value).join() == 'accuracy,val_loss'"
        )
        wait_for(browser, drawn, timeout=10)
        wait_for(browser, READY, timeout=30)
        entries = browser.execute_script(
            VIEWS + "const c = Bokeh.documents[0].get_model_by_name('eval_chart');"
            "return view_of(c.right.find(m => m.items !== undefined)).entries.length"
        )
        assert entries == 2
        plots, drawn_plots, empty_frames = browser.execute_script(DRAWN)
        assert empty_frames == 0 and drawn_plots == plots
        assert severe(browser) == []
    finally:
        ui.stop()


@pytest.mark.slow
def test_static_report_opens_from_disk(browser, tmp_path):
    storage = InMemoryStatsStorage()
    fill(storage, n=80)
    path = write_report(storage, tmp_path / "report.html")
    open_page(browser, path.resolve().as_uri())
    plots, drawn, empty_frames = browser.execute_script(DRAWN)
    assert empty_frames == 0 and plots >= 4 and drawn >= 4
    assert severe(browser) == []
    assert browser.execute_script("return window.__xss") is None
    # the report needs nothing from the network: every script is inline
    srcs = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.src).filter(s => s)"
    )
    assert json.dumps(srcs) == "[]"


def test_compare_x_axis_switches_to_relative_and_wall_time(browser, live):
    ui, _ = live
    open_page(browser, ui.url + "/train/compare")
    fields = (
        "const d = Bokeh.documents[0], p = d.get_model_by_name('compare_score');"
        "return [p.renderers.filter(r => r.glyph.x).map(r => r.glyph.x.field)[0],"
        " 'days' in p.below[0].formatter, p.below[0].axis_label]"
    )
    assert browser.execute_script(fields)[0] == "x"
    browser.execute_script("Bokeh.documents[0].get_model_by_name('x_mode').active = 1")
    assert browser.execute_script(fields)[:2] == ["rel", False]
    browser.execute_script("Bokeh.documents[0].get_model_by_name('x_mode').active = 2")
    field, formatter, label = browser.execute_script(fields)
    assert field == "t" and formatter is True and label == "wall time"  # a date formatter
    assert severe(browser) == []


@pytest.mark.slow
def test_report_layer_selector_switches_panels(browser, tmp_path):
    storage = InMemoryStatsStorage()
    fill(storage, n=30)
    open_page(browser, write_report(storage, tmp_path / "r.html").resolve().as_uri())
    panels = (
        "const d = Bokeh.documents[0], all = [...d.all_models];"
        "const panel = n => all.find(m => m.children && "
        "m.children.includes(d.get_model_by_name(n)));"
        "return [panel('layer0:table').visible, panel('layer2:table').visible]"
    )
    assert browser.execute_script(panels) == [True, False]
    browser.execute_script("Bokeh.documents[0].get_model_by_name('layer_select').value = '2'")
    assert browser.execute_script(panels) == [False, True]
    wait_for(browser, READY, timeout=30)
    plots, drawn, empty_frames = browser.execute_script(DRAWN)
    assert empty_frames == 0 and drawn >= 4
    assert severe(browser) == []


def test_histogram_slider_goes_back_through_time(browser, live):
    ui, storage = live
    open_page(browser, ui.url + "/train/model?session=mlp")
    name = "layer:hist:params:0.weight"
    slider = "Bokeh.documents[0].get_model_by_name('layer:params:slider')"
    browser.execute_script(f"{slider}.value = 55")  # between two recorded histograms
    it, h = [
        (it, h) for it, h in storage.get_histograms("mlp", "0", "params", "0.weight") if it <= 55
    ][-1]
    assert it == 50
    # the server keeps the older histograms and sends the one chosen
    show = wait_for(
        browser,
        f"const s = Bokeh.documents[0].get_model_by_name('{name}:show');"
        "return Math.abs(s.data.left[0] - arguments[0]) < 1e-9 && "
        "[Array.from(s.data.left), Array.from(s.data.top)]",
        15,
        h.lo,
    )
    assert show[1] == h.counts
    assert show[0] == pytest.approx(list(h.edges()[:-1]))
    # another kind of histogram: its charts are built when first chosen
    browser.execute_script("Bokeh.documents[0].get_model_by_name('layer:hist_kind').active = 2")
    acts = storage.get_histograms("mlp", "0", "activations", "0")[-1][1]
    top = wait_for(
        browser,
        "const s = Bokeh.documents[0].get_model_by_name('layer:hist:activations:0:show');"
        "return s != null && Array.from(s.data.top)",
    )
    assert top == acts.counts
    assert severe(browser) == []


def test_std_choice_and_run_ticks_toggle_charts(browser, live):
    ui, _ = live
    open_page(browser, ui.url + "/train/overview?session=mlp")
    vis = (
        "const d = Bokeh.documents[0]; return ['std_act', 'std_grad', 'std_update']"
        ".map(n => d.get_model_by_name(n)).map(c => c == null ? null : c.visible)"
    )
    assert browser.execute_script(vis) == [True, None, None]  # built when first chosen
    browser.execute_script("Bokeh.documents[0].get_model_by_name('std_choice').active = 2")
    wait_for(browser, vis + ".join() == 'false,,true'", timeout=10)
    rows = "return Bokeh.documents[0].get_model_by_name('lines:std_update').data.xs.length"
    wait_for(browser, rows.replace("return ", "return 4 == "), timeout=10)
    browser.execute_script("Bokeh.documents[0].get_model_by_name('std_choice').active = 0")
    assert browser.execute_script(vis) == [True, None, False]
    wait_for(browser, READY, timeout=30)
    assert browser.execute_script(DRAWN)[2] == 0  # the shown chart is laid out
    open_page(browser, ui.url + "/train/compare")
    shown = (
        "return Bokeh.documents[0].get_model_by_name('compare_score').renderers"
        ".filter(r => r.visible).length"
    )
    before = browser.execute_script(shown)
    assert before > 0
    browser.execute_script("Bokeh.documents[0].get_model_by_name('runs_select').active = []")
    assert browser.execute_script(shown) == 0


def test_compare_log_toggle_fits_the_ticked_runs_and_keeps_the_nan_marks(browser, live):
    ui, storage = live
    open_page(browser, ui.url + "/train/compare?session=mlp")
    browser.execute_script("Bokeh.documents[0].get_model_by_name('score_scale').active = 1")
    state = (
        "const d = Bokeh.documents[0], p = d.get_model_by_name('compare_score_log'),"
        " lin = d.get_model_by_name('compare_score');"
        "return [p.visible, lin.visible, p.y_range.start, p.y_range.end,"
        " p.extra_y_scales['embedviz_marks'].type,"
        " d.get_model_by_name('score:mlp:marks').data.x.length]"
    )
    time.sleep(0.5)
    visible, linear_visible, lo, hi, marks_scale, n_marks = browser.execute_script(state)
    y = storage.get_series("mlp", "0", "score").values
    y = y[(y > 0) & [math.isfinite(v) for v in y]]
    assert visible and not linear_visible
    assert lo <= y.min() and hi >= y.max()  # fitted to the data it draws now
    assert marks_scale == "LinearScale" and n_marks >= 1  # the NaN mark at the frame's edge
    assert browser.execute_script(DRAWN)[2] == 0
    assert severe(browser) == []
