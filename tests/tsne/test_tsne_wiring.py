"""TSNE's parameters reach the code that uses them (review 10 findings 2 and 4, and
issue 2's ``normalize``): ``min_gain`` the optimiser, ``tolerance`` the perplexity
search, ``normalize`` the data the neighbours are found in. Each is checked on what
that code did, not on what the estimator reports."""

import numpy as np
import pytest
from tsne_quick import quick

from embedviz.tsne._prepare import preprocess
from embedviz.tsne.affinity import joint_probabilities
from embedviz.tsne.optimizer import GradientDescent


@pytest.fixture
def smallest_gain(monkeypatch):
    """The smallest gain after each optimiser step of the fits (the real class, watched)."""
    seen = []
    step = GradientDescent.step

    def spy(self, Y, grad, momentum):
        moved = step(self, Y, grad, momentum)
        seen.append(float(self.scale.min()))
        return moved

    monkeypatch.setattr(GradientDescent, "step", spy)
    return seen


def test_min_gain_bounds_the_gains_of_the_run(small, smallest_gain):
    quick(max_iter=150, min_gain=0.3, n_jobs=1).fit(small[:150])
    # gains shrink by 0.8 where the descent oscillates: some reach the floor and stay
    # on it (measured: from iteration 8 on, 95 of 150 steps)
    assert min(smallest_gain) == 0.3
    assert smallest_gain.count(0.3) > 10
    smallest_gain.clear()
    quick(max_iter=150, n_jobs=1).fit(small[:150])
    assert min(smallest_gain) < 0.3  # the default floor, 0.01, lets them lower (0.027)


def test_tolerance_reaches_the_perplexity_search(small):
    # euclidean without normalize: neighbors_ holds the distances P was built from
    tsne = quick(tolerance=0.5, normalize=False, max_iter=1).fit(small)
    indices, distances = tsne.neighbors_
    loose = joint_probabilities(indices, distances, tsne.perplexity_, tolerance=0.5)
    tight = joint_probabilities(indices, distances, tsne.perplexity_, tolerance=1e-5)
    for P in (loose, tight):
        np.testing.assert_array_equal(P.indptr, tsne.P_.indptr)
        np.testing.assert_array_equal(P.indices, tsne.P_.indices)
    np.testing.assert_allclose(tsne.P_.data, loose.data, rtol=1e-12, atol=0)
    assert not np.allclose(tsne.P_.data, tight.data, rtol=1e-3, atol=0)


def _data():
    rng = np.random.default_rng(3)
    # columns of very different scales and offsets; the largest |x| after centring is
    # in column 1
    return rng.normal(size=(60, 4)) * [1.0, 40.0, 0.1, 3.0] + [5.0, -2.0, 0.0, 100.0]


def test_normalize_centres_and_scales_by_the_largest_absolute_value():
    X = _data()
    given = X.copy()
    Z = preprocess(X, "euclidean", True, None, np.random.RandomState(0))
    np.testing.assert_array_equal(X, given)  # never in place
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-15)
    assert np.abs(Z).max() == pytest.approx(1.0, rel=1e-15)
    # one shift and one scale for all columns: the shape of the data is kept
    centred = X - X.mean(axis=0)
    np.testing.assert_allclose(Z * np.abs(centred).max(), centred, rtol=1e-12, atol=1e-12)
    # off, or for cosine (centring would change the cosine neighbours): X as given
    for metric, normalize in (("euclidean", False), ("cosine", True)):
        np.testing.assert_array_equal(preprocess(X, metric, normalize, None, None), given)


@pytest.mark.parametrize("normalize", [True, False])
def test_neighbours_are_found_in_the_normalised_data(normalize):
    X = _data()
    tsne = quick(perplexity=5, normalize=normalize, max_iter=1, n_jobs=1).fit(X)
    Z = X - X.mean(axis=0) if normalize else X
    if normalize:
        Z = Z / np.abs(Z).max()
    D = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    k = tsne.neighbors_[1].shape[1]
    np.testing.assert_allclose(tsne.neighbors_[1], np.sort(D, axis=1)[:, :k], rtol=1e-9)
