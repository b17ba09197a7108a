"""The iterations of :meth:`TSNE.fit <embedviz.tsne.estimator.TSNE.fit>`.

:class:`Iterations` is mixed into TSNE and holds its optimisation loop
(:meth:`~Iterations._optimize`), which runs once the affinities and the objective are
ready: the schedule (early exaggeration until ``stop_lying_iter``, or until it has
collapsed the embedding, see the Notes of TSNE; the momentum switch at
``switch_momentum_iter``), one step of :class:`~embedviz.tsne.optimizer.GradientDescent`
per iteration, the KL and the callbacks every ``callback_every`` iterations and at the
last, the progress bar, and the KL of the final embedding. It sets the fitted
``kl_history_``, ``stop_lying_iter_``, ``kl_divergence_``, ``n_iter_`` and the
"compile" and "optimize" entries of ``timings_``. It reads TSNE's parameters of the
optimisation (``max_iter``, ``stop_lying_iter``, ``early_exaggeration``,
``switch_momentum_iter``, ``momentum``, ``final_momentum``, ``use_adagrad``, ``min_gain``,
``callback_every``, ``verbose``) and what ``fit`` resolved before it (``learning_rate_``,
``_callbacks``).
"""

import logging
import time

import numpy as np

logger = logging.getLogger("embedviz.tsne")

# Early exaggeration ends once it has shrunk the embedding to this fraction of its initial
# spread (see the Notes of TSNE). Runs that do not collapse dip at most ~28-fold (measured:
# random init, 5,000 GloVe words); collapsing ones shrink ~1e16-fold by iteration 250.
_COLLAPSE_RATIO = 1e-3


class Iterations:
    """TSNE's optimisation loop (see the module docstring); not usable on its own."""

    def _optimize(self, Y, objective):
        from embedviz.tsne.callbacks import ProgressBar, run_callbacks
        from embedviz.tsne.optimizer import GradientDescent

        n = Y.shape[0]
        optimizer = GradientDescent(
            Y.shape, self.learning_rate_, use_adagrad=self.use_adagrad, min_gain=self.min_gain
        )
        callbacks = self._callbacks
        self.kl_history_ = []
        self.stop_lying_iter_ = stop_lying = self.stop_lying_iter
        collapsed_below = _COLLAPSE_RATIO * _spread(Y)
        iteration = 0
        with ProgressBar(total=self.max_iter, disable=not self.verbose) as bar:
            warm = time.perf_counter()
            with bar.warming_up():
                _warm_up(objective)
            start = time.perf_counter()
            self.timings_["compile"] = start - warm
            for iteration in range(1, self.max_iter + 1):
                exaggerating = iteration <= stop_lying
                if exaggerating and _spread(Y) < collapsed_below:
                    self.stop_lying_iter_ = stop_lying = iteration - 1
                    exaggerating = False
                    logger.info(
                        "t-SNE: early exaggeration ended at iteration %d instead of %d: it had "
                        "shrunk the embedding %.0f-fold (every direction contracts)",
                        stop_lying,
                        self.stop_lying_iter,
                        1 / _COLLAPSE_RATIO,
                    )
                exaggeration = self.early_exaggeration if exaggerating else 1.0
                momentum = (
                    self.momentum if iteration <= self.switch_momentum_iter else self.final_momentum
                )
                # the KL comes with the gradient (one log per non-zero of P: ~1 ms on
                # 5,000 GloVe words, ~1 % of a fit at callback_every=50), so the history
                # is kept whether or not anything reads it during the run
                report = iteration % self.callback_every == 0 or iteration == self.max_iter
                grad, kl = objective(Y, exaggeration, compute_kl=report)
                optimizer.step(Y, grad, momentum)
                phase = "exaggeration" if exaggerating else "main"
                if not np.isfinite(Y).all():
                    raise FloatingPointError(
                        f"the embedding diverged at iteration {iteration} (NaN or inf); "
                        f"try a smaller learning_rate (used {self.learning_rate_:g})"
                    )
                stop = False
                if report:
                    self.kl_history_.append((iteration, float(kl)))
                if report and callbacks:
                    info = {
                        "phase": phase,
                        "grad_norm": float(np.linalg.norm(grad)),
                        "exaggeration": float(exaggeration),
                        "momentum": float(momentum),
                        "learning_rate": self.learning_rate_,
                        "elapsed": time.perf_counter() - start,
                        "n_samples": n,
                        "max_iter": self.max_iter,
                    }
                    stop = run_callbacks(callbacks, iteration, float(kl), Y, info)
                bar.update(iteration, phase, kl if report else None)
                if stop:
                    logger.info("t-SNE stopped by a callback at iteration %d", iteration)
                    break
            # the KL of the final embedding: the last iteration's KL (when it computed
            # one) is that of the embedding before its step, so one more evaluation
            _, kl = objective(Y, 1.0, compute_kl=True)
            self.kl_divergence_ = float(kl)
            bar.finish(self.kl_divergence_)
        self.n_iter_ = iteration
        if stop_lying >= iteration:  # the exaggeration was still on at the end
            self.stop_lying_iter_ = iteration
            if not stop and self.early_exaggeration != 1.0:
                logger.warning(
                    "t-SNE: max_iter=%d leaves no iteration after early exaggeration "
                    "(stop_lying_iter=%d): all %d iterations were exaggerated, so the layout "
                    "is the exaggerated one (clusters tighter and further apart, a higher KL "
                    "than a full run's); set max_iter above stop_lying_iter",
                    self.max_iter,
                    self.stop_lying_iter,
                    iteration,
                )
        self.timings_["optimize"] = time.perf_counter() - start
        compiled = (
            f" (after {bar.compile_seconds:.1f} s compiling the kernels)"
            if bar.compile_seconds is not None
            else ""
        )
        logger.info(
            "t-SNE: %d iterations in %.2f s%s, KL %.4f",
            iteration,
            self.timings_["optimize"],
            compiled,
            self.kl_divergence_,
        )


def _warm_up(objective):
    """Run the kernels of ``objective`` once on 8 points, before the progress bar counts
    iterations: numba compiles them on a first run (seconds; cached afterwards, then this
    costs ~1 ms). The argument types are those of the real run (float64 layout, int32
    column indices, the same dimension), so nothing compiles again at iteration 1."""
    import scipy.sparse as sp

    from embedviz.tsne._threads import numba_threads

    n, d = 8, objective.n_components
    uniform = sp.csr_matrix((np.ones((n, n)) - np.eye(n)) / (n * (n - 1)))
    tiny = type(objective)(uniform, d)
    with numba_threads(1):  # waking the other threads for 8 points costs ~15 ms
        tiny(np.random.RandomState(0).standard_normal((n, d)), 1.0, compute_kl=True)


def _spread(Y):
    """Root-mean-square distance of the rows of ``Y`` to their centroid.

    From the sums (mean |y|^2 - |centroid|^2), without the N x d copy of the centred
    rows that every exaggeration iteration would otherwise allocate. When the embedding
    sits far from the origin compared with its spread, the difference of the two sums
    loses digits: then the centred rows are summed instead.
    """
    n = len(Y)
    centroid = Y.sum(axis=0) / n
    far = float(centroid @ centroid)
    squared = float(np.vdot(Y, Y)) / n - far
    if squared <= 1e-8 * far:  # under ~1e-8 of the digits left: the exact two passes
        centred = Y - centroid
        squared = float(np.vdot(centred, centred)) / n
    return float(np.sqrt(max(squared, 0.0)))
