"""Space-partitioning tree over a t-SNE embedding (binary tree, quadtree, octree).

The tree is rebuilt at every gradient evaluation, so it is built for speed:

1. Each point is quantised to a grid of ``2**B`` cells per axis over the bounding
   cube of the embedding and gets a 64-bit Morton code (the bits of its grid
   coordinates interleaved; ``B`` = 52, 31, 21 bits for d = 1, 2, 3).
2. Points are sorted by code. Every cell of the tree then holds a contiguous run
   of the sorted points, and its ``2**d`` children split that run by the next
   ``d`` bits of the code.
3. Nodes are written in pre-order into flat arrays. The tree is *compressed*: a
   node is the smallest grid cell that holds its points (the common prefix of
   their codes), so every inner node has at least two children, there are at
   most ``2 N - 1`` nodes, and a tight cluster cannot create a long chain of
   single-child cells.

Node arrays (``n_nodes`` used entries of buffers sized ``2 N``):

``node_start``, ``node_count``
    the node's run ``[start, start + count)`` of Morton-sorted points;
``node_com``
    centre of mass (``(2 N, d)``);
``node_width``
    side length of the node's cell; for a level-``B`` leaf (below), the largest side
    of its points' bounding box instead (at most the cell's side), so that the
    Barnes-Hut test sees how spread out such a leaf really is;
``node_skip``
    index of the next node after this node's subtree. Traversal is stackless:
    descend with ``k + 1``, skip a subtree with ``node_skip[k]``; a node is a leaf
    exactly when ``node_skip[k] == k + 1``;
``node_level``
    depth of the cell; ``level == B`` marks a leaf of points that share one code
    (duplicates or near-duplicates closer than ``extent / 2**B``): such a leaf may
    hold any number of points and is never split.

Leaves hold at most ``leaf_size`` points unless they are at level ``B``.

The tree also lists *groups* for the group walk of :mod:`.gradient`: runs of at
most ``group_size`` Morton-consecutive points, each the point run of one node
whose parent holds more than ``group_size`` points (a level-``B`` leaf larger
than ``group_size`` is cut into several groups).
"""

import numpy as np
from numba import njit

#: bits of grid resolution per axis, indexed by the dimension d (1, 2, 3)
CODE_BITS = (0, 52, 31, 21)


@njit(cache=True)
def _spread2(x):
    # put the low 32 bits of x on the even bit positions
    x = x & np.uint64(0x00000000FFFFFFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    x = (x | (x << np.uint64(2))) & np.uint64(0x3333333333333333)
    x = (x | (x << np.uint64(1))) & np.uint64(0x5555555555555555)
    return x


@njit(cache=True)
def _spread3(x):
    # put the low 21 bits of x on every third bit position
    x = x & np.uint64(0x1FFFFF)
    x = (x | (x << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    x = (x | (x << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    x = (x | (x << np.uint64(2))) & np.uint64(0x1249249249249249)
    return x


@njit(cache=True)
def _highest_bit(x):
    # index of the highest set bit of a non-zero uint64
    h = 0
    if x >> np.uint64(32):
        x = x >> np.uint64(32)
        h += 32
    if x >> np.uint64(16):
        x = x >> np.uint64(16)
        h += 16
    if x >> np.uint64(8):
        x = x >> np.uint64(8)
        h += 8
    if x >> np.uint64(4):
        x = x >> np.uint64(4)
        h += 4
    if x >> np.uint64(2):
        x = x >> np.uint64(2)
        h += 2
    if x >> np.uint64(1):
        h += 1
    return h


@njit(cache=True, error_model="numpy")
def morton_codes(Y, codes):
    """Write the Morton code of each row of ``Y`` into ``codes``; return the cube's side."""
    n, dim = Y.shape
    bits = 52 if dim == 1 else (31 if dim == 2 else 21)
    lo = np.empty(dim)
    hi = np.empty(dim)
    for k in range(dim):
        lo[k] = Y[0, k]
        hi[k] = Y[0, k]
    for i in range(n):
        for k in range(dim):
            v = Y[i, k]
            if v < lo[k]:
                lo[k] = v
            if v > hi[k]:
                hi[k] = v
    extent = 0.0
    for k in range(dim):
        extent = max(extent, hi[k] - lo[k])
    if not extent > 0.0:
        extent = 1.0
    cells = float(2**bits)
    top = np.uint64(2**bits - 1)
    scale = cells / extent
    for i in range(n):
        code = np.uint64(0)
        for k in range(dim):
            q = np.uint64(min((Y[i, k] - lo[k]) * scale, cells - 1.0))
            if q > top:
                q = top
            if dim == 1:
                code = q
            elif dim == 2:
                code |= _spread2(q) << np.uint64(k)
            else:
                code |= _spread3(q) << np.uint64(k)
        codes[i] = code
    return extent


@njit(cache=True, error_model="numpy")
def radix_sort(keys, idx, keys_tmp, idx_tmp, n_bits):
    """Sort ``keys`` (uint64) carrying ``idx`` along, stably, in place (LSD radix sort).

    Only the low ``n_bits`` bits of the keys are looked at, 11 at a time; a pass in
    which all keys share their digit is skipped. ``keys_tmp`` and ``idx_tmp`` are
    scratch buffers of the same length.

    Examples
    --------
    >>> keys = np.array([5, 3, 5, 1], dtype=np.uint64)
    >>> idx = np.arange(4)
    >>> radix_sort(keys, idx, np.empty_like(keys), np.empty_like(idx), 3)
    >>> keys.tolist(), idx.tolist()
    ([1, 3, 5, 5], [3, 1, 0, 2])
    """
    n = keys.shape[0]
    count = np.empty(2048, dtype=np.int64)
    in_tmp = False  # whether the current order sits in the scratch buffers
    for shift in range(0, n_bits, 11):
        if in_tmp:
            moved = _radix_pass(keys_tmp, idx_tmp, keys, idx, np.uint64(shift), count)
        else:
            moved = _radix_pass(keys, idx, keys_tmp, idx_tmp, np.uint64(shift), count)
        if moved:
            in_tmp = not in_tmp
    if in_tmp:
        for j in range(n):
            keys[j] = keys_tmp[j]
            idx[j] = idx_tmp[j]


@njit(cache=True, error_model="numpy")
def _radix_pass(src_k, src_i, dst_k, dst_i, shift, count):
    # one stable counting-sort pass on the 11-bit digit at `shift`; False (and
    # nothing moved) when every key has the same digit there
    n = src_k.shape[0]
    mask = np.uint64(2047)
    for b in range(2048):
        count[b] = 0
    for j in range(n):
        count[(src_k[j] >> shift) & mask] += 1
    total = 0
    for b in range(2048):
        c = count[b]
        if c == n:
            return False
        count[b] = total
        total += c
    for j in range(n):
        key = src_k[j]
        b = (key >> shift) & mask
        pos = count[b]
        count[b] = pos + 1
        dst_k[pos] = key
        dst_i[pos] = src_i[j]
    return True


def empty_tree(n, dim):
    """Allocate the buffers of :func:`build_tree` for ``n`` points in ``dim`` dimensions.

    Returns ``(codes, perm, rank, Yt, nodes, groups, work)`` with ``nodes = (node_start,
    node_count, node_com, node_width, node_skip, node_level)``, ``groups =
    (group_start, group_count)`` and ``work`` two scratch arrays, in the argument order
    of :func:`build_tree`.
    """
    m = max(2 * n, 1)
    nodes = (
        np.empty(m, dtype=np.int64),
        np.empty(m, dtype=np.int64),
        np.empty((m, dim)),
        np.empty(m),
        np.empty(m, dtype=np.int64),
        np.empty(m, dtype=np.int64),
    )
    groups = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64))
    return (
        np.empty(n, dtype=np.uint64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty((dim, n)),
        nodes,
        groups,
        (np.empty(n, dtype=np.uint64), np.empty(m, dtype=np.int64)),
    )


@njit(cache=True, error_model="numpy")
def build_tree(
    Y,
    leaf_size,
    group_size,
    codes,
    perm,
    rank,
    Yt,
    node_start,
    node_count,
    node_com,
    node_width,
    node_skip,
    node_level,
    group_start,
    group_count,
    work_codes,
    work_index,
):
    """Build the tree of ``Y`` (N, d) into the given buffers; return ``(n_nodes, n_groups)``.

    Buffers (all written): ``codes`` (N,) uint64 Morton codes in sorted order,
    ``perm`` (N,) int64 with ``Yt[:, k] = Y[perm[k]]``, ``rank`` its inverse, ``Yt``
    (d, N) the points in Morton order, transposed (one contiguous row per axis, for
    vectorised loops),
    node arrays of length ``2 N`` (``node_com`` is (2 N, d)) and group arrays of
    length N (see the module docstring), and scratch ``work_codes`` (N,) uint64 and
    ``work_index`` (2 N,) int64.

    Examples
    --------
    >>> Y = np.random.default_rng(0).normal(size=(100, 2))
    >>> codes, perm, rank, Yt, nodes, groups, work = empty_tree(100, 2)
    >>> n_nodes, n_groups = build_tree(Y, 8, 64, codes, perm, rank, Yt, *nodes, *groups, *work)
    >>> check_tree(Y, 8, 64, perm, rank, Yt, nodes, n_nodes, groups, n_groups)
    >>> int(nodes[1][0])  # the root holds every point
    100
    """
    n, dim = Y.shape
    bits = 52 if dim == 1 else (31 if dim == 2 else 21)
    n_child = 1 << dim
    extent = morton_codes(Y, codes)
    for i in range(n):
        perm[i] = i
    radix_sort(codes, perm, work_codes, work_index[:n], bits * dim)
    for k in range(n):
        i = perm[k]
        rank[i] = k
        for c in range(dim):
            Yt[c, k] = Y[i, c]

    mask = np.uint64(n_child - 1)
    depth_cap = (bits + 2) * n_child + 1
    st_s = np.empty(depth_cap, dtype=np.int64)
    st_e = np.empty(depth_cap, dtype=np.int64)
    st_p = np.empty(depth_cap, dtype=np.int64)
    parent = work_index
    bounds = np.empty(n_child + 1, dtype=np.int64)
    top = 0
    st_s[0] = 0
    st_e[0] = n
    st_p[0] = -1
    top = 1
    n_nodes = 0
    n_groups = 0
    while top > 0:
        top -= 1
        s = st_s[top]
        e = st_e[top]
        p = st_p[top]
        k = n_nodes
        n_nodes += 1
        cnt = e - s
        node_start[k] = s
        node_count[k] = cnt
        parent[k] = p
        diff = codes[s] ^ codes[e - 1]
        if diff == 0:
            level = bits
            shift = 0
        else:
            shift = (_highest_bit(diff) // dim) * dim
            level = bits - 1 - shift // dim
        node_level[k] = level
        node_width[k] = extent / 2.0**level
        leaf = diff == 0 or cnt <= leaf_size
        # groups: the first node on each root-to-leaf path with <= group_size points
        if p < 0 or node_count[p] > group_size:
            if cnt <= group_size:
                group_start[n_groups] = s
                group_count[n_groups] = cnt
                n_groups += 1
            elif leaf:
                g = s
                while g < e:
                    group_start[n_groups] = g
                    group_count[n_groups] = min(group_size, e - g)
                    n_groups += 1
                    g += group_size
        if leaf:
            side = 0.0
            for c in range(dim):
                acc = 0.0
                lo = hi = Yt[c, s]
                for j in range(s, e):
                    v = Yt[c, j]
                    acc += v
                    lo = min(lo, v)
                    hi = max(hi, v)
                node_com[k, c] = acc
                side = max(side, hi - lo)
            if diff == 0:  # one code: the points' own box, not the (larger) cell
                node_width[k] = side
            continue
        for c in range(dim):
            node_com[k, c] = 0.0
        # children by the digit at `shift`, pushed highest digit first so that
        # the lowest is popped next (pre-order)
        ush = np.uint64(shift)
        if cnt <= 128:
            # small run: one branch-predictable scan finds the child boundaries
            nb = 0
            bounds[0] = s
            prev = (codes[s] >> ush) & mask
            for j in range(s + 1, e):
                digit = (codes[j] >> ush) & mask
                if digit != prev:
                    nb += 1
                    bounds[nb] = j
                    prev = digit
            bounds[nb + 1] = e
            for b in range(nb, -1, -1):
                st_s[top] = bounds[b]
                st_e[top] = bounds[b + 1]
                st_p[top] = k
                top += 1
            continue
        hi_ = e
        for digit in range(n_child - 1, -1, -1):
            # large run: binary search for the first index in [s, hi_) with digit >= `digit`
            a = s
            b = hi_
            ud = np.uint64(digit)
            while a < b:
                m = (a + b) >> 1
                if (codes[m] >> ush) & mask < ud:
                    a = m + 1
                else:
                    b = m
            if a < hi_:
                st_s[top] = a
                st_e[top] = hi_
                st_p[top] = k
                top += 1
                hi_ = a
    # subtree sizes -> skip pointers; sums -> centres of mass (children follow parents)
    for k in range(n_nodes):
        node_skip[k] = 1
    for k in range(n_nodes - 1, 0, -1):
        p = parent[k]
        node_skip[p] += node_skip[k]
        for c in range(dim):
            node_com[p, c] += node_com[k, c]
    for k in range(n_nodes):
        node_skip[k] += k
        inv = 1.0 / node_count[k]
        for c in range(dim):
            node_com[k, c] *= inv
    return n_nodes, n_groups


def check_tree(Y, leaf_size, group_size, perm, rank, Yt, nodes, n_nodes, groups, n_groups):
    """Raise AssertionError if a built tree is inconsistent (used by the tests).

    ``nodes`` is ``(node_start, node_count, node_com, node_width, node_skip, node_level)``
    and ``groups`` is ``(group_start, group_count)`` as filled by :func:`build_tree`.
    Checks: ``perm`` is a permutation, ``rank`` its inverse and ``Yt == Y[perm].T``;
    skip pointers nest
    (children tile their parent's run, subtrees are contiguous); counts add up;
    centres of mass match the points; every point lies in exactly one leaf and
    inside its leaf's cell; leaves are small unless they hold points of one code;
    groups tile the points.
    """
    start, count, com, width, skip, level = (np.asarray(a) for a in nodes)
    n, dim = Y.shape
    bits = CODE_BITS[dim]
    assert np.array_equal(np.sort(perm), np.arange(n)), "perm is not a permutation"
    assert np.array_equal(rank[perm], np.arange(n)), "rank is not the inverse of perm"
    assert np.array_equal(Yt, Y[perm].T), "Yt is not Y in Morton order, transposed"
    Ys = Yt.T
    assert 1 <= n_nodes <= max(1, 2 * n - 1), f"{n_nodes} nodes for {n} points"
    assert start[0] == 0 and count[0] == n and skip[0] == n_nodes, "bad root"
    in_leaf = np.zeros(n, dtype=np.int64)
    extent = max(float(np.ptp(Y, axis=0).max()), 0.0) or 1.0
    for k in range(n_nodes):
        s, c = int(start[k]), int(count[k])
        assert c >= 1 and k < skip[k] <= n_nodes, f"node {k}: count {c}, skip {skip[k]}"
        pts = Ys[s : s + c]
        assert np.allclose(com[k], pts.mean(axis=0), rtol=1e-9, atol=1e-12 * extent), (
            f"node {k}: centre of mass"
        )
        cell = extent / 2.0 ** level[k]
        span = pts.max(axis=0) - pts.min(axis=0)
        if level[k] == bits:  # one code: the width is the points' box
            assert skip[k] == k + 1, f"node {k}: level {bits} but not a leaf"
            assert np.isclose(width[k], span.max(), rtol=1e-12, atol=0), f"node {k}: width"
        else:
            assert np.isclose(width[k], cell), f"node {k}: width"
        if skip[k] == k + 1:  # leaf
            in_leaf[s : s + c] += 1
            assert c <= leaf_size or level[k] == bits, f"leaf {k} holds {c} points"
            # the leaf's cell (quantised grid) must hold all its points
            assert np.all(span <= cell * (1 + 1e-9) + 1e-12 * extent), f"leaf {k}: span"
            continue
        # children: consecutive subtrees that tile [s, s + c)
        child = k + 1
        pos = s
        n_children = 0
        while child < skip[k]:
            assert start[child] == pos, f"node {k}: child {child} starts at {start[child]}"
            assert level[child] > level[k], f"node {k}: child {child} not deeper"
            pos += count[child]
            n_children += 1
            child = skip[child]
        assert child == skip[k] and pos == s + c, f"node {k}: children do not tile it"
        assert 2 <= n_children <= 2**dim, f"node {k}: {n_children} children"
    assert np.all(in_leaf == 1), "a point is not in exactly one leaf"
    gs = np.asarray(groups[0])[:n_groups]
    gc = np.asarray(groups[1])[:n_groups]
    assert np.all((gc >= 1) & (gc <= group_size)), "group sizes"
    assert gs[0] == 0 and np.array_equal(gs[1:], (gs + gc)[:-1]), "groups do not tile"
    assert gs[-1] + gc[-1] == n, "groups do not cover all points"
