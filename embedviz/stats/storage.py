"""Statistics storages: where producers write and what the UI reads.

Two storages share one write interface (:class:`~embedviz.stats.base.StatsStorage`)
and one read interface (:class:`~embedviz.stats.base.StatsReader`, a
:class:`typing.Protocol`): :class:`InMemoryStatsStorage` (bounded: a long run is
thinned to a coarser step, the same over the whole run) and :class:`SQLiteStatsStorage`
(one file, WAL, several processes, reopened later for offline viewing).
:class:`~embedviz.stats.remote.RemoteStatsRouter` takes the same writes and sends them to
a running UI; it cannot be read.

Write API
---------
``put(record)``, ``put_many(records)`` (``StaticInfo``, ``Update``, ``EvalRecord``,
``Snapshot`` from :mod:`embedviz.stats.records`), ``flush()``, ``close()``; storages are
context managers.

Read API (:class:`~embedviz.stats.base.StatsReader`)
----------------------------------------------------
Safe to call from another thread while training writes. Each method has its docstring
in :class:`~embedviz.stats.base.StatsReader`. ``worker_id``, in every read: a string, or
an integer, read as its decimal string (a rank: ``0`` reads worker ``"0"``, as the
listener names workers); ``None``, where a signature allows it, means every worker of
the session; anything else is an InputError.

``list_sessions() -> list[str]``
    Session ids in the order they first appeared.
``list_workers(session_id) -> list[str]``
    Worker ids of a session in the order they first appeared ([] if unknown).
``get_static_info(session_id, worker_id) -> StaticInfo | None``
``get_updates(session_id, worker_id=None, after_iteration=None, last=None) -> list[Update]``
    Sorted by ``(iteration, worker order)``. ``after_iteration`` keeps iterations strictly
    greater; ``last`` keeps only the newest ``last`` updates (per the whole selection;
    ``0`` keeps none). Each is None or an integer, ``last >= 0``; anything else is an
    InputError, the same on both storages
    (:func:`~embedviz.stats.validation.check_read_window`).
    ``worker_id=None`` means every worker of the session.
``get_latest_update(session_id, worker_id) -> Update | None``
``count_updates(session_id, worker_id=None) -> int``
``list_series(session_id, worker_id) -> list[str]``
    Names of the scalar series recorded for a worker: ``score``, ``examples_per_sec``,
    ``minibatches_per_sec``, ``collect_seconds``, ``epoch``, ``lr/<group>``,
    ``params/<name>/<stat>`` (stat: ``param_mean``, ``param_std``,
    ``param_mean_magnitude``, ``grad_*``, ``update_*``, ``update_param_ratio``),
    ``activations/<layer>/<mean|std|zero_fraction>``, ``memory/<key>``, ``extra/<key>``
    (``kl``, ``grad_norm``, ``alpha``, ``words_per_sec``, ``loss``) and ``eval/<metric>``.
``get_series(session_id, worker_id, name, max_points=None, after_iteration=None) -> Series``
    ``Series(iterations, timestamps, values)`` as numpy arrays sorted by iteration,
    only the updates that hold ``name``. With ``max_points`` the series is downsampled
    by :func:`~embedviz.stats.series.downsample_minmax`: per bucket the min and max
    finite value and the first NaN/inf survive, and the newest point is always kept.
    ``after_iteration`` keeps only the points of iterations strictly greater (checked as
    ``get_updates``'s), before downsampling: the result is what filtering the whole
    series would give, downsampled (a live page reads only what is new, without the
    cost of whole :class:`~embedviz.stats.records.Update` records).
``get_series_many(session_id, worker_id, names, max_points=None, after_iteration=None)``
    ``-> dict[str, Series]``: the same for several names at once; on SQLite one pass
    over the rows instead of one per name (use it to open a page with many series), and
    with ``after_iteration`` only over the newer rows (the ``(wid, iteration)`` index).
    The rows are read in chunks and downsampled as they come, so with ``max_points``
    memory holds one chunk and the kept points (about ``1.5 * max_points`` per series),
    never the whole file.
``get_evals(session_id, worker_id=None) -> list[EvalRecord]``
    Sorted by iteration; never smoothed.
``get_histograms(session_id, worker_id, kind, name) -> list[tuple[int, Histogram]]``
    ``kind`` in ``"params"``, ``"grads"``, ``"updates"``, ``"activations"``; every
    recorded iteration of that histogram, oldest first.
``get_histogram_arrays(session_id, worker_id, [(kind, name), ...]) -> dict``
    The same for several tensors at once, each as
    :class:`~embedviz.stats.base.HistogramArrays` (iterations, lo, hi, counts as
    arrays); on SQLite one pass over the rows for all of them (use it to draw pages).
``get_snapshots(session_id, worker_id=None, kind=None) -> list[Snapshot]``

Listeners (both storages; RemoteStatsRouter only sends, and refuses them)
-------------------------------------------------------------------------
``register_listener(callback)``, ``deregister_listener(callback)``
    ``callback(StorageEvent(kind, session_id, worker_id, iteration))`` after each record
    written *through this object* is readable (SQLite: once flushed); an exception in a
    callback is logged and never reaches the writer. Records that other processes write
    into the same SQLite file are announced by its ``poll()`` (it returns the events and
    calls the listeners). The UI reads new records with ``get_updates(after_iteration=)``.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from embedviz._check import check_int
from embedviz.errors import InputError, StorageFullError
from embedviz.stats.base import (
    HistogramArrays,
    StatsReader,
    StatsStorage,
    event_for,
    read_worker_id,
    scalar_getter,
)
from embedviz.stats.memory_thinning import (
    bucket_end,
    bucket_kept,
    iteration_of,
    record_bytes,
    thin_at,
)
from embedviz.stats.records import (
    HISTOGRAM_KINDS,
    EvalRecord,
    Histogram,
    Record,
    Snapshot,
    StaticInfo,
    Update,
)
from embedviz.stats.series import Series, downsample_minmax, limits_of
from embedviz.stats.sqlite_layout import check_update_values
from embedviz.stats.sqlite_storage import SQLiteStatsStorage
from embedviz.stats.validation import check_read_window

__all__ = ["InMemoryStatsStorage", "SQLiteStatsStorage", "StatsReader", "StatsStorage"]


class InMemoryStatsStorage(StatsStorage):
    """Statistics held in this process, bounded in size.

    Parameters
    ----------
    max_updates : int, default=10000
        Per session and worker, never exceeded. A longer run is kept whole at a coarser
        step, the same over the whole run (see Notes). Evaluation records are bounded
        the same way.
    max_snapshots : int, default=200
        Per session and worker; a longer run's snapshots are thinned likewise.
    max_bytes : int, default=256 MiB
        All records together, as estimated (~40 bytes per number held, plus names,
        labels and objects; measured at 1.1 to 1.6 times the memory they hold). When
        exceeded, the records of the worker holding the most are thinned to half as
        below until the estimate fits. The bound is soft: fewer than 8 records of a kind
        are never thinned, so many workers can hold more. A record estimated above
        ``max_bytes / 8`` is refused (:class:`~embedviz.errors.InputError`).
    max_workers : int, default=10000
        Sessions times workers; a record of one more is refused
        (:class:`~embedviz.errors.StorageFullError`), never stored by dropping another's.

    Notes
    -----
    Thinning: the iterations are cut into buckets of one width, a power of two, from
    iteration 0 on. Once a worker's list is full, the width doubles (until at most half
    the list is left), and of each bucket only the update with the lowest score and the
    one with the highest are kept (the first lowest, the last highest: a spike or a dip
    survives, a flat stretch keeps its ends; without a score, the bucket's first), and
    the first whose score is NaN or infinite; the run's first record (iteration 0) and
    its newest are always kept. From then on each new record is reduced into its bucket
    as it comes, so the newest stretch is kept at the same step as the oldest, and the
    previous newest record can be dropped when a newer one shares its bucket. A run of
    any length so keeps between about a quarter of ``max_updates`` and all of them,
    spread evenly over its iterations, each put costing O(1) amortised. A drawing of
    what is kept (min/max per pixel) shows the whole run's envelope.

    The read methods return the stored record objects themselves, not copies (reads
    stay cheap: the UI reads often): treat them as read-only, since changing one
    changes what the storage holds. The records given to :meth:`put` are kept as
    they are too, so do not change a record after putting it.
    :class:`SQLiteStatsStorage` returns new objects on every read.

    Examples
    --------
    >>> from embedviz.stats.records import Update
    >>> storage = InMemoryStatsStorage(max_updates=100)
    >>> storage.put(Update("run", "0", 10, 0.0, score=1.5))
    >>> storage.get_updates("run")[0].score
    1.5
    """

    def __init__(
        self,
        max_updates: int = 10_000,
        max_snapshots: int = 200,
        max_bytes: int = 256 * 2**20,
        max_workers: int = 10_000,
    ) -> None:
        super().__init__()
        self.max_updates = check_int("max_updates", max_updates, low=8)
        self.max_snapshots = check_int("max_snapshots", max_snapshots, low=8)
        self.max_bytes = check_int("max_bytes", max_bytes, low=8)
        self.max_workers = check_int("max_workers", max_workers, low=8)
        self._n_workers = 0
        self._bytes: dict[tuple, int] = {}  # (table name, session, worker) -> estimate
        # (table name, session, worker) -> the bucket width, in iterations, of a list
        # that was thinned (absent: never thinned, every record kept)
        self._width: dict[tuple, int] = {}
        self._total_bytes = 0
        self._lock = threading.RLock()
        self._workers: dict[str, list[str]] = {}
        self._static: dict[tuple[str, str], StaticInfo] = {}
        self._updates: dict[tuple[str, str], list[Update]] = defaultdict(list)
        self._evals: dict[tuple[str, str], list[EvalRecord]] = defaultdict(list)
        self._snapshots: dict[tuple[str, str], list[Snapshot]] = defaultdict(list)
        self._closed = False

    # -- writing -------------------------------------------------------------------
    def _store(self, records: list[Record]) -> None:
        self._refuse_if_closed()
        for r in records:  # what SQLite's packing refuses, refused here too
            if isinstance(r, Update):
                check_update_values(r)
        sizes = [record_bytes(r) for r in records]
        for r, size in zip(records, sizes, strict=True):
            if size > self.max_bytes // 8:
                # an InputError, not a StorageFullError: no amount of waiting (the remote
                # sender retries on 507) makes room for it, since the storage keeps ~7
                # records of each kind per worker
                raise InputError(
                    f"record (session {r.session_id[:40]!r}, worker {r.worker_id[:40]!r}, "
                    f"iteration {getattr(r, 'iteration', None)}): a {type(r).__name__} "
                    f"estimated at {size:,} bytes, more than max_bytes / 8 "
                    f"({self.max_bytes // 8:,}) of the in-memory storage; record fewer "
                    "items or dimensions, or raise max_bytes, or store into a SQLite file"
                )
        with self._lock:
            self._refuse_if_closed()  # under the lock that close() takes: no put is lost
            new = {(r.session_id, r.worker_id) for r in records}
            new = {k for k in new if k[1] not in self._workers.get(k[0], ())}
            if self._n_workers + len(new) > self.max_workers:
                raise StorageFullError(
                    f"the in-memory storage holds {self._n_workers} session workers "
                    f"(max_workers={self.max_workers}); store into a SQLite file "
                    "(embedviz ui FILE --enable-remote) to keep more"
                )
            for r, size in zip(records, sizes, strict=True):
                key = (r.session_id, r.worker_id)
                workers = self._workers.setdefault(r.session_id, [])
                if r.worker_id not in workers:
                    workers.append(r.worker_id)
                    self._n_workers += 1
                if isinstance(r, StaticInfo):
                    self._static[key] = r
                elif isinstance(r, Update):
                    self._insert("updates", key, r, self.max_updates, size)
                elif isinstance(r, EvalRecord):
                    self._insert("evals", key, r, self.max_updates, size)
                else:
                    self._insert("snapshots", key, r, self.max_snapshots, size)
            while self._total_bytes > self.max_bytes and self._shrink_largest():
                pass
        self._notify(event_for(r) for r in records)

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise InputError(
                "InMemoryStatsStorage: the storage is closed; create a new one to write more "
                "(what it holds can still be read)"
            )

    def close(self) -> None:
        """Refuse writes from now on (InputError, as the other storages do); what the
        storage holds can still be read."""
        with self._lock:
            self._closed = True

    def _table(self, name: str) -> tuple[dict, object]:
        """The records of a kind, and the score its thinning keeps extremes of."""
        if name == "updates":
            return self._updates, lambda u: u.score
        return (self._evals if name == "evals" else self._snapshots), None

    def _insert(self, name: str, key: tuple[str, str], record, limit: int, size: int) -> None:
        """Add ``record`` to its list; once the list was thinned, reduce the buckets it
        changed (its own, and those of the records it displaced as the first or the
        newest) to what thinning keeps, so the list keeps one step over the whole run;
        thin when the list is over ``limit``."""
        table, score = self._table(name)
        items = table[key]
        place = (name, *key)
        self._add_bytes(place, size)
        if not items or items[-1].iteration <= record.iteration:
            at = len(items)
            items.append(record)
        else:
            at = bisect.bisect_right(items, record.iteration, key=iteration_of)
            items.insert(at, record)
        width = self._width.get(place)
        if width is not None and len(items) > 1:
            starts = {record.iteration // width}
            if at == 0:
                starts.add(items[1].iteration // width)
            if at == len(items) - 1:
                starts.add(items[-2].iteration // width)
            for k in starts:
                lo = bisect.bisect_left(items, k * width, key=iteration_of)
                hi = bucket_end(items, lo, width)
                kept = bucket_kept(items, lo, hi, score)
                if len(kept) < hi - lo:
                    dropped = set(range(lo, hi)).difference(kept)
                    self._add_bytes(place, -sum(record_bytes(items[i]) for i in dropped))
                    items[lo:hi] = [items[i] for i in kept]
        if len(items) > limit:
            self._thin_list(name, key, max(limit // 2, 5))

    def _add_bytes(self, place: tuple, size: int) -> None:
        self._bytes[place] = self._bytes.get(place, 0) + size
        self._total_bytes += size

    def _thin_list(self, name: str, key: tuple[str, str], target: int) -> None:
        """Double the list's bucket width (the first time: start near its span /
        ``target``) until at most ``target`` (>= 5) records are kept."""
        table, score = self._table(name)
        items = table[key]
        place = (name, *key)
        width = self._width.get(place)
        if width is None:
            span = items[-1].iteration - items[0].iteration
            width = 1 << max(0, (span // target).bit_length() - 1)
        else:
            width *= 2
        kept = thin_at(items, width, score)
        while len(kept) > target:
            width *= 2
            kept = thin_at(kept, width, score)
        self._width[place] = width
        items[:] = kept
        self._add_bytes(place, sum(record_bytes(r) for r in items) - self._bytes[place])

    def _shrink_largest(self) -> bool:
        """Thin the records of the worker holding the most; False when none can be."""
        for (name, *key), _ in sorted(self._bytes.items(), key=lambda kv: -kv[1]):
            table, _ = self._table(name)
            items = table[tuple(key)]
            if len(items) >= 8:
                self._thin_list(name, tuple(key), max(len(items) // 2, 5))
                return True
        return False

    # -- reading -------------------------------------------------------------------
    def list_sessions(self) -> list[str]:
        """Session ids, in the order they first appeared (see
        :meth:`StatsReader.list_sessions`)."""
        with self._lock:
            return list(self._workers)

    def list_workers(self, session_id: str) -> list[str]:
        """Worker ids of a session, in the order they first appeared (see
        :meth:`StatsReader.list_workers`)."""
        with self._lock:
            return list(self._workers.get(session_id, []))

    def get_static_info(self, session_id: str, worker_id: str) -> StaticInfo | None:
        """The worker's static info, or None (see :meth:`StatsReader.get_static_info`)."""
        worker_id = read_worker_id(worker_id)
        with self._lock:
            return self._static.get((session_id, worker_id))

    def _select(self, table: dict, session_id: str, worker_id: str | None) -> list:
        worker_id = read_worker_id(worker_id)
        with self._lock:
            workers = self._workers.get(session_id, [])
            if worker_id is not None:
                return list(table.get((session_id, worker_id), []))
            out = []
            for w in workers:
                out.extend(table.get((session_id, w), []))
        order = {w: i for i, w in enumerate(workers)}
        out.sort(key=lambda r: (r.iteration, order[r.worker_id]))
        return out

    def get_updates(
        self,
        session_id: str,
        worker_id: str | None = None,
        after_iteration: int | None = None,
        last: int | None = None,
    ) -> list[Update]:
        """Updates sorted by ``(iteration, worker order)``, of iterations strictly after
        ``after_iteration``, the newest ``last``; ``worker_id=None``: every worker (see
        :meth:`StatsReader.get_updates`)."""
        after_iteration, last = check_read_window(after_iteration, last)
        updates = self._after(self._select(self._updates, session_id, worker_id), after_iteration)
        if last is not None:
            updates = updates[-last:] if last > 0 else []
        return updates

    def get_latest_update(self, session_id: str, worker_id: str) -> Update | None:
        """The worker's newest update, or None (see :meth:`StatsReader.get_latest_update`)."""
        worker_id = read_worker_id(worker_id)
        with self._lock:
            updates = self._updates.get((session_id, worker_id))
            return updates[-1] if updates else None

    def count_updates(self, session_id: str, worker_id: str | None = None) -> int:
        """Updates held, after thinning (see :meth:`StatsReader.count_updates`)."""
        worker_id = read_worker_id(worker_id)
        with self._lock:
            if worker_id is not None:
                return len(self._updates.get((session_id, worker_id), []))
            workers = self._workers.get(session_id, [])
            return sum(len(self._updates.get((session_id, w), [])) for w in workers)

    def list_series(self, session_id: str, worker_id: str) -> list[str]:
        """Names of a worker's scalar series (see :meth:`StatsReader.list_series`)."""
        names: dict[str, None] = {}
        for u in self._select(self._updates, session_id, worker_id):
            names.update(dict.fromkeys(u.scalars()))
        for e in self._select(self._evals, session_id, worker_id):
            names.update(dict.fromkeys(e.scalars()))
        return list(names)

    def get_series(
        self,
        session_id: str,
        worker_id: str,
        name: str,
        max_points: int | None = None,
        after_iteration: int | None = None,
    ) -> Series:
        """One scalar series as arrays sorted by iteration, of iterations strictly after
        ``after_iteration``, min/max downsampled to ``max_points`` (see
        :meth:`StatsReader.get_series`)."""
        after_iteration, _ = check_read_window(after_iteration, None)
        if name.startswith("eval/"):
            metric = name[5:]
            records = self._after(self._select(self._evals, session_id, worker_id), after_iteration)
            rows = [(e.iteration, e.timestamp, e.metrics.get(metric)) for e in records]
        else:
            get = scalar_getter(name)
            records = self._select(self._updates, session_id, worker_id)
            records = self._after(records, after_iteration)
            rows = [(u.iteration, u.timestamp, get(u)) for u in records]
        rows = [r for r in rows if r[2] is not None]
        if not rows:
            return Series.empty()
        it, ts, vals = zip(*rows, strict=True)
        series = Series(
            np.asarray(it, np.int64), np.asarray(ts, np.float64), np.asarray(vals, np.float64)
        )
        return series.take(downsample_minmax(series.values, max_points))

    @staticmethod
    def _after(records: list, after_iteration: int | None) -> list:
        """The records (sorted by iteration) with an iteration above ``after_iteration``."""
        if after_iteration is None:
            return records
        return records[bisect.bisect_right(records, after_iteration, key=lambda r: r.iteration) :]

    def get_series_many(
        self,
        session_id: str,
        worker_id: str,
        names: list[str],
        max_points: int | None | dict[str, int | None] = None,
        after_iteration: int | None = None,
    ) -> dict[str, Series]:
        """Several series of a worker (see :meth:`StatsReader.get_series_many`)."""
        check_read_window(after_iteration, None)
        limits = limits_of(list(dict.fromkeys(names)), max_points)
        return {
            n: self.get_series(session_id, worker_id, n, m, after_iteration)
            for n, m in limits.items()
        }

    def get_evals(self, session_id: str, worker_id: str | None = None) -> list[EvalRecord]:
        """Evaluation records by iteration (see :meth:`StatsReader.get_evals`)."""
        return self._select(self._evals, session_id, worker_id)

    def get_histograms(
        self, session_id: str, worker_id: str, kind: str, name: str
    ) -> list[tuple[int, Histogram]]:
        """One tensor's histograms, oldest first (see :meth:`StatsReader.get_histograms`)."""
        if kind not in HISTOGRAM_KINDS:
            raise InputError(f"kind: expected one of {HISTOGRAM_KINDS}, got {kind!r}")
        out = []
        for u in self._select(self._updates, session_id, worker_id):
            h = u.histograms.get(kind, {}).get(name)
            if h is not None:
                out.append((u.iteration, h))
        return out

    def get_histogram_arrays(
        self, session_id: str, worker_id: str, items: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], HistogramArrays]:
        """Several tensors' histograms as arrays (see
        :meth:`StatsReader.get_histogram_arrays`)."""
        return {
            (kind, name): HistogramArrays.of(
                [
                    (it, h.lo, h.hi, h.counts)
                    for it, h in self.get_histograms(session_id, worker_id, kind, name)
                ]
            )
            for kind, name in dict.fromkeys(items)
        }

    def get_snapshots(
        self, session_id: str, worker_id: str | None = None, kind: str | None = None
    ) -> list[Snapshot]:
        """Snapshots by iteration (see :meth:`StatsReader.get_snapshots`)."""
        snaps = self._select(self._snapshots, session_id, worker_id)
        return [s for s in snaps if kind is None or s.kind == kind]
