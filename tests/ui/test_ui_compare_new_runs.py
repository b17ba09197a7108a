"""Sessions recorded while the compare page is open join it live (issue 5, session 8):
as TensorBoard adds new runs, on the page's refresh, without a rebuild; a reload was
needed before."""

from __future__ import annotations

import time

import pytest
from ui_browser_tools import DRAWN, VIEWS, open_page, severe, wait_for
from ui_records import make_update

from embedviz.stats.records import EvalRecord, StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.pages.compare import DEFAULT_TICKED, MAX_RUNS, build_compare
from embedviz.ui.server import UIServer


def _run(st, sid: str, kind: str = "torch", n: int = 30, t0: float = 1.7e9) -> None:
    st.put(StaticInfo(sid, "0", t0, kind=kind, config={"batch_size": 8}))
    st.put_many([make_update(sid, "0", i, t0=t0, hist=False) for i in range(n)])


def _get(page, name):
    return page.layout.select_one({"name": name})


def _listed(st):
    return [(sid, st) for sid in st.list_sessions()]


def test_a_new_run_of_the_kind_shown_is_drawn_ticked_with_its_evaluations():
    st = InMemoryStatsStorage()
    _run(st, "a")
    _run(st, "b")
    page = build_compare(_listed(st))
    ticks, score, log = (
        _get(page, n) for n in ("runs_select", "compare_score", "compare_score_log")
    )
    before = {p: len(p.renderers) for p in (score, log)}
    legend_items = len(score.legend[0].items)
    _run(st, "c", n=12, t0=1.8e9)
    st.put(EvalRecord("c", "0", 11, 1.8e9 + 1.0, {"accuracy": 0.5, "val_loss": 0.9}))
    page.on_sessions(_listed(st))
    page.refresh()
    # its line holds what it recorded, smoothed and relative to its own start
    src = page.sources["score:c"]
    assert src.data["x"].tolist() == list(range(12))
    assert src.data["rel"][0] == 0.0 and len(src.data["ys"]) == 12
    assert ticks.labels == ["a", "b", "c"] and ticks.active == [0, 1, 2]  # 2 < 3 torch runs
    for p in (score, log):  # raw, bold and two marks renderers on each chart
        assert len(p.renderers) == before[p] + 4
        drawn = [r for r in p.renderers if r.data_source is src]
        assert len(drawn) == 2 and all(r.visible for r in drawn)
        assert {r.data_source for r in p.y_range.renderers} >= {src}
    assert len(score.legend[0].items) == legend_items + 1
    assert len({r.glyph.line_color for r in score.renderers if r.data_source is src}) == 1
    colours = {r.glyph.line_color for r in score.renderers if r.data_source.name == "series:score"}
    assert len(colours) == 3  # a colour of its own
    # the browser's callbacks reach its lines; its evaluations are drawn, the table lists it
    toggle = ticks.js_property_callbacks["change:active"][0]
    assert src in {r.data_source for r in toggle.args["groups"][2]}
    x_switch = _get(page, "x_mode").js_property_callbacks["change:active"][0]
    assert src in {r.data_source for r in x_switch.args["renderers"]}
    assert page.sources["eval:c:accuracy"].data["y"].tolist() == [0.5]
    assert _get(page, "compare_eval").visible and toggle.args["has_evals"] == [False, False, True]
    table = page.sources["runs"].data
    assert table["run"] == ["a", "b", "c"] and "accuracy 0.5" in table["final eval"][2]
    assert (
        _get(page, "runs").height
        == build_compare(_listed(st)).layout.select_one({"name": "runs"}).height
    )  # room for its row, as a page built now has
    assert not _get(page, "new_runs").visible
    # it streams like the others, and is not added twice
    st.put(make_update("c", "0", 12, t0=1.8e9, hist=False))
    page.on_sessions(_listed(st))
    page.refresh()
    assert page.sources["score:c"].data["x"][-1] == 12 and ticks.labels == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("kinds", "ticked_at_first", "new_kind", "ticked"),
    [
        (["torch"] * DEFAULT_TICKED, [0, 1, 2], "torch", False),  # the default number ticked
        (["torch", "torch"], [0, 1], "word2vec", False),  # another kind
        (["torch", "torch"], [0], "torch", True),  # the user unticked one
        (["torch", "word2vec"], [0, 1], "torch", False),  # the ticked runs are of two kinds
    ],
)
def test_a_new_run_is_ticked_only_beside_fewer_runs_of_its_kind(
    kinds, ticked_at_first, new_kind, ticked
):
    st = InMemoryStatsStorage()
    for i, kind in enumerate(kinds):
        _run(st, f"r{i}", kind)
    page = build_compare(_listed(st), [f"r{i}" for i in ticked_at_first])
    ticks = _get(page, "runs_select")
    assert ticks.active == ticked_at_first
    _run(st, "new", new_kind, n=5, t0=1.8e9)
    page.on_sessions(_listed(st))
    page.refresh()
    index = len(kinds)
    assert ticks.labels[index] == "new" and (index in ticks.active) is ticked
    lines = [
        r
        for r in _get(page, "compare_score").renderers
        if r.data_source is page.sources["score:new"]
    ]
    assert lines and all(r.visible is ticked for r in lines)


def test_new_runs_past_the_most_the_page_offers_are_named_in_a_note():
    st = InMemoryStatsStorage()
    for i in range(MAX_RUNS + 1):
        _run(st, f"r{i:02d}", n=3)
    # sessions listed at build but left out (the oldest) are not named as recorded since
    page = build_compare(_listed(st))
    page.on_sessions(_listed(st))
    assert not _get(page, "new_runs").visible
    assert len(_get(page, "runs_select").labels) == MAX_RUNS
    page = build_compare(_listed(st)[2:])  # 11 runs: room for one more
    new_runs = _get(page, "new_runs")
    st.put(Update("fits", "0", 1, 1.8e9, score=1.0))
    st.put(Update("no room", "0", 1, 1.8e9, score=1.0))
    page.on_sessions(_listed(st)[2:])
    page.refresh()
    assert "score:fits" in page.sources and "score:no room" not in page.sources
    assert len(_get(page, "runs_select").labels) == MAX_RUNS
    assert new_runs.visible and "no room" in new_runs.text and "Reload" in new_runs.text
    assert "fits" not in new_runs.text


def test_a_new_run_is_drawn_with_the_x_axis_and_smoothing_chosen():
    st = InMemoryStatsStorage()
    _run(st, "a")
    page = build_compare(_listed(st))
    _get(page, "x_mode").active = 1  # relative time
    _get(page, "smoothing").value = 0.0
    _run(st, "b", n=8, t0=1.8e9)
    page.on_sessions(_listed(st))
    page.refresh()
    src = page.sources["score:b"]
    lines = [r for r in _get(page, "compare_score").renderers if r.data_source is src]
    assert {r.glyph.x for r in lines} == {"rel"}  # the field drawn as x
    assert src.data["ys"].tolist() == pytest.approx(src.data["y"].tolist())  # no smoothing


def test_a_session_without_a_worker_yet_is_offered_again_later():
    st = InMemoryStatsStorage()
    _run(st, "a")
    page = build_compare(_listed(st))
    page.on_sessions([*_listed(st), ("ghost", st)])  # listed, nothing read from it yet
    page.refresh()
    assert "score:ghost" not in page.sources and not _get(page, "new_runs").visible
    st.put(Update("ghost", "0", 1, 1.8e9, score=2.0))
    page.on_sessions(_listed(st))
    page.refresh()
    assert page.sources["score:ghost"].data["y"].tolist() == [2.0]


# -- in a real browser -----------------------------------------------------------------
@pytest.mark.browser
def test_a_run_recorded_after_the_compare_page_opened_is_drawn_in_the_browser(browser):
    st = InMemoryStatsStorage()
    _run(st, "a")
    ui = UIServer(port=0, refresh_interval=0.25)
    ui.attach(st)
    ui.start()
    try:
        open_page(browser, ui.url + "/train/compare")
        _run(st, "late", n=20, t0=1.8e9)
        st.put(EvalRecord("late", "0", 19, 1.8e9 + 2.0, {"accuracy": 0.7}))
        wait_for(
            browser,
            "const d = Bokeh.documents[0], t = d.get_model_by_name('runs_select');"
            "return t.labels.includes('late') && t.active.includes(1)",
            timeout=15,
        )
        drawn = (
            "const d = Bokeh.documents[0], p = d.get_model_by_name('compare_score');"
            "return p.renderers.filter(r => r.visible && r.data_source.name == 'series:score'"
            " && r.data_source.data.x.length == 20).length"
        )
        wait_for(browser, drawn, timeout=10)
        wait_for(
            browser,
            "return Bokeh.documents[0].get_model_by_name('compare_eval').visible",
            timeout=10,
        )
        plots, shown, empty_frames = browser.execute_script(DRAWN)
        assert empty_frames == 0 and plots == shown, (plots, shown)
        legend = (
            "return Bokeh.documents[0].get_model_by_name('compare_score').right"
            ".find(m => m.items != null).items.map(i => i.label.value)"
        )
        assert browser.execute_script(legend) == ["a", "late"]
        # its checkbox hides its lines (the browser's callback knows them)
        browser.execute_script("Bokeh.documents[0].get_model_by_name('runs_select').active = [0]")
        hidden = (
            "const p = Bokeh.documents[0].get_model_by_name('compare_score');"
            "const late = p.renderers.filter(r => r.data_source.name == 'series:score'"
            " && r.data_source.data.x.length == 20);"
            "return late.length == 2 && late.every(r => !r.visible)"
        )
        wait_for(browser, hidden, timeout=5)
        assert severe(browser) == []
    finally:
        ui.stop()


# each paint of the two charts the new runs change: the left edge of the frame (the frame
# laid out left of the canvas, the lines, grid and title were drawn into the canvas's
# first pixel column, which BokehJS's half-pixel-offset clear never clears again)
_WATCH_PAINTS = (
    VIEWS
    + """
window.frame_lefts = []
for (const name of ['compare_score', 'compare_eval']) {
  const v = view_of(Bokeh.documents[0].get_model_by_name(name))
  const paint = v.paint.bind(v)
  v.paint = (...args) => { window.frame_lefts.push(v.frame.bbox.left); return paint(...args) }
}
return true
"""
)

# the coloured pixels of the first pixel column of each chart's canvas (left of its axis)
_FIRST_COLUMN = (
    VIEWS
    + """
const out = {}
for (const name of ['compare_score', 'compare_eval']) {
  const c = view_of(Bokeh.documents[0].get_model_by_name(name)).canvas_view.primary.canvas
  const px = c.getContext('2d').getImageData(0, 0, 1, c.height).data
  out[name] = []
  for (let y = 0; y < c.height; y++) {
    const [r, g, b, a] = px.slice(4 * y, 4 * y + 4)
    if (a > 0 && Math.min(r, g, b) < 235) out[name].push(y)
  }
}
return out
"""
)


@pytest.mark.browser
def test_a_run_added_live_leaves_no_stray_pixels_left_of_the_score_chart(browser):
    # seen in session 8: a 1-pixel column of the charts' lines, grid and title left of the
    # score chart's axis after a run with evaluations joined the page (a legend that
    # grows was first measured as wide as the chart, its frame laid out left of the canvas)
    st = InMemoryStatsStorage()
    for sid, n, t0 in (("mlp-lr0.1", 300, 1.7e9), ("mlp-lr0.01", 250, 1.7e9 + 100)):
        _run(st, sid, n=n, t0=t0)
        for i in range(49, n, 50):
            st.put(
                EvalRecord(
                    sid, "0", i, t0 + i, {"accuracy": 0.5 + i / 1e3, "val_loss": 1 - i / 500}
                )
            )
    ui = UIServer(port=0, refresh_interval=0.25)
    ui.attach(st)
    ui.start()
    try:
        open_page(browser, ui.url + "/train/compare")
        assert browser.execute_script(_WATCH_PAINTS)
        assert browser.execute_script(_FIRST_COLUMN) == {"compare_score": [], "compare_eval": []}
        sid, t0 = "mlp-lr0.05-recorded-later", 1.7e9 + 500
        _run(st, sid, n=120, t0=t0)
        for i in (49, 99):
            st.put(
                EvalRecord(
                    sid, "0", i, t0 + i, {"accuracy": 0.5 + i / 1e3, "val_loss": 1 - i / 500}
                )
            )
        wait_for(
            browser,
            "return Bokeh.documents[0].get_model_by_name('runs_select').labels.length == 3",
            timeout=15,
        )
        time.sleep(1.5)  # the following refreshes and paints
        assert browser.execute_script(_FIRST_COLUMN) == {"compare_score": [], "compare_eval": []}
        lefts = browser.execute_script("return window.frame_lefts")
        assert lefts and min(lefts) >= 0, sorted(set(lefts))
        assert severe(browser) == []
    finally:
        ui.stop()
