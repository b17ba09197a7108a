"""The end of a :class:`~embedviz.stats.sqlite_storage.SQLiteStatsStorage`'s writing:
what a producer's close and the interpreter's exit do with what it still buffers.

:func:`flush_at_close` is the flush of a producer whose work is done, and an exit
handler writes what open storages still buffer (their writer threads are daemons); both
wait at most :data:`CLOSE_WAIT` seconds for the file and log one error instead of
raising. :mod:`embedviz.stats.sqlite_writer` registers a storage here when its writer
thread starts; the storage's ``close()`` takes it out.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import weakref

from embedviz.errors import StatsWriteError

# the storage's logger: one name to configure for everything the storage says
log = logging.getLogger("embedviz.stats.sqlite_storage")

#: seconds a producer's close and interpreter exit wait for the file (see flush_at_close)
CLOSE_WAIT = 5.0
_OPEN: weakref.WeakSet = weakref.WeakSet()  # storages with a writer thread


@atexit.register
def _flush_at_exit() -> None:
    """Write what open storages still buffer (their writer threads are daemons), waiting
    at most :data:`CLOSE_WAIT` seconds for each file; what cannot be written then is
    lost, said in one line. Never in a forked child, which holds a copy of its parent's
    buffer and connection."""
    for storage in list(_OPEN):
        if storage._pid != os.getpid():
            continue
        try:
            storage._flush_within(CLOSE_WAIT, quiet=True)
        except StatsWriteError as exc:
            log.error(
                "at exit: %s: %d statistics record(s) are lost: not written within %g s "
                "(%s)", exc.path, exc.unwritten, CLOSE_WAIT, exc.cause,
            )  # fmt: skip
        except Exception:
            log.exception("writing statistics to %s at exit failed", storage.path)


def flush_at_close(storage, producer: str) -> None:
    """The flush of a statistics producer whose work is done (``StatsListener.close()``,
    ``TSNEStats.close()``, Word2VecStats at the end of training): it never raises
    :class:`StatsWriteError` into the training script.

    A SQLite storage is given at most :data:`CLOSE_WAIT` seconds; when its file cannot
    be written by then, one error says how many records are not written, that they stay
    buffered in the storage, which keeps trying, and that the storage's ``close()`` says
    whether they were written. Any other storage is flushed as it is (a
    :class:`~embedviz.stats.remote.RemoteStatsRouter` waits 5 s and logs). Other
    exceptions (bugs) propagate.

    Parameters
    ----------
    storage : StatsStorage
        The producer's storage.
    producer : str
        Who closes, for the message (``"StatsListener"``).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> flush_at_close(InMemoryStatsStorage(), "StatsListener")
    """
    # a SQLite storage: the class with the bounded flush (sqlite_writer.SQLiteWriting,
    # which imports this module, so it is not named here)
    if getattr(type(storage), "_flush_within", None) is None:
        storage.flush()
        return
    start = time.monotonic()
    try:
        storage._flush_within(CLOSE_WAIT, quiet=True)  # this error says it all
    except StatsWriteError as exc:
        # "within 5 s" only when it waited: a full disk fails at once
        waited = f" within {CLOSE_WAIT:g} s" if time.monotonic() - start >= CLOSE_WAIT / 2 else ""
        log.error(
            "%s closed, but %d statistics record(s) are not written to %s%s (%s); they stay "
            "buffered in the storage, which keeps trying to write them; the storage's "
            "close() says whether they were written",
            producer, exc.unwritten, exc.path, waited, exc.cause,
        )  # fmt: skip
