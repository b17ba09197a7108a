"""TSNEStats's arguments (review 6, findings 11 and 15)."""

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.stats.tsne_stats import TSNEStats


def _feed(stats, n):
    rng = np.random.default_rng(0)
    for k in range(n):
        stats(50 * (k + 1), 1.0, rng.normal(size=(3, 2)), {"phase": "main", "max_iter": 10_000})
    stats.close()


def test_snapshot_every_takes_numpy_integers():
    storage = InMemoryStatsStorage()
    stats = TSNEStats(storage, session_id="t", snapshot_every=np.int32(2))
    _feed(stats, 5)
    assert type(stats.snapshot_every) is int
    # every second call, and the last one at close()
    assert [s.iteration for s in storage.get_snapshots("t")] == [100, 200, 250]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "snapshot_every: expected an integer >= 1, got 0"),
        (2.0, "snapshot_every: expected an integer >= 1, got 2.0"),
        (False, "snapshot_every: expected an integer >= 1, got False"),
    ],
)
def test_bad_snapshot_every_is_one_message(value, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        TSNEStats(InMemoryStatsStorage(), snapshot_every=value)


def test_parameters_after_storage_are_keyword_only_and_worker_id_defaults_to_0():
    with pytest.raises(TypeError):
        TSNEStats(InMemoryStatsStorage(), "t")  # was session_id; now refused
    storage = InMemoryStatsStorage()
    _feed(TSNEStats(storage, session_id="t", worker_id=None), 1)
    _feed(TSNEStats(storage, session_id="t", worker_id=np.int64(2)), 1)
    assert sorted(storage.list_workers("t")) == ["0", "2"]  # not "None"


@pytest.mark.parametrize("storage", ["runs.db", None])
def test_a_path_or_none_as_storage_is_refused_at_once(storage):
    with pytest.raises(InputError, match=r"^storage: expected a statistics storage .* got "):
        TSNEStats(storage)
