"""The Morton-ordered space-partitioning tree: consistency on awkward point sets."""

import time

import numpy as np
import pytest
from embedviz.kernels.tree import (
    CODE_BITS,
    build_tree,
    check_tree,
    empty_tree,
    morton_codes,
    radix_sort,
)

LEAF, GROUP = 8, 64


def build(Y, leaf_size=LEAF, group_size=GROUP):
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    codes, perm, rank, Yt, nodes, groups, work = empty_tree(*Y.shape)
    n_nodes, n_groups = build_tree(
        Y, leaf_size, group_size, codes, perm, rank, Yt, *nodes, *groups, *work
    )
    check_tree(Y, leaf_size, group_size, perm, rank, Yt, nodes, n_nodes, groups, n_groups)
    return codes, perm, Yt, nodes, n_nodes, groups, n_groups


def point_sets(rng, d):
    n = 700
    clustered = np.vstack(
        [c + 1e-3 * rng.normal(size=(n // 7, d)) for c in rng.normal(scale=50, size=(7, d))]
    )
    base = rng.normal(size=(100, d))
    return {
        "random": rng.normal(size=(n, d)),
        "clustered": clustered,
        "duplicates": np.vstack([base, base, base[:30]]),
        "near_duplicates": np.vstack([base, base + 1e-13, base[:50] * (1 + 1e-15)]),
        "all_equal": np.full((n, d), 3.5),
        "one_point": np.zeros((1, d)),
        "two_points": np.array([[0.0] * d, [1.0] * d]),
    }


@pytest.mark.parametrize("d", [1, 2, 3])
def test_tree_is_consistent(rng, d):
    for name, Y in point_sets(rng, d).items():
        try:
            build(Y)
        except AssertionError as exc:  # pragma: no cover - a failure names the set
            raise AssertionError(f"{name}: {exc}") from exc


@pytest.mark.parametrize("d", [2, 3])
def test_small_leaves_and_groups(rng, d):
    Y = rng.normal(size=(2000, d))
    _, _, _, nodes, n_nodes, groups, n_groups = build(Y, leaf_size=4, group_size=16)
    count, skip = nodes[1][:n_nodes], nodes[4][:n_nodes]
    assert np.all(count[skip == np.arange(n_nodes) + 1] <= 4)
    assert n_groups >= 2000 // 16


def test_codes_follow_morton_order():
    # 2D: bit 0 of the code comes from x, bit 1 from y; quadrants sort (lo,lo) (hi,lo)
    # (lo,hi) (hi,hi)
    Y = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    codes = np.empty(4, dtype=np.uint64)
    extent = morton_codes(Y, codes)
    assert extent == 1.0
    top = 2 ** CODE_BITS[2] - 1
    assert codes[3] == 0
    assert codes.tolist() == sorted(codes.tolist(), reverse=True)
    # the point at (1, 1) is quantised to the last grid cell on both axes
    assert int(codes[0]) == int("11" * CODE_BITS[2], 2) and top.bit_length() == 31


def test_duplicates_end_in_one_leaf_quickly():
    Y = np.zeros((20000, 2))
    t = time.perf_counter()
    *_, nodes, n_nodes, groups, n_groups = build(Y)
    assert n_nodes == 1 and nodes[1][0] == 20000
    assert n_groups == 20000 // GROUP + 1
    assert time.perf_counter() - t < 5.0


@pytest.mark.parametrize("n_bits", [5, 11, 40, 64])
def test_radix_sort_is_a_stable_sort(rng, n_bits):
    keys = rng.integers(0, 2**63, size=3000, dtype=np.uint64) >> np.uint64(64 - n_bits)
    keys[::7] = keys[0]  # ties keep their order
    idx = np.arange(3000, dtype=np.int64)
    expected = np.argsort(keys, kind="stable")
    sorted_keys = keys.copy()
    radix_sort(sorted_keys, idx, np.empty_like(keys), np.empty_like(idx), n_bits)
    assert np.array_equal(idx, expected) and np.array_equal(sorted_keys, keys[expected])
