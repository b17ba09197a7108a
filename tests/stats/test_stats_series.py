"""Min/max downsampling (issue 4 §5): the vectorised code against a plain reference."""

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.series import MinMaxReducer, downsample_minmax


def reference(values, max_points):
    """The documented rule, one bucket at a time in plain Python."""
    n = len(values)
    if max_points is None or n <= max_points:
        return list(range(n))
    nb = max_points // 2
    edges = [int(e) for e in np.linspace(0, n, nb + 1)]
    keep = {n - 1}
    for b in range(nb):
        idx = range(edges[b], edges[b + 1])
        fin = [i for i in idx if np.isfinite(values[i])]
        if fin:
            keep.add(min(fin, key=lambda i: (values[i], i)))
            keep.add(min(fin, key=lambda i: (-values[i], i)))
        bad = [i for i in idx if not np.isfinite(values[i])]
        if bad:
            keep.add(bad[0])
    return sorted(keep)


def random_series(rng, n):
    """Values with ties (few distinct levels), NaN, +inf, -inf and all-NaN stretches."""
    values = rng.integers(-3, 4, n).astype(np.float64)
    if rng.random() < 0.5:
        values += rng.normal(size=n)
    special = rng.random(n)
    values[special < 0.05] = np.nan
    values[(special >= 0.05) & (special < 0.07)] = np.inf
    values[(special >= 0.07) & (special < 0.09)] = -np.inf
    if n > 20 and rng.random() < 0.3:
        a = rng.integers(0, n - 10)
        values[a : a + 10] = np.nan
    return values


def test_downsample_equals_reference_on_random_data():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(0, 400))
        max_points = [None, 2, 3, int(rng.integers(2, 60)), max(n, 2), max(n - 1, 2)][
            rng.integers(6)
        ]
        values = random_series(rng, n)
        got = downsample_minmax(values, max_points)
        assert got.dtype == np.int64
        assert got.tolist() == reference(values, max_points), (n, max_points)


def test_downsample_keeps_spikes_and_newest_point_and_its_bound():
    values = np.zeros(100_000)
    values[[12_345, 67_890]] = [1e9, -1e9]
    values[50_000] = np.nan
    got = downsample_minmax(values, 1000)
    assert {12_345, 67_890, 50_000, 99_999} <= set(got.tolist())
    assert len(got) <= 2 * 500 + 500 + 1


def test_downsample_rejects_bad_max_points():
    for bad in (1, 0, -5, 2.5, "10", True):
        with pytest.raises(InputError, match="max_points: expected an integer >= 2 or None"):
            downsample_minmax(np.zeros(10), bad)


@pytest.mark.parametrize("max_points", [None, 2, 9, 50, 1000])
def test_reducer_in_chunks_equals_downsample_of_whole_series(max_points):
    rng = np.random.default_rng(max_points or 1)
    for _ in range(40):
        n = int(rng.integers(1, 700))
        k = int(rng.integers(1, 5))
        values = np.stack([random_series(rng, n) for _ in range(k)], axis=1)
        iterations = np.cumsum(rng.integers(1, 3, n))
        timestamps = iterations * 0.5
        reducer = MinMaxReducer(n, max_points, k)
        cuts = np.sort(
            rng.choice(np.arange(1, n), size=min(n - 1, rng.integers(0, 12)), replace=False)
        )
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
            reducer.add(iterations[a:b], timestamps[a:b], values[a:b])
        for j, s in enumerate(reducer.result()):
            keep = reference(values[:, j], max_points)
            np.testing.assert_array_equal(s.iterations, iterations[keep])
            np.testing.assert_array_equal(s.timestamps, timestamps[keep])
            np.testing.assert_array_equal(s.values, values[keep, j])


def test_reducer_checks_the_count():
    r = MinMaxReducer(5, 2, 1)
    r.add(np.arange(3), np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="given 3 points, expected 5"):
        r.result()
    with pytest.raises(ValueError, match="given 6 points, expected 5"):
        r.add(np.arange(3), np.zeros(3), np.zeros((3, 1)))
