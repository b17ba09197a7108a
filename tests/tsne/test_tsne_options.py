"""TSNE options: AdaGrad's own learning rate, seeds, cosine reduction, size guard, callbacks."""

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from tsne_quick import quick

from embedviz import TSNE
from embedviz.errors import InputError
from embedviz.tsne.estimator import ADAGRAD_AUTO_LEARNING_RATE


def test_adagrad_at_its_default_learning_rate(digits):
    # AdaGrad moves each coordinate by ~learning_rate on the first step: the gains'
    # "auto" (N / 12 = 150 here) threw the layout apart (trustworthiness 0.56)
    tsne = TSNE(use_adagrad=True, random_state=0, max_iter=500).fit(digits)
    assert tsne.learning_rate_ == ADAGRAD_AUTO_LEARNING_RATE < len(digits) / 12
    assert trustworthiness(digits, tsne.embedding_, n_neighbors=10) >= 0.9
    assert TSNE(use_adagrad=True, learning_rate=7.0).set_params(max_iter=1).fit(
        digits[:100]
    ).learning_rate_ == pytest.approx(7.0)


def test_generator_seed_is_reproducible(small):
    one = quick(random_state=np.random.default_rng(0)).fit_transform(small)
    two = quick(random_state=np.random.default_rng(0)).fit_transform(small)
    np.testing.assert_array_equal(one, two)
    other = quick(random_state=np.random.default_rng(1), init="random").fit_transform(small)
    assert not np.allclose(one, other)


def _overlap(a, b):
    return np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)])


def _cosine_knn(X, k):
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def test_cosine_pca_components_keep_the_cosine_neighbours():
    # word-vector-like data: a common offset (which centring would remove) and one
    # direction of almost no variance, so 19 of 20 components lose almost nothing
    rng = np.random.default_rng(0)
    X = 3.0 + rng.normal(size=(400, 20))
    X[:, -1] = 3.0 + 1e-4 * rng.normal(size=400)
    X = X @ np.linalg.qr(rng.normal(size=(20, 20)))[0]  # hide it in a rotation
    tsne = quick(metric="cosine", pca_components=19, max_iter=1).fit(X)
    overlap = _overlap(tsne.neighbors_[0][:, :10], _cosine_knn(X, 10))
    assert overlap >= 0.95  # centred PCA: 0.41
    # euclidean keeps scikit-learn's (centred) PCA: same neighbours as PCA's projection
    from sklearn.decomposition import PCA

    tsne = quick(pca_components=5, normalize=False, max_iter=1).fit(X)
    Xp = PCA(5, random_state=0).fit_transform(X)
    d2 = ((Xp[:, None] - Xp[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert _overlap(tsne.neighbors_[0][:, :10], np.argsort(d2, axis=1)[:, :10]) > 0.99


def test_exact_method_refuses_what_would_not_fit(small, monkeypatch):
    import embedviz.tsne._prepare as prepare

    monkeypatch.setattr(prepare, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(InputError, match=r"method='exact' on 300 points needs .*barnes_hut"):
        quick(method="exact").fit(small)
    quick(max_iter=5).fit(small)  # Barnes-Hut has no such limit


def test_callbacks_get_a_read_only_copy(small):
    frames, refused = [], []

    def keep(iteration, kl, Y):
        frames.append(Y)
        try:
            Y[0, 0] = 1e6
        except ValueError:
            refused.append(iteration)

    with_cb = quick(max_iter=100, callbacks=[keep], callback_every=50).fit(small)
    assert refused == [50, 100]
    assert not np.array_equal(frames[0], frames[1])  # each frame kept as it was
    np.testing.assert_array_equal(frames[1], with_cb.embedding_)
    np.testing.assert_array_equal(with_cb.embedding_, quick(max_iter=100).fit_transform(small))


def test_none_callbacks_negative_n_jobs_and_n_features_in(small):
    tsne = quick(max_iter=20, callbacks=None, n_jobs=-2).fit(small)
    assert tsne.n_features_in_ == small.shape[1]
    one_thread = quick(max_iter=20, n_jobs=1).fit_transform(small)
    np.testing.assert_array_equal(tsne.embedding_, one_thread)
