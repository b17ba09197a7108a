"""plot_vocab: words in, (layout, table) out, with clusters and neighbour lists."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from embedviz.errors import InputError
from embedviz.plot.vocab import plot_vocab

# few iterations: the properties below hold long before convergence
FAST = dict(max_iter=250, stop_lying_iter=50, switch_momentum_iter=50, perplexity=5.0)


def _fast_tsne(dims=2, **kw):
    from embedviz import TSNE

    return TSNE(n_components=dims, metric="cosine", random_state=0, **{**FAST, **kw})


@pytest.fixture
def blob_words():
    """Three groups of 15 words whose vectors point in three different directions."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(3, 20)) * 5
    matrix = np.vstack([c + rng.normal(size=(15, 20)) for c in centres]).astype(np.float32)
    groups = np.repeat(np.arange(3), 15)
    words = [f"{'abc'[g]}{i}" for i, g in enumerate(groups)]
    words[0], words[20] = 'a,"quoted"', "ünïcode"
    return words, matrix, groups


def _cosine_top(matrix, k):
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def test_words_and_matrix(blob_words):
    from bokeh.models import LayoutDOM

    words, matrix, groups = blob_words
    layout, table = plot_vocab((words, matrix), tsne=_fast_tsne(), colour=3, n_neighbors=5)
    assert isinstance(layout, LayoutDOM)
    assert table["word"] == words
    assert set(table) == {"word", "x", "y", "rank", "cluster", "neighbors"}
    np.testing.assert_array_equal(table["rank"], np.arange(1, len(words) + 1))
    # k-means finds the three directions
    assert adjusted_rand_score(groups, table["cluster"]) == 1.0
    # the map keeps the groups apart: each word's nearest point on the map is in its group
    xy = np.column_stack([table["x"], table["y"]])
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (groups[d.argmin(axis=1)] == groups).mean() > 0.95
    # neighbour lists: exact cosine top 5, most similar first, never the word itself
    order, sims = _cosine_top(matrix.astype(np.float64), 5)
    for i, neighbours in enumerate(table["neighbors"]):
        assert [w for w, _ in neighbours] == [words[j] for j in order[i]]
        np.testing.assert_allclose([s for _, s in neighbours], sims[i], atol=1e-4)


def test_keyed_vectors_top_and_3d(blob_words):
    from gensim.models import KeyedVectors

    words, matrix, _ = blob_words
    kv = KeyedVectors(matrix.shape[1], count=0)
    kv.add_vectors(words, matrix)
    _, table = plot_vocab(kv, tsne=_fast_tsne(dims=3), top=30, colour="none")
    assert table["word"] == words[:30]
    assert table["z"].shape == (30,) and np.isfinite(table["z"]).all()
    assert (table["cluster"] == 0).all()


def test_path_and_output(tmp_path, blob_words):
    from gensim.models import KeyedVectors

    words, matrix, groups = blob_words
    kv = KeyedVectors(matrix.shape[1], count=0)
    kv.add_vectors(words, matrix)
    src = tmp_path / "blobs.bin"
    kv.save_word2vec_format(str(src), binary=True)
    labels = {w: f"group {'abc'[g]}" for w, g in zip(words, groups, strict=True) if w != "b16"}
    out = tmp_path / "map.html"
    _, table = plot_vocab(
        src,
        tsne=_fast_tsne(perplexity=3.0),
        words=["b16", "a1", "nope", "c40"] + words[5:14],
        colour=labels,
        output=out,
    )
    assert table["word"] == ["b16", "a1", "c40"] + words[5:14]
    assert list(table["cluster"][:3]) == ["(no label)", "group a", "group c"]
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "blobs.bin" in html


class _PCAEmbedding:
    """Any estimator with fit_transform and no neighbors_ (like scikit-learn's TSNE)."""

    n_components = 2

    def fit_transform(self, X):
        X = X - X.mean(axis=0)
        return np.linalg.svd(X, full_matrices=False)[0][:, :2]


def test_estimator_without_neighbors(blob_words):
    words, matrix, _ = blob_words
    _, table = plot_vocab((words, matrix), tsne=_PCAEmbedding(), n_neighbors=3)
    order, sims = _cosine_top(matrix.astype(np.float64), 3)
    for i in (0, 7, 44):
        assert [w for w, _ in table["neighbors"][i]] == [words[j] for j in order[i]]
        np.testing.assert_allclose([s for _, s in table["neighbors"][i]], sims[i], atol=1e-4)


def test_bad_arguments(blob_words):
    words, matrix, _ = blob_words
    with pytest.raises(
        InputError, match=r"dims: expected the n_components of the t-SNE given \(3\), got 2"
    ):
        plot_vocab((words, matrix), tsne=_fast_tsne(dims=3), dims=2)
    with pytest.raises(InputError, match="dims: expected one of 2, 3, got 4"):
        plot_vocab((words, matrix), dims=4)
    with pytest.raises(
        InputError, match=r"\(words, matrix\): expected .* one row per word \(45\), got shape"
    ):
        plot_vocab((words, matrix[:-1]))
    with pytest.raises(InputError, match="one label per word"):
        plot_vocab((words, matrix), tsne=_fast_tsne(), colour=[1, 2])
    with pytest.raises(InputError, match="at least 4 words to map"):
        plot_vocab((words, matrix), words=["a1", "zzz"])
    with pytest.raises(InputError, match="the word list repeats 1 word;"):
        plot_vocab((["a", "b", "a"], np.eye(3)))
    with pytest.raises(
        InputError,
        match="output: expected a file in an existing directory, got .*nope.*; create it",
    ):
        plot_vocab((words, matrix), output="/nope/x.html")
    with pytest.raises(InputError, match="vectors: expected a file path, .* got int"):
        plot_vocab(42)


def test_gensim_word2vec_model():
    from gensim.models import Word2Vec

    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(40)]
    sentences = [list(rng.choice(vocab, size=8)) for _ in range(300)]
    model = Word2Vec(sentences, vector_size=10, min_count=1, epochs=1, workers=1, seed=1)
    _, table = plot_vocab(model, tsne=_fast_tsne(), top=25, colour=4)
    assert table["word"] == model.wv.index_to_key[:25]  # most frequent first
    assert set(table["cluster"]) <= set(range(4)) and len(set(table["cluster"])) == 4


def test_default_tsne_shrinks_the_perplexity_for_few_words(blob_words):
    words, matrix, _ = blob_words
    _, table = plot_vocab((words[:20], matrix[:20]), n_neighbors=3)  # perplexity 30 > 19/3
    assert table["word"] == words[:20] and np.isfinite(table["x"]).all()


def test_neighbor_lists_skip_self_and_short_rows():
    from embedviz.plot.vocab import neighbor_lists

    class Fitted:
        # row 0 lists itself; every row has only 3 candidates
        neighbors_ = (np.array([[0, 1, 2], [0, 2, 3], [3, 1, 0], [2, 1, 0]]), None)

    matrix = np.array([[1, 0], [1, 1], [0, 1], [-1, 1]], dtype=np.float64)
    got = neighbor_lists(Fitted(), matrix, ["a", "b", "c", "d"], n_neighbors=5)
    assert [w for w, _ in got[0]] == ["b", "c"]  # "a" itself left out
    assert [w for w, _ in got[1]] == ["a", "c", "d"] or [w for w, _ in got[1]] == ["c", "a", "d"]
    np.testing.assert_allclose([s for _, s in got[2]], [np.sqrt(0.5), np.sqrt(0.5), 0.0], atol=1e-4)
