"""Barnes-Hut repulsion against all pairs in numpy; thread-count independence."""

import numba
import numpy as np
import pytest
from embedviz.kernels.gradient import repulsion_bh
from embedviz.kernels.tree import CODE_BITS, build_tree, check_tree, empty_tree

from embedviz.tsne._threads import numba_threads


def build(Y, leaf_size, group_size):
    codes, perm, rank, Yt, nodes, groups, work = empty_tree(*Y.shape)
    n_nodes, n_groups = build_tree(
        Y, leaf_size, group_size, codes, perm, rank, Yt, *nodes, *groups, *work
    )
    check_tree(Y, leaf_size, group_size, perm, rank, Yt, nodes, n_nodes, groups, n_groups)
    return codes, perm, Yt, nodes, n_nodes, groups, n_groups


def bh(Y, theta, leaf_size=8, group_size=64):
    """Repulsive sums R, z and Z by Barnes-Hut, back in Y's row order."""
    n, d = Y.shape
    _, perm, Yt, nodes, n_nodes, groups, n_groups = build(Y, leaf_size, group_size)
    R = np.empty((d, n))
    z = np.empty(n)
    tag = np.empty((0,) * d)
    Z = repulsion_bh(
        Yt, tag, theta, *nodes, n_nodes, groups[0], groups[1], n_groups, CODE_BITS[d], R, z
    )
    out = np.empty((n, d))
    out[perm] = R.T
    zz = np.empty_like(z)
    zz[perm] = z
    return out, zz, Z


def exact(Y, block=500):
    """Plain numpy all pairs: R_i = sum_j w_ij^2 (y_i - y_j), z_i = sum_j w_ij, Z."""
    R = np.empty_like(Y)
    z = np.empty(len(Y))
    for s in range(0, len(Y), block):
        diff = Y[s : s + block, None, :] - Y[None, :, :]
        W = 1.0 / (1.0 + (diff**2).sum(-1))
        W[np.arange(len(W)), np.arange(s, s + len(W))] = 0.0
        R[s : s + block] = np.einsum("ij,ijk->ik", W**2, diff)
        z[s : s + block] = W.sum(1)
    return R, z, z.sum()


def layout(rng, n, d):
    """Clusters of varied size and spread, as a t-SNE layout looks."""
    sizes = rng.multinomial(n, rng.dirichlet(np.ones(12)))
    centres = rng.uniform(-40, 40, size=(12, d))
    spread = rng.uniform(0.5, 4.0, size=12)
    return np.vstack(
        [c + s * rng.normal(size=(m, d)) for c, s, m in zip(centres, spread, sizes, strict=True)]
    )


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("leaf_size,group_size", [(8, 64), (1, 1), (3, 5)])
def test_theta_zero_is_exact(rng, d, leaf_size, group_size):
    Y = np.vstack([layout(rng, 600, d), np.zeros((5, d))])  # with duplicates
    R, z, Z = bh(Y, 0.0, leaf_size, group_size)
    R0, z0, Z0 = exact(Y)
    scale = np.abs(R0).max()
    np.testing.assert_allclose(R, R0, rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_allclose(z, z0, rtol=1e-10)
    assert Z == pytest.approx(Z0, rel=1e-12)


@pytest.mark.parametrize("d,n", [(2, 4000), (3, 3000)])
def test_theta_half_error_within_one_percent(rng, d, n):
    Y = layout(rng, n, d)
    R, _, Z = bh(Y, 0.5)
    R0, _, Z0 = exact(Y)
    force, force0 = R / Z, R0 / Z0
    err = np.linalg.norm(force - force0) / np.linalg.norm(force0)
    assert err < 0.01
    assert Z == pytest.approx(Z0, rel=5e-3)  # openTSNE: 1.4e-3 on this layout
    # and the approximation does something: a coarser theta gives a different answer
    R1, _, Z1 = bh(Y, 1.0)
    err1 = np.linalg.norm(R1 / Z1 - force0) / np.linalg.norm(force0)
    assert err < err1 < 0.1


def test_duplicates_are_summarised_without_error(rng):
    # 2,000 copies of 3 points: each copy sees its twins at distance 0 (w = 1, no force)
    base = rng.normal(size=(3, 2))
    Y = np.repeat(base, 2000, axis=0)
    R, z, Z = bh(Y, 0.5)
    _, _, Z0 = exact(base)
    # Z: every ordered pair of twins adds 1, other pairs 2000^2 times the base pair weight
    assert Z == pytest.approx(3 * 2000 * 1999 + 2000**2 * Z0, rel=1e-12)
    R0, _, _ = exact(base)
    np.testing.assert_allclose(R, np.repeat(R0, 2000, axis=0) * 2000, rtol=1e-9)


@pytest.mark.parametrize("d,far", [(3, 1e7), (2, 1e10), (1, 1e15)])
def test_far_outlier_does_not_flatten_a_cluster(rng, d, far):
    # one point so far away that the 1,000 others share one Morton code (a level-B
    # leaf): they must still see each other pair by pair, not at their centre of mass
    Y = rng.normal(size=(1001, d))
    Y[0] = far
    R, z, Z = bh(Y, 0.5)
    R0, z0, Z0 = exact(Y)
    force, force0 = R / Z, R0 / Z0
    assert np.linalg.norm(force - force0) / np.linalg.norm(force0) < 0.03
    assert Z == pytest.approx(Z0, rel=0.01)
    np.testing.assert_allclose(z, z0, rtol=0.02)


@pytest.mark.parametrize("d", [2, 3])
def test_near_duplicates_are_summarised_accurately(rng, d):
    # 300 points 1e-7 apart (one code, well under FLAT_WIDTH) inside a normal layout
    Y = np.vstack([layout(rng, 1500, d), 3.0 + 1e-7 * rng.normal(size=(300, d))])
    R, z, Z = bh(Y, 0.5)
    R0, _, Z0 = exact(Y)
    force, force0 = R / Z, R0 / Z0
    assert np.linalg.norm(force - force0) / np.linalg.norm(force0) < 0.01
    assert Z == pytest.approx(Z0, rel=5e-3)


@pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads (NUMBA_NUM_THREADS < 2)"
)
@pytest.mark.parametrize("d", [2, 3])
def test_same_result_with_one_and_two_threads(rng, d):
    Y = layout(rng, 3000, d)
    with numba_threads(1):
        R1, z1, Z1 = bh(Y, 0.5)
    with numba_threads(2):
        R2, z2, Z2 = bh(Y, 0.5)
    assert Z1 == Z2
    assert np.array_equal(R1, R2) and np.array_equal(z1, z2)


def test_balanced_row_blocks(rng):
    from embedviz.kernels.gradient import balanced_row_blocks

    counts = rng.integers(0, 300, size=5000)
    counts[:100] = 3000  # heavy first rows
    indptr = np.concatenate([[0], np.cumsum(counts)])
    blocks = balanced_row_blocks(indptr, 64)
    assert blocks[0] == 0 and blocks[-1] == 5000 and np.all(np.diff(blocks) > 0)
    work = np.diff(indptr[blocks])
    assert work.max() <= indptr[-1] / 64 + 3000  # within one row of the even share
    assert balanced_row_blocks(np.array([0, 0, 0]), 8).tolist() == [0, 2]
