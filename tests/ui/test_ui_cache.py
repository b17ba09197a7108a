"""The server's series cache: a page opened again reads only what was recorded since."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from embedviz.stats.records import Update
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui import cache as cache_module
from embedviz.ui.cache import SeriesCache


def score(i: int) -> float:
    return 50.0 if i == 333 else math.sin(i / 20.0)


def put(st, start: int, stop: int, session: str = "s") -> None:
    st.put_many(Update(session, "0", i, float(i), score=score(i)) for i in range(start, stop))


@pytest.fixture
def st():
    s = InMemoryStatsStorage(max_updates=100_000)
    put(s, 0, 200)
    return s


def test_full_series_caught_up_equals_a_fresh_read(st):
    cache = SeriesCache()
    reads = cache.wrap(st)
    reads.get_series("s", "0", "score")
    put(st, 200, 260)
    got = reads.get_series("s", "0", "score")
    want = st.get_series("s", "0", "score")
    assert cache.hits == 1 and cache.misses == 1
    np.testing.assert_array_equal(got.iterations, want.iterations)
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.timestamps, want.timestamps)


def test_downsampled_series_caught_up_keeps_spike_newest_point_and_recorded_values(st):
    cache = SeriesCache()
    reads = cache.wrap(st)
    reads.get_series_many("s", "0", ["score"], max_points=40)
    for start in range(200, 600, 50):  # a live run: a page opened again and again
        put(st, start, start + 50)
        got = reads.get_series_many("s", "0", ["score"], max_points=40)["score"]
    assert cache.hits == 8
    assert len(got) <= 40 and got.iterations[-1] == 599
    assert 333 in got.iterations.tolist() and got.values.max() == 50.0
    assert np.all(np.diff(got.iterations) > 0)
    np.testing.assert_array_equal(got.values, [score(int(i)) for i in got.iterations])


def test_many_updates_since_are_read_again_not_decoded(st, monkeypatch):
    monkeypatch.setattr(cache_module, "CATCH_UP_ROWS", 10)
    cache = SeriesCache()
    reads = cache.wrap(st)
    reads.get_series("s", "0", "score")
    put(st, 200, 220)
    assert len(reads.get_series("s", "0", "score")) == 220
    assert cache.hits == 0 and cache.misses == 2


def test_other_storage_or_worker_none_is_not_served_from_the_cache(st):
    cache = SeriesCache()
    cache.wrap(st).get_series("s", "0", "score")
    other = InMemoryStatsStorage()
    put(other, 0, 5)
    assert len(cache.wrap(other).get_series("s", "0", "score")) == 5
    assert len(cache.wrap(st).get_series("s", None, "score")) == 200
    assert cache.hits == 0


def test_points_kept_stay_within_the_budget(st):
    cache = SeriesCache(max_points_kept=300)
    put(st, 0, 200, session="t")
    reads = cache.wrap(st)
    reads.get_series("s", "0", "score")
    reads.get_series("t", "0", "score")  # 400 points: the older one goes
    reads.get_series("t", "0", "score")
    reads.get_series("s", "0", "score")
    assert cache.hits == 1 and cache.misses == 3


def test_the_server_reads_the_newest_run_into_its_cache_at_start(st):
    from embedviz.ui.server import UIServer

    put(st, 0, 50, session="newest")
    ui = UIServer(port=0)
    ui.attach(st)
    ui.start()
    try:
        cache = ui.series_cache
        key = (id(st), "newest", "0", "score", None)  # the overview's score, every point
        for _ in range(200):
            if cache.get(st, key) is not None:
                break
            time.sleep(0.05)
        assert cache.hits == 0 and cache.misses > 0
        assert len(cache.wrap(st).get_series("newest", "0", "score")) == 50
        assert cache.hits == 1
    finally:
        ui.stop()


def test_a_limit_per_series_is_cached_per_limit(st):
    """``max_points`` as a mapping: each series kept under its own limit."""
    st.put_many(Update("s", "0", i, float(i), extra={"kl": float(i)}) for i in range(200, 400))
    cache = SeriesCache()
    reads = cache.wrap(st)
    limits = {"score": None, "extra/kl": 20}
    first = reads.get_series_many("s", "0", ["score", "extra/kl"], max_points=limits)
    again = reads.get_series_many("s", "0", ["score", "extra/kl"], max_points=limits)
    assert cache.misses == 2 and cache.hits == 2
    for name, limit in limits.items():
        want = st.get_series("s", "0", name, limit)
        for got in (first[name], again[name]):
            np.testing.assert_array_equal(got.iterations, want.iterations)
            np.testing.assert_array_equal(got.values, want.values)
    assert len(first["score"]) == 200 and len(first["extra/kl"]) <= 20
