"""Word2VecStats's arguments (review 6, findings 11 and 15)."""

import numpy as np
import pytest
from gensim.models import Word2Vec

from embedviz.errors import InputError
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.stats.word2vec import Word2VecStats

SENTENCES = [["king", "queen", "man", "woman"], ["a", "b", "king", "man"]] * 20


def test_snapshot_every_takes_numpy_integers():
    storage = InMemoryStatsStorage()
    stats = Word2VecStats(storage, session_id="w", words=["king"], snapshot_every=np.int64(2))
    Word2Vec(SENTENCES, vector_size=4, min_count=1, epochs=5, callbacks=[stats], workers=1)
    assert type(stats.snapshot_every) is int
    # every second epoch, and the last one
    assert [s.iteration for s in storage.get_snapshots("w")] == [2, 4, 5]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "snapshot_every: expected an integer >= 1, got 0"),
        (1.5, "snapshot_every: expected an integer >= 1, got 1.5"),
        (True, "snapshot_every: expected an integer >= 1, got True"),
        (None, "snapshot_every: expected an integer >= 1, got None"),
    ],
)
def test_bad_snapshot_every_is_one_message(value, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        Word2VecStats(InMemoryStatsStorage(), snapshot_every=value)


def test_parameters_after_storage_are_keyword_only_and_worker_id_defaults_to_0():
    with pytest.raises(TypeError):
        Word2VecStats(InMemoryStatsStorage(), "w2v")  # was session_id; now refused
    storage = InMemoryStatsStorage()
    stats = Word2VecStats(storage, session_id="w", worker_id=None)
    Word2Vec(SENTENCES, vector_size=4, min_count=1, epochs=2, callbacks=[stats], workers=1)
    assert storage.list_workers("w") == ["0"]  # not "None"
    other = InMemoryStatsStorage()
    stats = Word2VecStats(other, session_id="w", worker_id=3)
    Word2Vec(SENTENCES, vector_size=4, min_count=1, epochs=1, callbacks=[stats], workers=1)
    assert other.list_workers("w") == ["3"]


@pytest.mark.parametrize("storage", ["runs.db", None])
def test_a_path_or_none_as_storage_is_refused_at_once(storage):
    # it failed inside gensim's training with "'str' object has no attribute 'put'"
    with pytest.raises(InputError, match=r"^storage: expected a statistics storage .* got "):
        Word2VecStats(storage)
