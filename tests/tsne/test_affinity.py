"""Nearest neighbours and symmetric affinities P (embedviz.tsne.affinity)."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits

from embedviz.errors import InputError
from embedviz.tsne.affinity import (
    check_perplexity,
    compute_affinities,
    joint_probabilities,
    nearest_neighbors,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:500].astype(np.float64)


def _brute_force(X, k, metric="euclidean"):
    """Reference neighbours: full distance matrix, self excluded, ties broken by index."""
    X = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    if metric == "cosine":
        D = 1.0 - (X @ X.T)
    np.fill_diagonal(D, np.inf)
    order = np.argsort(D, axis=1, kind="stable")
    return order, np.take_along_axis(D, order, axis=1)


def _assert_same_neighbours(idx, dist, ref_idx, ref_dist, atol=1e-12):
    k = idx.shape[1]
    np.testing.assert_allclose(dist, ref_dist[:, :k], rtol=1e-10, atol=atol)
    # Where the k-th and (k+1)-th distances tie, either neighbour is right.
    clear = ref_dist[:, k] - ref_dist[:, k - 1] > 1e-9
    assert clear.mean() > 0.5
    for i in np.flatnonzero(clear):
        assert set(idx[i]) == set(ref_idx[i, :k])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_neighbours_match_numpy_brute_force(digits, metric):
    X = digits[:300]
    idx, dist = nearest_neighbors(X, 20, metric=metric, method="exact", n_jobs=1)
    ref_idx, ref_dist = _brute_force(X, 20, metric)
    assert idx.dtype == np.int64 and dist.dtype == np.float64
    assert idx.shape == dist.shape == (300, 20)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert not (idx == np.arange(300)[:, None]).any()
    _assert_same_neighbours(idx, dist, ref_idx, ref_dist, atol=1e-9 if metric == "cosine" else 0)


def test_duplicates_are_neighbours_at_zero_and_never_self():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 5))
    # row 0 appears 12 times (more than k + 1), rows 1 and 2 twice each
    X = np.vstack([base, np.repeat(base[:1], 11, axis=0), base[1:3]])
    n = X.shape[0]
    idx, dist = nearest_neighbors(X, 5, method="exact")
    assert not (idx == np.arange(n)[:, None]).any()
    copies_of_0 = [0, *range(40, 51)]
    for i in copies_of_0:
        assert set(idx[i]) <= set(copies_of_0) - {i}
        np.testing.assert_array_equal(dist[i], 0.0)
    assert idx[1, 0] == 51 and dist[1, 0] == 0.0
    assert idx[52, 0] == 2 and dist[52, 0] == 0.0
    P, _, _ = compute_affinities(X, perplexity=1.5)
    assert np.isfinite(P.data).all() and abs(P.sum() - 1.0) < 1e-12


def test_all_points_identical_just_works():
    X = np.ones((20, 3))
    P, idx, dist = compute_affinities(X, perplexity=5.0)
    np.testing.assert_array_equal(dist, 0.0)
    assert not (idx == np.arange(20)[:, None]).any()
    assert abs(P.sum() - 1.0) < 1e-12 and (P.data > 0).all()


def test_near_duplicates(digits):
    X = np.vstack([digits[:100], digits[:100] + 1e-9])
    idx, dist = nearest_neighbors(X, 3, method="exact")
    np.testing.assert_array_equal(idx[:100, 0], np.arange(100, 200))
    assert (dist[:100, 0] > 0).all() and (dist[:100, 0] < 1e-7).all()
    P, _, _ = compute_affinities(X, perplexity=10.0)
    assert np.isfinite(P.data).all() and abs(P.sum() - 1.0) < 1e-12


def test_cosine_equals_euclidean_on_normalised_data(digits):
    X = digits[:300] + 0.5  # no zero rows
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    idx_c, dist_c = nearest_neighbors(X, 15, metric="cosine", method="exact")
    idx_e, dist_e = nearest_neighbors(Xn, 15, metric="euclidean", method="exact")
    for a, b in zip(idx_c, idx_e, strict=True):
        assert set(a) == set(b)
    np.testing.assert_allclose(dist_c, 0.5 * dist_e**2, rtol=1e-9, atol=1e-15)


# The seeded approximate search on 1 thread, then on 2, in one process of its own with
# NUMBA_NUM_THREADS=2: the comparison means something on a runner with one CPU too
# (where numba would otherwise have 1 thread), and pynndescent compiles once (it
# caches little: ~25 s in every new process).
_APPROX_ON_ONE_AND_TWO_THREADS = """
import sys
import numba
import numpy as np
from sklearn.datasets import load_digits
from embedviz.tsne.affinity import nearest_neighbors

assert numba.get_num_threads() == 2
X = load_digits().data.astype(np.float64)
found = {}
for threads in (1, 2):
    numba.set_num_threads(threads)
    idx, dist = nearest_neighbors(X, 15, method="approx", random_state=0, n_jobs=threads)
    found[f"idx{threads}"], found[f"dist{threads}"] = idx, dist
np.savez(sys.argv[1], **found)
"""


@pytest.mark.slow  # pynndescent compiles for ~25 s in a new process
def test_approximate_recall_and_determinism(tmp_path):
    saved = tmp_path / "approx.npz"
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", _APPROX_ON_ONE_AND_TWO_THREADS, str(saved)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = np.load(saved)
    idx, dist = found["idx1"], found["dist1"]
    X = load_digits().data.astype(np.float64)
    ref, _ = nearest_neighbors(X, 15, method="exact")
    recall = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(idx, ref, strict=True)])
    assert recall >= 0.9
    assert not (idx == np.arange(len(X))[:, None]).any()
    assert (np.diff(dist, axis=1) >= 0).all()
    # a seeded search gives the same result whatever the thread count
    np.testing.assert_array_equal(idx, found["idx2"])
    np.testing.assert_array_equal(dist, found["dist2"])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_joint_probabilities_properties(digits, metric):
    X = digits + 0.1
    P, idx, dist = compute_affinities(X, perplexity=20.0, metric=metric)
    n = X.shape[0]
    assert idx.shape == (n, 60)
    assert isinstance(P, sp.csr_matrix) and P.dtype == np.float64 and P.shape == (n, n)
    assert P.has_canonical_format and P.has_sorted_indices
    assert (P.data > 0).all()
    assert abs(P.sum() - 1.0) < 1e-12
    assert abs(P - P.T).max() == 0.0
    assert P.diagonal().max() == 0.0


def test_joint_probabilities_match_dense_reference(digits):
    """P from an independent dense construction with the same conditional rows."""
    X = digits[:200]
    P, idx, dist = compute_affinities(X, perplexity=10.0)
    n = len(X)
    # Recover each row's conditional distribution from the kernel via the Gaussian form:
    # p_{j|i} ∝ exp(-beta_i d_ij^2); entropy = log(10) fixes beta_i. Solve it with scipy.
    from scipy.optimize import brentq

    cond = np.zeros((n, n))
    for i in range(n):
        s = dist[i] ** 2
        s = s - s.min()

        def excess(log_beta, s=s):
            w = np.exp(-np.exp(log_beta) * s)
            q = w / w.sum()
            q = q[q > 0]
            return -np.sum(q * np.log(q)) - np.log(10.0)

        beta = np.exp(brentq(excess, -60.0, 60.0, xtol=1e-13))
        w = np.exp(-beta * s)
        cond[i, idx[i]] = w / w.sum()
    ref = (cond + cond.T) / (2 * n)
    np.testing.assert_allclose(P.toarray(), ref, rtol=1e-3, atol=1e-9)


def test_perplexity_of_every_row_reaches_target(digits):
    from embedviz.kernels.perplexity import conditional_probabilities

    _, idx, dist = compute_affinities(digits, perplexity=30.0)
    out = np.empty_like(dist)
    assert conditional_probabilities(dist**2, 30.0, 1e-5, 200, out) == 0
    q = np.where(out > 0, out, 1.0)
    entropy = -(out * np.log(q)).sum(axis=1)
    assert np.abs(entropy - np.log(30.0)).max() <= 1e-5


# Run in a process of its own with NUMBA_NUM_THREADS=2, so that the comparison means
# something on a runner with one CPU too (where numba would otherwise have 1 thread).
_ONE_AND_TWO_THREADS = """
import numba
import numpy as np
from sklearn.datasets import load_digits
from embedviz.tsne._threads import numba_threads
from embedviz.tsne.affinity import compute_affinities

X = load_digits().data[:500].astype(np.float64)
got = []
for n in (1, 2):
    with numba_threads(n):  # the perplexity kernel runs on numba's current threads
        assert numba.get_num_threads() == n
        got.append(compute_affinities(X, 30.0, n_jobs=n))
(P1, i1, d1), (P2, i2, d2) = got
same = [np.array_equal(a, b) for a, b in [(i1, i2), (d1, d2), (P1.indptr, P2.indptr),
                                          (P1.indices, P2.indices), (P1.data, P2.data)]]
print("identical:", all(same), same)
"""


def test_same_affinities_with_one_and_two_threads():
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", _ONE_AND_TWO_THREADS], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("identical: True"), out.stdout


def test_k_is_three_perplexity_or_all_others():
    X = np.random.default_rng(0).normal(size=(31, 4))
    _, idx, _ = compute_affinities(X, perplexity=10.0)
    assert idx.shape == (31, 30)
    _, idx, _ = compute_affinities(X, perplexity=2.5)
    assert idx.shape == (31, 7)


def test_check_perplexity():
    assert check_perplexity(91, 30) == 30.0
    with pytest.raises(
        InputError,
        match=r"perplexity: expected at most 10 for 31 points, got 30 \(t-SNE needs n_samples "
        r">= 3 \* perplexity \+ 1\); pass a smaller perplexity, or TSNE\(reduce_perplexity=True\)",
    ):
        check_perplexity(31, 30.0)


def test_check_perplexity_reduce_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="embedviz.tsne.affinity"):
        assert check_perplexity(31, 30.0, reduce=True) == 10.0
    assert "perplexity=10" in caplog.text


def test_failed_search_is_logged(caplog, digits):
    idx, dist = nearest_neighbors(digits[:50], 30)
    with caplog.at_level(logging.WARNING, logger="embedviz.tsne.affinity"):
        joint_probabilities(idx, dist, 10.0, tolerance=1e-300)
    assert "did not converge" in caplog.text


@pytest.mark.parametrize(
    ("X", "kwargs", "match"),
    [
        (np.zeros(10), {}, r"X: expected a 2-D array .* got a 1-D"),
        (np.zeros((1, 3)), {}, r"X: expected at least 2 rows .* got 1"),
        (np.array([["a", "b"], ["c", "d"]]), {}, r"X: expected integer or floating-point .* <U1"),
        (np.ones((5, 2), dtype=bool), {}, r"X: expected integer or floating-point .* dtype bool"),
        (sp.csr_matrix(np.eye(5)), {}, r"X: expected a dense 2-D array, got a scipy sparse matrix"),
        (
            np.array([[0.0, 1.0], [1.0, 2.0], [np.nan, 0.0], [1.0, np.inf], [2.0, 2.0]]),
            {},
            r"X: expected finite .* NaN or infinite values in 2 of 5 rows, the first at row 2, col",
        ),
        (
            np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 1.0], [0.0, 0.0], [3.0, 1.0]]),
            {"metric": "cosine"},
            r"X: expected no all-zero rows .* got 2 \(rows 1, 3\); drop those rows or use "
            r"metric='euclidean'",
        ),
        (
            np.ones((5, 2)),
            {"metric": "manhattan"},
            r"metric: expected one of 'euclidean', 'cosine', got 'manh",
        ),
        (np.ones((5, 2)), {"method": "annoy"}, r"method: expected one of .* got 'annoy'"),
        (
            np.ones((5, 2)),
            {"n_neighbors": 5},
            r"n_neighbors: expected an integer from 1 to 4, got 5; X has 5",
        ),
        (
            np.ones((5, 2)),
            {"n_neighbors": 0},
            r"n_neighbors: expected an integer from 1 to 4, got 0;",
        ),
    ],
)
def test_nearest_neighbors_errors(X, kwargs, match):
    kwargs = {"n_neighbors": 2, **kwargs}
    with pytest.raises(InputError, match=match):
        nearest_neighbors(X, **kwargs)


@pytest.mark.parametrize(
    ("perplexity", "match"),
    [
        (0.0, r"perplexity: expected a number >= 1, got 0\.0; typical perplexities are 5 to 50"),
        (-5, r"perplexity: expected a number >= 1, got -5;"),
        (float("nan"), r"perplexity: expected a number >= 1, got nan;"),
        ("30", r"perplexity: expected a number >= 1, got '30';"),
        (True, r"perplexity: expected a number >= 1, got True;"),
        (40.0, r"perplexity: expected at most 33 for 100 points, got 40 .*; pass a smaller"),
    ],
)
def test_perplexity_errors(perplexity, match):
    X = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(InputError, match=match):
        compute_affinities(X, perplexity)


def test_joint_probabilities_errors():
    idx = np.array([[1], [0]])
    same_shape = r"indices, distances: expected 2-D arrays of the same shape .* \(2, 1\) and \(2"
    with pytest.raises(InputError, match=same_shape):
        joint_probabilities(idx, np.ones((2, 2)), 1.0)
    with pytest.raises(InputError, match=r"indices: expected values from 0 to 1, got .* 0 to 2"):
        joint_probabilities(np.array([[2], [0]]), np.ones((2, 1)), 1.0)
    with pytest.raises(InputError, match="distances: expected finite numbers >= 0"):
        joint_probabilities(idx, np.array([[-1.0], [1.0]]), 1.0)


@pytest.mark.parametrize("reduce", [False, True])
def test_check_perplexity_needs_four_points(reduce):
    # a perplexity is at least 1, and Barnes-Hut needs n >= 3 * perplexity + 1
    assert check_perplexity(4, 30.0, reduce=True) == 1.0
    four = r"X: expected at least 4 rows \(points\) for t-SNE, got 3"
    with pytest.raises(InputError, match=four):
        check_perplexity(3, 30.0, reduce=reduce)
    with pytest.raises(InputError, match=r"perplexity: expected a number >= 1, got 0.5"):
        check_perplexity(100, 0.5)
