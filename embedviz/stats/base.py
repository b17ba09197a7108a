"""The storage interfaces: :class:`StatsStorage`, the write side every storage shares
(the in-memory and SQLite storages, and the remote router that only writes), and
:class:`StatsReader`, the read API of the storages that can be read back (the UI, the
report and the diagnostics read through it).

See :mod:`embedviz.stats.storage` for the read API in full. This module also holds the
event type passed to listeners and the helpers that pull one named scalar out of a
record.
"""

from __future__ import annotations

import logging
import numbers
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from embedviz.errors import InputError
from embedviz.stats.records import (
    EvalRecord,
    Histogram,
    Record,
    Snapshot,
    StaticInfo,
    Update,
)
from embedviz.stats.validation import check_record

if TYPE_CHECKING:
    from embedviz.stats.series import Series

log = logging.getLogger(__name__)


def check_storage(storage):
    """``storage`` when it is a statistics storage (it has ``put`` and ``flush``), else
    InputError; a path, the easy mistake, is named as such.

    Examples
    --------
    >>> check_storage("runs.db")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: storage: expected a statistics storage ..., got str 'runs.db'; ...
    """
    if callable(getattr(storage, "put", None)) and callable(getattr(storage, "flush", None)):
        return storage
    raise InputError(
        f"storage: expected a statistics storage (InMemoryStatsStorage, SQLiteStatsStorage "
        f"or RemoteStatsRouter), got {type(storage).__name__} {storage!r:.60}; "
        f"e.g. SQLiteStatsStorage('runs.db')"
    )


def read_worker_id(worker_id: Any) -> str | None:
    """A read's ``worker_id`` as the storages hold it: a string as given, an integer (a
    rank; numpy integers too, not bool) as its decimal string, None (every worker) as
    None; anything else is an InputError.

    Examples
    --------
    >>> read_worker_id(0), read_worker_id("gpu-1"), read_worker_id(None)
    ('0', 'gpu-1', None)
    >>> read_worker_id(0.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: worker_id: expected a string, an integer ... got 0.0
    """
    if worker_id is None or isinstance(worker_id, str):
        return worker_id
    if isinstance(worker_id, numbers.Integral) and not isinstance(worker_id, bool):
        return str(int(worker_id))
    raise InputError(
        "worker_id: expected a string, an integer (a rank: 0 reads worker '0') or None "
        f"(every worker), got {worker_id!r:.60}"
    )


class StorageEvent(NamedTuple):
    """What a storage listener is told: a record of ``kind`` arrived.

    ``kind`` is ``"static"``, ``"update"``, ``"eval"`` or ``"snapshot"``; ``iteration``
    is None for static info.
    """

    kind: str
    session_id: str
    worker_id: str
    iteration: int | None


def event_for(record: Record) -> StorageEvent:
    """The event that announces ``record``."""
    if isinstance(record, StaticInfo):
        return StorageEvent("static", record.session_id, record.worker_id, None)
    kind = {Update: "update", EvalRecord: "eval", Snapshot: "snapshot"}[type(record)]
    return StorageEvent(kind, record.session_id, record.worker_id, record.iteration)


def scalar_getter(name: str) -> Callable[[Update], float | None]:
    """A function returning the value of series ``name`` in an update (None if absent).

    Examples
    --------
    >>> from embedviz.stats.records import Update
    >>> scalar_getter("score")(Update("s", "0", 1, 0.0, score=0.5))
    0.5
    """
    head, _, rest = name.partition("/")
    if not rest:
        if name in ("score", "epoch", "examples_per_sec", "minibatches_per_sec", "collect_seconds"):
            return lambda u: getattr(u, name)
    elif head == "lr":
        try:
            group = int(rest)
        except ValueError:
            group = -1
        if group >= 0:
            return lambda u: u.learning_rates[group] if group < len(u.learning_rates) else None

        return lambda u: None
    elif head in ("params", "activations"):
        owner, _, stat = rest.rpartition("/")

        def get(u: Update) -> float | None:
            stats = getattr(u, head).get(owner)
            return None if stats is None else getattr(stats, stat, None)

        return get
    elif head in ("memory", "extra"):
        return lambda u: getattr(u, head).get(rest)
    raise InputError(
        f"series name: expected score, epoch, examples_per_sec, minibatches_per_sec, "
        f"collect_seconds, lr/<group>, params/<name>/<stat>, activations/<layer>/<stat>, "
        f"memory/<key>, extra/<key> or eval/<metric>, got {name!r}"
    )


class HistogramArrays(NamedTuple):
    """The histograms of one tensor over iterations, as arrays, oldest first:
    ``iterations`` (int64), ``lo`` and ``hi`` (float64), ``counts`` (int64, one row per
    histogram).

    The rows share one number of bins, the newest histogram's: when the number of bins
    changed during a run, the histograms recorded with another number are left out and
    ``left_out`` says how many (so the latest histogram is always the one shown, and a
    page can say that older ones are missing).
    """

    iterations: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    counts: np.ndarray
    left_out: int = 0

    @staticmethod
    def of(rows: list[tuple[int, float, float, np.ndarray]]) -> HistogramArrays:
        """From ``(iteration, lo, hi, counts)`` rows, oldest first.

        Examples
        --------
        >>> rows = [(0, 0.0, 1.0, [5, 5, 5]), (10, 0.0, 1.0, [1, 2]), (20, 0.0, 2.0, [3, 1])]
        >>> h = HistogramArrays.of(rows)
        >>> h.iterations.tolist(), h.counts.shape, h.left_out
        ([10, 20], (2, 2), 1)
        """
        bins = len(rows[-1][3]) if rows else 0
        kept = [r for r in rows if len(r[3]) == bins]
        counts = np.zeros((len(kept), bins), np.int64)
        for k, r in enumerate(kept):
            counts[k] = r[3]
        return HistogramArrays(
            np.array([r[0] for r in kept], np.int64),
            np.array([r[1] for r in kept], np.float64),
            np.array([r[2] for r in kept], np.float64),
            counts,
            len(rows) - len(kept),
        )


@runtime_checkable
class StatsReader(Protocol):
    """The read API of a storage that can be read back: what the UI, the report and the
    diagnostics call. :class:`~embedviz.stats.storage.InMemoryStatsStorage` and
    :class:`~embedviz.stats.storage.SQLiteStatsStorage` implement it;
    :class:`~embedviz.stats.remote.RemoteStatsRouter` only writes. Every method is safe
    to call from another thread while training writes; :mod:`embedviz.stats.storage`
    documents what each returns.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> isinstance(InMemoryStatsStorage(), StatsReader)
    True
    """

    def list_sessions(self) -> list[str]:
        """Session ids, in the order they first appeared."""
        ...

    def list_workers(self, session_id: str) -> list[str]:
        """Worker ids of a session, in the order they first appeared (``[]`` for an
        unknown session)."""
        ...

    def get_static_info(self, session_id: str, worker_id: str) -> StaticInfo | None:
        """The worker's :class:`~embedviz.stats.records.StaticInfo` (model, optimizer,
        config), or None when it recorded none.

        ``worker_id`` here and in every read: a string, or an integer (a rank: ``0``
        reads worker ``"0"``); anything else is an InputError.
        """
        ...

    def get_updates(
        self,
        session_id: str,
        worker_id: str | None = None,
        after_iteration: int | None = None,
        last: int | None = None,
    ) -> list[Update]:
        """The updates of one worker or of every worker of a session.

        Parameters
        ----------
        session_id : str
        worker_id : str, int or None, default=None
            One worker (an integer is a rank: ``0`` reads worker ``"0"``); None: every
            worker of the session.
        after_iteration : int or None, default=None
            Only the updates of iterations strictly greater (a live reader passes the
            last iteration it has read).
        last : int or None, default=None
            Only the newest ``last`` updates of the selection (``0``: none).

        Returns
        -------
        list of Update
            Sorted by ``(iteration, worker order)``; ``[]`` for an unknown session or
            worker. :class:`~embedviz.stats.storage.InMemoryStatsStorage` holds a long
            run thinned.

        Raises
        ------
        InputError
            ``after_iteration`` or ``last`` not None nor an integer (``last >= 0``), or
            ``worker_id`` no string, integer nor None.

        Examples
        --------
        >>> from embedviz.stats.storage import InMemoryStatsStorage
        >>> from embedviz.stats.records import Update
        >>> st = InMemoryStatsStorage()
        >>> st.put_many([Update("run", "0", i, float(i)) for i in (0, 10, 20)])
        >>> [u.iteration for u in st.get_updates("run", 0, after_iteration=10)]
        [20]
        """
        ...

    def get_latest_update(self, session_id: str, worker_id: str) -> Update | None:
        """The worker's update of the highest iteration, or None."""
        ...

    def count_updates(self, session_id: str, worker_id: str | None = None) -> int:
        """How many updates are held for a worker (None: every worker of the session)."""
        ...

    def list_series(self, session_id: str, worker_id: str) -> list[str]:
        """Names of the scalar series recorded for a worker: what :meth:`get_series`
        reads (:mod:`embedviz.stats.storage` lists the forms)."""
        ...

    def get_series(
        self,
        session_id: str,
        worker_id: str,
        name: str,
        max_points: int | None = None,
        after_iteration: int | None = None,
    ) -> Series:
        """One scalar series of a worker, as arrays.

        Parameters
        ----------
        session_id : str
        worker_id : str or int
            An integer is a rank (``0`` reads worker ``"0"``); None merges every worker.
        name : str
            A name :meth:`list_series` gives, e.g. ``"score"``, ``"lr/0"``,
            ``"params/fc.weight/update_param_ratio"``, ``"eval/accuracy"``.
        max_points : int or None, default=None
            None: every point. Else min/max downsampled to about that many
            (:func:`~embedviz.stats.series.downsample_minmax`: per bucket the lowest and
            highest value and the first NaN/inf survive, and the newest point).
        after_iteration : int or None, default=None
            Only the points of iterations strictly greater, taken before downsampling.

        Returns
        -------
        Series
            ``(iterations, timestamps, values)``, numpy arrays sorted by iteration, of
            the records that hold ``name``; empty when none does.

        Raises
        ------
        InputError
            An unknown form of ``name``, or a bad ``max_points``, ``after_iteration``
            or ``worker_id``.

        Examples
        --------
        >>> from embedviz.stats.storage import InMemoryStatsStorage
        >>> from embedviz.stats.records import Update
        >>> st = InMemoryStatsStorage()
        >>> st.put_many([Update("run", "0", i, float(i), score=1.0 / i) for i in (1, 2, 4)])
        >>> st.get_series("run", "0", "score").values
        array([1.  , 0.5 , 0.25])
        """
        ...

    def get_series_many(
        self,
        session_id: str,
        worker_id: str,
        names: list[str],
        max_points: int | None | dict[str, int | None] = None,
        after_iteration: int | None = None,
    ) -> dict[str, Series]:
        """Several scalar series of one worker, name -> :class:`~embedviz.stats.series.Series`.

        Parameters
        ----------
        session_id, worker_id : str
        names : list of str
            Series names (:meth:`list_series`); ``eval/<metric>`` for evaluations.
        max_points : int, dict or None, default=None
            One limit for all, or name -> limit (names left out are read whole); each
            series is min/max downsampled to it (:func:`~embedviz.stats.series.
            downsample_minmax`: spikes, the first NaN/inf of a bucket and the newest
            point survive). None: every point.
        after_iteration : int or None, default=None
            Only the points of iterations strictly greater (what a live page has not
            drawn yet), checked as ``get_updates``'s; the downsampling then buckets those
            points only: the result equals the whole series filtered, then downsampled.

        Returns
        -------
        dict of str to Series
            Empty series for a name with no (newer) point.

        Examples
        --------
        >>> from embedviz.stats.storage import InMemoryStatsStorage
        >>> from embedviz.stats.records import Update
        >>> st = InMemoryStatsStorage()
        >>> st.put_many([Update("run", "0", i, float(i), score=1.0 / i) for i in (1, 2, 4)])
        >>> st.get_series_many("run", "0", ["score"], after_iteration=1)["score"].iterations
        array([2, 4])
        """
        ...

    def get_evals(self, session_id: str, worker_id: str | None = None) -> list[EvalRecord]:
        """Evaluation records of a worker (None: every worker), sorted by iteration."""
        ...

    def get_histograms(
        self, session_id: str, worker_id: str, kind: str, name: str
    ) -> list[tuple[int, Histogram]]:
        """Every recorded histogram of one tensor, ``(iteration, Histogram)`` oldest
        first; ``kind`` is ``"params"``, ``"grads"``, ``"updates"`` or
        ``"activations"`` (else InputError)."""
        ...

    def get_histogram_arrays(
        self, session_id: str, worker_id: str, items: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], HistogramArrays]:
        """The histograms of several ``(kind, name)`` tensors at once, each as
        :class:`HistogramArrays`."""
        ...

    def get_snapshots(
        self, session_id: str, worker_id: str | None = None, kind: str | None = None
    ) -> list[Snapshot]:
        """Snapshots of a worker (None: every worker), of one ``kind`` (None: all),
        sorted by iteration."""
        ...


class StatsStorage:
    """Base class of every storage: the write entry points (:meth:`put`,
    :meth:`put_many`, :meth:`flush`, :meth:`close`) and the listener registry.

    Subclasses implement :meth:`_store`. The two that can be read back also implement
    :class:`StatsReader` (their read methods are theirs: this class declares none);
    :class:`~embedviz.stats.remote.RemoteStatsRouter` only writes.
    """

    def __init__(self) -> None:
        self._listeners: list[Callable[[StorageEvent], None]] = []
        self._listener_lock = threading.Lock()

    # -- listeners ---------------------------------------------------------------
    def register_listener(self, callback: Callable[[StorageEvent], None]) -> None:
        """Call ``callback(event)`` for every record stored from now on.

        Called in the writing thread after the record is readable; an exception in a
        callback is logged and does not reach the writer.
        """
        if not callable(callback):
            raise InputError(f"callback: expected a callable, got {callback!r}")
        with self._listener_lock:
            self._listeners.append(callback)

    def deregister_listener(self, callback: Callable[[StorageEvent], None]) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._listener_lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _notify(self, events: Iterable[StorageEvent]) -> None:
        with self._listener_lock:
            listeners = list(self._listeners)
        if not listeners:
            return
        for event in events:
            for callback in listeners:
                try:
                    callback(event)
                except Exception:  # a broken UI must never stop training
                    log.exception("storage listener %r failed", callback)

    # -- writing -----------------------------------------------------------------
    def put(self, record: Record) -> None:
        """Store one record (StaticInfo, Update, EvalRecord or Snapshot)."""
        self.put_many([record])

    def put_many(self, records: Iterable[Record]) -> None:
        """Store several records, in order.

        Each is checked first (:func:`~embedviz.stats.validation.check_record`), the same
        for every storage: a record no storage could keep raises InputError and nothing
        of the call is stored.
        """
        records = list(records)
        for i, r in enumerate(records):
            check_record(r, "record" if len(records) == 1 else f"records[{i}]")
        self._store(records)

    def _put_made_valid(self, record: Record) -> None:
        """Store a record that its producer made valid by construction, without
        :func:`~embedviz.stats.validation.check_record` (the listener: its names are
        checked when it is built, its numbers come from its own loops; at every
        iteration with histograms the check would cost ~2 % of a small model's
        training)."""
        self._store([record])

    def _store(self, records: list[Record]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make everything written so far readable by other processes."""

    def poll(self) -> list[StorageEvent]:
        """Announce records that other processes wrote since the last poll (if any)."""
        return []

    def close(self) -> None:
        """Flush and release resources."""
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
