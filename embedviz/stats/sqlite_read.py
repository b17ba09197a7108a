"""The reading side of :class:`~embedviz.stats.sqlite_storage.SQLiteStatsStorage`.

:class:`SQLiteReading` holds every read method of the storage's API (sessions, workers,
static info, updates, series, evaluations, histograms, snapshots); the storage class
mixes it in and owns the connections (``_reader()``), the write buffer and the caches
these methods share (``_plans``, ``_hist_layouts``, ``_has_sets``).

A read never waits long for the file. It first writes what this process still buffers
(so a process reads what it wrote), but waits at most :data:`READ_FLUSH_WAIT` for that:
while another process holds the write lock (a ``BEGIN EXCLUSIVE``, a long
transaction), the read shows what the file holds and the writer thread goes on trying.
Its connection waits at most :data:`~embedviz.stats.sqlite_file.READ_BUSY_TIMEOUT` for a
lock that keeps readers out (rare in WAL mode: another program's exclusive locking
mode, a file not in WAL mode), then raises one FileFormatError naming the file.
"""

from __future__ import annotations

import functools
import inspect
import json
import sqlite3
import time

import numpy as np

from embedviz.errors import InputError
from embedviz.stats.base import HistogramArrays, read_worker_id, scalar_getter
from embedviz.stats.records import (
    HISTOGRAM_KINDS,
    EvalRecord,
    Histogram,
    LayerInfo,
    Snapshot,
    StaticInfo,
    Update,
)
from embedviz.stats.series import MinMaxReducer, Series, downsample_minmax, limits_of
from embedviz.stats.sqlite_file import READ_BUSY_TIMEOUT, is_locked, read_errors
from embedviz.stats.sqlite_layout import rebuild_plan, rebuild_update, unpack_histograms
from embedviz.stats.validation import check_read_window

#: seconds a read waits for this process's buffered records to be written first
READ_FLUSH_WAIT = 0.5


def _reading(method):
    """A read method whose SQLite "malformed" errors, and a lock that kept it out,
    become a FileFormatError naming the file (:func:`~embedviz.stats.sqlite_file.
    read_errors`: a damaged page shows only when it is read)."""

    @functools.wraps(method)
    def read(self, *args, **kwargs):
        with read_errors(self.path):
            return method(self, *args, **kwargs)

    return read


def _every_read_translates_damage(cls):
    """Wrap every public method of ``cls`` in :func:`_reading`, here where the methods
    are defined, so that a read method added later cannot be left unwrapped."""
    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(fn):
            setattr(cls, name, _reading(fn))
    return cls


@_every_read_translates_damage
class SQLiteReading:
    """The read methods of :class:`~embedviz.stats.sqlite_storage.SQLiteStatsStorage`;
    each public one turns SQLite's "damaged file" errors into a FileFormatError."""

    def _read(self) -> sqlite3.Connection:
        self._flush_before_read()
        con = self._reader()
        if getattr(self._local, "read_busy_set", None) is not con:
            # a writing storage's reader connections are made as its writer is: set
            # the read's wait (once per connection)
            con.execute(f"PRAGMA busy_timeout = {round(READ_BUSY_TIMEOUT * 1000)}")
            self._local.read_busy_set = con
        return con

    def _flush_before_read(self) -> None:
        """Write what this process buffers before a read, waiting at most
        :data:`READ_FLUSH_WAIT` for the file (the writer thread's write in progress, or
        another process's lock); a file that is locked longer or known to fail is read
        as it is, and the writer thread keeps trying (it notes and logs the failure,
        not a read)."""
        if self.read_only or not self._buffer or self._failure is not None:
            return
        written: list = []
        try:
            tried = self._flush_into(written, time.monotonic() + READ_FLUSH_WAIT, READ_FLUSH_WAIT)
        except Exception as exc:
            if not (self._given_up or is_locked(exc)):
                self._note_failure(exc)  # the file itself fails (disk full): say so once
            return
        finally:  # listeners run outside the lock (one may read, which flushes)
            self._announce(written)
        if tried and self._failure is not None:
            self._note_recovery()

    def list_sessions(self) -> list[str]:
        """Session ids, in the order they first appeared (see
        :meth:`~embedviz.stats.base.StatsReader.list_sessions`)."""
        rows = self._read().execute("SELECT session FROM workers GROUP BY session ORDER BY min(id)")
        return [r[0] for r in rows]

    def list_workers(self, session_id: str) -> list[str]:
        """Worker ids of a session, in the order they first appeared (see
        :meth:`~embedviz.stats.base.StatsReader.list_workers`)."""
        rows = self._read().execute(
            "SELECT worker FROM workers WHERE session = ? ORDER BY id", (session_id,)
        )
        return [r[0] for r in rows]

    def _wids_of(self, session_id: str, worker_id: str | None) -> list[tuple[int, str]]:
        worker_id = read_worker_id(worker_id)
        con = self._read()
        if worker_id is None:
            sql = "SELECT id, worker FROM workers WHERE session = ? ORDER BY id"
            args = (session_id,)
        else:
            sql = "SELECT id, worker FROM workers WHERE session = ? AND worker = ?"
            args = (session_id, worker_id)
        return con.execute(sql, args).fetchall()

    def get_static_info(self, session_id: str, worker_id: str) -> StaticInfo | None:
        """The worker's static info, or None (see
        :meth:`~embedviz.stats.base.StatsReader.get_static_info`)."""
        worker_id = read_worker_id(worker_id)
        row = (
            self._read()
            .execute(
                "SELECT s.data FROM static s JOIN workers w ON w.id = s.wid "
                "WHERE w.session = ? AND w.worker = ?",
                (session_id, worker_id),
            )
            .fetchone()
        )
        if row is None:
            return None
        d = json.loads(row[0])
        d.pop("type", None)
        d["layers"] = [LayerInfo(**layer) for layer in d.get("layers", [])]
        return StaticInfo(**d)

    def _layout_plan(self, con: sqlite3.Connection, lid: int) -> tuple[list[str], list]:
        got = self._plans.get(lid)
        if got is None:
            names = json.loads(
                con.execute("SELECT names FROM layouts WHERE id = ?", (lid,)).fetchone()[0]
            )
            got = self._plans[lid] = (names, rebuild_plan(names))
        return got

    def _updates_of(
        self, wid: int, worker: str, session_id: str, after: int | None, last: int | None
    ) -> list[Update]:
        con = self._reader()
        where, args = "wid = ?", [wid]
        if after is not None:
            where += " AND iteration > ?"
            args.append(after)
        sql = f"SELECT iteration, timestamp, layout, scalars, tags FROM updates WHERE {where}"
        if last is not None:
            sql += " ORDER BY iteration DESC, id DESC LIMIT ?"
            args.append(last)
            rows = con.execute(sql, args).fetchall()[::-1]
        else:
            rows = con.execute(sql + " ORDER BY iteration, id", args).fetchall()
        out = []
        for iteration, ts, lid, blob, tags in rows:
            _, plan = self._layout_plan(con, lid)
            values = np.frombuffer(blob, dtype="<f8").tolist()
            out.append(rebuild_update(session_id, worker, iteration, ts, plan, values, tags))
        if out:
            span = (wid, out[0].iteration, out[-1].iteration)
            hist_rows = con.execute(  # version 1 rows
                "SELECT iteration, kind, name, lo, hi, counts FROM histograms "
                "WHERE wid = ? AND iteration BETWEEN ? AND ? ORDER BY id",
                span,
            ).fetchall()
            sets = []
            if self._sets_table(con):
                sets = con.execute(
                    "SELECT iteration, layout, limits, counts FROM histogram_sets "
                    "WHERE wid = ? AND iteration BETWEEN ? AND ? ORDER BY id",
                    span,
                ).fetchall()
            if hist_rows or sets:
                by_it: dict[int, list[Update]] = {}
                for u in out:
                    by_it.setdefault(u.iteration, []).append(u)
                for iteration, kind, name, lo, hi, counts in hist_rows:
                    h = Histogram(lo, hi, np.frombuffer(counts, dtype="<i8").tolist())
                    for u in by_it.get(iteration, []):
                        u.histograms.setdefault(kind, {})[name] = h
                for iteration, lid, limits, counts in sets:
                    entries = self._hist_layouts.entries(con, lid)
                    for u in by_it.get(iteration, []):
                        for kind, group in unpack_histograms(entries, limits, counts).items():
                            u.histograms.setdefault(kind, {}).update(group)
        return out

    def _sets_table(self, con: sqlite3.Connection) -> bool:
        """Whether the file has version 2's histogram_sets (a version 1 file opened
        read-only has not; another process may add it while we read)."""
        if not self._has_sets:
            self._has_sets = (
                con.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'histogram_sets'"
                ).fetchone()
                is not None
            )
        return self._has_sets

    def get_updates(
        self,
        session_id: str,
        worker_id: str | None = None,
        after_iteration: int | None = None,
        last: int | None = None,
    ) -> list[Update]:
        """Updates sorted by ``(iteration, worker order)``, of iterations strictly after
        ``after_iteration``, the newest ``last``; ``worker_id=None``: every worker (see
        :meth:`~embedviz.stats.base.StatsReader.get_updates`)."""
        after_iteration, last = check_read_window(after_iteration, last)
        if last == 0:
            return []
        workers = self._wids_of(session_id, worker_id)
        out: list[Update] = []
        for wid, worker in workers:
            out.extend(self._updates_of(wid, worker, session_id, after_iteration, last))
        if len(workers) > 1:
            order = {w: i for i, (_, w) in enumerate(workers)}
            out.sort(key=lambda u: (u.iteration, order[u.worker_id]))
        if last is not None:
            out = out[-last:]
        return out

    def get_latest_update(self, session_id: str, worker_id: str) -> Update | None:
        """The worker's newest update, or None (see
        :meth:`~embedviz.stats.base.StatsReader.get_latest_update`)."""
        got = self.get_updates(session_id, worker_id, last=1)
        return got[0] if got else None

    def count_updates(self, session_id: str, worker_id: str | None = None) -> int:
        """Updates in the file (see :meth:`~embedviz.stats.base.StatsReader.count_updates`)."""
        con = self._read()
        return sum(
            con.execute("SELECT count(*) FROM updates WHERE wid = ?", (wid,)).fetchone()[0]
            for wid, _ in self._wids_of(session_id, worker_id)
        )

    def list_series(self, session_id: str, worker_id: str) -> list[str]:
        """Names of a worker's scalar series (see
        :meth:`~embedviz.stats.base.StatsReader.list_series`)."""
        con = self._read()
        names: dict[str, None] = {}
        for wid, _ in self._wids_of(session_id, worker_id):
            for (lid,) in con.execute(
                "SELECT layout FROM worker_layouts WHERE wid = ? ORDER BY layout", (wid,)
            ).fetchall():
                names.update(dict.fromkeys(self._layout_plan(con, lid)[0]))
            for (metrics,) in con.execute("SELECT metrics FROM evals WHERE wid = ?", (wid,)):
                names.update(dict.fromkeys(f"eval/{k}" for k in json.loads(metrics)))
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
        :meth:`~embedviz.stats.base.StatsReader.get_series`)."""
        return self.get_series_many(
            session_id, worker_id, [name], max_points, after_iteration=after_iteration
        )[name]

    _READ_CHUNK = 1024  # rows fetched at a time by get_series_many

    def get_series_many(
        self,
        session_id: str,
        worker_id: str,
        names: list[str],
        max_points: int | None | dict[str, int | None] = None,
        after_iteration: int | None = None,
    ) -> dict[str, Series]:
        """Several series of one worker read in one pass (much faster than one by one).

        ``max_points`` is one limit for all, or a mapping of name to limit (names it
        leaves out are read whole), so that a chart's few full series and its many
        downsampled ones still cost one pass. ``after_iteration``: only the rows of
        iterations strictly greater (``AND iteration > ?``, found with the
        ``(wid, iteration)`` index), counted and downsampled alone.

        The rows are read in chunks of :attr:`_READ_CHUNK` and downsampled as they come
        (:class:`~embedviz.stats.series.MinMaxReducer`), so memory holds the chunk and
        the kept points, not the whole file. See
        :meth:`~embedviz.stats.base.StatsReader.get_series_many`.
        """
        after, _ = check_read_window(after_iteration, None)
        names = list(dict.fromkeys(names))
        for name in names:
            if not name.startswith("eval/"):
                scalar_getter(name)  # validates the name
        limits = limits_of(names, max_points)
        con = self._read()
        parts: dict[str, list[Series]] = {n: [] for n in names}
        scalar_names = [n for n in names if not n.startswith("eval/")]
        eval_names = [n for n in names if n.startswith("eval/")]
        own = not con.in_transaction
        if own:
            con.execute("BEGIN")  # one snapshot for the counts and the rows
        try:
            wids = self._wids_of(session_id, worker_id)
            # several workers: read whole, merged, then downsampled
            per_worker = limits if len(wids) == 1 else dict.fromkeys(names)
            for wid, _ in wids:
                if eval_names:
                    self._read_evals(con, wid, eval_names, parts, after)
                if scalar_names:
                    self._read_scalars(con, wid, scalar_names, per_worker, parts, after)
        finally:
            if own:
                con.execute("COMMIT")
        out = {}
        for name, found in parts.items():
            if not found:
                out[name] = Series.empty()
            elif len(found) == 1 and not name.startswith("eval/"):
                out[name] = found[0]  # downsampled as read
            else:
                series = Series(*(np.concatenate(c) for c in zip(*found, strict=True)))
                if len(found) > 1:
                    series = series.take(np.argsort(series.iterations, kind="stable"))
                out[name] = series.take(downsample_minmax(series.values, limits[name]))
        return out

    @staticmethod
    def _read_evals(con, wid: int, eval_names: list[str], parts: dict, after: int | None) -> None:
        where, args = _after_clause(wid, after)
        rows = con.execute(
            f"SELECT iteration, timestamp, metrics FROM evals WHERE {where} ORDER BY iteration, id",
            args,
        ).fetchall()
        decoded = [(it, ts, json.loads(m)) for it, ts, m in rows]
        for name in eval_names:
            got = [(it, ts, float(m[name[5:]])) for it, ts, m in decoded if name[5:] in m]
            if got:
                it, ts, vals = zip(*got, strict=True)
                parts[name].append(
                    Series(np.asarray(it, np.int64), np.asarray(ts), np.asarray(vals))
                )

    def _read_scalars(
        self, con, wid: int, names: list[str], limits: dict, parts: dict, after: int | None
    ) -> None:
        """Stream the worker's updates (after iteration ``after``) once, feeding one
        reducer per group of names that the same layouts hold (so they share their point
        count) and share a limit."""
        lids = [
            r[0]
            for r in con.execute(
                "SELECT layout FROM worker_layouts WHERE wid = ? ORDER BY layout", (wid,)
            )
        ]
        if not lids:
            return
        where, args = _after_clause(wid, after)
        if len(lids) == 1:
            counts = {lids[0]: con.execute(
                f"SELECT count(*) FROM updates WHERE {where}", args
            ).fetchone()[0]}  # fmt: skip
        else:
            counts = dict(
                con.execute(
                    f"SELECT layout, count(*) FROM updates WHERE {where} GROUP BY layout", args
                ).fetchall()
            )
        layouts = {lid: self._layout_plan(con, lid)[0] for lid in lids}
        index = {lid: {n: i for i, n in enumerate(layout)} for lid, layout in layouts.items()}
        groups: dict[tuple, list[str]] = {}  # (holders, limit) -> names
        for name in names:
            holders = tuple(lid for lid in lids if name in index[lid] and counts.get(lid))
            if holders:
                groups.setdefault((holders, limits[name]), []).append(name)
        if not groups:
            return
        reducers = {
            key: MinMaxReducer(sum(counts[lid] for lid in key[0]), key[1], len(group))
            for key, group in groups.items()
        }
        wanted = {n for group in groups.values() for n in group}
        few = len(wanted) <= 8 and len(lids) == 1  # a few columns: let SQLite cut them out
        if few:
            lid = lids[0]
            in_order = [n for group in groups.values() for n in group]
            columns = ", ".join(f"substr(scalars, {8 * index[lid][n] + 1}, 8)" for n in in_order)
            sql = f"SELECT iteration, timestamp, layout, {columns} FROM updates WHERE {where}"
        else:
            sql = f"SELECT iteration, timestamp, layout, scalars FROM updates WHERE {where}"
        order = " ORDER BY iteration, id" if len(lids) == 1 else " ORDER BY iteration, layout, id"
        cursor = con.execute(sql + order, args)
        while rows := cursor.fetchmany(self._READ_CHUNK):
            cols = list(zip(*rows, strict=True))
            it = np.asarray(cols[0], np.int64)
            ts = np.asarray(cols[1], np.float64)
            if few:
                values = np.frombuffer(b"".join(b for c in cols[3:] for b in c), dtype="<f8")
                values = values.reshape(len(cols) - 3, -1).T
                at = 0
                for key, group in groups.items():
                    reducers[key].add(it, ts, values[:, at : at + len(group)])
                    at += len(group)
                continue
            lay = np.asarray(cols[2], np.int64)
            matrices = {}
            for lid in np.unique(lay):
                rows_of = np.flatnonzero(lay == lid)
                blobs = (
                    b"".join(cols[3][r] for r in rows_of) if len(lids) > 1 else b"".join(cols[3])
                )
                width = len(layouts[int(lid)])
                matrices[int(lid)] = (rows_of, np.frombuffer(blobs, "<f8").reshape(-1, width))
            for key, group in groups.items():
                present = [lid for lid in key[0] if lid in matrices]
                if not present:
                    continue
                if len(present) == 1:
                    rows_of, matrix = matrices[present[0]]
                    cut = [index[present[0]][n] for n in group]
                    reducers[key].add(it[rows_of], ts[rows_of], matrix[:, cut])
                    continue
                rows_of = np.sort(np.concatenate([matrices[lid][0] for lid in present]))
                values = np.empty((len(rows_of), len(group)))
                for lid in present:
                    mine, matrix = matrices[lid]
                    cut = [index[lid][n] for n in group]
                    values[np.searchsorted(rows_of, mine)] = matrix[:, cut]
                reducers[key].add(it[rows_of], ts[rows_of], values)
        for key, group in groups.items():
            for name, series in zip(group, reducers[key].result(), strict=True):
                parts[name].append(series)

    def get_evals(self, session_id: str, worker_id: str | None = None) -> list[EvalRecord]:
        """Evaluation records by iteration (see
        :meth:`~embedviz.stats.base.StatsReader.get_evals`)."""
        con = self._read()
        out = []
        for wid, worker in self._wids_of(session_id, worker_id):
            for it, ts, metrics in con.execute(
                "SELECT iteration, timestamp, metrics FROM evals WHERE wid = ? "
                "ORDER BY iteration, id",
                (wid,),
            ):
                out.append(EvalRecord(session_id, worker, it, ts, json.loads(metrics)))
        out.sort(key=lambda e: e.iteration)
        return out

    def get_histogram_arrays(
        self, session_id: str, worker_id: str, items
    ) -> dict[tuple[str, str], HistogramArrays]:
        """Several tensors' histograms as arrays, in one pass (see
        :meth:`~embedviz.stats.base.StatsReader.get_histogram_arrays`)."""
        blocks = self._histogram_blocks(session_id, worker_id, items)
        return {item: _merge_blocks(b) for item, b in blocks.items()}

    def get_histograms(
        self, session_id: str, worker_id: str, kind: str, name: str
    ) -> list[tuple[int, Histogram]]:
        """One tensor's histograms, oldest first (see
        :meth:`~embedviz.stats.base.StatsReader.get_histograms`)."""
        rows = [  # (iteration, table, id, lo, hi, counts)
            (it, order, rid, lo, hi, c)
            for its, order, ids, limits, counts in self._histogram_blocks(
                session_id, worker_id, [(kind, name)]
            )[(kind, name)]
            for it, rid, (lo, hi), c in zip(its, ids, limits.tolist(), counts, strict=True)
        ]
        rows.sort(key=lambda r: r[:3])
        return [(r[0], Histogram(r[3], r[4], r[5].tolist())) for r in rows]

    def _histogram_blocks(self, session_id: str, worker_id: str, items) -> dict[tuple, list]:
        """Per ``(kind, name)``, its histograms in blocks ``(iterations, table (0: version
        1, 1: version 2), row ids, limits (n, 2), counts (n, bins))``: one query per
        version 1 tensor, one pass over the rows of each version 2 layout for all of
        ``items``, reading only their bytes (``substr``), decoded as arrays."""
        items = list(dict.fromkeys((kind, name) for kind, name in items))
        for kind, _ in items:
            if kind not in HISTOGRAM_KINDS:
                raise InputError(f"kind: expected one of {HISTOGRAM_KINDS}, got {kind!r}")
        con = self._read()
        # per item, blocks of (iterations, order, ids, limits (n, 2), counts (n, bins))
        blocks: dict[tuple[str, str], list] = {item: [] for item in items}
        where: dict[int, list] = {}  # layout -> [(item, index, offset, bins)]
        if self._sets_table(con):
            for item in items:
                for lid, k, at, bins in self._hist_layouts.containing(con, *item):
                    where.setdefault(lid, []).append((item, k, at, bins))
        for wid, _ in self._wids_of(session_id, worker_id):
            for item in items:  # version 1 rows
                rows = con.execute(
                    "SELECT iteration, id, lo, hi, counts FROM histograms "
                    "WHERE wid = ? AND kind = ? AND name = ?",
                    (wid, *item),
                ).fetchall()
                for bins in {len(r[4]) // 8 for r in rows}:
                    part = [r for r in rows if len(r[4]) == 8 * bins]
                    cols = list(zip(*part, strict=True))
                    blocks[item].append(
                        (cols[0], 0, cols[1], np.column_stack(cols[2:4]), _counts(cols[4], bins))
                    )
            for lid, wanted in where.items():
                columns, args = [], []
                for _, k, at, bins in wanted:
                    columns.append("substr(limits, ?, 16), substr(counts, ?, ?)")
                    args += [16 * k + 1, 8 * at + 1, 8 * bins]
                rows = con.execute(
                    f"SELECT iteration, id, {', '.join(columns)} FROM histogram_sets "
                    "WHERE wid = ? AND layout = ?",
                    (*args, wid, lid),
                ).fetchall()
                if not rows:
                    continue
                cols = list(zip(*rows, strict=True))
                for j, (item, _, _, bins) in enumerate(wanted):
                    limits = np.frombuffer(b"".join(cols[2 + 2 * j]), "<f8").reshape(-1, 2)
                    counts = _counts(cols[3 + 2 * j], bins)
                    blocks[item].append((cols[0], 1, cols[1], limits, counts))
        return blocks

    def get_snapshots(
        self, session_id: str, worker_id: str | None = None, kind: str | None = None
    ) -> list[Snapshot]:
        """Snapshots by iteration (see :meth:`~embedviz.stats.base.StatsReader.get_snapshots`)."""
        con = self._read()
        out = []
        for wid, worker in self._wids_of(session_id, worker_id):
            for it, ts, k, data in con.execute(
                "SELECT iteration, timestamp, kind, data FROM snapshots WHERE wid = ? "
                "ORDER BY iteration, id",
                (wid,),
            ):
                if kind is None or k == kind:
                    d = json.loads(data)
                    out.append(Snapshot(session_id, worker, it, ts, k, d["labels"], d["vectors"]))
        out.sort(key=lambda s: s.iteration)
        return out


def _after_clause(wid: int, after: int | None) -> tuple[str, tuple]:
    """The WHERE clause and arguments of one worker's rows after iteration ``after``."""
    if after is None:
        return "wid = ?", (wid,)
    return "wid = ? AND iteration > ?", (wid, after)


def _counts(blobs, bins: int) -> np.ndarray:
    """int64 little-endian blobs of ``bins`` counts each, as one (n, bins) array."""
    if bins == 0:  # written before histograms needed a bin (an older embedviz)
        return np.zeros((len(blobs), 0), np.int64)
    return np.frombuffer(b"".join(blobs), "<i8").reshape(-1, bins).astype(np.int64)


def _merge_blocks(blocks: list) -> HistogramArrays:
    """Blocks of one tensor's histograms (several layouts, version 1 rows) as one
    :class:`HistogramArrays`, oldest first, with the newest histogram's number of bins
    (as :meth:`HistogramArrays.of`; ``left_out`` counts the others)."""
    if not blocks:
        return HistogramArrays.of([])
    its = [np.asarray(b[0], np.int64) for b in blocks]
    orders = [np.full(len(i), b[1]) for i, b in zip(its, blocks, strict=True)]
    ids = [np.asarray(b[2], np.int64) for b in blocks]

    def newest(j):  # the block's last row in the order below: (iteration, table, id)
        k = np.lexsort((ids[j], its[j]))[-1]
        return (its[j][k], blocks[j][1], ids[j][k])

    bins = blocks[max(range(len(blocks)), key=newest)][4].shape[1]
    keep = [j for j, b in enumerate(blocks) if b[4].shape[1] == bins]
    it = np.concatenate([its[j] for j in keep])
    order = np.lexsort(
        (np.concatenate([ids[j] for j in keep]), np.concatenate([orders[j] for j in keep]), it)
    )
    limits = np.concatenate([blocks[j][3] for j in keep])[order]
    counts = np.concatenate([blocks[j][4] for j in keep])[order]
    left_out = sum(len(i) for i in its) - len(it)
    return HistogramArrays(it[order], limits[:, 0].copy(), limits[:, 1].copy(), counts, left_out)
