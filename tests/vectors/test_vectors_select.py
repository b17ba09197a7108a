"""select_words: top N, explicit lists, regex filters, stop words, punctuation."""

import numpy as np
import pytest
from gensim.models import KeyedVectors
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from embedviz.errors import InputError
from embedviz.vectors import select_words

VOCAB = ["the", ",", "cat", "The", "of", "dog", "...", "2024", "x-ray", "über", "and", "zebra"]


@pytest.fixture
def vocab_kv():
    rng = np.random.default_rng(3)
    kv = KeyedVectors(4, count=0)
    kv.add_vectors(VOCAB, rng.standard_normal((len(VOCAB), 4)).astype(np.float32))
    return kv


def _check_rows(kv, sel):
    for word, row, rank in zip(sel.words, sel.vectors, sel.rank, strict=True):
        np.testing.assert_array_equal(row, kv[word])
        assert VOCAB[rank - 1] == word


def test_top_n_is_file_order(vocab_kv):
    sel = select_words(vocab_kv, top=5)
    assert sel.words == VOCAB[:5]
    np.testing.assert_array_equal(sel.rank, np.arange(1, 6))
    assert sel.vectors.shape == (5, 4) and sel.vectors.dtype == np.float32
    _check_rows(vocab_kv, sel)
    assert select_words(vocab_kv).words == VOCAB


def test_explicit_words_unknown_reported_duplicates_removed(vocab_kv):
    sel = select_words(vocab_kv, words=["zebra", "cat", "unicorn", "cat", "über", "Zebra"])
    assert sel.words == ["zebra", "cat", "über"]
    assert sel.unknown == ["unicorn", "Zebra"]
    np.testing.assert_array_equal(sel.rank, [12, 3, 10])
    _check_rows(vocab_kv, sel)


def test_include_exclude(vocab_kv):
    assert select_words(vocab_kv, include=r"^[a-z]+$").words == [
        w for w in VOCAB if w.isascii() and w.isalpha() and w.islower()
    ]
    assert select_words(vocab_kv, exclude=r"\d|-").words == [
        w for w in VOCAB if w not in ("2024", "x-ray")
    ]
    sel = select_words(vocab_kv, top=2, include="a", exclude="^z")
    assert sel.words == ["cat", "x-ray"]


def test_stopwords_and_punctuation(vocab_kv):
    sel = select_words(vocab_kv, drop_stopwords=True, drop_punctuation=True)
    expected = [
        w for w in VOCAB if w.lower() not in ENGLISH_STOP_WORDS and any(c.isalnum() for c in w)
    ]
    assert sel.words == expected
    assert "The" not in sel.words and "..." not in sel.words and "2024" in sel.words
    _check_rows(vocab_kv, sel)
    # top counts after the filters
    assert (
        select_words(vocab_kv, top=2, drop_stopwords=True, drop_punctuation=True).words
        == (expected[:2])
    )


def test_bad_arguments(vocab_kv):
    with pytest.raises(InputError, match=r"include: expected a valid regular expression, got '\('"):
        select_words(vocab_kv, include="(")
    with pytest.raises(InputError, match="top: expected an integer >= 1, got 0"):
        select_words(vocab_kv, top=0)
    assert len(select_words(vocab_kv, top=np.int64(2)).words) == 2  # numpy integers too
    with pytest.raises(
        InputError, match=r"words: expected a list of words, got the string 'cat'; pass \['cat'\]"
    ):
        select_words(vocab_kv, words="cat")


def test_nothing_left_is_empty_selection(vocab_kv):
    sel = select_words(vocab_kv, include="^nomatch$")
    assert sel.words == [] and sel.vectors.shape == (0, 4)


def test_load_selection_filters_while_reading(tmp_path, vocab_kv):
    from embedviz.vectors import load_selection

    path = tmp_path / "v.bin"
    vocab_kv.save_word2vec_format(str(path), binary=True)
    sel = load_selection(path, top=3, drop_stopwords=True, drop_punctuation=True)
    assert sel.words == ["cat", "dog", "2024"]
    np.testing.assert_array_equal(sel.rank, [3, 6, 8])  # positions in the file
    _check_rows(vocab_kv, sel)
    sel = load_selection(path, words=["zebra", "unicorn", "of"], drop_stopwords=True)
    assert sel.words == ["zebra"] and sel.unknown == ["unicorn"]  # "of" is known, filtered
    np.testing.assert_array_equal(sel.rank, [12])


def test_load_selection_does_not_import_gensim(tmp_path, vocab_kv):
    import subprocess
    import sys

    path = tmp_path / "v.bin"
    vocab_kv.save_word2vec_format(str(path), binary=True)
    code = (
        "import sys; from embedviz.vectors import load_selection;"
        f"s = load_selection({str(path)!r}, top=3); print(s.words, 'gensim' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['the', ',', 'cat'] False"
