"""The t-SNE objective: KL(P || Q) and its gradient, Barnes-Hut and exact.

Thin adapters over :mod:`embedviz.kernels`. Barnes-Hut follows van der Maaten (2014),
"Accelerating t-SNE using tree-based algorithms", JMLR 15: the attractive part
runs over the sparse P, the repulsive part over a quadtree (2D), octree (3D) or
binary tree (1D) whose far cells stand in for their points.

Layout of one evaluation (:class:`BarnesHutGradient`):

1. the tree is rebuilt over Y: points sorted by Morton code (so every cell is a
   run of consecutive points), nodes in pre-order in flat arrays with skip
   pointers (:mod:`embedviz.kernels.tree`);
2. repulsion by *group walk*: a run of up to ``group_size`` Morton-consecutive
   points shares one traversal; a cell is summarised when its width is below
   ``theta`` times the distance from its centre of mass to the group's bounding
   box, leaves that fail are summed exactly; per-point sums land in Morton order
   and the normaliser Z is reduced serially;
3. attraction over the CSR rows of P, fused with the combination
   ``4 (exaggeration * A - R / Z)`` and the un-permutation back to Y's row order.

The adapter allocates every buffer once and reuses it (the gradient it returns is
one of them, overwritten by the next call); the kernels write into the buffers and
return scalars. P is never modified: the
exaggeration is passed to the kernel as a scalar. Results do not depend on the
number of threads.

:func:`exact_kl_gradient` is a plain dense numpy version, the independent
reference for the tests.
"""

import math

import numpy as np
import scipy.sparse as sp

from embedviz._check import check_int, check_number
from embedviz.errors import InputError
from embedviz.kernels import gradient as _grad
from embedviz.kernels import tree as _tree

#: blocks of rows of P (of equal numbers of non-zeros) shared out among the threads
ROW_BLOCKS = 256
#: leaves hold at most this many points (unless they are duplicates)
LEAF_SIZE = 8
#: points that share one tree walk (on GloVe t-SNE layouts of 20k points, 256 was
#: faster and more accurate than 64 or 128 in 2D and 3D; see scripts/bench_gradient.py)
GROUP_SIZE = 256


def _csr_arrays(P):
    if not sp.issparse(P):
        raise InputError(f"P: expected a scipy.sparse CSR matrix, got {type(P).__name__}")
    P = P.tocsr()
    if P.shape[0] != P.shape[1]:
        raise InputError(f"P: expected a square matrix (N, N), got shape {P.shape}")
    # int32 column indices when they fit: less memory traffic in the attractive loop
    index_type = np.int32 if P.shape[0] < 2**31 else np.int64
    indptr = np.ascontiguousarray(P.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(P.indices, dtype=index_type)
    data = np.ascontiguousarray(P.data, dtype=np.float64)
    return P.shape[0], indptr, indices, data


def _check_n_components(n_components, maximum):
    if maximum != 3:
        check_int("n_components", n_components, low=1)
        return
    try:
        check_int("n_components", n_components, low=1, high=3)
    except InputError:
        raise InputError(
            f"n_components: expected 1, 2 or 3 for Barnes-Hut, got {n_components!r:.60}; "
            "use method='exact' for more dimensions"
        ) from None


class _Objective:
    def __init__(self, P, n_components, maximum):
        _check_n_components(n_components, maximum)
        self.n_samples, self._indptr, self._indices, self._data = _csr_arrays(P)
        self.n_components = int(n_components)
        self._sum_p = float(self._data.sum())
        positive = self._data[self._data > 0]
        self._p_log_p = float(np.sum(positive * np.log(positive)))
        n, d = self.n_samples, self.n_components
        self._grad = np.empty((n, d))
        self._z_part = np.empty(n)
        self._kl_part = np.empty(n)
        # rows of P in blocks of equal work for the attractive loop
        self._row_blocks = _grad.balanced_row_blocks(self._indptr, ROW_BLOCKS)

    def _as_embedding(self, Y):
        Y = np.ascontiguousarray(Y, dtype=np.float64)
        if Y.shape != (self.n_samples, self.n_components):
            raise InputError(
                f"Y: expected shape ({self.n_samples}, {self.n_components}), got {Y.shape}"
            )
        return Y

    def _kl(self, kl_term, Z, compute_kl):
        # KL = sum p log p + sum p log(1 + d^2) + (sum p) log Z
        if not compute_kl or not Z > 0.0:  # Z = 0: a single point, no Q at all
            return math.nan
        return self._p_log_p + kl_term + self._sum_p * math.log(Z)


class BarnesHutGradient(_Objective):
    """Barnes-Hut gradient of KL(P || Q) for embeddings of 1 to 3 dimensions.

    Parameters
    ----------
    P : scipy.sparse.csr_matrix
        Symmetric joint probabilities (N, N) summing to 1; never modified.
    n_components : int
        Dimension of the embedding (1, 2 or 3).
    theta : float, default=0.5
        Barnes-Hut accuracy: a cell is summarised when its width is below ``theta``
        times its distance; 0 computes every pair exactly.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> P = sp.csr_matrix(np.array([[0, .25, .25], [.25, 0, 0], [.25, 0, 0]]))
    >>> grad, kl = BarnesHutGradient(P, 2)(np.eye(3, 2), compute_kl=True)
    >>> grad.shape
    (3, 2)
    """

    def __init__(self, P: sp.csr_matrix, n_components: int, theta: float = 0.5) -> None:
        super().__init__(P, n_components, 3)
        self.theta = check_number("theta", theta, low=0)  # 0: every pair exactly
        n, d = self.n_samples, self.n_components
        buffers = _tree.empty_tree(n, d)
        self._codes, self._perm, self._rank, self._Yt = buffers[:4]
        self._nodes, self._groups, self._work = buffers[4:]
        self._R = np.empty((d, n))
        self._shape_tag = np.empty((0,) * d)

    def __call__(
        self, Y: np.ndarray, exaggeration: float = 1.0, compute_kl: bool = False
    ) -> tuple[np.ndarray, float]:
        """Return ``(grad, kl)``: dC/dY (N, d) in Y's row order and KL (nan unless asked).

        ``grad`` is a buffer of this object, overwritten by the next call: copy it to
        keep it.
        """
        Y = self._as_embedding(Y)
        n_nodes, n_groups = _tree.build_tree(
            Y,
            LEAF_SIZE,
            GROUP_SIZE,
            self._codes,
            self._perm,
            self._rank,
            self._Yt,
            *self._nodes,
            *self._groups,
            *self._work,
        )
        Z = _grad.repulsion_bh(
            self._Yt,
            self._shape_tag,
            self.theta,
            *self._nodes,
            n_nodes,
            self._groups[0],
            self._groups[1],
            n_groups,
            _tree.CODE_BITS[self.n_components],
            self._R,
            self._z_part,
        )
        kl_term = _grad.attract_combine(
            Y,
            self._shape_tag,
            self._rank,
            self._R,
            Z,
            self._indptr,
            self._indices,
            self._data,
            self._row_blocks,
            float(exaggeration),
            self._grad,
            self._kl_part,
            bool(compute_kl),
        )
        return self._grad, self._kl(kl_term, Z, compute_kl)


class ExactGradient(_Objective):
    """Exact O(N^2) gradient of KL(P || Q) (numba), the reference for Barnes-Hut.

    Same parameters as :class:`BarnesHutGradient`; ``theta`` is ignored and any
    ``n_components >= 1`` is allowed.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> P = sp.csr_matrix(np.array([[0, .5], [.5, 0]]))
    >>> grad, kl = ExactGradient(P, 1)(np.array([[0.0], [1.0]]), compute_kl=True)
    >>> round(kl, 12)
    0.0
    """

    def __init__(self, P: sp.csr_matrix, n_components: int, theta: float = 0.5) -> None:
        super().__init__(P, n_components, 10**9)

    def __call__(
        self, Y: np.ndarray, exaggeration: float = 1.0, compute_kl: bool = False
    ) -> tuple[np.ndarray, float]:
        """Return ``(grad, kl)``: dC/dY (N, d) and KL (nan unless ``compute_kl``).

        ``grad`` is a buffer of this object, overwritten by the next call.
        """
        Y = self._as_embedding(Y)
        Z, kl_term = _grad.exact_gradient(
            Y,
            self._indptr,
            self._indices,
            self._data,
            float(exaggeration),
            self._grad,
            self._z_part,
            self._kl_part,
            bool(compute_kl),
        )
        return self._grad, self._kl(kl_term, Z, compute_kl)


def exact_kl_gradient(
    P: sp.csr_matrix | np.ndarray, Y: np.ndarray, exaggeration: float = 1.0
) -> tuple[np.ndarray, float]:
    """Dense numpy KL(P || Q) and its gradient: the independent reference for tests.

    Parameters
    ----------
    P : scipy.sparse matrix or ndarray
        Symmetric joint probabilities (N, N).
    Y : ndarray of shape (N, d)
        The embedding.
    exaggeration : float, default=1.0
        Factor on P in the gradient (the KL always uses P itself).

    Returns
    -------
    grad : ndarray of shape (N, d)
        ``4 sum_j (exaggeration p_ij - q_ij) w_ij (y_i - y_j)``.
    kl : float
        ``sum p_ij log(p_ij / q_ij)`` over ``p_ij > 0``.

    Examples
    --------
    >>> import numpy as np
    >>> grad, kl = exact_kl_gradient(np.array([[0, .5], [.5, 0]]), np.array([[0.0], [1.0]]))
    >>> grad.ravel().tolist(), kl
    ([0.0, 0.0], 0.0)
    """
    P = P.toarray() if sp.issparse(P) else np.asarray(P, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    diff = Y[:, None, :] - Y[None, :, :]
    W = 1.0 / (1.0 + np.sum(diff**2, axis=-1))
    np.fill_diagonal(W, 0.0)
    Q = W / W.sum()
    M = (exaggeration * P - Q) * W
    grad = 4.0 * np.einsum("ij,ijk->ik", M, diff)
    mask = P > 0
    kl = float(np.sum(P[mask] * np.log(P[mask] / Q[mask])))
    return grad, kl
