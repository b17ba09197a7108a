"""The model page builder (issue 5): a layer's sources hold the recorded values, after
the deferred read, after a layer change, a slider move and live updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ui_records import EVIL, INF_AT, LAYERS, make_update, ratio_of

from embedviz.stats.records import Histogram
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.cache import SeriesCache
from embedviz.ui.pages.histograms import (
    PERCENTILES,
    HistogramHistory,
    HistogramSlider,
    distribution_columns,
    percentiles,
    percentiles_many,
)
from embedviz.ui.pages.model import build_model, layer_map
from embedviz.ui.pages.multiline import line_points


def figure_type():
    from bokeh.models import Plot

    return Plot


def run_deferred(page) -> None:
    """What the server does once the page is shown."""
    for read, fill in page.deferred:
        fill(read())


def reference_percentiles(lo: float, hi: float, counts) -> np.ndarray:
    """Percentiles of values spread evenly inside each bin, by sampling them."""
    counts = np.asarray(counts)
    edges = np.linspace(lo, hi, len(counts) + 1)
    samples = np.concatenate(
        [
            np.linspace(a, b, 200 * c, endpoint=False)
            for a, b, c in zip(edges, edges[1:], counts, strict=False)
        ]
    )
    return np.percentile(samples, PERCENTILES)


def test_model_page_reads_after_it_is_shown_then_holds_the_recorded_values(memory_storage):
    page = build_model(memory_storage, "mlp")
    select = page.layout.select_one({"name": "layer_select"})
    assert [v for v, _ in select.options] == ["0", "1", "2", EVIL]
    assert select.value == "0"
    assert len(page.deferred) == 2  # one read of the series, one of the histograms
    assert list(page.sources["layer:ratio"].data["xs"]) == []  # empty until then
    run_deferred(page)
    updates = memory_storage.get_updates("mlp", "0")
    x, ratio = line_points(page.sources["layer:ratio"].data, "0.weight")
    assert list(x) == [u.iteration for u in updates]
    for i, r in zip(x, ratio, strict=True):
        if i == INF_AT:
            assert math.isnan(r)  # a gap, and a red mark
        else:
            assert r == pytest.approx(math.log10(ratio_of(int(i), 0)))
    assert set(page.sources["layer:ratio"].data["label"]) == {"0.weight", "0.bias"}
    mags = page.sources["layer:magnitude"].data
    for k, name in enumerate(["0.weight", "0.bias"]):
        _, param = line_points(mags, f"{name} param")
        np.testing.assert_allclose(param, math.log10(0.08))
        xu, upd = line_points(mags, f"{name} update")
        j = list(xu).index(7)
        assert upd[j] == pytest.approx(math.log10(0.08 * ratio_of(7, k)))
    dash = dict(zip(mags["label"], mags["dash"], strict=True))
    assert dash["0.weight param"] == "solid" and dash["0.weight update"] == "dashed"
    xl, lr = line_points(page.sources["layer:lr"].data, "group 0")
    np.testing.assert_allclose(lr, [u.learning_rates[0] for u in updates])
    band = page.sources["layer:act_band"].data
    act = updates[-1].activations["0"]
    assert band["x"][-1] == updates[-1].iteration
    assert band["hi"][-1] == pytest.approx(act.mean + 2 * act.std)
    assert band["lo"][-1] == pytest.approx(act.mean - 2 * act.std)


class CountingReads:
    """A storage that notes which histograms were read."""

    def __init__(self, storage) -> None:
        self.storage, self.histograms_read = storage, []

    def __getattr__(self, name):
        return getattr(self.storage, name)

    def get_histograms(self, session_id, worker_id, kind, name):
        self.histograms_read.append((kind, name))
        return self.storage.get_histograms(session_id, worker_id, kind, name)

    def get_histogram_arrays(self, session_id, worker_id, items):
        items = list(items)
        self.histograms_read += items
        return self.storage.get_histogram_arrays(session_id, worker_id, items)


def test_model_page_histograms_latest_shown_older_ones_on_the_slider(memory_storage):
    reads = CountingReads(memory_storage)
    page = build_model(reads, "mlp")
    run_deferred(page)
    # only the kind shown first is read with the page
    assert sorted(reads.histograms_read) == [("params", "0.bias"), ("params", "0.weight")]
    hists = memory_storage.get_histograms("mlp", "0", "params", "0.weight")
    show = page.sources["layer:hist:params:0.weight:show"]
    last = hists[-1][1]
    np.testing.assert_allclose(show.data["left"], last.edges()[:-1])
    assert list(show.data["top"]) == last.counts
    # on the server the older histograms stay in Python: no store source in the page
    assert "layer:hist:params:0.weight:store" not in page.sources
    slider = page.sources["layer:params:slider"]
    assert slider.value == hists[-1][0] and slider.start == hists[0][0]
    slider.value = 55  # what the server does when the browser moves it
    at = dict(hists)[50]
    np.testing.assert_allclose(show.data["left"], at.edges()[:-1])
    assert show.data["left"][0] == pytest.approx(-1.05)
    bands = page.sources["layer:hist:params:0.weight:bands"].data
    assert list(bands["x"]) == [it for it, _ in hists]
    want = reference_percentiles(last.lo, last.hi, last.counts)
    np.testing.assert_allclose([bands[f"p{q}"][-1] for q in PERCENTILES], want, atol=0.01)
    # the other kinds' charts are built when first chosen
    assert "layer:hist:activations:0:show" not in page.sources
    choice = page.sources["layer:hist_kind"]
    assert choice.labels == ["parameters", "updates", "activations"]
    choice.active = 2
    assert reads.histograms_read[-1] == ("activations", "0")
    acts = memory_storage.get_histograms("mlp", "0", "activations", "0")
    assert list(page.sources["layer:hist:activations:0:show"].data["top"]) == acts[-1][1].counts
    memory_storage.put(make_update("mlp", "0", 200))
    assert page.refresh() > 0
    assert page.sources["layer:activations:slider"].value == 200
    assert page.sources["layer:hist:activations:0:bands"].data["x"][-1] == 200


def test_model_page_records_written_before_the_deferred_read_are_shown(memory_storage):
    page = build_model(memory_storage, "mlp")
    memory_storage.put(make_update("mlp", "0", 200))
    assert page.refresh() == 0  # nothing drawn yet: nothing streamed
    run_deferred(page)
    assert line_points(page.sources["layer:ratio"].data, "0.weight")[0][-1] == 200
    assert page.sources["layer:act_band"].data["x"][-1] == 200
    assert page.sources["layer:hist:params:0.weight:bands"].data["x"][-1] == 200
    assert page.sources["layer:params:slider"].end == 200
    memory_storage.put(make_update("mlp", "0", 201))
    assert page.refresh() > 0
    x, mag = line_points(page.sources["layer:magnitude"].data, "0.bias update")
    assert x[-1] == 201 and mag[-1] == pytest.approx(math.log10(0.08 * ratio_of(201, 1)))


def test_model_page_selecting_a_layer_reads_and_rebuilds_its_panel(memory_storage):
    page = build_model(memory_storage, "mlp")
    run_deferred(page)
    select = page.layout.select_one({"name": "layer_select"})
    select.value = "2"  # the read runs through page.background (at once here)
    assert set(page.sources["layer:ratio"].data["label"]) == {"2.weight"}
    assert "layer:hist:params:0.weight:show" not in page.sources
    memory_storage.put(make_update("mlp", "0", 200))
    assert page.refresh() > 0
    assert line_points(page.sources["layer:ratio"].data, "2.weight")[0][-1] == 200
    assert page.sources["layer:params:slider"].value == 200
    show = page.sources["layer:hist:params:2.weight:show"].data
    assert show["left"][0] == pytest.approx(-1.2)  # the histogram of iteration 200


def test_model_page_layer_change_waits_for_its_read_and_ignores_a_stale_one(memory_storage):
    page = build_model(memory_storage, "mlp", defer_reads=False)
    jobs, soon = [], []
    page.background, page.call_soon = jobs.append, soon.append
    select = page.layout.select_one({"name": "layer_select"})
    select.value = "2"
    select.value = EVIL  # chosen before the read of "2" came back
    for job in jobs:
        job()
    for apply in soon:
        apply()
    assert set(page.sources["layer:ratio"].data["label"]) == {EVIL + ".bias"}
    assert "layer:hist:params:2.weight:show" not in page.sources


def test_model_static_mode_builds_every_layer_with_the_histograms_in_the_page(memory_storage):
    page = build_model(memory_storage, "mlp", mode="static")
    assert page.deferred == []
    assert {"layer0:ratio", "layer2:ratio"} <= set(page.sources)
    assert set(page.sources["layer2:ratio"].data["label"]) == {"2.weight"}
    hists = memory_storage.get_histograms("mlp", "0", "params", "0.weight")
    store = page.sources["layer0:hist:params:0.weight:store"].data
    assert list(store["iteration"]) == [it for it, _ in hists]
    assert list(store["counts"][3]) == hists[3][1].counts
    acts = memory_storage.get_histograms("mlp", "0", "activations", "0")
    store = page.sources["layer0:hist:activations:0:store"].data  # every kind built
    assert list(store["iteration"]) == [it for it, _ in acts]


def test_model_page_on_sqlite_through_the_series_cache(sqlite_path):
    with SQLiteStatsStorage(sqlite_path, read_only=True) as st:
        reads = SeriesCache().wrap(st)
        page = build_model(reads, "mlp", worker_id="1")
        run_deferred(page)
        x, ratio = line_points(page.sources["layer:ratio"].data, "0.bias")
        assert list(x) == list(range(200))
        assert ratio[3] == pytest.approx(math.log10(ratio_of(3, 1)))
        band = page.sources["layer:act_band"].data
        assert len(band["x"]) == 200 and band["x"][-1] == 199
        hists = st.get_histograms("mlp", "1", "params", "0.bias")
        show = page.sources["layer:hist:params:0.bias:show"].data
        assert list(show["top"]) == hists[-1][1].counts


def test_histogram_slider_on_a_single_histogram():
    st = InMemoryStatsStorage()
    u = make_update("s", "0", 0)
    u.histograms = {"params": {"0.weight": Histogram(0.0, 1.0, [1, 2])}}
    st.put(u)
    page = build_model(st, "s", defer_reads=False)
    assert page.sources["layer:params:slider"].disabled


def test_layer_map_without_static_info():
    st = InMemoryStatsStorage()
    st.put(make_update("s", "0", 0))
    layers = layer_map(None, st.get_latest_update("s", "0"))
    assert layers["0"] == ["0.weight", "0.bias"]
    assert set(LAYERS) <= set(layers)


def test_percentiles_match_numpy_on_uniform_samples_in_bins():
    rng = np.random.default_rng(3)
    samples = np.concatenate([rng.uniform(0, 1, 4000), rng.uniform(3, 4, 12000)])
    counts, edges = np.histogram(samples, bins=40, range=(0, 4))
    got = percentiles(edges[0], edges[-1], counts)
    want = np.percentile(samples, PERCENTILES)
    np.testing.assert_allclose(got[1:-1], want[1:-1], atol=0.02)
    assert got[0] == pytest.approx(0.0) and got[-1] == pytest.approx(4.0)


def test_percentiles_many_matches_each_histogram_alone():
    rng = np.random.default_rng(5)
    # no empty bin inside (a percentile on an empty stretch is any point of it)
    counts = 1 + rng.poisson(rng.uniform(0, 4, (60, 1)), size=(60, 9))
    counts[::7, :4] = 0  # empty left bins
    counts[5] = 0  # an empty histogram
    lo = rng.normal(size=60)
    hi = lo + rng.uniform(0.1, 2.0, 60)
    hi[11] = math.inf
    got = percentiles_many(lo, hi, counts)
    assert np.isnan(got[5]).all() and np.isnan(got[11]).all()
    for i in (0, 7, 14, 30):
        want = reference_percentiles(lo[i], hi[i], counts[i])
        np.testing.assert_allclose(got[i, 1:], want[1:], atol=(hi[i] - lo[i]) / 100)
        first = np.flatnonzero(counts[i])[0]
        assert got[i, 0] == pytest.approx(lo[i] + (hi[i] - lo[i]) * first / 9)


def test_distribution_of_a_long_history_keeps_spikes_and_the_newest():
    n = 5000
    lo = np.full(n, -1.0)
    lo[1234] = -50.0  # one wide histogram
    history = HistogramHistory(np.arange(n) * 10, lo, np.ones(n), np.ones((n, 4), np.int64))
    cols = distribution_columns(history, max_points=200)
    assert len(cols["x"]) <= 400
    assert 12340 in cols["x"] and cols["x"][-1] == 10 * (n - 1)
    assert min(cols["p0"]) == pytest.approx(-50.0)
    assert list(cols["x"]) == sorted(cols["x"])


def test_histogram_history_extend_keeps_newer_ones_with_the_newest_number_of_bins():
    h = HistogramHistory.of([(10, Histogram(0.0, 1.0, [1, 2]))])
    added = h.extend(
        [
            (10, Histogram(0.0, 1.0, [5, 5])),  # already held
            (20, Histogram(0.0, 2.0, [3, 1, 1])),  # another number of bins than the newest
            (30, Histogram(0.0, 2.0, [3, 1])),
        ]
    )
    assert list(added.iterations) == [30] and list(h.iterations) == [10, 30]
    assert h.counts.tolist() == [[1, 2], [3, 1]] and h.left_out == 1
    # the number of bins changes: the newer histograms replace the held ones
    added = h.extend([(40, Histogram(0.0, 3.0, [1, 1, 2])), (50, Histogram(0.0, 3.0, [2, 1, 2]))])
    assert list(added.iterations) == list(h.iterations) == [40, 50]
    assert h.counts.tolist() == [[1, 1, 2], [2, 1, 2]] and h.left_out == 3
    assert h.bins == 3 and h.lo.tolist() == [0.0, 0.0] and h.hi.tolist() == [3.0, 3.0]
    empty = HistogramHistory.of([])
    assert len(empty) == 0 and empty.last is None and empty.bins is None
    assert list(empty.extend([(5, Histogram(0.0, 1.0, [1]))]).iterations) == [5]
    assert empty.left_out == 0


@pytest.mark.parametrize("in_browser", [False, True])
def test_histogram_slider_draws_a_replaced_history_again(in_browser):
    h = HistogramHistory.of([(10, Histogram(0.0, 1.0, [1, 2])), (20, Histogram(0.0, 1.0, [2, 2]))])
    slider = HistogramSlider([("w", "k", h)], "k", in_browser=in_browser)
    slider.slider.value = 10  # moved back
    added = h.extend([(30, Histogram(0.0, 3.0, [1, 1, 4])), (40, Histogram(0.0, 3.0, [4, 1, 1]))])
    assert slider.push([added]) == 2
    assert (slider.slider.start, slider.slider.end, slider.slider.value) == (30, 40, 30)
    assert list(slider.shows[0].data["top"]) == [1, 1, 4]
    np.testing.assert_allclose(slider.shows[0].data["right"], [1.0, 2.0, 3.0])
    if in_browser:  # the page's store holds the new histograms only
        store = slider.sources["k:store"].data
        assert list(store["iteration"]) == [30, 40]
        assert [list(c) for c in store["counts"]] == [[1, 1, 4], [4, 1, 1]]


def test_model_page_opens_on_the_first_layer_with_parameters_and_names_layer_types():
    from ui_records import static_info

    st = InMemoryStatsStorage()
    info = static_info()
    info.layers = [info.layers[1], info.layers[0], *info.layers[2:]]  # ReLU "1" first
    st.put(info)
    st.put_many(make_update("mlp", "0", i) for i in range(20))
    page = build_model(st, "mlp", defer_reads=False)
    select = page.layout.select_one({"name": "layer_select"})
    assert [o[0] for o in select.options][:2] == ["1", "0"]  # model order kept
    assert select.value == "0"  # not the ReLU, which owns no parameters
    types = {li.name: li.type for li in info.layers}
    assert dict(select.options)["1"] == "1 (ReLU)"
    assert dict(select.options)["0"] == f"0 ({types['0']})"
    assert set(page.sources["layer:ratio"].data["label"]) == {"0.weight", "0.bias"}
    titles = [f.title.text for f in page.layout.select({"type": figure_type()})]
    assert f"Activations of 0 ({types['0']}): mean ± 2 std" in titles


def test_learning_rate_opens_on_log_y_when_it_spans_more_than_a_decade():
    from ui_records import static_info

    def page_of(decay: float):
        st = InMemoryStatsStorage()
        st.put(static_info())
        for i in range(30):
            u = make_update("mlp", "0", i)
            u.learning_rates = [0.1 * decay ** (i // 10)]  # a step schedule
            st.put(u)
        page = build_model(st, "mlp")
        run_deferred(page)
        return st, page

    st, page = page_of(0.1)  # 0.1 -> 0.001: two decades
    scale = page.sources["layer:lr_scale"]
    linear = page.layout.select_one({"name": "layer:lr"})
    log_chart = page.layout.select_one({"name": "layer:lr_log"})
    assert scale.labels == ["linear y", "log y"] and scale.active == 1
    assert log_chart.visible and not linear.visible
    assert log_chart.y_scale.__class__.__name__ == "LogScale"
    x, lr = line_points(page.sources["layer:lr"].data, "group 0")
    np.testing.assert_allclose(lr, st.get_series("mlp", "0", "lr/0").values)
    assert {r.data_source.name for r in log_chart.renderers} >= {"lines:layer:lr"}
    _, page = page_of(0.5)  # 0.1 -> 0.025: within a decade, linear
    assert page.sources["layer:lr_scale"].active == 0
    assert page.layout.select_one({"name": "layer:lr"}).visible
