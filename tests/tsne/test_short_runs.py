"""Short runs on data whose neighbour graph is one well-connected blob.

The 300 most frequent GloVe words (the bundled sample) at perplexity 30: every word's
neighbourhood holds 30 % of the data, and early exaggeration (x12) contracts every
direction of the embedding at once. Run for the full 250 exaggerated iterations it
shrinks the layout geometrically to ~1e-20, and 50 unexaggerated iterations cannot
blow it up again (``max_iter=300`` drew all words on one point).
"""

from pathlib import Path

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from embedviz import TSNE

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "glove-5k.bin"


@pytest.fixture(scope="module")
def frequent_words():
    from embedviz.vectors import load_vectors

    return load_vectors(SAMPLE, limit=300).vectors.astype(np.float64)


def _spread(Y):
    return float(np.sqrt(((Y - Y.mean(axis=0)) ** 2).sum(axis=1).mean()))


# scikit-learn 1.9 (TSNE(max_iter=300, init="pca", learning_rate="auto")) reaches 0.865
# (cosine) and 0.833 (euclidean) here; the collapsed layout scored 0.68 and 0.63.
@pytest.mark.parametrize("metric, bar", [("cosine", 0.865), ("euclidean", 0.833)])
@pytest.mark.parametrize("seed", [0, 1])
def test_short_run_on_frequent_words_is_not_a_point(frequent_words, metric, bar, seed):
    X = frequent_words
    tsne = TSNE(max_iter=300, random_state=seed, metric=metric).fit(X)
    Y = tsne.embedding_
    assert Y.std(axis=0).min() > 1.0  # a map, not a point (the bug: ~1e-10)
    assert trustworthiness(X, Y, n_neighbors=10, metric=metric) >= bar
    assert tsne.kl_divergence_ < 1.2  # a collapsed layout has KL(P || uniform) ~ 2.06


def test_exaggeration_ends_when_it_has_collapsed_the_layout(frequent_words, applied_momentum):
    init = np.random.default_rng(0).normal(scale=1e-4, size=(len(frequent_words), 2))
    spread0 = _spread(init)
    seen = {}
    applied = applied_momentum  # the momentum each optimiser step really gets

    def record(iteration, kl, Y, info):
        seen[iteration] = (info["exaggeration"], info["momentum"], _spread(Y))

    record.wants_info = True
    params = dict(max_iter=120, random_state=0, metric="cosine", init=init)
    tsne = TSNE(**params, callbacks=[record], callback_every=1).fit(frequent_words)
    end = tsne.stop_lying_iter_
    assert 1 < end < 120
    # exaggerated while the layout was at least 1/1000 of its first spread, then not
    assert {seen[i][0] for i in range(1, end + 1)} == {12.0}
    assert {seen[i][0] for i in range(end + 1, 121)} == {1.0}
    assert all(seen[i][2] >= 1e-3 * spread0 for i in range(1, end))
    assert seen[end][2] < 1e-3 * spread0
    # the momentum keeps its own schedule (switch_momentum_iter=250: 0.5 throughout)
    assert applied == [0.5] * 120
    assert [seen[i][1] for i in range(1, 121)] == applied
    # and the layout grows again once the exaggeration is off
    assert seen[120][2] > 100 * spread0


def test_exaggeration_runs_in_full_where_the_layout_grows(frequent_words):
    # the same words with a mild exaggeration: directions expand, nothing is cut short
    tsne = TSNE(max_iter=60, stop_lying_iter=40, early_exaggeration=4.0, random_state=0)
    tsne.fit(frequent_words)
    assert tsne.stop_lying_iter_ == 40
