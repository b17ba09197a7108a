"""Callbacks and progress reporting for :class:`embedviz.TSNE`.

The callback protocol (shared with openTSNE) is ``callback(iteration, kl, embedding)
-> stop?``: it runs every ``callback_every`` iterations and after the last one, and
the KL divergence is computed only on those iterations. ``embedding`` is a read-only
copy of the current layout (N, n_components): keep it as it is, it does not change
afterwards; writing to it raises ValueError. A callable with the attribute
``wants_info = True`` is called as ``callback(iteration, kl, embedding, info)`` with
``info`` a dict of ``phase``, ``grad_norm``, ``exaggeration``, ``momentum``,
``learning_rate``, ``elapsed``, ``n_samples`` and ``max_iter``.

:class:`ProgressBar` also covers the kernels' first run before the iterations: numba
compiles them then when its cache is empty (seconds, once per install), and the bar
says so instead of counting that time into its rate and ETA.
"""

import logging
import sys
import threading
import time
from contextlib import contextmanager

logger = logging.getLogger("embedviz.tsne")

#: the kernels' first run says it is compiling once it has lasted this long (a run
#: that loads them from numba's cache takes ~0.05 s)
COMPILE_NOTICE_AFTER = 0.5
COMPILE_NOTICE = "compiling the kernels, first run only"


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
    latest one computed, and :meth:`finish` shows the final one. :meth:`warming_up`
    goes around the kernels' first run, before the iterations.

    Examples
    --------
    >>> with ProgressBar(total=10, disable=True) as bar:
    ...     with bar.warming_up():
    ...         pass  # the kernels' first run
    ...     bar.update(1, phase="exaggeration", kl=None)
    ...     bar.finish(kl=1.5)
    """

    def __init__(self, total, disable=False, file=None):
        self.total = total
        self.disable = disable
        self.file = file if file is not None else sys.stderr
        self._bar = None
        self._kl = None
        self._phase = None
        self.compile_seconds = None  # set by warming_up when it gave its notice

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

    @contextmanager
    def warming_up(self, after=COMPILE_NOTICE_AFTER):
        """Around the kernels' first run: when it lasts longer than ``after`` seconds
        (numba compiling them), say so in the bar's description, or in the log when the
        bar is off; then restart the bar's clock, so that its rate and ETA count the
        iterations only. ``compile_seconds`` is then the time it took (else None).
        """
        noticed = threading.Event()

        def notice():
            noticed.set()
            if self.disable:
                logger.info("t-SNE: %s (numba caches them for later runs)", COMPILE_NOTICE)
            else:
                self._bar.set_description_str(f"t-SNE ({COMPILE_NOTICE})")

        timer = threading.Timer(after, notice)
        timer.daemon = True
        start = time.perf_counter()
        timer.start()
        try:
            yield self
        finally:
            timer.cancel()
            timer.join()  # a notice under way ends before the bar moves on
            if noticed.is_set():
                self.compile_seconds = time.perf_counter() - start
                if not self.disable:
                    self._bar.set_description_str("t-SNE", refresh=False)
                    self._bar.reset()

    def finish(self, kl):
        """Show ``kl``, the final embedding's KL, as the bar's last value."""
        self._kl = kl
        postfix = {"phase": self._phase} if self._phase else {}
        postfix["KL"] = f"{kl:.4f}"
        self._bar.set_postfix(postfix, refresh=False)

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
