"""What TSNE.fit says about input that is no matrix of numbers, or one whose rows are
all the same point (review 8, finding 12). RuntimeWarnings are errors in this suite, so
a numpy or scikit-learn warning leaking out of fit fails these tests."""

import re

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from tsne_quick import quick

from embedviz.errors import InputError

WANT = "X: expected a 2-D array of numbers of shape (n_samples, n_features), one row per point"


@pytest.mark.parametrize(
    "X, got",
    [
        ("abc", "got str 'abc'"),
        (5, "got int 5"),
        (None, "got None"),
        (b"xy", "got bytes b'xy'"),
        (["a", "b", "c"], "got a 1-D array of str of shape (3,)"),
        ([[1.0, 2.0], [3.0]], "got a list that numpy cannot make into one"),
    ],
)
def test_what_is_no_matrix_of_numbers_is_named(X, got):
    with pytest.raises(InputError, match="^" + re.escape(f"{WANT}, {got}")) as info:
        quick().fit(X)
    assert "reshape" not in str(info.value)  # advice for a column of numbers only


def test_a_column_of_numbers_still_gets_the_reshape_advice():
    with pytest.raises(InputError, match=re.escape("X.reshape(-1, 1)")):
        quick().fit(np.arange(10.0))


@pytest.mark.parametrize("method", ["barnes_hut", "exact"])
def test_all_rows_identical_is_refused(method):
    with pytest.raises(
        InputError,
        match="^" + re.escape("X: expected at least 2 different rows, got 200 identical rows"),
    ):
        quick(method=method).fit(np.ones((200, 10)))


def test_all_rows_in_one_direction_is_refused_under_cosine():
    rng = np.random.default_rng(0)
    X = np.outer(rng.uniform(0.5, 3.0, 200), rng.normal(size=10))  # positive multiples
    with pytest.raises(InputError, match="got 200 rows that all point the same way"):
        quick(metric="cosine").fit(X)
    # by length they are different points: a line
    Y = quick().fit_transform(X)
    assert np.isfinite(Y).all()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_duplicates_of_most_rows_still_work(metric):
    rng = np.random.default_rng(1)
    X = np.tile(rng.normal(size=10), (200, 1))
    X[:3] = rng.normal(size=(3, 10))  # 197 copies of one row, 3 other rows
    Y = quick(metric=metric).fit_transform(X)
    assert Y.shape == (200, 2) and np.isfinite(Y).all()
    # the copies form one blob; the other rows lie outside it
    centre = Y[3:].mean(axis=0)
    blob = np.linalg.norm(Y[3:] - centre, axis=1).max()
    assert (np.linalg.norm(Y[:3] - centre, axis=1) > blob).all()


def test_rank_one_input_with_pca_init_gives_a_line_in_order():
    # data on a line: PCA's second component has zero variance, so init="pca" starts on
    # a line and the layout stays one; that is the data's own shape (KL measured 0.150
    # against 0.152 with the second coordinate jittered), and no warning comes out
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0.0, 3.0, 300))
    X = np.outer(t, rng.normal(size=10))
    Y = quick(init="pca").fit_transform(X)
    assert np.isfinite(Y).all()
    assert trustworthiness(X, Y, n_neighbors=10) > 0.99
    along = Y[:, np.argmax(Y.std(axis=0))]
    assert abs(np.corrcoef(np.argsort(np.argsort(along)), np.arange(300))[0, 1]) > 0.99
