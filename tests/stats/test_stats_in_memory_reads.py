"""The two readable storages agree on a closed storage and on get_updates' arguments
(review 7, should-fix 7): the same InputError, checked by one shared helper."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.records import Update
from embedviz.stats.storage import InMemoryStatsStorage

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
