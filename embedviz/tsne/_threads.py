"""Numba's thread count for a block of code, restored afterwards.

Threading layer: embedviz leaves numba's choice alone (``NUMBA_THREADING_LAYER`` or
numba's default order tbb > omp > workqueue). It never changes the layer at import
time or behind the user's back.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np

from embedviz.errors import InputError


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
            f"n_jobs must be a positive integer or a negative one (-1: all {available} "
            f"threads), got {n_jobs!r}; pass e.g. n_jobs=-1"
        )
    n_jobs = int(n_jobs)
    if n_jobs < 0:
        n_jobs = available + 1 + n_jobs
    return max(1, min(n_jobs, available))


@contextmanager
def numba_threads(n_jobs: int) -> Iterator[int]:
    """Run the block with numba's thread count set to ``n_jobs``; restore it afterwards.

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
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)
