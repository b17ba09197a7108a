"""The TSNE estimator end to end: quality, reproducibility, schedule, validation."""

import numba
import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from tsne_quick import quick

from embedviz import TSNE
from embedviz._defaults import TSNE_DEFAULTS
from embedviz.errors import InputError
from embedviz.tsne import affinity


def test_defaults_are_the_shared_ones():
    assert TSNE().get_params() == TSNE_DEFAULTS


@pytest.mark.slow
def test_trustworthiness_on_digits(digits):
    tsne = TSNE(random_state=0)
    Y = tsne.fit_transform(digits)
    assert Y.shape == (len(digits), 2)
    assert trustworthiness(digits, Y, n_neighbors=10) >= 0.9
    assert tsne.n_iter_ == 1000
    assert tsne.kl_divergence_ < 1.5


@pytest.mark.parametrize("n_components", [1, 3])
def test_other_dimensions(small, n_components):
    Y = quick(n_components=n_components).fit_transform(small)
    assert Y.shape == (len(small), n_components)
    assert trustworthiness(small, Y, n_neighbors=10) > (0.8 if n_components == 1 else 0.9)


def test_kl_falls(small):
    kls = []
    tsne = quick(max_iter=500, callbacks=[lambda it, kl, Y: kls.append(kl)], callback_every=25)
    tsne.fit(small)
    after = [kl for (it, kl) in tsne.kl_history_ if it > 100]
    assert after[-1] < after[0]
    assert tsne.kl_divergence_ <= after[-1] * 1.01
    assert [kl for _, kl in tsne.kl_history_] == kls
    # more iterations, lower final KL
    assert tsne.kl_divergence_ < quick(max_iter=150).fit(small).kl_divergence_


@pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2,
    reason="needs 2 numba threads: with NUMBA_NUM_THREADS < 2, n_jobs=2 runs on 1 thread",
)
def test_same_seed_same_embedding_whatever_the_threads(small):
    threads = {1: set(), 2: set()}

    def run(n_jobs):
        def count(iteration, kl, Y):
            threads[n_jobs].add(numba.get_num_threads())

        return quick(n_jobs=n_jobs, callbacks=[count]).fit_transform(small)

    one, two = run(1), run(2)
    # n_jobs really sets numba's thread count during the fit (callbacks run inside it),
    # so the comparison below is between a 1-thread and a 2-thread run
    assert threads == {1: {1}, 2: {2}}
    again = quick(n_jobs=2).fit_transform(small)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(two, again)
    other = quick(random_state=1, init="random").fit_transform(small)
    assert not np.allclose(other, two)


def test_barnes_hut_close_to_exact(small):
    X = small[:150]
    exact = quick(method="exact").fit(X)
    bh = quick(theta=0.0).fit(X)
    # theta=0 BH has the same gradient but P over 3*perplexity neighbours only
    assert abs(bh.kl_divergence_ - exact.kl_divergence_) < 0.15
    assert trustworthiness(X, bh.embedding_, n_neighbors=10) > 0.9
    assert trustworthiness(X, exact.embedding_, n_neighbors=10) > 0.9


def test_schedule_exaggeration_and_momentum(small, applied_momentum):
    seen = {}
    applied = applied_momentum  # the momentum each optimiser step really gets

    def record(iteration, kl, Y, info):
        seen[iteration] = info

    record.wants_info = True
    quick(
        max_iter=60,
        stop_lying_iter=20,
        switch_momentum_iter=40,
        early_exaggeration=7.0,
        final_momentum=0.7,
        callbacks=[record],
        callback_every=1,
    ).fit(small)
    assert sorted(seen) == list(range(1, 61))
    assert {seen[i]["exaggeration"] for i in range(1, 21)} == {7.0}
    assert {seen[i]["exaggeration"] for i in range(21, 61)} == {1.0}
    assert {seen[i]["phase"] for i in range(1, 21)} == {"exaggeration"}
    assert applied == [0.5] * 40 + [0.7] * 20
    assert [seen[i]["momentum"] for i in range(1, 61)] == applied
    assert all(seen[i]["grad_norm"] > 0 for i in seen)


def test_final_momentum_changes_the_steps_from_the_switch_on(small):
    """Two runs that differ only in final_momentum: the same layouts up to
    switch_momentum_iter, different ones from the next step on."""

    def frames(final_momentum):
        kept = []
        quick(
            max_iter=30,
            stop_lying_iter=10,
            switch_momentum_iter=20,
            final_momentum=final_momentum,
            n_jobs=1,
            callbacks=[lambda it, kl, Y: kept.append(Y)],
            callback_every=1,
        ).fit(small[:150])
        return kept

    a, b = frames(0.8), frames(0.3)
    for it in range(1, 21):
        np.testing.assert_array_equal(a[it - 1], b[it - 1], err_msg=f"iteration {it}")
    for it in range(21, 31):
        assert not np.allclose(a[it - 1], b[it - 1]), it


def test_callback_can_stop(small):
    calls = []

    def stop_at_100(iteration, kl, Y):
        calls.append(iteration)
        return iteration >= 100

    tsne = quick(callbacks=[stop_at_100], callback_every=20).fit(small)
    assert calls == [20, 40, 60, 80, 100]
    assert tsne.n_iter_ == 100
    assert [it for it, _ in tsne.kl_history_] == calls


def test_learning_rate_auto_is_resolved_not_overwritten(small):
    tsne = quick(max_iter=10).fit(small)
    assert tsne.learning_rate == "auto"
    assert tsne.learning_rate_ == max(len(small) / 12.0, 50.0)
    assert quick(max_iter=10, learning_rate=123.0).fit(small).learning_rate_ == 123.0


def test_adagrad_and_pca_reduction_work(small):
    Y = quick(use_adagrad=True, learning_rate=5.0, pca_components=20).fit_transform(small)
    assert trustworthiness(small, Y, n_neighbors=10) > 0.85


def test_input_is_never_modified_and_init_array_is_used(small):
    X = small.copy()
    init = np.random.default_rng(0).normal(size=(len(X), 2)) * 1e-4
    init_copy = init.copy()
    tsne = quick(init=init, max_iter=1).fit(X)
    np.testing.assert_array_equal(X, small)
    np.testing.assert_array_equal(init, init_copy)
    assert tsne.embedding_ is not init


def test_duplicate_rows_land_together(small):
    unique = small[:100]
    X = np.vstack([unique, unique, unique + 1e-12])
    Y = quick(max_iter=200).fit_transform(X)
    assert np.isfinite(Y).all()
    spread = Y.std()
    for copy in (Y[100:200], Y[200:]):
        # measured: within 0.0096 of each other on a layout of std 7.8
        assert np.linalg.norm(Y[:100] - copy, axis=1).max() < 0.01 * spread
    assert trustworthiness(unique, Y[:100], n_neighbors=10) > 0.9


def test_cosine_metric(small):
    tsne = quick(metric="cosine").fit(small + 1.0)
    indices, distances = tsne.neighbors_
    assert indices.shape == (len(small), 90)
    assert (distances >= -1e-12).all() and (distances <= 2 + 1e-12).all()


def test_too_few_points_for_the_perplexity(small):
    X = small[:50]
    with pytest.raises(InputError, match=r"perplexity.*16"):
        quick(perplexity=30).fit(X)
    tsne = quick(perplexity=30, reduce_perplexity=True, max_iter=50).fit(X)
    assert tsne.perplexity_ <= (len(X) - 1) / 3


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 4}, r"n_components: expected 1, 2 or 3 .*got 4; use method='exact'"),
        ({"n_components": 0}, r"n_components: expected an integer >= 1, got 0"),
        ({"n_components": 2.0}, r"n_components: expected an integer >= 1, got 2\.0"),
        ({"perplexity": -1}, r"perplexity: expected a number >= 1, got -1"),
        ({"perplexity": 0.5}, r"perplexity: expected a number >= 1, got 0\.5"),
        ({"perplexity": 0.2}, r"perplexity: expected a number >= 1, got 0\.2"),
        ({"perplexity": np.nan}, r"perplexity: expected a number >= 1, got nan"),
        ({"theta": -0.5}, r"theta: expected a number >= 0, got -0\.5"),
        ({"max_iter": 0}, r"max_iter: expected an integer >= 1, got 0"),
        ({"max_iter": True}, r"max_iter: expected an integer >= 1, got True"),
        ({"learning_rate": "fast"}, r"learning_rate: expected 'auto' or a number > 0, got 'fast'"),
        ({"learning_rate": 0}, r"learning_rate: expected 'auto' or a number > 0, got 0"),
        ({"momentum": 1.5}, r"^momentum: expected a number from 0 to 1, got 1\.5$"),
        ({"final_momentum": 1.5}, r"^final_momentum: expected a number from 0 to 1, got 1\.5$"),
        ({"final_momentum": -0.1}, r"^final_momentum: expected a number from 0 to 1, got -0\.1$"),
        ({"stop_lying_iter": -1}, r"^stop_lying_iter: expected an integer >= 0, got -1$"),
        ({"stop_lying_iter": 2.5}, r"^stop_lying_iter: expected an integer >= 0, got 2\.5$"),
        ({"switch_momentum_iter": -1}, r"^switch_momentum_iter: expected an integer >= 0, got -1$"),
        ({"callback_every": 0}, r"^callback_every: expected an integer >= 1, got 0$"),
        ({"early_exaggeration": 0}, r"^early_exaggeration: expected a number > 0, got 0$"),
        ({"early_exaggeration": np.inf}, r"^early_exaggeration: expected a number > 0, got inf$"),
        ({"min_gain": -1}, r"^min_gain: expected a number >= 0, got -1$"),
        ({"tolerance": 0}, r"^tolerance: expected a number > 0, got 0$"),
        ({"tolerance": "tight"}, r"^tolerance: expected a number > 0, got 'tight'$"),
        ({"method": "fft"}, r"method: expected one of 'barnes_hut', 'exact', got 'fft'"),
        ({"metric": "manhattan"}, r"metric: expected one of 'euclidean', 'cosine', got 'manh"),
        ({"init": "spectral"}, r"init: expected 'pca', 'random' or an array.*, got 'spectral'"),
        (
            {"init": np.zeros((3, 2))},
            r"init: expected an array of shape .*\(300, 2\), got .* \(3, 2",
        ),
        ({"n_jobs": 0}, r"n_jobs: expected a positive integer or a negative one.*, got 0; pass"),
        ({"n_jobs": 1.5}, r"n_jobs: expected a positive integer or a negative one.*, got 1\.5"),
        ({"init": np.full((300, 2), "a")}, r"init: expected .* array of numbers .*\(300, 2\), got"),
        ({"random_state": "zero"}, r"random_state: expected None, an integer.*, got 'zero'"),
        ({"random_state": -1}, r"random_state: expected None, an integer.*, got -1; pass"),
        ({"callbacks": [42]}, r"callbacks: expected callables, got 42"),
        ({"pca_components": 500}, r"pca_components: expected at most .* 64, got 500"),
    ],
)
def test_bad_parameters(small, params, match, monkeypatch):
    searched = []
    monkeypatch.setattr(affinity, "nearest_neighbors", lambda *a, **k: searched.append(a))
    with pytest.raises(InputError, match=match):
        quick(**params).fit(small)
    # said before any work: the neighbour search takes minutes on large inputs
    assert searched == []


def test_numpy_scalars_work_as_python_numbers(small):
    """np.int64 and np.float32 arguments (numpy code, a config array) are accepted and give
    the embedding of the same values passed as Python numbers."""
    given = dict(
        n_components=np.int64(2),
        perplexity=np.float32(10.0),
        theta=np.float32(0.5),
        max_iter=np.int64(120),
        stop_lying_iter=np.int64(50),
        switch_momentum_iter=np.int64(50),
        callback_every=np.int64(40),
        early_exaggeration=np.float32(12.0),
        learning_rate=np.float32(150.0),
        momentum=np.float32(0.5),
        final_momentum=np.float32(0.8),
        min_gain=np.float32(0.01),
        tolerance=np.float32(1e-5),
        pca_components=np.int64(20),
        n_jobs=np.int64(1),
        random_state=np.int64(0),
    )
    plain = {name: value.item() for name, value in given.items()}
    assert all(type(v) in (int, float) for v in plain.values())
    calls = []
    tsne = quick(**given, callbacks=[lambda it, kl, Y: calls.append(it)]).fit(small)
    assert calls == [40, 80, 120] and tsne.n_iter_ == 120
    assert tsne.perplexity_ == 10.0 and tsne.learning_rate_ == 150.0
    np.testing.assert_array_equal(tsne.embedding_, quick(**plain).fit_transform(small))


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(10), r"X: expected a 2-D array of shape \(n_samples, n_features\), got a 1-D"),
        (np.zeros((1, 3)), r"X: expected at least 2 rows \(points\), got 1"),
        (np.array([["a", "b"], ["c", "d"]]), r"X: expected integer or floating-point numbers"),
    ],
)
def test_bad_data(X, match):
    with pytest.raises(InputError, match=match):
        quick().fit(X)


def test_nan_rows_are_named(small):
    X = small.copy()
    X[7, 3] = np.nan
    X[9, 0] = np.inf
    with pytest.raises(
        InputError, match=r"X: expected finite .* 2 of 300 rows, the first at row 7, column 3"
    ):
        quick().fit(X)


def test_cosine_rejects_zero_rows_before_any_preprocessing(with_zero_rows):
    with pytest.raises(InputError, match=r"X: expected no all-zero rows.*rows 3, 17"):
        quick(metric="cosine").fit(with_zero_rows)


def test_cosine_neighbours_are_those_of_the_raw_vectors(blobs):
    X = blobs[0] + 5.0  # an offset that centring would remove and cosine must keep
    tsne = quick(metric="cosine", max_iter=1).fit(X)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos_dist = 1.0 - unit @ unit.T
    np.fill_diagonal(cos_dist, np.inf)
    expected = np.sort(cos_dist, axis=1)[:, : tsne.neighbors_[1].shape[1]]
    np.testing.assert_allclose(tsne.neighbors_[1], expected, atol=1e-9)
