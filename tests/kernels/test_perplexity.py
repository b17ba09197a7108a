"""Perplexity calibration kernel: each row reaches its target entropy, robustly."""

import os
import subprocess
import sys

import numpy as np
import pytest
from embedviz.kernels.perplexity import conditional_probabilities
from sklearn.datasets import load_digits

TOL = 1e-5


def _calibrate(d, perplexity, tolerance=TOL, max_tries=200):
    d = np.ascontiguousarray(d, dtype=np.float64)
    out = np.full_like(d, np.nan)
    n_failed = conditional_probabilities(d, float(perplexity), tolerance, max_tries, out)
    return out, n_failed


def _entropy(p):
    p = p[p > 0]
    return -np.sum(p * np.log(p))


@pytest.fixture(scope="module")
def digits_sq_distances():
    """Squared distances to the 90 nearest neighbours of 600 digits (numpy brute force)."""
    X = load_digits().data[:600].astype(np.float64)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, axis=1, kind="stable")[:, :90]
    return np.take_along_axis(D, idx, axis=1)


@pytest.mark.parametrize("perplexity", [5.0, 30.0])
def test_reaches_target_entropy_on_digits(digits_sq_distances, perplexity):
    P, n_failed = _calibrate(digits_sq_distances, perplexity)
    assert n_failed == 0
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    entropies = np.array([_entropy(row) for row in P])
    assert np.abs(entropies - np.log(perplexity)).max() <= TOL
    # perplexity 2**H as defined with natural logs: exp(H) == perplexity
    np.testing.assert_allclose(np.exp(entropies), perplexity, rtol=1e-4)


def test_rows_are_gaussian_in_distance(digits_sq_distances):
    """log p_j is affine in d_j with one negative slope (-beta) per row."""
    d = digits_sq_distances[:50]
    P, _ = _calibrate(d, 10.0)
    for row_d, row_p in zip(d, P, strict=True):
        keep = row_p > 1e-250
        slope, intercept = np.polyfit(row_d[keep], np.log(row_p[keep]), 1)
        assert slope < 0
        np.testing.assert_allclose(np.log(row_p[keep]), slope * row_d[keep] + intercept, atol=1e-8)


def test_matches_independent_root_finder(digits_sq_distances):
    from scipy.optimize import brentq

    d = digits_sq_distances[:20]
    P, _ = _calibrate(d, 30.0, tolerance=1e-10)
    for row_d, row_p in zip(d, P, strict=True):
        s = row_d - row_d.min()

        def excess(log_beta, s=s):
            w = np.exp(-np.exp(log_beta) * s)
            q = w / w.sum()
            return _entropy(q) - np.log(30.0)

        beta = np.exp(brentq(excess, -60.0, 60.0, xtol=1e-14))
        ref = np.exp(-beta * s)
        np.testing.assert_allclose(row_p, ref / ref.sum(), rtol=1e-6, atol=1e-14)


def test_scale_invariant_for_tiny_and_huge_distances(digits_sq_distances):
    d = digits_sq_distances[:30]
    P, _ = _calibrate(d, 20.0)
    for scale in (1e-200, 1e-8, 1e8, 1e200):
        P_scaled, n_failed = _calibrate(d * scale, 20.0)
        assert n_failed == 0
        np.testing.assert_allclose(P_scaled, P, rtol=1e-4, atol=1e-12)


def test_equal_and_zero_distances_give_uniform_rows():
    d = np.array([[3.0] * 12, [0.0] * 12, [1e300] * 12])
    P, n_failed = _calibrate(d, 4.0)
    assert n_failed == 0
    np.testing.assert_array_equal(P, 1.0 / 12)


def test_many_duplicates_give_uniform_weight_over_the_ties():
    # 40 neighbours at distance 0 (duplicates) already exceed perplexity 5.
    d = np.concatenate([np.zeros(40), np.linspace(1.0, 5.0, 50)])[None, :]
    P, n_failed = _calibrate(d, 5.0)
    assert n_failed == 0
    np.testing.assert_allclose(P[0, :40], 1.0 / 40)
    np.testing.assert_array_equal(P[0, 40:], 0.0)


def test_few_duplicates_still_reach_target():
    rng = np.random.default_rng(1)
    d = np.sort(np.concatenate([np.zeros((8, 3)), rng.uniform(1, 9, (8, 87))], axis=1), axis=1)
    P, n_failed = _calibrate(d, 30.0)
    assert n_failed == 0
    assert max(abs(_entropy(r) - np.log(30.0)) for r in P) <= TOL
    np.testing.assert_allclose(P[:, 0], P[:, 2])  # the three duplicates weigh the same


def test_target_above_log_k_is_uniform():
    d = np.array([[1.0, 2.0, 3.0]])
    P, n_failed = _calibrate(d, 5.0)  # at most 3 neighbours: perplexity 3 is the most
    assert n_failed == 0
    np.testing.assert_allclose(P, 1.0 / 3)


def test_counts_rows_that_do_not_converge(digits_sq_distances):
    _, n_failed = _calibrate(digits_sq_distances[:25], 30.0, tolerance=1e-12, max_tries=2)
    assert n_failed == 25


# Run in a process of its own with NUMBA_NUM_THREADS=2, so that the comparison means
# something on a runner with one CPU too (where numba would otherwise have 1 thread).
_ONE_AND_TWO_THREADS = """
import numba
import numpy as np
from sklearn.datasets import load_digits
from embedviz.kernels.perplexity import conditional_probabilities

X = load_digits().data[:600].astype(np.float64)
D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
np.fill_diagonal(D, np.inf)
d = np.ascontiguousarray(np.sort(D, axis=1)[:, :90])
P = {}
for n in (1, 2):
    numba.set_num_threads(n)
    assert numba.get_num_threads() == n
    P[n] = np.full_like(d, np.nan)
    assert conditional_probabilities(d, 30.0, 1e-5, 200, P[n]) == 0
assert np.isfinite(P[1]).all()
print("identical:", np.array_equal(P[1], P[2]))
"""


def test_same_result_with_one_and_two_threads():
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", _ONE_AND_TWO_THREADS], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "identical: True"
