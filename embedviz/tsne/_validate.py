"""What :class:`~embedviz.tsne.estimator.TSNE` accepts: its parameters and ``X``.

:class:`ParameterChecks` is mixed into TSNE: :meth:`~ParameterChecks._check_params`
runs first in ``fit`` (and in the CLI, to refuse a bad option before reading any
vectors) and checks every parameter, raising one InputError that names it, what is
allowed and the value given; :meth:`~ParameterChecks._check_perplexity` checks the
perplexity against the number of points. :func:`_as_array` turns ``X`` into an array
or says what ``fit`` takes; :func:`embedviz.tsne.affinity.check_data` checks the rest.
"""

import numpy as np

from embedviz._check import check_choice, check_int, check_number
from embedviz.errors import InputError

METHODS = ("barnes_hut", "exact")
METRICS = ("euclidean", "cosine")


class ParameterChecks:
    """TSNE's checks of its parameters (see the module docstring); not usable on its own."""

    def _check_params(self):
        from embedviz.tsne._threads import resolve_n_jobs

        check_int("n_components", self.n_components, low=1)
        check_choice("method", self.method, METHODS)
        if self.method == "barnes_hut" and self.n_components > 3:
            raise InputError(
                "n_components: expected 1, 2 or 3 with method='barnes_hut' (a space-partitioning "
                f"tree), got {self.n_components!r}; use method='exact' for more"
            )
        check_choice("metric", self.metric, METRICS)
        check_number("perplexity", self.perplexity, low=1)
        check_number("theta", self.theta, low=0)
        check_int("max_iter", self.max_iter, low=1)
        check_int("stop_lying_iter", self.stop_lying_iter, low=0)
        check_int("switch_momentum_iter", self.switch_momentum_iter, low=0)
        check_int("callback_every", self.callback_every, low=1)
        check_number("early_exaggeration", self.early_exaggeration, low=0, low_open=True)
        _check_learning_rate(self.learning_rate)
        check_number("momentum", self.momentum, low=0, high=1)
        check_number("final_momentum", self.final_momentum, low=0, high=1)
        check_number("min_gain", self.min_gain, low=0)
        check_number("tolerance", self.tolerance, low=0, low_open=True)
        if self.pca_components is not None:
            check_int("pca_components", self.pca_components, low=1)
        resolve_n_jobs(self.n_jobs)  # the same rule as joblib's: -1 all, -2 all but one
        callbacks = () if self.callbacks is None else self.callbacks
        if callable(callbacks):
            callbacks = (callbacks,)
        for cb in callbacks:
            if not callable(cb):
                raise InputError(f"callbacks: expected callables, got {cb!r:.60}")
        self._callbacks = tuple(callbacks)
        if isinstance(self.init, str) and self.init not in ("pca", "random"):
            raise InputError(
                "init: expected 'pca', 'random' or an array of shape (N, n_components), "
                f"got {self.init!r:.60}"
            )

    def _check_perplexity(self, n):
        from embedviz.tsne.affinity import check_perplexity

        if self.method == "exact":  # P over all points: any perplexity below N works
            if self.perplexity >= n:
                raise InputError(
                    f"perplexity: expected a number below the number of points ({n}) with "
                    f"method='exact', got {self.perplexity!r}; pass a smaller perplexity"
                )
            return float(self.perplexity)
        return check_perplexity(n, self.perplexity, reduce=self.reduce_perplexity)


_KINDS = {"U": "str", "S": "bytes", "O": "object"}


def _as_array(X):
    """``X`` as a numpy array when it is one of numbers or any 2-D one (check_data says
    what else is wrong), else one InputError saying what ``fit`` takes: its
    "reshape a single feature" advice fits 1-D numbers only."""
    import scipy.sparse as sp

    if sp.issparse(X):
        return X  # check_data says how to convert it
    want = "X: expected a 2-D array of numbers of shape (n_samples, n_features), one row per point"
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as exc:  # rows of different lengths
        reason = str(exc).split(".")[0]
        raise InputError(
            f"{want}, got a {type(X).__name__} that numpy cannot make into one ({reason}); "
            "give every row the same number of values"
        ) from None
    if A.ndim == 0:
        got = "None" if X is None else f"{type(X).__name__} {X!r:.60}"
        raise InputError(f"{want}, got {got}")
    if A.ndim != 2 and A.dtype.kind in _KINDS:
        kind = _KINDS[A.dtype.kind]
        raise InputError(f"{want}, got a {A.ndim}-D array of {kind} of shape {A.shape}")
    return A


def _check_learning_rate(value):
    """``learning_rate``: "auto" or a finite number > 0."""
    if isinstance(value, str) and value == "auto":
        return
    try:
        check_number("learning_rate", value, low=0, low_open=True)
    except InputError:
        raise InputError(
            f"learning_rate: expected 'auto' or a number > 0, got {value!r:.60}"
        ) from None
