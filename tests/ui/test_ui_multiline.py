"""Charts with one line per tensor (one MultiLine source), deferred reads and the
diagnostics runner (issue 5: overview of a 100k x 50 run opens in <= 2 s)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnsStreamedEvent
from bokeh.models import GroupFilter, HoverTool, Legend, MultiLine
from ui_records import INF_AT, PARAMS, fill, make_update, ratio_of

from embedviz.stats.records import ParamStats, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.diagnose import FindingsRunner, get_findings
from embedviz.ui.pages._common import Page
from embedviz.ui.pages.multiline import (
    LEGEND_LIMIT,
    ROWS_PER_SERIES,
    MultiSeries,
    line_points,
    multi_series_chart,
)
from embedviz.ui.pages.overview import build_overview

RATIOS = [f"params/{n}/update_param_ratio" for n in PARAMS]


def ratio_update(i: int, values: dict[str, float]) -> Update:
    params = {n: ParamStats(0.0, 1.0, 0.5, update_param_ratio=v) for n, v in values.items()}
    return Update("s", "0", i, float(i), params=params)


@pytest.fixture
def storage():
    st = InMemoryStatsStorage()
    fill(st)
    return st


def test_load_holds_log10_of_every_recorded_ratio_and_marks_inf(storage):
    ms = MultiSeries(RATIOS, PARAMS, "ratio").load(storage, "mlp", "0")
    assert list(ms.source.data["label"]) == PARAMS  # one row per series at load
    for k, name in enumerate(PARAMS):
        x, y = ms.points(name)
        assert list(x) == list(range(200))
        want = [math.log10(ratio_of(i, k)) if i != INF_AT else math.nan for i in range(200)]
        np.testing.assert_allclose(y, want, equal_nan=True)
    marks = ms.marks.data
    assert sorted(marks["series"]) == sorted(PARAMS)
    assert set(marks["x"]) == {INF_AT} and set(marks["value"]) == {"+inf"}


def test_push_streams_only_the_new_points_after_the_last_drawn_one(storage):
    ms = MultiSeries(RATIOS, PARAMS, "ratio").load(storage, "mlp", "0")
    doc = Document()
    doc.add_root(ms.source)
    events = []
    doc.on_change(lambda event: events.append(event))
    new = [make_update("mlp", "0", i) for i in (200, 201, 202)]
    assert ms.push_updates(new) == 3 * len(PARAMS)
    assert ms.push_updates(new) == 0  # already drawn
    (event,) = events  # one stream message, no data replaced
    assert isinstance(event, ColumnsStreamedEvent)
    rows = event.data
    assert list(rows["label"]) == PARAMS
    for k, xs in enumerate(rows["xs"]):
        assert list(xs) == [199, 200, 201, 202]  # the previous newest point, then the new
        assert rows["ys"][k][-1] == pytest.approx(math.log10(ratio_of(202, k)))
    for k, name in enumerate(PARAMS):
        x, y = ms.points(name)  # what the browser draws, rows joined
        assert list(x) == list(range(203))
        assert y[201] == pytest.approx(math.log10(ratio_of(201, k)))


def test_many_pushes_compact_keeping_the_spike_and_the_newest_point():
    st = InMemoryStatsStorage()
    st.put(ratio_update(0, {"a": 1e-3, "b": 1e-3}))
    ms = MultiSeries(
        ["params/a/update_param_ratio", "params/b/update_param_ratio"], ["a", "b"], "r",
        max_points=20,
    ).load(st, "s", "0")  # fmt: skip
    for i in range(1, 400):
        ms.push_updates([ratio_update(i, {"a": 0.5 if i == 123 else 1e-3, "b": 1e-3})])
        assert len(ms.source.data["xs"]) <= ROWS_PER_SERIES * 2
        assert all(len(ms.points(n)[0]) <= 2 * 20 + 1 for n in ("a", "b"))
    x, y = ms.points("a")
    assert 123 in list(x) and y.max() == pytest.approx(math.log10(0.5))
    assert x[-1] == 399 and ms.points("b")[0][-1] == 399
    assert np.all(np.diff(x) > 0)


def test_row_limit_rebuilds_one_row_per_series_without_losing_points():
    st = InMemoryStatsStorage()
    st.put(ratio_update(0, {"a": 1e-3}))
    ms = MultiSeries(["params/a/update_param_ratio"], ["a"], "r", max_points=1000)
    ms.load(st, "s", "0")
    for i in range(1, ROWS_PER_SERIES + 1):
        ms.push_updates([ratio_update(i, {"a": 10.0**-i})])
    assert len(ms.source.data["xs"]) == 1  # compacted, nothing downsampled
    x, y = ms.points("a")
    assert list(x) == list(range(ROWS_PER_SERIES + 1))
    np.testing.assert_allclose(y, [-3.0] + [-float(i) for i in range(1, ROWS_PER_SERIES + 1)])


def test_pushed_nan_and_zero_are_gaps_with_marks():
    st = InMemoryStatsStorage()
    st.put(ratio_update(0, {"a": 1e-3, "b": 1e-2}))
    names = ["params/a/update_param_ratio", "params/b/update_param_ratio"]
    ms = MultiSeries(names, ["a", "b"], "r").load(st, "s", "0")
    ms.push_updates([ratio_update(1, {"a": math.nan, "b": 0.0}), ratio_update(2, {"a": 1e-3})])
    assert math.isnan(ms.points("a")[1][1]) and math.isnan(ms.points("b")[1][1])
    assert ms.points("a")[0].tolist() == [0, 1, 2] and ms.points("b")[0].tolist() == [0, 1]
    marks = ms.marks.data
    got = sorted(zip(marks["series"], marks["x"], marks["value"], marks["kind"], strict=True))
    # an exact 0 is its own kind of mark (grey, "exactly zero"), not a red NaN/inf x
    assert got == [("a", 1, "NaN", "bad"), ("b", 1, "0", "zero")]


def test_small_chart_draws_a_line_per_series_with_legend_large_one_a_single_glyph():
    st = InMemoryStatsStorage()
    many = {f"t{k}": 1e-3 for k in range(LEGEND_LIMIT + 1)}
    st.put(ratio_update(0, many))

    def chart(labels):
        names = [f"params/{n}/update_param_ratio" for n in labels]
        return multi_series_chart(st, "s", "0", names, labels, "t", "y", _Page(), "k")[1]

    small = chart(["t0", "t1"])
    glyphs = [r for r in small.renderers if isinstance(r.glyph, MultiLine)]
    assert [r.view.filter.group for r in glyphs] == ["t0", "t1"]
    assert all(isinstance(r.view.filter, GroupFilter) for r in glyphs)
    (legend,) = small.select({"type": Legend})
    assert [i.label.value for i in legend.items] == ["t0", "t1"]
    assert legend.click_policy == "hide"
    large = chart(list(many))
    assert sum(isinstance(r.glyph, MultiLine) for r in large.renderers) == 1
    assert not large.select({"type": Legend})
    tips = [t.tooltips for t in large.select({"type": HoverTool})]
    assert any(("", "@label") in t for t in tips)  # the tooltip names the tensor


class _Page:
    def __init__(self):
        self.sources = {}


def test_deferred_overview_fills_the_same_values_and_catches_up(storage):
    direct = build_overview(storage, "mlp", findings=False)
    page = build_overview(storage, "mlp", findings=False, defer_reads=True)
    assert page.sources["ratio"].data["xs"] == [] and len(page.deferred) == 1
    read, fill_in = page.deferred[0]
    fetched = read()
    storage.put(make_update("mlp", "0", 200))  # arrives between the read and the fill
    page.refresh()  # nothing drawn yet: the score is read in the same deferred pass
    assert len(page.sources["score"].data["x"]) == 0

    def perf(p):
        return dict(zip(*p.sources["performance"].data.values(), strict=True))

    assert perf(page)["iterations/s (run average)"] == "—"  # until the first point is read
    fill_in(fetched)
    score, score0 = page.sources["score"].data, direct.sources["score"].data
    assert list(score["x"]) == [*score0["x"], 200]
    np.testing.assert_allclose(score["ys"][:-1], score0["ys"], equal_nan=True)
    assert perf(page) == perf(build_overview(storage, "mlp", findings=False))
    for key, labels in (("ratio", PARAMS), ("std_act", ["0 (Linear)", "1 (ReLU)", "2 (Linear)"])):
        for label in labels:
            x, y = line_points(page.sources[key].data, label)
            x0, y0 = line_points(direct.sources[key].data, label)
            assert list(x) == [*x0, 200]
            np.testing.assert_allclose(y[:-1], y0, equal_nan=True)
    storage.put(make_update("mlp", "0", 201))
    page.refresh()
    assert line_points(page.sources["ratio"].data, "0.weight")[0][-1] == 201


def test_hidden_std_tab_is_read_when_first_chosen_then_goes_live(storage):
    page = build_overview(storage, "mlp", findings=False, defer_reads=True)
    read, fill_in = page.deferred[0]
    fill_in(read())
    assert page.sources["std_grad"].data["xs"] == []
    storage.put(make_update("mlp", "0", 200))
    page.refresh()
    page.layout.select_one({"name": "std_choice"}).active = 1  # as the browser would
    latest = make_update("mlp", "0", 200).params["2.weight"].grad_std
    x, y = line_points(page.sources["std_grad"].data, "2.weight")
    assert list(x) == list(range(201)) and y[-1] == pytest.approx(math.log10(latest))
    storage.put(make_update("mlp", "0", 201))
    page.refresh()
    assert line_points(page.sources["std_grad"].data, "2.weight")[0][-1] == 201
    assert page.sources["std_update"].data["xs"] == []  # never chosen, never read


def test_findings_runner_remembers_per_newest_iteration(storage):
    runner = FindingsRunner()
    try:
        first = runner.submit(storage, "mlp")
        assert runner.submit(storage, "mlp", "0") is first  # same run, same answer
        assert first.result(30) == get_findings(storage, "mlp", "0")
        storage.put(make_update("mlp", "0", 200))
        assert runner.submit(storage, "mlp") is not first  # the run went on
    finally:
        runner.shutdown()


def test_findings_of_a_sqlite_file_come_from_a_child_process(tmp_path):
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as st:
        fill(st)
        st.put(Update("mlp", "0", 300, 0.0, score=math.nan))
    st = SQLiteStatsStorage(path, read_only=True)
    runner = FindingsRunner()
    try:
        got = runner.submit(st, "mlp").result(60)
    finally:
        runner.shutdown()
        st.close()
    with SQLiteStatsStorage(path, read_only=True) as st:
        want = get_findings(st, "mlp", "0")
    assert got == [{k: list(v) if isinstance(v, tuple) else v for k, v in f.items()} for f in want]
    assert any(f["severity"] == "error" for f in got)


def test_a_fast_run_s_batch_is_thinned_to_the_drawn_resolution_keeping_spikes():
    st = InMemoryStatsStorage(max_updates=100_000)
    st.put_many(ratio_update(i, {"a": 1e-3}) for i in range(0, 10_000, 10))  # 1000 points
    ms = MultiSeries(["params/a/update_param_ratio"], ["a"], "r", max_points=300)
    ms.load(st, "s", "0")  # downsampled: buckets of about 67 iterations
    batch = [ratio_update(i, {"a": 0.5 if i == 10_321 else 1e-3}) for i in range(10_000, 10_500)]
    batch[-7].params["a"].update_param_ratio = math.inf
    assert ms.push_updates(batch) == 500  # recorded points taken in
    x, y = ms.points("a")
    new = x[x >= 10_000]
    assert len(new) <= 2 * 8 + 1 + 8  # about the drawn resolution, not 500
    assert 10_321 in new.tolist() and np.nanmax(y) == pytest.approx(math.log10(0.5))
    assert new[-1] == 10_499 and 10_493 in ms.marks.data["x"]


def test_dashes_and_colours_per_series_survive_streaming_and_compaction(storage):
    names, labels = RATIOS[:2], ["a", "b"]
    ms = MultiSeries(
        names, labels, "d", max_points=20, colors=["#111111", "#222222"], dashes=["solid", "dashed"]
    ).load(storage, "mlp", "0")
    _, p = multi_series_chart(
        storage,
        "mlp",
        "0",
        names,
        labels,
        "t",
        "y",
        Page(layout=None),
        "e",
        dashes=["solid", "dashed"],
    )
    assert all(r.glyph.line_dash == "dash" for r in p.renderers if isinstance(r.glyph, MultiLine))
    for i in range(200, 260):  # live rows, then a compaction
        storage.put(make_update("mlp", "0", i))
        ms.push_updates(storage.get_updates("mlp", "0", after_iteration=i - 1))
        data = ms.source.data
        style = {
            (lab, c, d)
            for lab, c, d in zip(data["label"], data["color"], data["dash"], strict=True)
        }
        assert style == {("a", "#111111", "solid"), ("b", "#222222", "dashed")}
