"""t-SNE gradient kernels: attractive forces, Barnes-Hut repulsion, the exact reference.

With ``w_ij = 1 / (1 + |y_i - y_j|^2)``, ``Z = sum_{k != l} w_kl`` and ``q_ij = w_ij / Z``
the gradient of ``KL(P || Q)`` is (van der Maaten 2014, eq. 5)

    dC/dy_i = 4 (e * A_i - R_i / Z),   A_i = sum_j p_ij w_ij (y_i - y_j),
                                       R_i = sum_j w_ij^2 (y_i - y_j)

with the exaggeration ``e`` (1 after the early phase). ``A`` runs over the sparse P
(raw CSR arrays); ``R`` and ``Z`` over all pairs, approximated by Barnes-Hut with a
group walk over the tree of :mod:`.tree`. The divergence is

    KL = sum_ij p_ij log p_ij + sum_ij p_ij log(1 + |y_i - y_j|^2) + (sum_ij p_ij) log Z;

the kernels return the middle sum, the caller adds the constant and the last term.

Every parallel loop writes only its own rows and per-point partial sums; scalars
are reduced serially afterwards, so results do not depend on the thread count.

The Barnes-Hut kernels take the points transposed, ``Yt`` of shape (d, N), and a
``shape_tag``: any array with ``d`` dimensions (``np.empty((0,) * d)``). Its ``ndim``
is a compile-time constant, so numba compiles one version per d in which the loops
over coordinates disappear and the loops over the points of a group vectorise.
``error_model="numpy"`` keeps division free of Python's zero check (no denominator
here can be zero), which would otherwise stop vectorisation.
"""

import math

import numpy as np
from numba import njit, prange

#: A leaf of points that share one Morton code is summarised by its centre of mass
#: (:func:`repulsion_bh`) only if its points lie within this width of each other. The
#: kernel's scale is 1: for pair distances ``r <= sqrt(d) * FLAT_WIDTH`` a pair's
#: terms ``w`` and ``w^2 (y_i - y_j)`` differ from their flat-kernel values, which the
#: centre of mass sums exactly, by a relative ``2 r^2 <= 6e-6``.
FLAT_WIDTH = 1e-3


@njit(cache=True, error_model="numpy")
def _golden_stride(n):
    # a stride near n / golden ratio that is coprime with n: t -> (t * stride) % n is
    # then a permutation that deals out Morton-consecutive groups (whose costs are
    # alike) evenly among the threads' contiguous blocks of t
    if n < 3:
        return 1
    stride = int(n * 0.6180339887) + 1
    while True:
        a, b = stride, n
        while b:
            a, b = b, a % b
        if a == 1:
            return stride
        stride += 1


def balanced_row_blocks(indptr, n_blocks):
    """Row boundaries (n_blocks + 1,) that cut a CSR matrix into blocks of about equal nnz.

    Examples
    --------
    >>> balanced_row_blocks(np.array([0, 10, 11, 12, 22]), 2).tolist()
    [0, 2, 4]
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    n = indptr.shape[0] - 1
    n_blocks = max(1, min(n_blocks, n))
    targets = np.linspace(0, indptr[-1], n_blocks + 1)
    bounds = np.searchsorted(indptr, targets, side="left")
    bounds[0], bounds[-1] = 0, n
    return np.unique(np.clip(bounds, 0, n)).astype(np.int64)


@njit(cache=True, parallel=True, error_model="numpy")
def attract_combine(Y, shape_tag, rank, R, Z, indptr, indices, data, row_blocks, exaggeration,
                    grad, kl_part, compute_kl):  # fmt: skip
    """Write ``grad[i] = 4 (e A_i - R[:, rank[i]] / Z)``; return a KL term.

    ``R`` (d, N) holds the repulsive sums in Morton order (column ``rank[i]`` belongs
    to point ``i``); ``Y`` (N, d), ``grad`` and the CSR rows are in the caller's
    order, which the loop follows so that P streams through memory in order: rows
    ``row_blocks[b]:row_blocks[b + 1]`` form block ``b`` (blocks of about equal
    numbers of non-zeros, see :func:`balanced_row_blocks`), dealt to the threads in
    a strided order. With ``compute_kl`` the per-point sums
    ``sum_j p_ij log(1 + |y_i - y_j|^2)`` go to ``kl_part`` and their serial sum is
    returned, else 0.
    """
    dim = shape_tag.ndim
    n = Y.shape[0]
    scale_a = 4.0 * exaggeration
    scale_r = 4.0 / Z if Z > 0.0 else 0.0  # Z = 0 only for a single point
    n_blocks = row_blocks.shape[0] - 1
    stride = _golden_stride(n_blocks)
    for tb in prange(n_blocks):
        blk = (tb * stride) % n_blocks
        for i in range(row_blocks[blk], row_blocks[blk + 1]):
            k = rank[i]
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            kl = 0.0
            y0 = Y[i, 0]
            y1 = Y[i, min(1, dim - 1)]
            y2 = Y[i, dim - 1]
            for jj in range(indptr[i], indptr[i + 1]):
                j = indices[jj]
                t0 = y0 - Y[j, 0]
                d2 = t0 * t0
                if dim > 1:
                    t1 = y1 - Y[j, 1]
                    d2 += t1 * t1
                if dim > 2:
                    t2 = y2 - Y[j, 2]
                    d2 += t2 * t2
                pw = data[jj] / (1.0 + d2)
                a0 += pw * t0
                if dim > 1:
                    a1 += pw * t1
                if dim > 2:
                    a2 += pw * t2
                if compute_kl:
                    kl += data[jj] * math.log(1.0 + d2)  # 3x faster than log1p
            grad[i, 0] = scale_a * a0 - scale_r * R[0, k]
            if dim > 1:
                grad[i, 1] = scale_a * a1 - scale_r * R[1, k]
            if dim > 2:
                grad[i, 2] = scale_a * a2 - scale_r * R[2, k]
            kl_part[i] = kl
    total = 0.0
    if compute_kl:
        for i in range(n):
            total += kl_part[i]
    return total


@njit(cache=True, parallel=True, error_model="numpy")
def exact_gradient(Y, indptr, indices, data, exaggeration, grad, z_part, kl_part, compute_kl):
    """All-pairs gradient for any d, written into ``grad``; return ``(Z, kl_term)``.

    ``grad`` receives ``4 (e A_i - R_i / Z)``; ``kl_term`` is
    ``sum_ij p_ij log(1 + |y_i - y_j|^2)`` (0 unless ``compute_kl``).
    """
    n, dim = Y.shape
    for i in prange(n):
        z = 0.0
        for c in range(dim):
            grad[i, c] = 0.0
        for j in range(n):
            if j == i:
                continue
            d2 = 0.0
            for c in range(dim):
                t = Y[i, c] - Y[j, c]
                d2 += t * t
            w = 1.0 / (1.0 + d2)
            z += w
            ww = w * w
            for c in range(dim):
                grad[i, c] += ww * (Y[i, c] - Y[j, c])
        z_part[i] = z
    Z = 0.0
    for i in range(n):
        Z += z_part[i]
    scale_a = 4.0 * exaggeration
    scale_r = 4.0 / Z if Z > 0.0 else 0.0  # Z = 0 only for a single point
    for i in prange(n):
        kl = 0.0
        for c in range(dim):
            grad[i, c] *= -scale_r
        for jj in range(indptr[i], indptr[i + 1]):
            j = indices[jj]
            d2 = 0.0
            for c in range(dim):
                t = Y[i, c] - Y[j, c]
                d2 += t * t
            f = scale_a * data[jj] / (1.0 + d2)
            for c in range(dim):
                grad[i, c] += f * (Y[i, c] - Y[j, c])
            if compute_kl:
                kl += data[jj] * math.log(1.0 + d2)  # 3x faster than log1p
        kl_part[i] = kl
    total = 0.0
    if compute_kl:
        for i in range(n):
            total += kl_part[i]
    return Z, total


@njit(cache=True, inline="always", error_model="numpy")
def _far(Yt, R, z_part, dim, gs, ge, c0, c1, c2, cnt):
    # one cell (centre of mass c, `cnt` points) against every point of the group
    x0 = Yt[0, gs:ge]
    x1 = Yt[min(1, dim - 1), gs:ge]
    x2 = Yt[dim - 1, gs:ge]
    r0 = R[0, gs:ge]
    r1 = R[min(1, dim - 1), gs:ge]
    r2 = R[dim - 1, gs:ge]
    zs = z_part[gs:ge]
    for i in range(ge - gs):
        d0 = x0[i] - c0
        q2 = d0 * d0
        if dim > 1:
            d1 = x1[i] - c1
            q2 += d1 * d1
        if dim > 2:
            d2 = x2[i] - c2
            q2 += d2 * d2
        q = 1.0 / (1.0 + q2)
        zs[i] += cnt * q
        f = cnt * q * q
        r0[i] += f * d0
        if dim > 1:
            r1[i] += f * d1
        if dim > 2:
            r2[i] += f * d2


@njit(cache=True, inline="always", error_model="numpy")
def _near(Yt, R, z_part, dim, gs, ge, ls, le):
    # every point of a leaf [ls, le) against every point of the group, exactly
    x0 = Yt[0, gs:ge]
    x1 = Yt[min(1, dim - 1), gs:ge]
    x2 = Yt[dim - 1, gs:ge]
    r0 = R[0, gs:ge]
    r1 = R[min(1, dim - 1), gs:ge]
    r2 = R[dim - 1, gs:ge]
    zs = z_part[gs:ge]
    for j in range(ls, le):
        c0 = Yt[0, j]
        c1 = Yt[min(1, dim - 1), j]
        c2 = Yt[dim - 1, j]
        jrel = j - gs  # a point never interacts with itself
        for i in range(ge - gs):
            d0 = x0[i] - c0
            q2 = d0 * d0
            if dim > 1:
                d1 = x1[i] - c1
                q2 += d1 * d1
            if dim > 2:
                d2 = x2[i] - c2
                q2 += d2 * d2
            w = 1.0 / (1.0 + q2)
            if i == jrel:
                w = 0.0
            zs[i] += w
            f = w * w
            r0[i] += f * d0
            if dim > 1:
                r1[i] += f * d1
            if dim > 2:
                r2[i] += f * d2


@njit(cache=True, error_model="numpy")
def _duplicates(Yt, R, z_part, dim, gs, ge, ls, le, com):
    # a leaf of points much closer than 1 (the kernel's scale; see FLAT_WIDTH): each
    # point of the group sees the leaf's other points at their centre of mass
    cnt = le - ls
    for i in range(gs, ge):
        inside = ls <= i and i < le
        m = cnt - 1 if inside else cnt
        if m == 0:
            continue
        q2 = 0.0
        for c in range(dim):
            x = (cnt * com[c] - Yt[c, i]) / m if inside else com[c]
            t = Yt[c, i] - x
            q2 += t * t
        w = 1.0 / (1.0 + q2)
        z_part[i] += m * w
        for c in range(dim):
            x = (cnt * com[c] - Yt[c, i]) / m if inside else com[c]
            R[c, i] += m * w * w * (Yt[c, i] - x)


@njit(cache=True, parallel=True, error_model="numpy")
def repulsion_bh(Yt, shape_tag, theta, node_start, node_count, node_com, node_width, node_skip,
                 node_level, n_nodes, group_start, group_count, n_groups, bits, R,
                 z_part):  # fmt: skip
    """Barnes-Hut repulsion by group walk over a tree built by :func:`.tree.build_tree`.

    ``Yt`` (d, N) and the outputs ``R`` (d, N), ``z_part`` (N,) are in Morton order.
    Each group of Morton-consecutive points walks the tree once: a node is
    summarised by its centre of mass when ``width < theta * dist``, ``dist`` being
    the distance from its centre of mass to the group's bounding box (so the test
    holds for every point of the group); a leaf that fails the test is summed
    exactly pair by pair. Groups are dealt to the threads in a strided order, for
    balance; each group's sums do not depend on which thread computes them. A leaf
    of points sharing one Morton code (its width is its points' bounding box) that
    fails the test is summarised by its centre of mass, for ``theta > 0``, only when
    its points lie within ``FLAT_WIDTH`` of each other (duplicates), and summed
    exactly otherwise: with one far outlier a whole cluster can share a code (its
    points then cost O(count^2) per evaluation, as for ``theta = 0``).
    Returns ``Z`` (serial sum of ``z_part``).
    """
    dim = shape_tag.ndim
    n = Yt.shape[1]
    theta2 = theta * theta
    stride = _golden_stride(n_groups)
    for tg in prange(n_groups):
        g = (tg * stride) % n_groups  # a spread-out share of the groups for each thread
        gs = group_start[g]
        ge = gs + group_count[g]
        lo0 = hi0 = Yt[0, gs]
        lo1 = hi1 = Yt[min(1, dim - 1), gs]
        lo2 = hi2 = Yt[dim - 1, gs]
        for i in range(gs, ge):
            z_part[i] = 0.0
            for c in range(dim):
                R[c, i] = 0.0
            lo0 = min(lo0, Yt[0, i])
            hi0 = max(hi0, Yt[0, i])
            if dim > 1:
                lo1 = min(lo1, Yt[1, i])
                hi1 = max(hi1, Yt[1, i])
            if dim > 2:
                lo2 = min(lo2, Yt[2, i])
                hi2 = max(hi2, Yt[2, i])
        node = 0
        while node < n_nodes:
            ns = node_start[node]
            cnt = node_count[node]
            c0 = node_com[node, 0]
            c1 = node_com[node, min(1, dim - 1)]
            c2 = node_com[node, dim - 1]
            # squared distance from the centre of mass to the group's box
            t = max(lo0 - c0, 0.0, c0 - hi0)
            d2 = t * t
            if dim > 1:
                t = max(lo1 - c1, 0.0, c1 - hi1)
                d2 += t * t
            if dim > 2:
                t = max(lo2 - c2, 0.0, c2 - hi2)
                d2 += t * t
            wd = node_width[node]
            ancestor = ns <= gs and gs < ns + cnt
            if wd * wd < theta2 * d2 and not ancestor:
                _far(Yt, R, z_part, dim, gs, ge, c0, c1, c2, float(cnt))
                node = node_skip[node]
            elif node_skip[node] == node + 1:  # a leaf
                if node_level[node] == bits and theta > 0.0 and wd <= FLAT_WIDTH:
                    _duplicates(Yt, R, z_part, dim, gs, ge, ns, ns + cnt, node_com[node])
                else:
                    _near(Yt, R, z_part, dim, gs, ge, ns, ns + cnt)
                node = node + 1
            else:
                node += 1
    total = 0.0
    for i in range(n):
        total += z_part[i]
    return total
