"""The t-SNE objective: Barnes-Hut and exact numba against the plain numpy reference."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from embedviz.errors import InputError
from embedviz.tsne._threads import numba_threads
from embedviz.tsne.objective import BarnesHutGradient, ExactGradient, exact_kl_gradient


def random_P(rng, n, k=8):
    """Symmetric sparse P summing to 1, as from k nearest neighbours."""
    rows = np.repeat(np.arange(n), k)
    cols = (rows + rng.integers(1, n, size=n * k)) % n  # never the point itself
    P = sp.csr_matrix((rng.random(n * k), (rows, cols)), shape=(n, n))
    P = P + P.T
    return sp.csr_matrix(P / P.sum())


def clustered(rng, n, d):
    centres = rng.uniform(-20, 20, size=(6, d))
    return centres[rng.integers(0, 6, n)] + rng.normal(size=(n, d))


def test_hand_computed_three_points():
    # y1 = (0, 0), y2 = (1, 0), y3 = (0, 2); p12 = 0.3, p13 = 0.2, p23 = 0 (and symmetric).
    # |y1-y2|^2 = 1, |y1-y3|^2 = 4, |y2-y3|^2 = 5  ->  w12 = 1/2, w13 = 1/5, w23 = 1/6
    # Z = 2 (1/2 + 1/5 + 1/6) = 26/15  ->  q12 = 15/52, q13 = 6/52, q23 = 5/52
    # grad_i = 4 sum_j (p_ij - q_ij) w_ij (y_i - y_j):
    # grad_1 = 4 [(3/260)(1/2)(-1, 0) + (11/130)(1/5)(0, -2)] = (-3/130, -44/325)
    # grad_2 = 4 [(3/260)(1/2)(1, 0) + (-5/52)(1/6)(1, -2)]   = (-8/195, 5/39)
    # grad_3 = -(grad_1 + grad_2)                              = (5/78, 7/975)
    # KL = 2 [0.3 log(0.3 / (15/52)) + 0.2 log(0.2 / (6/52))] = 0.6 log 1.04 + 0.4 log(26/15)
    Y = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    P = sp.csr_matrix(np.array([[0, 0.3, 0.2], [0.3, 0, 0], [0.2, 0, 0]]))
    expected = np.array([[-3 / 130, -44 / 325], [-8 / 195, 5 / 39], [5 / 78, 7 / 975]])
    kl_expected = 0.6 * math.log(1.04) + 0.4 * math.log(26 / 15)
    for objective in (
        lambda: exact_kl_gradient(P, Y),
        lambda: ExactGradient(P, 2)(Y, compute_kl=True),
        lambda: BarnesHutGradient(P, 2, theta=0.5)(Y, compute_kl=True),
    ):
        grad, kl = objective()
        np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=1e-15)
        assert kl == pytest.approx(kl_expected, rel=1e-13)


def test_numerical_gradient_of_reference(rng):
    P = random_P(rng, 30)
    Y = rng.normal(size=(30, 2))
    grad, _ = exact_kl_gradient(P, Y)
    h = 1e-6
    numeric = np.empty_like(Y)
    for i in range(30):
        for c in range(2):
            Yp, Ym = Y.copy(), Y.copy()
            Yp[i, c] += h
            Ym[i, c] -= h
            numeric[i, c] = (exact_kl_gradient(P, Yp)[1] - exact_kl_gradient(P, Ym)[1]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_exact_numba_matches_numpy(rng, d):
    P = random_P(rng, 200)
    Y = clustered(rng, 200, d)
    grad, kl = ExactGradient(P, d)(Y, exaggeration=4.0, compute_kl=True)
    grad0, kl0 = exact_kl_gradient(P, Y, exaggeration=4.0)
    np.testing.assert_allclose(grad, grad0, rtol=1e-10, atol=1e-12 * np.abs(grad0).max())
    assert kl == pytest.approx(kl0, rel=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_barnes_hut_theta_zero_equals_exact(rng, d):
    n = 700
    P = random_P(rng, n)
    Y = np.vstack([clustered(rng, n - 20, d), np.zeros((20, d))])  # 20 duplicate rows
    grad, kl = BarnesHutGradient(P, d, theta=0.0)(Y, exaggeration=12.0, compute_kl=True)
    grad0, kl0 = ExactGradient(P, d)(Y, exaggeration=12.0, compute_kl=True)
    np.testing.assert_allclose(grad, grad0, rtol=1e-10, atol=1e-10 * np.abs(grad0).max())
    assert kl == pytest.approx(kl0, rel=1e-10)


@pytest.mark.parametrize("d", [2, 3])
def test_barnes_hut_theta_half_close_to_exact(rng, d):
    n = 3000
    P = random_P(rng, n)
    Y = clustered(rng, n, d) * 3
    grad, kl = BarnesHutGradient(P, d)(Y, compute_kl=True)
    grad0, kl0 = ExactGradient(P, d)(Y, compute_kl=True)
    assert np.linalg.norm(grad - grad0) / np.linalg.norm(grad0) < 0.01
    assert kl == pytest.approx(kl0, rel=1e-3)


def test_gradient_in_row_order_of_Y(rng):
    n = 400
    P = random_P(rng, n)
    Y = clustered(rng, n, 2)
    order = rng.permutation(n)
    grad, _ = BarnesHutGradient(P, 2)(Y)
    grad_perm, _ = BarnesHutGradient(P[order][:, order], 2)(Y[order])
    np.testing.assert_allclose(grad_perm, grad[order], rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("cls", [BarnesHutGradient, ExactGradient])
def test_exaggeration_scales_only_attraction(rng, cls):
    n = 300
    P = random_P(rng, n)
    P_before = P.copy()
    Y = clustered(rng, n, 2)
    objective = cls(P, 2)
    g1, kl1 = (a.copy() if isinstance(a, np.ndarray) else a for a in objective(Y, 1.0, True))
    g5, kl5 = objective(Y, 5.0, True)
    # the attractive part, from the reference: 4 sum_j p_ij w_ij (y_i - y_j)
    diff = Y[:, None, :] - Y[None, :, :]
    W = 1.0 / (1.0 + (diff**2).sum(-1))
    attraction = 4 * np.einsum("ij,ijk->ik", P.toarray() * W, diff)
    np.testing.assert_allclose(g5 - g1, 4.0 * attraction, rtol=1e-9, atol=1e-13)
    assert kl5 == kl1  # KL is always of the un-exaggerated P
    assert (P != P_before).nnz == 0 and np.array_equal(P.data, P_before.data)


def test_kl_not_computed_unless_asked(rng):
    P = random_P(rng, 50)
    _, kl = BarnesHutGradient(P, 2)(rng.normal(size=(50, 2)))
    assert math.isnan(kl)


@pytest.mark.parametrize("cls", [BarnesHutGradient, ExactGradient])
def test_same_gradient_with_one_and_two_threads(rng, cls):
    n = 2000
    P = random_P(rng, n)
    Y = clustered(rng, n, 2)
    with numba_threads(1):
        g1, kl1 = cls(P, 2)(Y, 12.0, True)
    with numba_threads(2):
        g2, kl2 = cls(P, 2)(Y, 12.0, True)
    assert g1 is not g2
    assert np.array_equal(g1, g2) and kl1 == kl2


def test_all_duplicate_points(rng):
    # every pair at distance 0: w = 1, no force at all; Z = N (N - 1)
    n = 20000
    P = random_P(rng, n, k=3)
    Y = np.full((n, 2), 0.25)
    grad, kl = BarnesHutGradient(P, 2)(Y, compute_kl=True)
    assert np.all(grad == 0.0)
    entropy = float(np.sum(P.data * np.log(P.data)))
    assert kl == pytest.approx(entropy + math.log(n * (n - 1)), rel=1e-12)


def test_bad_input():
    P = sp.csr_matrix(np.array([[0, 0.5], [0.5, 0]]))
    with pytest.raises(InputError, match="n_components: expected 1, 2 or 3 for Barnes-Hut, got 4"):
        BarnesHutGradient(P, 4)
    with pytest.raises(InputError, match="theta: expected a number >= 0, got -1"):
        BarnesHutGradient(P, 2, theta=-1)
    with pytest.raises(InputError, match=r"Y: expected shape \(2, 2\), got \(3, 2\)"):
        BarnesHutGradient(P, 2)(np.zeros((3, 2)))
    with pytest.raises(InputError, match=r"P: expected a square matrix .*, got shape \(2, 3\)"):
        ExactGradient(sp.csr_matrix(np.ones((2, 3))), 2)


def test_numba_threads_restores_count_even_on_error():
    import numba

    before = numba.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        with numba_threads(1) as n:
            assert n == 1 and numba.get_num_threads() == 1
            raise RuntimeError("boom")
    assert numba.get_num_threads() == before
    with numba_threads(-1) as n:
        assert n == numba.config.NUMBA_NUM_THREADS == numba.get_num_threads()
    with pytest.raises(
        InputError, match="n_jobs: expected a positive integer or a negative .*, got 0"
    ):
        with numba_threads(0):
            pass


@pytest.mark.parametrize("cls", [BarnesHutGradient, ExactGradient])
def test_single_point(cls):
    grad, kl = cls(sp.csr_matrix((1, 1)), 2)(np.array([[0.5, -1.0]]), compute_kl=True)
    assert np.array_equal(grad, [[0.0, 0.0]]) and math.isnan(kl)
