"""InMemoryStatsStorage's bound (review 13, finding 1): a long run is kept whole at a
coarser step that is the same over the whole run, its first update (iteration 0) and its
newest are kept, a score spike and dip survive, and memory stays within max_updates."""

from __future__ import annotations

import numpy as np
import pytest

from embedviz.stats.records import EvalRecord, Snapshot, Update
from embedviz.stats.storage import InMemoryStatsStorage

SPIKE, DIP = 1e3, -1e3


def _run(n: int, step: int, seed: int = 0) -> list[Update]:
    """``n`` updates every ``step`` iterations, a noisy falling score, one spike and one
    dip planted at iterations that are no round numbers."""
    rng = np.random.default_rng(seed)
    scores = 2.0 + np.exp(-np.arange(n) / (n / 5)) + 0.05 * rng.standard_normal(n)
    scores[int(n * 0.37) + 3] = SPIKE
    scores[int(n * 0.81) + 7] = DIP
    return [Update("run", "0", i * step, float(i), score=float(s)) for i, s in enumerate(scores)]


def _put_watching_the_bound(storage: InMemoryStatsStorage, updates, chunk: int = 97) -> int:
    """Put ``updates`` in chunks; the most updates the worker held after any chunk."""
    most = 0
    for start in range(0, len(updates), chunk):
        storage.put_many(updates[start : start + chunk])
        most = max(most, storage.count_updates("run", "0"))
    return most


@pytest.mark.parametrize("n, step, max_updates", [(30_000, 10, 10_000), (20_000, 1, 100)])
def test_a_long_run_is_kept_whole_at_a_uniform_step(n, step, max_updates):
    updates = _run(n, step)
    storage = InMemoryStatsStorage(max_updates=max_updates)
    assert _put_watching_the_bound(storage, updates) <= max_updates
    kept = storage.get_updates("run")
    its = np.array([u.iteration for u in kept])
    assert max_updates // 5 <= len(kept) <= max_updates
    assert (np.diff(its) > 0).all()
    assert its[0] == 0 and its[-1] == updates[-1].iteration  # the first and the newest
    by_it = {u.iteration: u for u in updates}
    assert all(u is by_it[u.iteration] for u in kept)  # the records put, unchanged
    # every tenth of the run keeps about a tenth of what is kept
    share = np.bincount(its * 10 // (updates[-1].iteration + 1), minlength=10) / len(its)
    assert (share > 0.05).all() and (share < 0.2).all(), share
    # and no gap is much wider than the mean one (the old thinning left 1/3 of the run
    # as a few points)
    span = updates[-1].iteration
    assert np.diff(its).max() <= 8 * span / (len(its) - 1)
    scores = [u.score for u in kept]
    assert SPIKE in scores and DIP in scores


def test_thinning_keeps_each_buckets_lowest_and_highest_score():
    """Against a reference computed from the whole run: wherever the kept updates leave
    a gap, the updates dropped inside it lie within the scores kept around it (so a
    min/max drawing of what is kept covers the whole series)."""
    updates = _run(5000, 1, seed=3)
    storage = InMemoryStatsStorage(max_updates=200)
    storage.put_many(updates)
    kept = storage.get_updates("run")
    its = [u.iteration for u in kept]
    all_scores = np.array([u.score for u in updates])
    kept_scores = np.array([u.score for u in kept])
    # the extremes of the whole run and of each half are kept
    for lo, hi in [(0, 5000), (0, 2500), (2500, 5000)]:
        inside = (np.array(its) >= lo) & (np.array(its) < hi)
        assert kept_scores[inside].max() == all_scores[lo:hi].max()
        assert kept_scores[inside].min() == all_scores[lo:hi].min()


def test_reads_after_thinning_agree_with_each_other():
    storage = InMemoryStatsStorage(max_updates=64)
    for worker in ("a", "b"):
        storage.put_many(
            [Update("run", worker, i, float(i), score=float(i % 7)) for i in range(3000)]
        )
    whole = storage.get_updates("run")
    assert [(u.iteration, u.worker_id) for u in whole] == sorted(
        (u.iteration, u.worker_id) for u in whole
    )
    for after in (-1, 0, 1234, 2998, 2999):
        got = storage.get_updates("run", "a", after_iteration=after)
        assert got == [u for u in whole if u.worker_id == "a" and u.iteration > after]
        series = storage.get_series("run", "a", "score", after_iteration=after)
        assert series.iterations.tolist() == [u.iteration for u in got]
        assert series.values.tolist() == [u.score for u in got]
    assert storage.get_latest_update("run", "b").iteration == 2999
    assert storage.count_updates("run") == len(whole) <= 2 * 64


def test_updates_arriving_out_of_order_after_thinning():
    """A resent older update lands in its place; a spike among them survives, the order
    and the bound hold."""
    storage = InMemoryStatsStorage(max_updates=50)
    storage.put_many([Update("run", "0", i, float(i), score=1.0) for i in range(0, 2000, 2)])
    storage.put(Update("run", "0", 777, 777.0, score=SPIKE))
    storage.put_many([Update("run", "0", i, float(i), score=1.0) for i in range(1, 2000, 2)])
    kept = storage.get_updates("run")
    its = [u.iteration for u in kept]
    assert its == sorted(its) and len(kept) <= 50
    assert its[0] == 0 and 777 in its and kept[its.index(777)].score == SPIKE
    assert its[-1] == 1999  # the highest iteration, put last


def test_non_finite_scores_survive_thinning():
    storage = InMemoryStatsStorage(max_updates=32)
    bad = {1111: float("nan"), 2222: float("inf")}
    storage.put_many(
        [Update("run", "0", i, float(i), score=bad.get(i, 1.0 + i % 3)) for i in range(4000)]
    )
    kept = {u.iteration: u.score for u in storage.get_updates("run")}
    assert np.isnan(kept[1111]) and kept[2222] == float("inf")


def test_evaluations_and_snapshots_are_thinned_over_the_whole_run():
    storage = InMemoryStatsStorage(max_updates=16, max_snapshots=8)
    storage.put_many(
        [EvalRecord("run", "0", i, float(i), {"acc": i / 400}) for i in range(0, 4000, 10)]
    )
    storage.put_many(
        [Snapshot("run", "0", i, float(i), "emb", ["a"], [[0.0, 1.0]]) for i in range(300)]
    )
    for got, limit, last in [
        ([e.iteration for e in storage.get_evals("run")], 16, 3990),
        ([s.iteration for s in storage.get_snapshots("run")], 8, 299),
    ]:
        assert got[0] == 0 and got[-1] == last and 4 <= len(got) <= limit
        assert np.diff(got).max() <= 4 * last / (len(got) - 1), got  # no long hole


def test_a_run_within_the_bound_is_kept_whole():
    storage = InMemoryStatsStorage(max_updates=100)
    updates = _run(100, 3)
    storage.put_many(updates)
    assert storage.get_updates("run") == updates
