"""Before the optimisation: the seed, the input's preprocessing, the initial layout.

The pieces of :meth:`embedviz.TSNE.fit` that run before the affinities, each a
plain function of its inputs: :func:`random_state_of` (the seed),
:func:`preprocess` (``normalize`` and ``pca_components``),
:func:`initial_embedding` and :func:`check_exact_memory` (the size guard of
``method="exact"``).
"""

import logging
import numbers

import numpy as np

from embedviz.errors import InputError

logger = logging.getLogger("embedviz.tsne")

INIT_STD = 1e-4  # scale of the initial embedding (openTSNE and sklearn use the same)
# Peak memory of method="exact", in float64 values per pair of points: the (N, N - 1)
# neighbour indices and distances, the perplexity search's rows and the dense P and
# its symmetrisation (measured: 8.7 N^2 float64 at N = 4,000 GloVe words).
EXACT_BYTES_PER_PAIR = 9 * 8


def random_state_of(random_state):
    """Return ``(rng, seed)``: a RandomState for numpy, and what to seed other searches with.

    ``random_state`` may be None, an int in [0, 2**32), a ``numpy.random.RandomState``
    (used as is) or a ``numpy.random.Generator``: one integer is drawn from the
    Generator (advancing it), so the same Generator state gives the same embedding.
    ``seed`` is that integer for a Generator and ``random_state`` itself otherwise.

    Examples
    --------
    >>> rng, seed = random_state_of(np.random.default_rng(0))
    >>> isinstance(rng, np.random.RandomState), isinstance(seed, int)
    (True, True)
    """
    if isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(2**32))
        return np.random.RandomState(seed), seed
    if isinstance(random_state, np.random.RandomState):
        return random_state, random_state
    if random_state is None:
        return np.random.RandomState(), None
    if (
        isinstance(random_state, numbers.Integral)
        and not isinstance(random_state, bool)
        and 0 <= random_state < 2**32
    ):
        return np.random.RandomState(int(random_state)), int(random_state)
    raise InputError(
        "random_state: expected None, an integer from 0 to 2**32 - 1, a "
        f"numpy.random.Generator or a numpy.random.RandomState, got {random_state!r:.60}; "
        "pass e.g. random_state=0"
    )


def preprocess(X, metric, normalize, n_components, rng):
    """Return ``X`` normalised and reduced as the TSNE parameters ask (never in place).

    Euclidean: ``normalize`` centres ``X`` and scales it by its largest absolute value,
    and ``n_components`` keeps that many principal components (PCA, centred). Cosine:
    no centring anywhere, since it would change which rows are neighbours; the rows
    are scaled to unit length and projected on their top ``n_components`` right
    singular vectors (an uncentred SVD), which keeps the cosine neighbours when the
    discarded singular values are small.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 8)) + 3.0
    >>> preprocess(X, "cosine", True, 4, np.random.RandomState(0)).shape
    (50, 4)
    """
    if normalize and metric == "euclidean":
        X = X - X.mean(axis=0)
        scale = np.abs(X).max()
        if scale > 0:
            X /= scale
    if n_components is None:
        return X
    n, d = X.shape
    if n_components > min(n, d):
        raise InputError(
            f"pca_components: expected at most min(n_samples, n_features) = {min(n, d)}, "
            f"got {n_components}; pass a smaller number or None"
        )
    if n_components == d:
        return X
    if metric == "euclidean":
        from sklearn.decomposition import PCA

        return PCA(n_components, random_state=rng).fit_transform(X)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    if n_components >= 0.8 * d or d <= 500:
        # full SVD of the (N, d) matrix: exact, and O(N d^2) is cheap for word vectors
        _, _, vt = np.linalg.svd(unit, full_matrices=False)
        return unit @ vt[:n_components].T
    from sklearn.decomposition import TruncatedSVD

    return TruncatedSVD(n_components, n_iter=7, random_state=rng).fit_transform(unit)


def initial_embedding(init, X, n_components, rng):
    """The initial layout (N, n_components), C-contiguous float64 (a copy of an array ``init``).

    "pca" and "random" are scaled to a standard deviation of ``INIT_STD`` in the
    first coordinate.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(20, 5))
    >>> Y = initial_embedding("pca", X, 2, np.random.RandomState(0))
    >>> Y.shape, round(float(Y[:, 0].std()), 6)
    ((20, 2), 0.0001)
    """
    n, d = X.shape[0], n_components
    if not isinstance(init, str):
        try:
            Y = np.array(init, dtype=np.float64, order="C")  # a copy: never the caller's
        except (TypeError, ValueError) as exc:
            raise InputError(
                "init: expected 'pca', 'random' or an array of numbers of shape "
                f"(n_samples, n_components) = ({n}, {d}), got an array that does not convert "
                f"to numbers ({exc})"
            ) from None
        if Y.shape != (n, d):
            raise InputError(
                f"init: expected an array of shape (n_samples, n_components) = ({n}, {d}), "
                f"got an array of shape {Y.shape}"
            )
        if not np.isfinite(Y).all():
            raise InputError(
                "init: expected finite coordinates, got NaN or infinite values; pass finite ones"
            )
        return Y
    if init == "pca" and d <= min(X.shape):
        from sklearn.decomposition import PCA

        Y = PCA(d, svd_solver="randomized", random_state=rng).fit_transform(X)
    else:
        Y = rng.standard_normal((n, d))
    std = Y[:, 0].std()
    Y *= INIT_STD / std if std > 0 else 1.0
    return np.ascontiguousarray(Y, dtype=np.float64)


def available_memory() -> int:
    """Bytes of memory available to this process now (psutil's estimate)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_exact_memory(n: int) -> None:
    """Raise InputError if ``method="exact"`` on ``n`` points needs over half the free memory.

    Examples
    --------
    >>> check_exact_memory(100)  # 100 points need under a megabyte
    """
    need = EXACT_BYTES_PER_PAIR * float(n) * float(n)
    free = available_memory()
    if need > free / 2:
        raise InputError(
            f"method='exact' on {n} points needs about {need / 2**30:.1f} GiB (O(N^2)), more "
            f"than half of the {free / 2**30:.1f} GiB of memory available; "
            "use method='barnes_hut'"
        )
