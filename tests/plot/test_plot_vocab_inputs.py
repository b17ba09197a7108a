"""plot_vocab's answers to awkward inputs: non-finite vectors, zero vectors, a Selection
with top, negative n_neighbors, user labels (issue 3)."""

import logging
import re

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.plot.vocab import plot_vocab
from embedviz.vectors import Selection

FAST = dict(max_iter=250, stop_lying_iter=50, switch_momentum_iter=50, perplexity=5.0)


def _tsne(metric="cosine"):
    from embedviz import TSNE

    return TSNE(metric=metric, random_state=0, **FAST)


@pytest.fixture
def words_matrix():
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 12)) * 5
    matrix = np.vstack([c + rng.normal(size=(15, 12)) for c in centres]).astype(np.float32)
    return [f"w{i}" for i in range(45)], matrix


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vectors_are_named(words_matrix, bad):
    words, matrix = words_matrix
    matrix[7, 3] = bad
    matrix[30, 0] = bad
    with pytest.raises(
        InputError, match=r"2 vector\(s\) hold NaN or infinity, first the word 'w7'"
    ):
        plot_vocab((words, matrix), tsne=_tsne())


def test_top_cuts_a_selection_and_keeps_its_ranks(words_matrix):
    words, matrix = words_matrix
    rank = np.arange(100, 145)
    selection = Selection(words, matrix, rank, [])
    _, table = plot_vocab(selection, tsne=_tsne(), top=20, colour="none")
    assert table["word"] == words[:20]
    np.testing.assert_array_equal(table["rank"], rank[:20])
    _, table = plot_vocab(selection, tsne=_tsne(), words=words[::-1][:18], colour="none")
    assert table["word"] == words[::-1][:18]
    np.testing.assert_array_equal(table["rank"], rank[::-1][:18])


@pytest.mark.parametrize("n_neighbors", [-3, -1, 2.5, True])
def test_n_neighbors_must_be_a_count(words_matrix, n_neighbors):
    expected = f"n_neighbors: expected an integer >= 0, got {n_neighbors!r}"
    with pytest.raises(InputError, match=re.escape(expected)):
        plot_vocab(words_matrix, tsne=_tsne(), n_neighbors=n_neighbors)


class _NoFit:
    n_components = 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dims": 4}, r"dims: expected one of 2, 3, got 4"),
        (
            {"tsne": _NoFit()},
            r"tsne: expected embedviz.TSNE or another estimator with fit_transform \(such as "
            r"sklearn.manifold.TSNE\), got test_plot_vocab_inputs._NoFit, which has none; pass",
        ),
        ({"dims": 3}, r"dims: expected the n_components of the t-SNE given \(2\), got 3; make"),
        ({"colour": -1}, r"colour: expected a number of clusters >= 0 \(0: one colour\), got -1"),
        ({"colour": ["a", "b"]}, r"colour: expected one label per word \(45 words\), got 2 "),
        ({"colour": 2.5}, r"colour: expected None, a number of clusters, .* got 2\.5"),
    ],
)
def test_argument_errors_name_the_argument_first(words_matrix, kwargs, match):
    kwargs = {"tsne": _tsne(), **kwargs}
    with pytest.raises(InputError, match=match):
        plot_vocab(words_matrix, **kwargs)


def test_vectors_and_matrix_errors(words_matrix):
    words, matrix = words_matrix
    with pytest.raises(InputError, match=r"vectors: expected a file path, .* got int"):
        plot_vocab(42, tsne=_tsne())
    with pytest.raises(InputError, match=r"\(words, matrix\): expected a matrix with one row"):
        plot_vocab((words[:10], matrix), tsne=_tsne())
    with pytest.raises(InputError, match=r"\(words, matrix\): expected a matrix of numbers"):
        plot_vocab((words[:2], [["a", "b"], ["c", "d"]]), tsne=_tsne())


def test_numpy_integers_are_counts(words_matrix):
    _, table = plot_vocab(
        words_matrix, tsne=_tsne(), dims=np.int64(2), n_neighbors=np.int64(3), colour=np.int32(2)
    )
    assert all(len(row) == 3 for row in table["neighbors"])
    assert len(set(table["cluster"].tolist())) == 2


def test_zero_neighbours_gives_empty_lists(words_matrix):
    _, table = plot_vocab(words_matrix, tsne=_tsne(), n_neighbors=0, colour="none")
    assert table["neighbors"] == [[] for _ in range(45)]


def test_zero_vectors_left_out_under_cosine_only(words_matrix, caplog):
    words, matrix = words_matrix
    matrix[[2, 40]] = 0.0
    labels = [f"L{i % 4}" for i in range(45)]
    with caplog.at_level(logging.WARNING, logger="embedviz"):
        _, table = plot_vocab((words, matrix), tsne=_tsne(), colour=labels)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'w2', 'w40'" in warnings[0]
    kept = [i for i in range(45) if i not in (2, 40)]
    assert table["word"] == [words[i] for i in kept]
    assert list(table["cluster"]) == [labels[i] for i in kept]  # labels follow their words
    _, table = plot_vocab((words, matrix), tsne=_tsne("euclidean"), colour="none")
    assert table["word"] == words


def test_user_labels_title_the_legend_label_and_sort_naturally(words_matrix):
    words, matrix = words_matrix
    labels = [f"L{(i * 7) % 12}" for i in range(45)]
    layout, _ = plot_vocab(words_matrix, tsne=_tsne(), colour=labels)
    legend = layout.select_one({"name": "embedviz_legend"})
    assert legend.title == "label"
    assert [item.label.value for item in legend.items] == [f"L{j}" for j in range(12)]
    layout, _ = plot_vocab(words_matrix, tsne=_tsne(), colour=3)
    assert layout.select_one({"name": "embedviz_legend"}).title == "cluster"
