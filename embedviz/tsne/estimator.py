"""The t-SNE estimator: :class:`TSNE`.

t-SNE (van der Maaten and Hinton 2008) with the Barnes-Hut approximation of the
repulsive forces (van der Maaten 2014), sparse perplexity-calibrated input
affinities over the 3·perplexity nearest neighbours, early exaggeration, momentum,
delta-bar-delta gains or AdaGrad, and the learning rate of Belkina et al. (2019).
The work is split into plain-Python modules over numba kernels:
:mod:`~embedviz.tsne.affinity` (neighbours, perplexity, P),
:mod:`~embedviz.tsne.objective` (gradient and KL), :mod:`~embedviz.tsne.optimizer`
(the update rule) and :mod:`~embedviz.tsne.callbacks` (progress, callbacks).

This module holds :class:`TSNE`'s parameters, ``fit`` and the steps it runs before the
iterations (the affinities, the objective); the checks of the parameters and of ``X``
are :class:`~embedviz.tsne._validate.ParameterChecks`, the iterations (schedule,
callbacks, final KL) :class:`~embedviz.tsne._iterations.Iterations`, and the seed, the
preprocessing and the initial layout are in :mod:`embedviz.tsne._prepare`.
"""

import logging
import time

import numpy as np

from embedviz._defaults import TSNE_DEFAULTS
from embedviz.errors import InputError
from embedviz.tsne._iterations import Iterations
from embedviz.tsne._validate import (  # noqa: F401  (METHODS, METRICS re-exported)
    METHODS,
    METRICS,
    ParameterChecks,
    _as_array,
)

logger = logging.getLogger("embedviz.tsne")

_D = TSNE_DEFAULTS
#: learning_rate="auto" with use_adagrad=True (see the TSNE docstring for the measurements)
ADAGRAD_AUTO_LEARNING_RATE = 5.0


class TSNE(ParameterChecks, Iterations):
    """t-Distributed Stochastic Neighbour Embedding, Barnes-Hut accelerated.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the embedding: 1, 2 or 3 for Barnes-Hut (a binary tree, a quadtree
        or an octree), any for ``method="exact"``.
    perplexity : float, default=30
        Effective number of neighbours, at least 1; each point's input similarities are
        calibrated over its ``3 * perplexity`` nearest neighbours.
    theta : float, default=0.5
        Barnes-Hut accuracy: a cell of size ``s`` at distance ``d`` stands for its points
        when ``s / d < theta``. 0 gives the exact gradient (slowly). scikit-learn calls
        it ``angle``.
    max_iter : int, default=1000
        Number of gradient-descent iterations. At or below ``stop_lying_iter`` every
        iteration is exaggerated and the layout is the exaggerated one (a warning says so).
    stop_lying_iter : int, default=250
        Iteration at which early exaggeration ends, or earlier if it collapses the
        embedding (see Notes); the iteration it really ended is ``stop_lying_iter_``.
    early_exaggeration : float, default=12
        Factor on the attractive forces before ``stop_lying_iter``.
    learning_rate : float or "auto", default="auto"
        Step size; ``"auto"`` is ``max(N / early_exaggeration, 50)`` (Belkina et al. 2019)
        with gains, and ``ADAGRAD_AUTO_LEARNING_RATE`` with AdaGrad (see
        ``use_adagrad``). As in bhtsne, Deeplearning4j and openTSNE the step is taken
        along the KL gradient divided by 4. The floor of 50 is 4 times below
        scikit-learn's (its 50 on the full gradient is 200 here), which matters for
        N < 2,400. The value used is stored in ``learning_rate_``.
    momentum, final_momentum : float, default=0.5, 0.8
        Momentum before and from ``switch_momentum_iter``.
    switch_momentum_iter : int, default=250
        Iteration at which the momentum switches to ``final_momentum``.
    use_adagrad : bool, default=False
        AdaGrad step scaling instead of delta-bar-delta gains. AdaGrad moves every
        coordinate by about ``learning_rate`` on its first step whatever the gradient's
        size, so the gains' N / 12 would throw the 1e-4-scale initial layout apart;
        ``"auto"`` is a fixed ADAGRAD_AUTO_LEARNING_RATE instead (see Notes).
    min_gain : float, default=0.01
        Lower bound of the gains.
    normalize : bool, default=True
        Centre the input and scale it by its largest absolute value (on a copy; as bhtsne
        and Deeplearning4j do). Only for ``metric="euclidean"``: cosine distances ignore
        scale, and centring would change which rows are neighbours.
    pca_components : int or None, default=None
        Reduce the input to this many dimensions before the neighbour search: principal
        components (PCA, centred) for ``metric="euclidean"``; for ``metric="cosine"``
        the rows are scaled to unit length and projected without centring (an
        uncentred SVD), so the cosine neighbours survive a near-lossless reduction.
    init : "pca", "random" or array of shape (N, n_components), default="pca"
        Initial embedding. "pca" and "random" are scaled to a standard deviation of 1e-4
        in the first coordinate; an array is used as given.
    method : "barnes_hut" or "exact", default="barnes_hut"
        "exact" is the O(N²) reference with P over all points; it needs about
        72 N² bytes, and an InputError is raised before starting when that exceeds
        half the available memory.
    metric : "euclidean" or "cosine", default="euclidean"
        Distance in the input space (word vectors are usually compared by cosine).
    tolerance : float, default=1e-5
        Tolerance of the perplexity binary search.
    reduce_perplexity : bool, default=False
        Lower the perplexity to the largest that fits when there are fewer than
        ``3 * perplexity + 1`` points, instead of raising an error.
    random_state : int, numpy Generator/RandomState or None, default=None
        Seed for the initialisation and the approximate neighbour search. For a given
        seed the embedding is identical whatever ``n_jobs``. A ``numpy.random.Generator``
        gives one seed (it is advanced by one draw), so the same Generator state gives
        the same embedding.
    n_jobs : int, default=-1
        Threads for the numba kernels; negative values count as in joblib: -1 all
        cores, -2 all but one. The fit leaves numba's threading layer as it is
        (see :func:`embedviz.tsne.prefer_workqueue` for the faster opt-in one).
    verbose : bool, default=False
        Show a progress bar on stderr (phase, iteration, KL, ETA).
    callbacks : callable, sequence of callables or None, default=()
        Each is called as ``callback(iteration, kl, embedding)`` every ``callback_every``
        iterations and after the last; returning True stops the run. ``embedding`` is a
        read-only copy of the layout after the iteration's step, safe to keep; ``kl`` is
        the KL computed with that iteration's gradient, i.e. of the layout before the
        step (the entry of ``kl_history_``). None means none.
        A callable with the attribute ``wants_info = True`` (such as
        :class:`~embedviz.stats.TSNEStats`) is called as
        ``callback(iteration, kl, embedding, info)`` instead, ``info`` a dict of
        ``phase`` ("exaggeration" or "main"), ``grad_norm`` (the gradient's Frobenius
        norm), ``exaggeration``, ``momentum``, ``learning_rate``, ``elapsed`` (seconds
        since the optimisation began), ``n_samples`` and ``max_iter``.
    callback_every : int, default=50
        How often the KL is computed (for ``kl_history_``, with or without callbacks)
        and the callbacks run.

    Attributes
    ----------
    embedding_ : ndarray of shape (N, n_components)
    n_features_in_ : int
        Number of input columns seen by ``fit``.
    kl_divergence_ : float
        KL(P || Q) of the final embedding.
    kl_history_ : list of (int, float)
        ``(iteration, KL)`` every ``callback_every`` iterations and at the last, whatever
        ``verbose`` and ``callbacks`` are. The KL is KL(P || Q) of the un-exaggerated P,
        computed with that iteration's gradient from the layout before its step (one
        logarithm per non-zero of P: ~1 % of a fit's time at ``callback_every=50``,
        measured on digits and 5,000 GloVe words); so the last entry is one step behind
        ``kl_divergence_``, the KL of the final layout, and differs from it slightly.
    n_iter_ : int
        Iterations run.
    learning_rate_ : float
    stop_lying_iter_ : int
        The last exaggerated iteration: ``stop_lying_iter``, or earlier when the
        exaggeration collapsed the embedding, or the last iteration run (``n_iter_``)
        when the run ended first.
    perplexity_ : float
        The perplexity used (lowered only with ``reduce_perplexity=True``).
    neighbors_ : tuple of ndarray
        ``(indices, distances)`` of shape (N, k): each point's nearest neighbours in the
        space the affinities were computed in (after ``normalize`` and ``pca_components``);
        cosine distances are ``1 - cos``.
    P_ : scipy.sparse.csr_matrix
        The symmetric input affinities.
    timings_ : dict
        Seconds spent on "neighbors", "affinities", "compile" (the kernels' first run:
        numba compiles them when its cache is empty, seconds once per install, else
        ~0.05 s) and "optimize" (the iterations and the final KL).

    Notes
    -----
    Early exaggeration can collapse the embedding. While the points are much closer than
    1 (the initial scale is 1e-4) the Student-t kernel is flat, Q is uniform, and the
    exaggerated gradient is linear in the embedding. When the neighbour graph is one
    well-connected blob (e.g. the 300 most frequent words at perplexity 30:
    ``early_exaggeration`` times the second-smallest eigenvalue of the Laplacian of P
    exceeds ``1 / (N - 1)``) every direction contracts, and the layout shrinks
    geometrically (to ~1e-20 after 250 iterations) without changing its shape any
    more; the unexaggerated iterations then spend ~70 iterations regrowing it. So the
    exaggeration ends as soon as the embedding's spread (root-mean-square distance to
    its centroid) falls below 1/1000 of its initial spread. The momentum keeps its own
    schedule. Where the layout grows under exaggeration (clustered data, larger N)
    nothing changes.

    AdaGrad's ``learning_rate="auto"`` is a fixed 5 (``ADAGRAD_AUTO_LEARNING_RATE``),
    measured with PCA init, seed 0 and the default schedule (trustworthiness with 10
    neighbours, KL; gains at their own "auto" for comparison):

    =====================  ==============  ===============  ===============  =============
    data                   lr 2            lr 5             lr 20            gains
    =====================  ==============  ===============  ===============  =============
    digits (1,797)         0.9915, 0.986   0.9917, 0.979    0.9841, 0.903    0.9933, 0.748
    GloVe 5k, cosine       0.9647, 2.373   0.9655, 2.373    0.8745, 3.512    0.9639, 1.985
    GloVe 20k, cosine      0.9764, 3.292   0.9776, 3.285    -                0.9809, 2.607
    =====================  ==============  ===============  ===============  =============

    N / 12 (150 on digits) gives trustworthiness 0.56 and lr 100 on GloVe 5k 0.54:
    AdaGrad moves every coordinate by about the learning rate on its first steps,
    whatever the gradient's size. Its steps then shrink like 1 / sqrt(iteration), so
    the layout stays compact (standard deviation ~11 against ~35 with gains) and the
    KL higher; the gains remain the better default.

    Every option of Deeplearning4j's ``BarnesHutTsne.Builder`` has an equivalent:

    ==================================  ==========================================
    Deeplearning4j                      embedviz
    ==================================  ==========================================
    ``setMaxIter(n)``                   ``max_iter=n``
    ``stopLyingIteration(n)``           ``stop_lying_iter=n``
    ``learningRate(x)``                 ``learning_rate=x`` (same convention)
    ``useAdaGrad(b)``                   ``use_adagrad=b``
    ``theta(x)``                        ``theta=x``
    ``setMomentum(x)``                  ``momentum=x``
    ``setFinalMomentum(x)``             ``final_momentum=x``
    ``setSwitchMomentumIteration(n)``   ``switch_momentum_iter=n``
    ``normalize(b)``                    ``normalize=b``
    ``usePca(b)``                       ``pca_components=k`` (None = off)
    ``perplexity(x)``                   ``perplexity=x``
    ``tolerance(x)``                    ``tolerance=x`` (perplexity search)
    ``numDimension(n)``                 ``n_components=n``
    ``similarityFunction(s)``           ``metric="euclidean"`` or ``"cosine"``
    ``staticInit(arr)``                 ``init=arr``
    ``minGain(x)``                      ``min_gain=x``
    ==================================  ==========================================

    Unlike Deeplearning4j's, the tree here really splits (theta trades accuracy for speed
    from 257 points on; below that every pair is computed exactly, whatever theta) and
    the input similarities always follow the perplexity.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data[:300]
    >>> Y = TSNE(random_state=0, max_iter=300).fit_transform(X)
    >>> Y.shape
    (300, 2)
    """

    def __init__(
        self,
        n_components=_D["n_components"],
        perplexity=_D["perplexity"],
        theta=_D["theta"],
        max_iter=_D["max_iter"],
        stop_lying_iter=_D["stop_lying_iter"],
        early_exaggeration=_D["early_exaggeration"],
        learning_rate=_D["learning_rate"],
        momentum=_D["momentum"],
        final_momentum=_D["final_momentum"],
        switch_momentum_iter=_D["switch_momentum_iter"],
        use_adagrad=_D["use_adagrad"],
        min_gain=_D["min_gain"],
        normalize=_D["normalize"],
        pca_components=_D["pca_components"],
        init=_D["init"],
        method=_D["method"],
        metric=_D["metric"],
        tolerance=_D["tolerance"],
        reduce_perplexity=_D["reduce_perplexity"],
        random_state=_D["random_state"],
        n_jobs=_D["n_jobs"],
        verbose=_D["verbose"],
        callbacks=_D["callbacks"],
        callback_every=_D["callback_every"],
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.theta = theta
        self.max_iter = max_iter
        self.stop_lying_iter = stop_lying_iter
        self.early_exaggeration = early_exaggeration
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.switch_momentum_iter = switch_momentum_iter
        self.use_adagrad = use_adagrad
        self.min_gain = min_gain
        self.normalize = normalize
        self.pca_components = pca_components
        self.init = init
        self.method = method
        self.metric = metric
        self.tolerance = tolerance
        self.reduce_perplexity = reduce_perplexity
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.callbacks = callbacks
        self.callback_every = callback_every

    def __repr__(self):
        changed = [
            f"{name}={getattr(self, name)!r}"
            for name, default in _D.items()
            if _differs(getattr(self, name), default)
        ]
        return f"TSNE({', '.join(changed)})"

    def get_params(self, deep=True):
        """Parameters as a dict (scikit-learn's estimator protocol)."""
        return {name: getattr(self, name) for name in _D}

    def set_params(self, **params):
        """Set parameters by keyword (scikit-learn's estimator protocol)."""
        for name, value in params.items():
            if name not in _D:
                raise InputError(f"TSNE has no parameter {name!r}; valid: {', '.join(_D)}")
            setattr(self, name, value)
        return self

    # -- fitting -------------------------------------------------------------------

    def fit_transform(self, X, y=None):
        """Fit to ``X`` of shape (N, n_features) and return the embedding (N, n_components)."""
        return self.fit(X).embedding_

    def fit(self, X, y=None):
        """Compute the embedding of ``X`` (an array of shape (N, n_features)); returns self.

        An InputError says what is wrong with ``X``, e.g. when all its rows are the same
        point (with ``metric="cosine"``: point the same way), which leaves t-SNE nothing
        to separate; duplicates of some rows are fine.
        """
        from embedviz.tsne._prepare import (
            check_exact_memory,
            initial_embedding,
            preprocess,
            random_state_of,
        )
        from embedviz.tsne._threads import numba_threads
        from embedviz.tsne.affinity import check_data, check_distinct_rows

        self._check_params()
        rng, seed = random_state_of(self.random_state)
        X = check_data(_as_array(X), self.metric)
        check_distinct_rows(X, self.metric)
        n = X.shape[0]
        self.n_features_in_ = X.shape[1]
        self.perplexity_ = self._check_perplexity(n)
        if self.method == "exact":
            check_exact_memory(n)

        X = preprocess(X, self.metric, self.normalize, self.pca_components, rng)
        self.learning_rate_ = self._resolve_learning_rate(n)
        Y = initial_embedding(self.init, X, self.n_components, rng)
        with numba_threads(self.n_jobs):
            self.P_ = self._affinities(X, seed)
            objective = self._objective()
            self._optimize(Y, objective)
        self.embedding_ = Y
        return self

    def _resolve_learning_rate(self, n):
        if not isinstance(self.learning_rate, str):
            return float(self.learning_rate)
        if self.use_adagrad:
            return ADAGRAD_AUTO_LEARNING_RATE
        return max(n / self.early_exaggeration, 50.0)

    def _affinities(self, X, seed):
        from embedviz.tsne.affinity import joint_probabilities, nearest_neighbors

        n = X.shape[0]
        k = n - 1 if self.method == "exact" else min(n - 1, int(3 * self.perplexity_))
        timings = self.timings_ = {}
        t0 = time.perf_counter()
        indices, distances = nearest_neighbors(
            X,
            k,
            metric=self.metric,
            method="exact" if self.method == "exact" else "auto",
            # the user's seed, not `rng`: without a seed the approximate search may use
            # every thread
            random_state=seed,
            n_jobs=self.n_jobs,
        )
        t1 = time.perf_counter()
        P = joint_probabilities(
            indices, distances, self.perplexity_, metric=self.metric, tolerance=self.tolerance
        )
        timings["neighbors"] = t1 - t0
        timings["affinities"] = time.perf_counter() - t1
        logger.info(
            "t-SNE: %d points, %d neighbours each: neighbours %.2f s, affinities %.2f s",
            n,
            k,
            timings["neighbors"],
            timings["affinities"],
        )
        self.neighbors_ = (indices, distances)
        return P

    def _objective(self):
        from embedviz.tsne.objective import BarnesHutGradient, ExactGradient

        if self.method == "exact":
            return ExactGradient(self.P_, self.n_components)
        return BarnesHutGradient(self.P_, self.n_components, theta=self.theta)


def _differs(value, default):
    if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
        return True
    try:
        return bool(value != default)
    except Exception:  # objects whose comparison is not a bool
        return True
