"""``get_series`` / ``get_series_many`` with ``after_iteration``: only the newer points,
downsampled as the whole series filtered to them would be (both storages)."""

from __future__ import annotations

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.records import EvalRecord, ParamStats, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage

N = 150  # updates at iterations 0, 2, ..., 298


def _records(seed: int = 0) -> list:
    """Updates of two layouts (every 4th without update statistics), NaN and inf among
    the scores and ratios, and an evaluation every 10th update."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(N):
        it = 2 * k
        score = float(rng.normal())
        if k % 17 == 5:
            score = float("nan")
        if k % 23 == 7:
            score = float("inf")
        params = {}
        for name in ("a", "b"):
            ratio = float(rng.lognormal(-7.0, 1.0))
            if name == "b" and k % 19 == 3:
                ratio = float("-inf")
            params[name] = ParamStats(0.0, float(rng.random()), 1.0, update_param_ratio=ratio)
            if k % 4 == 0:  # another layout: no update statistics
                params[name].update_param_ratio = None
        out.append(Update("run", "0", it, 1000.0 + it, score=score, params=params))
        if k % 10 == 0:
            out.append(EvalRecord("run", "0", it, 1000.0 + it, {"acc": float(rng.random())}))
    return out


SOME = ["score", "params/a/update_param_ratio", "params/b/update_param_ratio", "eval/acc"]


def _every(storage) -> list[str]:
    names = storage.list_series("run", "0")
    assert len(names) > 8  # the SQLite read of whole rows, not of a few columns
    return names


def _same(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)  # NaN equals NaN here


def _reference(kind: str, tmp_path, after: int):
    """A storage of the same kind holding only the records after ``after``."""
    if kind == "memory":
        ref = InMemoryStatsStorage()
    else:
        ref = SQLiteStatsStorage(tmp_path / f"ref{after}.db")
    ref.put_many([r for r in _records() if r.iteration > after])
    ref.flush()
    return ref


def _kind(storage) -> str:
    return "memory" if isinstance(storage, InMemoryStatsStorage) else "sqlite"


@pytest.mark.parametrize("after", [-1, 0, 57, 150, 295])
def test_newer_points_equal_the_whole_series_filtered(storage, after):
    storage.put_many(_records())
    names = _every(storage)
    for chosen in (SOME, names):
        whole = storage.get_series_many("run", "0", chosen)
        newer = storage.get_series_many("run", "0", chosen, after_iteration=after)
        for name in chosen:
            keep = whole[name].iterations > after
            _same(newer[name], whole[name].take(np.flatnonzero(keep)))
            one = storage.get_series("run", "0", name, after_iteration=after)
            _same(one, newer[name])
    assert len(newer["score"]) == sum(1 for k in range(N) if 2 * k > after)


@pytest.mark.parametrize("after", [-1, 57, 150])
@pytest.mark.parametrize("max_points", [4, 10, {"score": 6, "params/a/update_param_ratio": None}])
def test_downsampled_newer_points_equal_a_storage_of_only_those(
    storage, tmp_path, after, max_points
):
    storage.put_many(_records())
    ref = _reference(_kind(storage), tmp_path, after)
    try:
        for chosen in (SOME, _every(storage)):
            newer = storage.get_series_many(
                "run", "0", chosen, max_points=max_points, after_iteration=after
            )
            expected = ref.get_series_many("run", "0", chosen, max_points=max_points)
            for name in chosen:
                _same(newer[name], expected[name])
                if len(expected[name]):  # the newest point is always kept
                    assert newer[name].iterations[-1] == expected[name].iterations[-1]
    finally:
        ref.close()
    score = storage.get_series("run", "0", "score", max_points=4, after_iteration=after)
    whole = storage.get_series("run", "0", "score", after_iteration=after)
    assert len(score) < len(whole)  # downsampled indeed
    assert np.isinf(score.values).any() == np.isinf(whole.values).any()  # marks survive


@pytest.mark.parametrize("after", [298, 299, 10**12])
def test_nothing_newer_gives_empty_series(storage, after):
    storage.put_many(_records())
    got = storage.get_series_many("run", "0", _every(storage), max_points=8, after_iteration=after)
    assert got and all(len(s) == 0 for s in got.values())
    for s in got.values():
        assert s.iterations.dtype == np.int64 and s.values.dtype == np.float64
    assert len(storage.get_series("run", "0", "score", after_iteration=after)) == 0


def test_a_bad_after_iteration_is_refused_as_get_updates_refuses_it(storage):
    storage.put_many(_records())
    for bad in ("10", 1.5, True):
        with pytest.raises(InputError, match="after_iteration: expected an integer or None"):
            storage.get_series_many("run", "0", ["score"], after_iteration=bad)
        with pytest.raises(InputError, match="after_iteration"):
            storage.get_series("run", "0", "score", after_iteration=bad)
    got = storage.get_series("run", "0", "score", after_iteration=np.int64(290))
    assert got.iterations.tolist() == [292, 294, 296, 298]


def test_sqlite_reads_the_newer_rows_through_the_worker_index(tmp_path):
    storage = SQLiteStatsStorage(tmp_path / "runs.db")
    try:
        storage.put_many(_records())
        storage.flush()
        storage.get_series_many("run", "0", ["score"])  # the reader connection exists
        con = storage._reader()
        statements: list[str] = []
        con.set_trace_callback(statements.append)
        for names in (["score"], _every(storage)):
            storage.get_series_many("run", "0", names, max_points=6, after_iteration=200)
        con.set_trace_callback(None)
        reads = [s for s in statements if "FROM updates" in s or "FROM evals" in s]
        assert any("iteration > 200" in s for s in reads)
        for sql in reads:
            if "iteration > 200" not in sql:
                continue
            plan = " ".join(row[-1] for row in con.execute("EXPLAIN QUERY PLAN " + sql))
            assert "_by_worker (wid=? AND iteration>?)" in plan, (sql, plan)
    finally:
        storage.close()
