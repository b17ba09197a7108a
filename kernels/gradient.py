"""t-SNE gradient kernels: attractive forces, Barnes-Hut repulsion, the exact reference.

With ``w_ij = 1 / (1 + |y_i - y_j|^2)``, ``Z = sum_{k != l} w_kl`` and ``q_ij = w_ij / Z``
the gradient of ``KL(P || Q)`` is (van der Maaten 2014, eq. 5)

    dC/dy_i = 4 (e * A_i - R_i / Z),   A_i = sum_j p_ij w_ij (y_i - y_j),
                                       R_i = sum_j w_ij^2 (y_i - y_j)

with the exaggeration ``e`` (1 after the early phase). ``A`` runs over the sparse P
(raw CSR arrays); ``R`` and ``Z`` over all pairs, approximated by Barnes-Hut with a
group walk over the tree of :mod:`.tree`. The divergence is

    KL = sum_ij p_ij log(p_ij / w_ij) + (sum_ij p_ij) log Z.

Every parallel loop writes only its own rows and per-point partial sums; scalars
are reduced serially afterwards, so results do not depend on the thread count.
"""

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def attract_combine(Y, perm, R, Z, indptr, indices, data, exaggeration, grad, kl_part, compute_kl):
    """Write ``grad[i] = 4 (e A_i - R_k / Z)`` for ``i = perm[k]``; return KL's P-part.

    ``R`` (N, d) holds the repulsive sums in the order of ``perm`` (``R[k]`` belongs to
    point ``perm[k]``); ``Y``, ``grad`` and the CSR rows are in the caller's order.
    With ``compute_kl`` the per-point terms ``sum_j p_ij log(p_ij / w_ij)`` go to
    ``kl_part`` and their (serial) sum is returned, else 0.
    """
    n, dim = Y.shape
    scale_a = 4.0 * exaggeration
    scale_r = 4.0 / Z
    for k in prange(n):
        i = perm[k]
        kl = 0.0
        for c in range(dim):
            grad[i, c] = -scale_r * R[k, c]
        for jj in range(indptr[i], indptr[i + 1]):
            j = indices[jj]
            p = data[jj]
            d2 = 0.0
            for c in range(dim):
                t = Y[i, c] - Y[j, c]
                d2 += t * t
            w = 1.0 / (1.0 + d2)
            f = scale_a * p * w
            for c in range(dim):
                grad[i, c] += f * (Y[i, c] - Y[j, c])
            if compute_kl and p > 0.0:
                kl += p * (math.log(p) + math.log1p(d2))
        kl_part[i] = kl
    total = 0.0
    if compute_kl:
        for i in range(n):
            total += kl_part[i]
    return total


@njit(cache=True, parallel=True)
def repulsion_exact(Y, R, z_part):
    """All-pairs repulsion: ``R[i] = sum_j w_ij^2 (y_i - y_j)``; return ``Z`` (serial sum)."""
    n, dim = Y.shape
    for i in prange(n):
        z = 0.0
        for c in range(dim):
            R[i, c] = 0.0
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
                R[i, c] += ww * (Y[i, c] - Y[j, c])
        z_part[i] = z
    total = 0.0
    for i in range(n):
        total += z_part[i]
    return total


@njit(cache=True, parallel=True)
def repulsion_bh(
    Ys,
    theta,
    node_start,
    node_count,
    node_com,
    node_width,
    node_skip,
    node_level,
    n_nodes,
    group_start,
    group_count,
    n_groups,
    bits,
    R,
    z_part,
):
    """Barnes-Hut repulsion by group walk over a tree built by :func:`.tree.build_tree`.

    ``Ys`` and the outputs ``R`` (N, d), ``z_part`` (N,) are in Morton order. Each
    group of Morton-consecutive points walks the tree once: a node is summarised by
    its centre of mass when ``width < theta * dist``, ``dist`` being the distance
    from its centre of mass to the group's bounding box (so the test holds for every
    point of the group); a leaf that fails the test is summed exactly pair by pair.
    A leaf of points sharing one Morton code (duplicates) is summarised for
    ``theta > 0`` (its points are closer than the grid resolution). Returns ``Z``.
    """
    n, dim = Ys.shape
    theta2 = theta * theta
    lo = np.empty((n_groups, dim))
    hi = np.empty((n_groups, dim))
    for g in prange(n_groups):
        gs = group_start[g]
        ge = gs + group_count[g]
        for c in range(dim):
            lo[g, c] = Ys[gs, c]
            hi[g, c] = Ys[gs, c]
        for i in range(gs, ge):
            z_part[i] = 0.0
            for c in range(dim):
                R[i, c] = 0.0
                v = Ys[i, c]
                if v < lo[g, c]:
                    lo[g, c] = v
                if v > hi[g, c]:
                    hi[g, c] = v
        node = 0
        while node < n_nodes:
            ns = node_start[node]
            cnt = node_count[node]
            is_leaf = node_skip[node] == node + 1
            ancestor = ns <= gs and gs < ns + cnt
            d2 = 0.0
            for c in range(dim):
                x = node_com[node, c]
                t = 0.0
                if x < lo[g, c]:
                    t = lo[g, c] - x
                elif x > hi[g, c]:
                    t = x - hi[g, c]
                d2 += t * t
            wd = node_width[node]
            if not ancestor and wd * wd < theta2 * d2:
                # far cell: one summary for the whole group
                for i in range(gs, ge):
                    q2 = 0.0
                    for c in range(dim):
                        t = Ys[i, c] - node_com[node, c]
                        q2 += t * t
                    w = 1.0 / (1.0 + q2)
                    z_part[i] += cnt * w
                    f = cnt * w * w
                    for c in range(dim):
                        R[i, c] += f * (Ys[i, c] - node_com[node, c])
                node = node_skip[node]
            elif is_leaf:
                if node_level[node] == bits and theta > 0.0:
                    # duplicates: summary, leaving the point itself out
                    for i in range(gs, ge):
                        m = cnt
                        inside = ns <= i and i < ns + cnt
                        if inside:
                            m = cnt - 1
                        if m == 0:
                            continue
                        q2 = 0.0
                        for c in range(dim):
                            x = node_com[node, c]
                            if inside:
                                x = (cnt * x - Ys[i, c]) / m
                            t = Ys[i, c] - x
                            q2 += t * t
                        w = 1.0 / (1.0 + q2)
                        z_part[i] += m * w
                        for c in range(dim):
                            x = node_com[node, c]
                            if inside:
                                x = (cnt * x - Ys[i, c]) / m
                            R[i, c] += m * w * w * (Ys[i, c] - x)
                else:
                    for i in range(gs, ge):
                        for j in range(ns, ns + cnt):
                            if j == i:
                                continue
                            q2 = 0.0
                            for c in range(dim):
                                t = Ys[i, c] - Ys[j, c]
                                q2 += t * t
                            w = 1.0 / (1.0 + q2)
                            z_part[i] += w
                            ww = w * w
                            for c in range(dim):
                                R[i, c] += ww * (Ys[i, c] - Ys[j, c])
                node = node_skip[node]
            else:
                node += 1
    total = 0.0
    for i in range(n):
        total += z_part[i]
    return total
