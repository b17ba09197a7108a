"""Numba's thread count for a block of code, and an opt-in threading layer.

Threading layer. Numba runs ``prange`` loops on one of three layers: ``tbb``,
``omp`` (OpenMP) or ``workqueue``; by default the first one that loads (here, with
no TBB installed, ``omp``). Measured on a 2-core machine shared with other
processes (scripts/bench_gradient.py, 20k points, 2 threads), one gradient
evaluation took a median of 44-97 ms with ``omp`` and 22-30 ms with
``workqueue``: idle OpenMP threads spin while they wait, and on busy cores that
spinning takes the time slices the working threads need. On an idle machine the
two are alike.

The layer is a process-wide choice, and ``workqueue`` aborts the process when
parallel numba code runs from two Python threads at once (anyone's: pynndescent's,
UMAP's, the user's). So embedviz never chooses it on its own: a library user's
process keeps numba's default. Programs that own their process (the ``embedviz``
command, the bench scripts) call :func:`prefer_workqueue` at start-up; a library
user may do the same, or set ``NUMBA_THREADING_LAYER=workqueue``.

Whatever the layer, :func:`numba_threads` keeps embedviz's own kernels safe on
``workqueue``: while it is the active layer, the block holds a process-wide lock,
so two fits in two Python threads run one after the other.
"""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np

from embedviz.errors import InputError

_LOCK = threading.RLock()
_USER_SETTINGS = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY")


def resolve_n_jobs(n_jobs: int) -> int:
    """Return the number of threads that ``n_jobs`` asks for (-1: all of numba's threads).

    Negative values count back from all threads as in joblib (-2: all but one).

    Examples
    --------
    >>> resolve_n_jobs(1)
    1
    """
    available = int(numba.config.NUMBA_NUM_THREADS)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs == 0:
        raise InputError(
            f"n_jobs: expected a positive integer or a negative one as in joblib (-1: all "
            f"{available} threads, -2: all but one), got {n_jobs!r:.60}; pass e.g. n_jobs=-1"
        )
    n_jobs = int(n_jobs)
    if n_jobs < 0:
        n_jobs = available + 1 + n_jobs
    return max(1, min(n_jobs, available))


def prefer_workqueue() -> bool:
    """Choose numba's ``workqueue`` threading layer for this process, if still possible.

    Opt-in, for programs that own their process (the ``embedviz`` command, the bench
    scripts): ``workqueue`` is faster than OpenMP on busy cores (see the module
    docstring), but numba then aborts the process if any parallel numba code runs
    from two Python threads at once. Nothing changes, and False is returned, when

    * the environment sets ``NUMBA_THREADING_LAYER`` or
      ``NUMBA_THREADING_LAYER_PRIORITY``,
    * ``numba.config.THREADING_LAYER`` is no longer ``"default"`` (set in code or in
      a numba config file), or
    * numba has already started its threads (a parallel kernel has run).

    Returns
    -------
    bool
        True if the layer was set now.

    Examples
    --------
    >>> prefer_workqueue() in (True, False)
    True
    """
    from numba.np.ufunc import parallel

    if any(os.environ.get(name) for name in _USER_SETTINGS):
        return False
    if str(numba.config.THREADING_LAYER).lower() != "default" or parallel._is_initialized:
        return False
    numba.config.THREADING_LAYER = "workqueue"
    return True


@contextmanager
def numba_threads(n_jobs: int) -> Iterator[int]:
    """Run the block with numba's thread count set to ``n_jobs``; restore it afterwards.

    The threading layer is left as it is (see :func:`prefer_workqueue`); on
    ``workqueue`` the block holds a process-wide lock.

    Parameters
    ----------
    n_jobs : int
        Number of threads; -1 means all of numba's threads (``NUMBA_NUM_THREADS``,
        by default the number of cores), -2 all but one, and so on.

    Yields
    ------
    int
        The thread count in effect inside the block.

    Examples
    --------
    >>> with numba_threads(1) as n:
    ...     n
    1
    """
    n = resolve_n_jobs(n_jobs)
    previous = numba.get_num_threads()  # starts numba's threads if not yet started
    serialise = numba.threading_layer() == "workqueue"
    if serialise:
        _LOCK.acquire()
    try:
        numba.set_num_threads(n)
        try:
            yield n
        finally:
            numba.set_num_threads(previous)
    finally:
        if serialise:
            _LOCK.release()
