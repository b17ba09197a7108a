"""Callbacks and progress reporting for :class:`embedviz.TSNE`.

The callback protocol (shared with openTSNE) is ``callback(iteration, kl, embedding)
-> stop?``: it runs every ``callback_every`` iterations and after the last one, and
the KL divergence is computed only on those iterations. ``embedding`` is a read-only
copy of the current layout (N, n_components): keep it as it is, it does not change
afterwards; writing to it raises ValueError. A callable with the attribute
``wants_info = True`` is called as ``callback(iteration, kl, embedding, info)`` with
``info`` a dict of ``phase``, ``grad_norm``, ``exaggeration``, ``momentum``,
``learning_rate``, ``elapsed``, ``n_samples`` and ``max_iter``.
"""

import logging
import sys

logger = logging.getLogger("embedviz.tsne")


def run_callbacks(callbacks, iteration, kl, embedding, info):
    """Call every callback; return True when any asks the run to stop.

    The callbacks get a read-only copy of ``embedding``: they may keep it (e.g. the
    frames of an animation), and none can change the run.
    """
    if not callbacks:
        return False
    embedding = embedding.copy()
    embedding.flags.writeable = False
    stop = False
    for callback in callbacks:
        if getattr(callback, "wants_info", False):
            result = callback(iteration, kl, embedding, info)
        else:
            result = callback(iteration, kl, embedding)
        stop = stop or bool(result)
    return stop


class ProgressBar:
    """A tqdm bar on stderr for the optimisation: phase, iteration, KL and ETA.

    Updated every iteration (tqdm limits how often it redraws); the KL shown is the
    latest one computed.

    Examples
    --------
    >>> with ProgressBar(total=10, disable=True) as bar:
    ...     bar.update(1, phase="exaggeration", kl=None)
    """

    def __init__(self, total, disable=False, file=None):
        self.total = total
        self.disable = disable
        self.file = file if file is not None else sys.stderr
        self._bar = None
        self._kl = None
        self._phase = None

    def __enter__(self):
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self.total,
            desc="t-SNE",
            unit="it",
            file=self.file,
            disable=self.disable,
            dynamic_ncols=True,
            leave=True,
            # redraw often on a terminal, rarely into a log file
            mininterval=0.1 if _isatty(self.file) else 5.0,
        )
        return self

    def update(self, iteration, phase, kl=None):
        """Advance the bar to ``iteration`` (1-based, iterations done)."""
        changed = False
        if kl is not None:
            self._kl = kl
            changed = True
        if phase != self._phase:
            self._phase = phase
            changed = True
        if changed:
            postfix = {"phase": phase}
            if self._kl is not None:
                postfix["KL"] = f"{self._kl:.4f}"
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(iteration - self._bar.n)

    def __exit__(self, *exc):
        self._bar.close()
        return False


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
