"""The overview's live refresh reads the new points of the series it draws
(``get_series_many(after_iteration=...)``) and the newest update, never every new record
whole (``get_updates`` built a full record, histograms included, per new row: most of the
server's time per live update); what it streams equals what a page built afresh from the
whole series draws."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ui_records import INF_AT, NAN_AT, fill, make_update

from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.cache import SeriesCache
from embedviz.ui.pages.multiline import line_points
from embedviz.ui.pages.overview import build_overview

BUILT = 100  # iterations 0..99 when the page is built; 100..159 arrive live
NEW = range(BUILT, 160)  # holds the NaN score (120) and the inf ratios (150)
MULTI = ("ratio", "std_act", "std_grad", "std_update")


class Counting:
    """A storage whose read calls are counted (name -> calls, and their arguments)."""

    def __init__(self, storage) -> None:
        self._storage = storage
        self.calls: Counter = Counter()
        self.args: list[tuple] = []

    def __getattr__(self, name: str):
        attr = getattr(self._storage, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls[name] += 1
            self.args.append((name, args, kwargs))
            return attr(*args, **kwargs)

        return call


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, tmp_path):
    memory = request.param == "memory"
    st = InMemoryStatsStorage() if memory else SQLiteStatsStorage(tmp_path / "r.db")
    fill(st, n=BUILT)
    yield st
    st.close()


def _built(reads, defer: bool):
    page = build_overview(reads, "mlp", findings=False, defer_reads=defer)
    for read, fill_in in page.deferred:  # as the server does, after showing the page
        fill_in(read())
    return page


def _same_drawing(page, fresh) -> None:
    """Every line and mark that ``fresh`` draws, ``page`` draws the same."""
    for key in ("score", *MULTI):
        if key not in page.sources or not len(page.sources[key].data.get("label", [1])):
            continue
        data, want = page.sources[key].data, fresh.sources[key].data
        if key == "score":
            for col in ("x", "t", "y", "ys"):
                np.testing.assert_allclose(data[col], want[col], rtol=1e-12, err_msg=col)
        else:
            labels = set(want["label"])
            assert labels and set(data["label"]) == labels
            for label in labels:
                for got, ref in zip(
                    line_points(data, label), line_points(want, label), strict=True
                ):
                    np.testing.assert_array_equal(got, ref)
        marks, want_marks = page.sources[f"{key}:marks"].data, fresh.sources[f"{key}:marks"].data
        got = sorted(zip(marks["x"], marks["series"], strict=True))
        assert got == sorted(zip(want_marks["x"], want_marks["series"], strict=True)), key
    assert page.sources["performance"].data == fresh.sources["performance"].data


@pytest.mark.parametrize("defer", [False, True])
def test_refresh_streams_the_drawn_series_without_reading_whole_records(storage, defer):
    reads = Counting(storage)
    page = _built(reads, defer)
    reads.calls.clear()
    reads.args.clear()
    storage.put_many([make_update("mlp", "0", i) for i in NEW])  # histograms every 10th
    added = page.refresh()
    assert reads.calls["get_updates"] == 0  # no whole records read for the charts
    feeds = [kw for name, _, kw in reads.args if name == "get_series_many"]
    assert [kw.get("after_iteration") for kw in feeds] == [BUILT - 1]
    assert reads.calls["get_latest_update"] >= 1
    assert added >= len(NEW) * 5  # the score and at least one line per tensor, every point
    score = page.sources["score"].data
    assert score["x"][-1] == NEW[-1]  # the newest point is drawn
    assert NAN_AT in page.sources["score:marks"].data["x"]
    assert INF_AT in page.sources["ratio:marks"].data["x"]
    _same_drawing(page, build_overview(storage, "mlp", findings=False))
    reads.calls.clear()
    assert page.refresh() == 0  # nothing new: the newest update only
    assert set(reads.calls) <= {"get_latest_update", "get_evals"}


def test_refresh_through_the_servers_cache_reads_past_it(storage):
    """The server's pages read through its series cache: a read of new points goes
    straight to the storage (the cache keeps page builds' reads)."""
    reads = Counting(storage)
    cache = SeriesCache()
    page = _built(cache.wrap(reads), defer=True)
    hits, misses = cache.hits, cache.misses
    for step in (range(BUILT, 130), range(130, 160)):  # two ticks
        storage.put_many([make_update("mlp", "0", i) for i in step])
        reads.calls.clear()
        assert page.refresh() > 0
        assert reads.calls["get_updates"] == 0
        assert reads.calls["get_series_many"] == 1
    assert (cache.hits, cache.misses) == (hits, misses)
    _same_drawing(page, build_overview(storage, "mlp", findings=False))


def test_a_record_without_the_drawn_series_moves_the_feed_on(storage):
    """An update that holds none of the drawn series (a worker's record without a score)
    still updates the tables, and the next tick does not read it again."""
    reads = Counting(storage)
    page = _built(reads, defer=False)
    u = make_update("mlp", "0", BUILT)
    u.score, u.params, u.activations = None, {}, {}
    storage.put(u)
    assert page.refresh() == 0
    rows = dict(zip(*page.sources["performance"].data.values(), strict=True))
    assert rows["last iteration"] == f"{BUILT:,}"
    reads.args.clear()
    storage.put(make_update("mlp", "0", BUILT + 1))
    assert page.refresh() > 0
    feeds = [kw for name, _, kw in reads.args if name == "get_series_many"]
    assert [kw.get("after_iteration") for kw in feeds] == [BUILT]
    assert page.sources["score"].data["x"][-1] == BUILT + 1
