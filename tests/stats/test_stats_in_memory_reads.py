"""The two readable storages agree on a closed storage and on the reads' arguments
(review 7, should-fix 7; review 13, finding 7: integer worker ids): the same InputError,
checked by one shared helper; and every read is documented (review 13, finding 8)."""

from __future__ import annotations

import inspect
import re
import threading

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.base import StatsReader
from embedviz.stats.records import EvalRecord, Histogram, Snapshot, StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage

# two workers, iterations 0..9 each, put in an order that is not the sorted one
UPDATES = [
    Update("run", worker, it, 1000.0 + it, score=float(it) + (0.5 if worker == "b" else 0.0))
    for it in (5, 0, 9, 2, 7, 1, 8, 3, 6, 4)
    for worker in ("a", "b")
]


@pytest.fixture
def storage(storage):
    """Each readable storage (tests/stats/conftest.py) holding UPDATES."""
    storage.put_many(UPDATES)
    storage.flush()
    return storage


def _expected(worker=None, after=None, last=None):
    """get_updates' selection, from its documented rule: sorted by (iteration, worker
    order), iterations strictly after ``after``, the newest ``last``."""
    order = {"a": 0, "b": 1}
    rows = [u for u in UPDATES if worker in (None, u.worker_id)]
    rows = [u for u in rows if after is None or u.iteration > after]
    rows.sort(key=lambda u: (u.iteration, order[u.worker_id]))
    if last is not None:
        rows = rows[len(rows) - last :] if last else []
    return [(u.worker_id, u.iteration, u.score) for u in rows]


def _got(updates):
    return [(u.worker_id, u.iteration, u.score) for u in updates]


@pytest.mark.parametrize("worker", [None, "b"])
@pytest.mark.parametrize(
    "after, last",
    [(None, None), (4, None), (None, 3), (4, 3), (-1, 0), (9, None), (np.int64(6), np.int32(2))],
)
def test_get_updates_selects_what_its_rule_says(storage, worker, after, last):
    got = storage.get_updates("run", worker, after_iteration=after, last=last)
    assert _got(got) == _expected(worker, after, last)


def test_arguments_beyond_64_bits_select_as_their_meaning_says(storage):
    assert storage.get_updates("run", after_iteration=2**70) == []
    assert _got(storage.get_updates("run", after_iteration=-(2**70))) == _expected()
    assert _got(storage.get_updates("run", last=2**70)) == _expected()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"after_iteration": "a"}, "after_iteration: expected an integer or None, got 'a'"),
        ({"after_iteration": 2.0}, "after_iteration: expected an integer or None, got 2.0"),
        ({"after_iteration": True}, "after_iteration: expected an integer or None, got True"),
        ({"last": -1}, "last: expected an integer >= 0 or None, got -1"),
        ({"last": 1.5}, "last: expected an integer >= 0 or None, got 1.5"),
        ({"last": "3"}, "last: expected an integer >= 0 or None, got '3'"),
        ({"last": np.int64(-2)}, r"last: expected an integer >= 0 or None, got np.int64\(-2\)"),
    ],
)
def test_bad_read_arguments_are_one_input_error_on_both(storage, kwargs, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        storage.get_updates("run", **kwargs)


def test_put_after_close_is_refused_on_both(storage):
    storage.close()
    with pytest.raises(InputError, match=r": the storage is closed; .*(open it|create a new)"):
        storage.put(Update("run", "a", 10, 1010.0, score=1.0))
    with pytest.raises(InputError, match="the storage is closed"):
        storage.put_many([])


def test_the_in_memory_storage_can_be_read_after_close():
    s = InMemoryStatsStorage()
    s.put_many(UPDATES)
    s.close()
    s.close()  # twice is fine
    assert _got(s.get_updates("run")) == _expected()


def test_a_put_racing_close_is_stored_or_refused_never_lost():
    s = InMemoryStatsStorage(max_updates=10**7)  # nothing thinned
    accepted = []
    refused = threading.Event()

    def put_until_refused():
        for it in range(1_000_000):
            try:
                s.put(Update("run", "0", it, 1000.0))
            except InputError:
                refused.set()
                return
            accepted.append(it)

    thread = threading.Thread(target=put_until_refused)
    thread.start()
    while len(accepted) < 100:
        threading.Event().wait(0.001)
    s.close()
    thread.join(10)
    assert refused.is_set() and not thread.is_alive()
    assert s.count_updates("run") == len(accepted)  # every accepted put is kept


# -- worker ids given as integers (review 13, finding 7) --------------------------------

RANKS = [
    record
    for rank in ("0", "1")
    for record in (
        StaticInfo("ranks", rank, 1.0, model_class=f"Net{rank}"),
        *(
            Update(
                "ranks",
                rank,
                it,
                float(it),
                score=it + int(rank) / 10,
                histograms={"params": {"w": Histogram(-1.0, 1.0, [it, int(rank)])}},
                extra={"kl": 1.0} if rank == "1" else {},
            )
            for it in range(5 - 2 * int(rank))  # the ranks differ in every read
        ),
        EvalRecord("ranks", rank, 4, 4.0, {"acc": 0.5 + int(rank) / 10}),
        Snapshot("ranks", rank, 4, 4.0, "emb", ["x"], [[1.0, float(rank)]]),
    )
]

# every read that takes a worker id, with its other arguments
_WORKER_READS = {
    "get_static_info": (),
    "get_updates": (),
    "get_latest_update": (),
    "count_updates": (),
    "list_series": (),
    "get_series": ("score",),
    "get_series_many": (["score", "eval/acc"],),
    "get_evals": (),
    "get_histograms": ("params", "w"),
    "get_histogram_arrays": ([("params", "w")],),
    "get_snapshots": (),
}


def _comparable(value):
    """A read's result as plain Python values (series and histogram arrays as lists)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, tuple):  # Series, HistogramArrays
        return [_comparable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@pytest.mark.parametrize("name", sorted(_WORKER_READS))
def test_an_integer_worker_id_reads_the_worker_of_that_rank(storage, name):
    storage.put_many(RANKS)
    storage.flush()
    read = getattr(storage, name)
    args = _WORKER_READS[name]
    for rank in (1, np.int64(1), 0):
        by_int = _comparable(read("ranks", rank, *args))
        by_str = _comparable(read("ranks", str(int(rank)), *args))
        assert by_int == by_str and by_str not in ([], None, 0)
    assert _comparable(read("ranks", 0, *args)) != _comparable(read("ranks", 1, *args))


@pytest.mark.parametrize("name", sorted(_WORKER_READS))
@pytest.mark.parametrize("bad", [0.0, True, b"0", ["0"]])
def test_a_worker_id_of_another_type_is_one_input_error(storage, name, bad):
    with pytest.raises(
        InputError,
        match=r"^worker_id: expected a string, an integer \(a rank: 0 reads worker '0'\) or "
        rf"None \(every worker\), got {re.escape(repr(bad))}$",
    ):
        getattr(storage, name)("run", bad, *_WORKER_READS[name])


# -- the read methods say what they return (review 13, finding 8) -----------------------

_READS = [name for name in vars(StatsReader) if not name.startswith("_")]


def test_every_read_is_documented_on_the_protocol_and_both_storages():
    assert set(_WORKER_READS) | {"list_sessions", "list_workers"} == set(_READS)
    for name in _READS:
        for cls in (StatsReader, InMemoryStatsStorage, SQLiteStatsStorage):
            doc = inspect.getdoc(getattr(cls, name))
            assert doc and len(doc) > 30, (cls.__name__, name)
            if cls is not StatsReader:
                assert f"StatsReader.{name}" in doc, (cls.__name__, name)
    for name in ("get_updates", "get_series"):
        doc = inspect.getdoc(getattr(StatsReader, name))
        assert "strictly greater" in doc and "None" in doc and "rank" in doc
