"""Input affinities of t-SNE: nearest neighbours, perplexity calibration, symmetric P.

Barnes-Hut t-SNE (van der Maaten 2014, "Accelerating t-SNE using tree-based
algorithms", JMLR 15) keeps only each point's k = 3 * perplexity nearest neighbours:

1. :func:`nearest_neighbors` finds them, exactly (brute force through scikit-learn,
   fast on dense vectors of a few hundred dimensions at most) or approximately with
   pynndescent's nearest-neighbour descent for large N. The point itself is never its
   own neighbour; an exact duplicate is a neighbour at distance 0. Returned distances
   are recomputed directly from the vectors (no ``|a|^2 + |b|^2 - 2ab`` cancellation)
   and rows are sorted by (distance, index), so the result is deterministic.
2. :func:`joint_probabilities` turns each row into conditional probabilities
   p_{j|i} whose perplexity is the target (a bisection on the Gaussian precision in
   :mod:`embedviz.kernels.perplexity`, over squared euclidean distances, or over
   cosine distances 1 - cos as they are, as scikit-learn does), then symmetrises:
   P = (P_cond + P_cond^T) / (2N), a canonical CSR matrix that sums to 1.

:func:`compute_affinities` does both with k = min(N - 1, floor(3 * perplexity)).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.sparse as sp

from embedviz._check import check_choice, check_int, check_number
from embedviz.errors import InputError
from embedviz.tsne._validate import METRICS

logger = logging.getLogger(__name__)

METHODS = ("auto", "exact", "approx")

# method="auto" searches exactly up to this many points. Measured with
# scripts/bench_neighbors.py on GloVe 50-d, k = 90, 2 cores: exact brute force beats
# pynndescent at 5k (0.7 s vs 8 s warm) and 20k (6 s vs 23 s), ties it at 70k once
# pynndescent is compiled, and pynndescent pays 25 s to minutes of numba compilation in
# every new process (much of it is not cached). Extrapolating (exact grows as N^2,
# pynndescent about as N) puts the crossover between 120k and 170k points.
EXACT_MAX_SAMPLES = 150_000
_MAX_TRIES = 200
# perplexity >= 1 and n_samples >= 3 * perplexity + 1 (Barnes-Hut's neighbour lists)
MIN_SAMPLES = 4
_CHUNK = 4096


def check_perplexity(n_samples: int, perplexity: float, reduce: bool = False) -> float:
    """Check that ``n_samples`` points support ``perplexity``; return the perplexity to use.

    t-SNE needs ``n_samples >= 3 * perplexity + 1``.

    Parameters
    ----------
    n_samples : int
        Number of points.
    perplexity : float
        Requested perplexity, >= 1 (a perplexity is 2 to the power of an entropy).
    reduce : bool, default=False
        If True and the perplexity is too large, return the largest one that fits
        (:func:`largest_perplexity`) and log a warning instead of raising.

    Returns
    -------
    float
        The perplexity to use.

    Examples
    --------
    >>> check_perplexity(100, 30.0)
    30.0
    >>> check_perplexity(31, 30.0, reduce=True)
    10.0
    """
    perplexity = _positive_perplexity(perplexity)
    largest = largest_perplexity(n_samples)
    if n_samples >= 3.0 * perplexity + 1.0:
        return perplexity
    if n_samples < MIN_SAMPLES:
        raise InputError(
            f"X: expected at least {MIN_SAMPLES} rows (points) for t-SNE, got {n_samples} "
            "(the smallest perplexity, 1, needs 3 * perplexity + 1 points; method='exact' "
            "takes 2); give it more points"
        )
    if reduce:
        logger.warning(
            "perplexity=%g is too large for %d points (needs n_samples >= 3 * perplexity + 1); "
            "using perplexity=%.12g instead.",
            perplexity,
            n_samples,
            largest,
        )
        return largest
    raise InputError(
        f"perplexity: expected at most {largest:.12g} for {n_samples} points, got "
        f"{perplexity:g} (t-SNE needs n_samples >= 3 * perplexity + 1); pass a smaller "
        "perplexity, or TSNE(reduce_perplexity=True) to lower it automatically"
    )


def largest_perplexity(n_samples: int) -> float:
    """The largest perplexity ``n_samples`` points allow (``n_samples >= 3 * perplexity +
    1``), rounded down to two decimals, so that the value a message names is accepted.

    Examples
    --------
    >>> largest_perplexity(12), largest_perplexity(31)
    (3.66, 10.0)
    """
    return math.floor((n_samples - 1) / 3 * 100) / 100


def _positive_perplexity(perplexity) -> float:
    try:  # 2 ** entropy: never below 1
        return check_number("perplexity", perplexity, low=1)
    except InputError as exc:
        raise InputError(f"{exc}; typical perplexities are 5 to 50") from None


def check_distinct_rows(
    X: np.ndarray, metric: str, name: str = "X", advice: str = "check how X was built"
) -> None:
    """InputError when every row of ``X`` is the same point under ``metric`` (for cosine:
    points the same way, to within 1e-12 in 1 - cos): t-SNE then has nothing to separate,
    and PCA's initialisation would divide by a zero variance. Duplicates of some rows
    are fine. Costs O(d) for most inputs (row 1 differs from row 0) and a pass over X
    otherwise. ``X`` has been through :func:`check_data` (2-D, finite, no zero rows for
    cosine); ``name`` and ``advice`` word the message for the caller.

    Examples
    --------
    >>> check_distinct_rows(np.ones((3, 2)), "euclidean")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: X: expected at least 2 different rows, got 3 identical rows ...
    """
    n = X.shape[0]
    if metric == "euclidean":
        if (X[1] != X[0]).any() or np.ptp(X, axis=0).any():
            return
        raise InputError(
            f"{name}: expected at least 2 different rows, got {n} identical rows (t-SNE has "
            f"nothing to separate); {advice}"
        )
    first = X[0] / np.linalg.norm(X[0])
    for start in range(0, n, 65536):
        rows = X[start : start + 65536]
        cos = (rows @ first) / np.linalg.norm(rows, axis=1)
        if (cos < 1.0 - 1e-12).any():
            return
    raise InputError(
        f"{name}: expected rows in at least 2 directions with metric='cosine', got {n} rows "
        f"that all point the same way (t-SNE has nothing to separate); {advice}, or use "
        "metric='euclidean' to separate them by length"
    )


def check_data(X, metric: str = "euclidean") -> np.ndarray:
    """Validate the data matrix; return it as C-contiguous float64 (a copy only if needed).

    Raises an :class:`~embedviz.errors.InputError` naming the problem: sparse input, wrong
    shape or dtype, NaN/inf (first bad row and column), all-zero rows for ``metric="cosine"``.
    """
    if sp.issparse(X):
        raise InputError(
            f"X: expected a dense 2-D array, got a scipy sparse matrix of shape {X.shape}; "
            "convert it with X.toarray()"
        )
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(
            "X: expected a 2-D array of shape (n_samples, n_features), got a "
            f"{X.ndim}-D array of shape {X.shape}; reshape a single feature with "
            "X.reshape(-1, 1)"
        )
    if X.shape[0] < 2:
        raise InputError(f"X: expected at least 2 rows (points), got {X.shape[0]}")
    if X.shape[1] < 1:
        raise InputError(f"X: expected at least 1 column (feature), got shape {X.shape}")
    if X.dtype == np.bool_ or not (
        np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)
    ):
        raise InputError(
            f"X: expected integer or floating-point numbers, got dtype {X.dtype}; "
            "convert it with np.asarray(X, dtype=float)"
        )
    X = np.ascontiguousarray(X, dtype=np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        row = int(bad_rows[0])
        col = int(np.flatnonzero(~finite[row])[0])
        raise InputError(
            f"X: expected finite numbers, got NaN or infinite values in {bad_rows.size} of "
            f"{X.shape[0]} rows, the first at row {row}, column {col} (value {X[row, col]}); "
            "drop or impute those rows"
        )
    if metric == "cosine":
        zero_rows = np.flatnonzero(~X.any(axis=1))
        if zero_rows.size:
            shown = ", ".join(str(int(r)) for r in zero_rows[:10])
            more = f" and {zero_rows.size - 10} more" if zero_rows.size > 10 else ""
            raise InputError(
                "X: expected no all-zero rows with metric='cosine' (their cosine is undefined), "
                f"got {zero_rows.size} (rows {shown}{more}); drop those rows or use "
                "metric='euclidean'"
            )
    return X


def _exact_distances(X: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Euclidean distances from each row of X to its ``indices`` rows, computed directly."""
    n, k = indices.shape
    out = np.empty((n, k), dtype=np.float64)
    step = max(1, _CHUNK * 16 // max(1, k))
    for start in range(0, n, step):
        stop = min(n, start + step)
        diff = X[indices[start:stop]] - X[start:stop, None, :]
        out[start:stop] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    return out


def _drop_self(candidates: np.ndarray, k: int) -> np.ndarray:
    """From (N, k+1) candidate neighbours drop each row's own index (or its last column)."""
    n = candidates.shape[0]
    is_self = candidates == np.arange(n)[:, None]
    # Rows where self is absent (many duplicates) lose their last candidate instead.
    absent = ~is_self.any(axis=1)
    is_self[absent, -1] = True
    # More than one self entry cannot happen with a valid neighbour index; keep the first.
    first = np.argmax(is_self, axis=1)
    keep = np.ones_like(is_self)
    keep[np.arange(n), first] = False
    return candidates[keep].reshape(n, k)


def _search_exact(Z: np.ndarray, k: int, n_jobs: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="euclidean", n_jobs=n_jobs)
    nn.fit(Z)
    return nn.kneighbors(Z, return_distance=False)


def _search_approx(Z: np.ndarray, k: int, random_state, n_jobs: int) -> np.ndarray:
    from pynndescent import NNDescent

    if isinstance(random_state, np.random.Generator):
        random_state = int(random_state.integers(2**31 - 1))
    elif isinstance(random_state, np.random.RandomState):
        random_state = int(random_state.randint(2**31 - 1))
    if random_state is not None:
        # pynndescent's parallel updates depend on the thread count; one thread makes a
        # seeded search reproducible on every machine (UMAP does the same).
        n_jobs = 1
    index = NNDescent(
        Z,
        n_neighbors=k + 1,
        metric="euclidean",
        random_state=random_state,
        n_jobs=n_jobs,
        low_memory=True,
        compressed=True,
    )
    candidates, _ = index.neighbor_graph
    return candidates


def nearest_neighbors(
    X,
    n_neighbors: int,
    metric: str = "euclidean",
    method: str = "auto",
    random_state=None,
    n_jobs: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Find each point's nearest neighbours, excluding the point itself.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The points; integer or float, finite.
    n_neighbors : int
        Neighbours per point, 1 <= n_neighbors <= n_samples - 1.
    metric : {"euclidean", "cosine"}, default="euclidean"
        "cosine" uses the distance 1 - cos (computed as half the squared distance of the
        unit-normalised vectors); rows of zeros are rejected.
    method : {"auto", "exact", "approx"}, default="auto"
        "exact" is brute force (scikit-learn); "approx" is pynndescent; "auto" uses exact
        below ``EXACT_MAX_SAMPLES`` points.
    random_state : int, numpy Generator or RandomState, or None, default=None
        Seed of the approximate search (the exact search is deterministic). With a seed
        the approximate search runs on one thread, so that its result does not depend
        on the thread count (pynndescent's parallel updates do).
    n_jobs : int, default=-1
        Threads for the search; -1 uses all cores.

    Returns
    -------
    indices : (n_samples, n_neighbors) int64 array
    distances : (n_samples, n_neighbors) float64 array
        Euclidean distances (not squared) or cosine distances, ascending in each row
        (ties broken by index). An exact duplicate of a point is its neighbour at 0.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    >>> idx, dist = nearest_neighbors(X, 1)
    >>> idx.ravel().tolist(), dist.ravel().tolist()
    ([1, 0, 1], [1.0, 1.0, 2.0])
    """
    metric = check_choice("metric", metric, METRICS)
    method = check_choice("method", method, METHODS)
    X = check_data(X, metric)
    n = X.shape[0]
    try:
        k = check_int("n_neighbors", n_neighbors, low=1, high=n - 1)
    except InputError as exc:
        raise InputError(f"{exc}; X has {n} points, so at most n_samples - 1 = {n - 1}") from None
    Z = X / np.linalg.norm(X, axis=1, keepdims=True) if metric == "cosine" else X
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_SAMPLES else "approx"
    if method == "approx" and k + 1 >= n:
        method = "exact"  # pynndescent needs more points than neighbours
    if method == "exact":
        candidates = _search_exact(Z, k, n_jobs)
    else:
        candidates = _search_approx(Z, k, random_state, n_jobs)
    indices = _drop_self(np.asarray(candidates, dtype=np.int64), k)
    distances = _exact_distances(Z, indices)
    order = np.lexsort((indices, distances), axis=1)
    indices = np.take_along_axis(indices, order, axis=1)
    distances = np.take_along_axis(distances, order, axis=1)
    if metric == "cosine":
        distances = 0.5 * distances**2
    return np.ascontiguousarray(indices), np.ascontiguousarray(distances)


def joint_probabilities(
    indices: np.ndarray,
    distances: np.ndarray,
    perplexity: float,
    metric: str = "euclidean",
    tolerance: float = 1e-5,
) -> sp.csr_matrix:
    """Symmetric t-SNE affinities from each point's nearest neighbours.

    Parameters
    ----------
    indices : (N, k) int array
        Neighbour indices from :func:`nearest_neighbors`.
    distances : (N, k) float array
        Matching distances: euclidean (squared here) or cosine (used as they are).
    perplexity : float
        Target perplexity of every conditional distribution.
    metric : {"euclidean", "cosine"}, default="euclidean"
        The metric that produced ``distances``.
    tolerance : float, default=1e-5
        Allowed error of each row's entropy, in nats.

    Returns
    -------
    scipy.sparse.csr_matrix
        P = (P_cond + P_cond^T) / (2N): symmetric, float64, canonical, sums to 1.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> idx, dist = nearest_neighbors(X, 15)
    >>> P = joint_probabilities(idx, dist, perplexity=5.0)
    >>> bool(abs(P.sum() - 1.0) < 1e-12), bool(abs(P - P.T).max() == 0)
    (True, True)
    """
    from embedviz.kernels.perplexity import conditional_probabilities

    metric = check_choice("metric", metric, METRICS)
    indices = np.asarray(indices)
    distances = np.asarray(distances, dtype=np.float64)
    if indices.ndim != 2 or indices.shape != distances.shape:
        raise InputError(
            "indices, distances: expected 2-D arrays of the same shape (n_samples, k), "
            f"got {indices.shape} and {distances.shape}"
        )
    n, k = indices.shape
    if n < 2 or k < 1:
        raise InputError(
            f"indices: expected at least 2 rows and 1 column, got shape {indices.shape}"
        )
    if indices.min() < 0 or indices.max() >= n:
        raise InputError(
            f"indices: expected values from 0 to {n - 1}, got values from "
            f"{indices.min()} to {indices.max()}"
        )
    if not np.isfinite(distances).all() or (distances < 0).any():
        raise InputError("distances: expected finite numbers >= 0, got NaN, inf or negatives")
    check_number("tolerance", tolerance, low=0, low_open=True)
    perplexity = _positive_perplexity(perplexity)

    d = np.ascontiguousarray(distances**2 if metric == "euclidean" else distances)
    P_cond = np.empty((n, k), dtype=np.float64)
    n_failed = conditional_probabilities(d, perplexity, float(tolerance), _MAX_TRIES, P_cond)
    del d  # memory: the affinity step sets the peak of a whole fit
    if n_failed:
        logger.warning(
            "perplexity search did not converge to tolerance %g for %d of %d points",
            tolerance,
            n_failed,
            n,
        )
    # Row i of P_cond holds k entries: it is a CSR matrix as it stands (no COO row array,
    # no conversion copy); 32-bit column indices when they fit.
    index_type = np.int32 if n * k < 2**31 else np.int64
    indptr = np.arange(0, n * k + 1, k, dtype=index_type)
    P = sp.csr_matrix((P_cond.ravel(), indices.astype(index_type).ravel(), indptr), shape=(n, n))
    del P_cond
    P = P + P.T  # each entry sums at most two terms, a + b == b + a: exactly symmetric
    P.sum_duplicates()
    P.eliminate_zeros()
    P.sort_indices()
    P.data /= P.data.sum()
    return P


def compute_affinities(
    X,
    perplexity: float,
    metric: str = "euclidean",
    method: str = "auto",
    tolerance: float = 1e-5,
    random_state=None,
    n_jobs: int = -1,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Nearest neighbours and symmetric affinities P of ``X`` in one call.

    Uses k = min(n_samples - 1, floor(3 * perplexity)) neighbours.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    perplexity : float
        Must satisfy n_samples >= 3 * perplexity + 1 (see :func:`check_perplexity`).
    metric, method, random_state, n_jobs
        As in :func:`nearest_neighbors`.
    tolerance : float, default=1e-5
        As in :func:`joint_probabilities`.

    Returns
    -------
    P : scipy.sparse.csr_matrix
    indices : (n_samples, k) int64 array
    distances : (n_samples, k) float64 array

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> P, idx, dist = compute_affinities(X, perplexity=10.0)
    >>> idx.shape, round(float(P.sum()), 12)
    ((100, 30), 1.0)
    """
    metric = check_choice("metric", metric, METRICS)
    method = check_choice("method", method, METHODS)
    X = check_data(X, metric)
    n = X.shape[0]
    perplexity = check_perplexity(n, perplexity)
    k = min(n - 1, int(math.floor(3.0 * perplexity)))
    k = max(k, 1)
    indices, distances = nearest_neighbors(
        X, k, metric=metric, method=method, random_state=random_state, n_jobs=n_jobs
    )
    P = joint_probabilities(indices, distances, perplexity, metric=metric, tolerance=tolerance)
    return P, indices, distances
