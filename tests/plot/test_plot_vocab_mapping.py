"""plot_vocab takes a ``{word: vector}`` mapping, names a foreign estimator it cannot use
by its module, and says once where it wrote the page (review 11)."""

import logging
import re

import numpy as np
import pytest

from embedviz import TSNE
from embedviz.errors import InputError
from embedviz.plot.vocab import plot_vocab

FAST = dict(max_iter=250, stop_lying_iter=50, switch_momentum_iter=50, perplexity=5.0)


def _tsne():
    return TSNE(metric="cosine", random_state=0, **FAST)


@pytest.fixture
def words_matrix():
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 12)) * 5
    matrix = np.vstack([c + rng.normal(size=(15, 12)) for c in centres]).astype(np.float32)
    return [f"w{i}" for i in range(45)], matrix


def test_a_mapping_maps_as_the_pair_of_its_words_and_vectors(words_matrix):
    words, matrix = words_matrix
    order = np.random.default_rng(1).permutation(45)  # the mapping's order is the rank
    mapping = {words[i]: list(map(float, matrix[i])) for i in order}
    _, from_dict = plot_vocab(mapping, tsne=_tsne(), colour=3)
    pair = ([words[i] for i in order], matrix[order])
    _, from_pair = plot_vocab(pair, tsne=_tsne(), colour=3)
    assert from_dict["word"] == pair[0]
    np.testing.assert_array_equal(from_dict["rank"], np.arange(1, 46))
    np.testing.assert_array_equal(from_dict["x"], from_pair["x"])
    np.testing.assert_array_equal(from_dict["cluster"], from_pair["cluster"])
    assert from_dict["neighbors"] == from_pair["neighbors"]
    _, top = plot_vocab(mapping, tsne=_tsne(), top=20, colour="none")
    assert top["word"] == pair[0][:20]


def _bad(words_matrix, case):
    words, matrix = words_matrix
    mapping = {w: matrix[i] for i, w in enumerate(words)}
    if case == "empty":
        return {}
    if case == "ragged":
        mapping["w7"] = matrix[7][:5]
    elif case == "text":
        mapping["w7"] = "0.1 0.2"
    elif case == "nested":
        mapping["w7"] = matrix[:2]
    elif case == "nan":
        mapping["w9"] = np.full(12, np.nan)
    elif case == "scalar first":
        mapping = {"a": 0.5, **mapping}
    elif case == "bytes key":
        mapping[b"cat"] = matrix[0]
    return mapping


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "expected at least one word, got an empty mapping"),
        ("ragged", "expected vectors of one length, got shape (12,) for 'w0' and (5,) for 'w7' "
                   "(position 8); give every word a 1-D vector of the same length"),
        ("text", "expected a vector of numbers for each word, got str '0.1 0.2' for 'w7' "
                 "(position 8)"),
        ("nested", "expected a 1-D vector of numbers for each word, got shape (2, 12) for "
                   "'w7' (position 8)"),
        ("scalar first", "got shape () for 'a' (position 1)"),
        ("bytes key", "expected words (str) as keys, got bytes b'cat' (position 46); convert "
                      "the keys to str"),
        ("nan", "1 vector(s) hold NaN or infinity, first the word 'w9' (position 10)"),
    ],
)  # fmt: skip
def test_bad_mappings_get_one_clear_message(words_matrix, case, message):
    with pytest.raises(InputError, match=re.escape(message)) as error:
        plot_vocab(_bad(words_matrix, case), tsne=_tsne())
    assert str(error.value).startswith("vectors (a mapping word -> vector): ")


def test_an_estimator_without_fit_transform_is_named_by_its_module(words_matrix):
    openTSNE = pytest.importorskip("openTSNE")
    with pytest.raises(InputError) as error:
        plot_vocab(words_matrix, tsne=openTSNE.TSNE())
    message = str(error.value)
    assert "got openTSNE.tsne.TSNE, which has none" in message
    assert "embedviz.TSNE" in message and "sklearn.manifold.TSNE" in message


def test_one_log_line_per_page_and_a_warning_for_a_name_that_is_not_html(
    tmp_path, words_matrix, caplog
):
    with caplog.at_level(logging.INFO, logger="embedviz"):
        plot_vocab(words_matrix, tsne=_tsne(), output=tmp_path / "map.html")
    wrote = [r.getMessage() for r in caplog.records if "wrote" in r.getMessage()]
    assert wrote == [f"wrote the HTML page to {tmp_path / 'map.html'}"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="embedviz"):
        plot_vocab(words_matrix, tsne=_tsne(), output=tmp_path / "map.png")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "does not end in .html or .htm" in warnings[0]
    assert (tmp_path / "map.png").read_text(encoding="utf-8").lstrip().startswith("<!DOCTYPE")
