"""load_vectors takes vectors already in memory, as plot_vocab does, and checks
``binary`` as it checks ``trust_pickle`` (review 8, finding 12)."""

import re

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.vectors import load_selection, load_vectors, word_filter


def test_keyed_vectors_come_back_as_they_are(kv):
    assert load_vectors(kv) is kv
    got, report = load_vectors(kv, return_report=True)
    assert got is kv
    assert (report.n_words, report.vector_size) == (len(kv.index_to_key), 7)


def test_a_model_gives_its_word_vectors():
    from gensim.models import Word2Vec

    sentences = [["cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]] * 5
    model = Word2Vec(sentences, vector_size=5, min_count=1, epochs=1, workers=1, seed=0)
    assert load_vectors(model) is model.wv


@pytest.mark.parametrize(
    "limit, keep",
    [(5, None), (None, word_filter(include="^w")), (4, word_filter(exclude="^w"))],
)
def test_limit_and_keep_choose_the_words_a_file_would_give(kv, tmp_path, limit, keep):
    # the reference: the same vectors read back from a file with the same arguments
    path = tmp_path / "v.txt"
    kv.save_word2vec_format(str(path))
    expected = load_vectors(path, limit=limit, keep=keep)
    got = load_vectors(kv, limit=limit, keep=keep)
    assert got is not kv
    assert got.index_to_key == expected.index_to_key
    np.testing.assert_allclose(got.vectors, expected.vectors, rtol=1e-6)
    np.testing.assert_array_equal(got.expandos["rank"], expected.expandos["rank"])
    assert len(kv.index_to_key) == 49  # the caller's vectors are untouched


def test_ranks_already_known_are_kept(kv):
    first = load_vectors(kv, keep=word_filter(include="^w1"))
    positions = [kv.key_to_index[w] + 1 for w in first.index_to_key]
    np.testing.assert_array_equal(first.expandos["rank"], positions)
    second = load_vectors(first, limit=3)
    assert second.index_to_key == first.index_to_key[:3]
    np.testing.assert_array_equal(second.expandos["rank"], first.expandos["rank"][:3])
    words = load_selection(first, top=2).words
    assert words == first.index_to_key[:2]


@pytest.mark.parametrize("value", [5, None, b"vectors.bin", ["a.bin"]])
def test_other_objects_are_refused_with_what_to_pass(value):
    with pytest.raises(
        InputError,
        match=r"^path: expected a file path \(str or Path\), gensim KeyedVectors or a "
        r"Word2Vec/FastText model, got ",
    ):
        load_vectors(value)


@pytest.mark.parametrize("value", ["yes", 1, 0, np.bool_(True)])
def test_binary_is_true_false_or_none(tmp_path, kv, value):
    path = tmp_path / "v.txt"
    kv.save_word2vec_format(str(path))
    message = "^" + re.escape(f"binary: expected None, True or False, got {value!r}") + "$"
    with pytest.raises(InputError, match=message):
        load_vectors(path, binary=value)
    with pytest.raises(InputError, match=message):
        load_selection(path, top=3, binary=value)
    assert load_vectors(path, binary=False).index_to_key == kv.index_to_key
