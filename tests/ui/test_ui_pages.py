"""Page builders on fixture storages: the data sources hold the right values (issue 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ui_records import EVIL, INF_AT, NAN_AT, PARAMS, make_update, ratio_of

from embedviz.stats.records import EvalRecord, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.findings import findings_html
from embedviz.ui.pages.charts import MARK_BOTTOM, MARK_TOP, MAX_POINTS
from embedviz.ui.pages.model import build_model
from embedviz.ui.pages.multiline import line_points
from embedviz.ui.pages.overview import build_overview
from embedviz.ui.pages.smoothing import ema
from embedviz.ui.pages.system import build_system


def test_overview_score_holds_recorded_values_and_marks_nan(memory_storage):
    page = build_overview(memory_storage, "mlp")
    src = page.sources["score"].data
    recorded = {u.iteration: u.score for u in memory_storage.get_updates("mlp", "0")}
    assert list(src["x"]) == sorted(recorded)
    for x, y in zip(src["x"], src["y"], strict=True):
        if x == NAN_AT:
            assert math.isnan(y)  # a gap in the line, never 0
        else:
            assert y == pytest.approx(recorded[x])
    marks = page.sources["score:marks"].data
    assert list(marks["x"]) == [NAN_AT]
    assert list(marks["value"]) == ["NaN"]
    assert list(marks["y"]) == [MARK_TOP]


def test_overview_smoothing_is_debiased_ema_that_skips_nan(memory_storage):
    src = build_overview(memory_storage, "mlp").sources["score"].data
    acc = norm = 0.0
    expected = []
    for y in src["y"]:
        if math.isfinite(y):
            acc = 0.8 * acc + 0.2 * y
            norm = 0.8 * norm + 0.2
        expected.append(acc / norm if math.isfinite(y) else math.nan)
    np.testing.assert_allclose(src["ys"], expected, equal_nan=True)


def test_overview_ratio_is_log10_of_recorded_ratio_with_inf_marked(memory_storage):
    page = build_overview(memory_storage, "mlp")
    for k, name in enumerate(PARAMS):
        xs, ys = line_points(page.sources["ratio"].data, name)
        assert list(xs) == list(range(200))
        for x, y in zip(xs, ys, strict=True):
            if x == INF_AT:
                assert math.isnan(y)
            else:
                assert y == pytest.approx(math.log10(ratio_of(int(x), k)))
    marks = page.sources["ratio:marks"].data
    assert sorted(marks["series"]) == sorted(PARAMS)
    assert set(marks["x"]) == {INF_AT}
    assert set(marks["value"]) == {"+inf"}


def test_zero_ratio_is_marked_at_the_bottom_not_drawn_as_a_value():
    st = InMemoryStatsStorage()
    ups = [make_update("s", "0", i) for i in range(5)]
    ups[2].params["0.weight"].update_param_ratio = 0.0
    st.put_many(ups)
    page = build_overview(st, "s")
    assert math.isnan(line_points(page.sources["ratio"].data, "0.weight")[1][2])
    marks = page.sources["ratio:marks"].data
    assert list(marks["value"]) == ["0"] and list(marks["y"]) == [MARK_BOTTOM]
    assert list(marks["kind"]) == ["zero"]  # its own marker, not a red NaN/inf x


def test_overview_std_tabs_and_tables(memory_storage):
    page = build_overview(memory_storage, "mlp")
    latest = memory_storage.get_latest_update("mlp", "0")
    act = line_points(page.sources["std_act"].data, "1 (ReLU)")[1]
    assert act[-1] == pytest.approx(math.log10(latest.activations["1"].std))
    grad = line_points(page.sources["std_grad"].data, "2.weight")[1]
    assert grad[-1] == pytest.approx(math.log10(latest.params["2.weight"].grad_std))
    perf = dict(zip(*page.sources["performance"].data.values(), strict=True))
    assert perf["last iteration"] == f"{latest.iteration:,}"
    # 199 iterations in 19.9 s of recorded wall time
    assert float(perf["iterations/s (run average)"]) == pytest.approx(10.0, rel=1e-3)
    # the last report's iterations/s and examples/s come from one window: their ratio is
    # the batch size (3200 examples/s at 100 minibatches/s: 32 per batch)
    its = float(perf["iterations/s (last report)"])
    examples = float(perf["examples/s (last report)"].replace(",", ""))
    assert its == latest.minibatches_per_sec
    assert examples / its == pytest.approx(latest.examples_per_sec / latest.minibatches_per_sec)
    model = dict(zip(*page.sources["model"].data.values(), strict=True))
    assert model["model"] == "MLP" and model["parameters"] == "1,234"
    assert model["optimizer"].startswith("SGD")


def test_long_series_is_downsampled_keeping_spike_and_newest_point():
    st = InMemoryStatsStorage(max_updates=50_000)
    n = 20_000
    scores = np.sin(np.arange(n) / 50.0)
    scores[7_777] = 40.0
    st.put_many(Update("long", "0", i, float(i), score=float(scores[i])) for i in range(n))
    src = build_overview(st, "long").sources["score"].data
    assert len(src["x"]) <= 1.5 * MAX_POINTS + 1
    assert 7_777 in list(src["x"]) and max(src["y"]) == 40.0
    assert src["x"][-1] == n - 1


def test_refresh_streams_only_new_points(memory_storage):
    page = build_overview(memory_storage, "mlp")
    before = {k: len(v.data["x"]) for k, v in page.sources.items() if "x" in v.data}
    assert page.refresh() == 0
    memory_storage.put(make_update("mlp", "0", 200))
    memory_storage.put(make_update("mlp", "0", 201))
    added = page.refresh()
    # score + 4 ratios + 3 activation std + 4 grad std + 4 update std, two iterations
    assert added == 2 * (1 + 4 + 3 + 4 + 4)
    src = page.sources["score"].data
    assert len(src["x"]) == before["score"] + 2 and list(src["x"][-2:]) == [200, 201]
    assert src["y"][-1] == pytest.approx(make_update("mlp", "0", 201).score)
    assert page.refresh() == 0
    perf = dict(zip(*page.sources["performance"].data.values(), strict=True))
    assert perf["last iteration"] == "201"


def test_refresh_streams_evaluations(memory_storage):
    page = build_overview(memory_storage, "mlp")
    n = len(page.sources["eval/accuracy"].data["x"])
    memory_storage.put(EvalRecord("mlp", "0", 260, 0.0, {"accuracy": 0.97}))
    assert page.refresh() >= 1
    assert page.sources["eval/accuracy"].data["y"][-1] == 0.97
    assert len(page.sources["eval/accuracy"].data["x"]) == n + 1


def test_ema_continues_across_chunks():
    v = np.array([1.0, 2.0, np.nan, 4.0, 3.0])
    whole, _ = ema(v, 0.6)
    a, state = ema(v[:2], 0.6)
    b, _ = ema(v[2:], 0.6, state)
    np.testing.assert_allclose(np.concatenate([a, b]), whole, equal_nan=True)
    assert whole[0] == 1.0  # debiased: the first point is itself


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.8, 0.999, 1e-250])
@pytest.mark.parametrize("case", ["walk", "spike", "huge"])
def test_ema_matches_the_plain_recursion(weight, case):
    """Against TensorBoard's smoothing point by point, also where a vectorised sum
    could overflow: a spike of 1e150 among ones, values near float64's largest, a weight
    of 1e-250."""
    rng = np.random.default_rng(1)
    if case == "walk":
        v = rng.standard_normal(3000).cumsum()
        v[[5, 700, 701, 2999]] = [np.nan, np.inf, -np.inf, np.nan]
    elif case == "spike":
        v = np.ones(3000)
        v[[5, 800]] = [np.nan, 1e150]
    else:
        v = rng.uniform(-1.0, 1.0, 3000) * 1e300
    acc = norm = 0.0
    want = np.full(len(v), np.nan)
    for i, x in enumerate(v):  # TensorBoard's debiased smoothing, point by point
        if np.isfinite(x):
            acc = weight * acc + (1 - weight) * x
            norm = weight * norm + (1 - weight)
            want[i] = acc / norm
    got, state = ema(v, weight)
    assert np.isfinite(got).sum() == np.isfinite(want).sum()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert state == pytest.approx((acc, norm), rel=1e-9)


def test_system_page_memory_in_mib_per_worker(sqlite_path):
    st = SQLiteStatsStorage(sqlite_path, read_only=True)
    page = build_system(st, "mlp")
    for w in ("0", "1"):
        rss = st.get_series("mlp", w, "memory/rss_bytes")
        np.testing.assert_allclose(
            page.sources[f"memory/rss_bytes:{w}"].data["y"], rss.values / 2**20
        )
        hw = dict(zip(*page.sources[f"hardware:{w}"].data.values(), strict=True))
        assert hw["CPUs"] == "2" and hw["memory"] == "24.0 GiB"
        sw = dict(zip(*page.sources[f"software:{w}"].data.values(), strict=True))
        assert sw["hostname"] == EVIL  # a table cell is text; DataTable does not parse it
    st.close()


def test_system_page_drops_the_priming_zero_of_the_cpu_load():
    st = InMemoryStatsStorage()
    cpu = [0.0, 180.0, 0.0, 95.0]  # psutil's priming 0 first; a later 0 is a real idle
    st.put_many(
        Update("s", "0", i, float(i), memory={"rss_bytes": 1e8, "cpu_percent": c})
        for i, c in enumerate(cpu)
    )
    page = build_system(st, "s")
    data = page.sources["memory/cpu_percent:0"].data
    assert list(data["x"]) == [1, 2, 3] and list(data["y"]) == cpu[1:]
    chart = page.layout.select_one({"name": "memory/cpu_percent"})
    assert "one CPU" in chart.yaxis[0].axis_label
    st.put(Update("s", "0", 4, 4.0, memory={"rss_bytes": 1e8, "cpu_percent": 0.0}))
    page.refresh()
    assert list(page.sources["memory/cpu_percent:0"].data["y"]) == [*cpu[1:], 0.0]


def test_findings_name_layer_types_and_a_single_iteration():
    found = [
        {"severity": "error", "check": "dead_units", "layer": "1", "iterations": [0, 0]},
        {"severity": "warning", "check": "ratio_high", "layer": "0.weight", "iterations": [5, 9]},
    ]
    text = findings_html(found, as_of=9, types={"0": "Linear", "1": "ReLU"})
    assert "layer 1 (ReLU)" in text and "tensor 0.weight (Linear)" in text
    assert "iteration 0<" in text.replace("</span>", "<") and "iterations 0" not in text
    assert "As of iteration 9" in text
    assert "(ReLU)" not in findings_html(found)  # no static info: names only


def test_findings_html_escapes_and_orders_by_severity():
    text = findings_html(
        [
            {"severity": "warning", "layer": EVIL, "evidence": "ratio 0.3", "advice": "lower lr"},
            {"severity": "error", "layer": "0", "evidence": "<b>NaN</b>", "advice": "clip"},
        ]
    )
    assert "<img" not in text and "&lt;img" in text and "&lt;b&gt;NaN" in text
    assert text.index("ERROR") < text.index("WARNING")
    assert "No problems" in findings_html([])


def test_pages_on_an_empty_or_unknown_session():
    st = InMemoryStatsStorage()
    assert build_overview(st, "nope").sources == {}
    assert build_model(st, "nope").sources == {}
    st.put(Update("bare", "0", 1, 0.0))  # an update with nothing in it
    page = build_overview(st, "bare")
    assert list(page.sources["score"].data["x"]) == []


def test_short_series_smoothing_follows_the_raw_line():
    """15 points (a t-SNE run reported every 50 iterations): the smoothed line may not lag
    far behind; its weight spans at most a tenth of the points (here 1.5, weight 1/3)."""
    st = InMemoryStatsStorage()
    raw = [3.0] * 5 + [1.0] * 10  # a drop such as the end of early exaggeration
    for i, v in enumerate(raw):
        st.put(Update("s", "0", 50 * (i + 1), float(i), score=v))
    src = build_overview(st, "s", findings=False).sources["score"].data
    assert list(src["y"]) == raw  # the raw line stays drawn
    w, acc, norm, expected = 1.0 / 3.0, 0.0, 0.0, []
    for v in raw:
        acc, norm = w * acc + (1 - w) * v, w * norm + (1 - w)
        expected.append(acc / norm)
    np.testing.assert_allclose(src["ys"], expected)
    # three points into the drop the smoothed line is within 5 % of it from the raw one
    # (with the weight 0.8 of long series it would still be half the drop behind)
    assert abs(src["ys"][7] - raw[7]) < 0.05 * (raw[0] - raw[-1])
    assert src["ys"][5] != raw[5]  # still smoothed, not a copy


def test_smoothing_weight_grows_with_the_series_while_streaming():
    st = InMemoryStatsStorage()
    for i in range(12):
        st.put(Update("s", "0", i, float(i), score=float(i % 2)))
    page = build_overview(st, "s", findings=False)
    ys = np.asarray(page.sources["score"].data["ys"])
    # an alternating 0/1 series: light smoothing (12 points) swings widely ...
    assert abs(ys[-1] - ys[-2]) > 0.5
    for i in range(12, 200):
        st.put(Update("s", "0", i, float(i), score=float(i % 2)))
    assert page.refresh() == 188
    ys = np.asarray(page.sources["score"].data["ys"])
    # ... the full weight 0.8 on 200 points stays near 0.5 (steady swing 0.2 / 1.8)
    assert abs(ys[-1] - ys[-2]) == pytest.approx(0.2 / 1.8, rel=1e-3)


def test_timestamps_no_date_can_show_read_as_a_dash():
    """Files written before timestamps were checked may hold NaN or 1e300."""
    from embedviz.ui.pages.info_tables import _when

    assert _when(1e300) == _when(float("nan")) == _when(float("inf")) == "—"
    assert _when(86400.0 * 365).startswith("1971-01-0")
