"""InMemoryStatsStorage's arguments (the shared checks of embedviz._check: numpy integers
are integers) and what its reads return (the stored objects, as documented)."""

from __future__ import annotations

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.records import Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage

NAMES = ["max_updates", "max_snapshots", "max_bytes", "max_workers"]


@pytest.mark.parametrize("name", NAMES)
def test_numpy_integers_are_accepted_and_kept_as_int(name):
    storage = InMemoryStatsStorage(**{name: np.int64(64)})
    assert getattr(storage, name) == 64 and type(getattr(storage, name)) is int


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [7, True, 64.0, "64", None])
def test_other_values_are_refused_in_one_message(name, value):
    with pytest.raises(InputError, match=rf"^{name}: expected an integer >= 8, got "):
        InMemoryStatsStorage(**{name: value})


def test_reads_return_the_stored_records_themselves(tmp_path):
    u = Update("run", "0", 1, 1.0, score=0.5)
    memory = InMemoryStatsStorage()
    memory.put(u)
    assert memory.get_updates("run")[0] is u  # as documented: no copy
    assert memory.get_latest_update("run", "0") is u
    with SQLiteStatsStorage(tmp_path / "runs.db") as sqlite:
        sqlite.put(u)
        first, again = sqlite.get_updates("run")[0], sqlite.get_updates("run")[0]
        assert first == u and first is not u and again is not first  # new objects
