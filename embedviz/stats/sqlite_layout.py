"""The file layout of :class:`~embedviz.stats.sqlite_storage.SQLiteStatsStorage`.

Layout (file schema version :data:`FILE_SCHEMA_VERSION`)::

    meta(key, value)                 format = "embedviz-stats", schema_version = "2"
    workers(id, session, worker)     id order = order of first appearance
    static(id, wid, timestamp, data) data: JSON of StaticInfo (one row per worker)
    layouts(id, names)               names: JSON list of scalar series names
    worker_layouts(wid, layout)
    updates(id, wid, iteration, timestamp, layout, scalars, tags)
                                     scalars: float64 little-endian, one per name of the
                                     layout; tags: JSON or NULL
    histogram_layouts(id, key)       key: JSON list of [kind, name, bins]
    histogram_sets(id, wid, iteration, layout, limits, counts)
                                     every histogram of one update in one row: limits
                                     float64 LE (lo, hi per histogram), counts int64 LE
                                     (the bins of each histogram in turn)
    histograms(id, wid, iteration, kind, name, lo, hi, counts)   version 1: one row
                                     per histogram; read, never written (counts int64 LE)
    evals(id, wid, iteration, timestamp, metrics)                metrics: JSON
    snapshots(id, wid, iteration, timestamp, kind, data)         data: JSON

Scalars are packed per update against a shared list of names, so one series is read
with ``substr(scalars, 8*k + 1, 8)`` without decoding whole records, and an update is
rebuilt exactly (a name is in the layout only when its value was not None).

Version 2 writes an update's histograms as one row (version 1 wrote one row per
histogram, with two indexes over kind and name: ~130 us of SQLite work per update with
23 histograms, against ~20 us now); one histogram over time is read with ``substr`` at
its offset in each row of its layouts. Version 1 files are read as they are and gain the
version 2 tables when opened for writing.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from array import array
from dataclasses import replace

import numpy as np

from embedviz.errors import InputError
from embedviz.stats.records import ActivationStats, Histogram, ParamStats, Update

FORMAT_NAME = "embedviz-stats"
FILE_SCHEMA_VERSION = 2  # the file layout's (records have their own SCHEMA_VERSION)
SQLITE_MAGIC = b"SQLite format 3\x00"
LITTLE_ENDIAN = sys.byteorder == "little"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workers(id INTEGER PRIMARY KEY, session TEXT NOT NULL,
    worker TEXT NOT NULL, first_seen REAL, UNIQUE(session, worker));
CREATE TABLE IF NOT EXISTS static(id INTEGER PRIMARY KEY, wid INTEGER NOT NULL UNIQUE,
    timestamp REAL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layouts(id INTEGER PRIMARY KEY, names TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS worker_layouts(wid INTEGER NOT NULL, layout INTEGER NOT NULL,
    PRIMARY KEY(wid, layout));
CREATE TABLE IF NOT EXISTS updates(id INTEGER PRIMARY KEY, wid INTEGER NOT NULL,
    iteration INTEGER NOT NULL, timestamp REAL NOT NULL, layout INTEGER NOT NULL,
    scalars BLOB NOT NULL, tags TEXT);
CREATE INDEX IF NOT EXISTS updates_by_worker ON updates(wid, iteration);
CREATE TABLE IF NOT EXISTS histograms(id INTEGER PRIMARY KEY, wid INTEGER NOT NULL,
    iteration INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, lo REAL, hi REAL,
    counts BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS histograms_by_name ON histograms(wid, kind, name, iteration);
CREATE INDEX IF NOT EXISTS histograms_by_iteration ON histograms(wid, iteration);
CREATE TABLE IF NOT EXISTS histogram_layouts(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS histogram_sets(id INTEGER PRIMARY KEY, wid INTEGER NOT NULL,
    iteration INTEGER NOT NULL, layout INTEGER NOT NULL, limits BLOB NOT NULL,
    counts BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS histogram_sets_by_worker ON histogram_sets(wid, iteration);
CREATE TABLE IF NOT EXISTS evals(id INTEGER PRIMARY KEY, wid INTEGER NOT NULL,
    iteration INTEGER NOT NULL, timestamp REAL NOT NULL, metrics TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS evals_by_worker ON evals(wid, iteration);
CREATE TABLE IF NOT EXISTS snapshots(id INTEGER PRIMARY KEY, wid INTEGER NOT NULL,
    iteration INTEGER NOT NULL, timestamp REAL NOT NULL, kind TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_by_worker ON snapshots(wid, iteration);
"""


def pack_values(values) -> bytes:
    a = array("d", values)
    if not LITTLE_ENDIAN:
        a.byteswap()
    return a.tobytes()


def pack_counts(counts) -> bytes:
    """Histogram counts as int64 little-endian (the stdlib array packs a short list
    of ints in 0.5 us where numpy takes 0.8 us)."""
    a = array("q", counts)
    if not LITTLE_ENDIAN:
        a.byteswap()
    return a.tobytes()


def flatten_update(u: Update) -> tuple[tuple, list[float]]:
    """A key that fixes the names of the values, and the values, in ``Update.scalars()``
    order, without formatting a single name (the names are made once per key)."""
    values: list[float] = []
    mask: list = []
    for v in (u.score, u.epoch, u.examples_per_sec, u.minibatches_per_sec, u.collect_seconds):
        mask.append(v is not None)
        if v is not None:
            values.append(v)
    values.extend(u.learning_rates)
    for group in (u.params, u.activations):
        for stats in group.values():
            fields = vars(stats).values()
            if None in fields:
                mask.append(tuple(v is not None for v in fields))
                values.extend(v for v in fields if v is not None)
            else:
                mask.append(True)
                values.extend(fields)
    values.extend(u.memory.values())
    values.extend(u.extra.values())
    key = (
        tuple(mask), len(u.learning_rates), tuple(u.params), tuple(u.activations),
        tuple(u.memory), tuple(u.extra),
    )  # fmt: skip
    return key, values


def check_update_values(u: Update, where: str = "record") -> None:
    """Refuse an update whose values are not numbers (what SQLite's packing refuses),
    the same for every storage.

    Raises
    ------
    InputError
        Naming the update (session, worker, iteration) and the value's type.

    Examples
    --------
    >>> check_update_values(Update("s", "0", 1, 5.0, score="high"))
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: record (session 's', worker '0', iteration 1): expected ...
    """
    try:
        array("d", flatten_update(u)[1])
        for group in u.histograms.values():
            for h in group.values():
                array("d", (h.lo, h.hi))
                array("q", h.counts)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(
            f"{where} (session {u.session_id!r:.40}, worker {u.worker_id!r:.40}, iteration "
            f"{u.iteration}): expected numbers (or None) in the update's values and "
            f"integers in its histogram counts, got {exc}; record floats and int counts"
        ) from None


def rebuild_plan(names: list[str]) -> list[tuple[str, str, str]]:
    """How to put each packed value back into an Update."""
    plan = []
    for name in names:
        head, _, rest = name.partition("/")
        if not rest:
            plan.append(("field", name, ""))
        elif head in ("params", "activations"):
            owner, _, stat = rest.rpartition("/")
            plan.append((head, owner, stat))
        else:
            plan.append((head, rest, ""))
    return plan


def rebuild_update(session, worker, iteration, timestamp, plan, values, tags) -> Update:
    u = Update(session, worker, iteration, timestamp)
    params: dict[str, dict] = {}
    acts: dict[str, dict] = {}
    for (target, a, b), v in zip(plan, values, strict=True):
        if target == "params":
            params.setdefault(a, {})[b] = v
        elif target == "activations":
            acts.setdefault(a, {})[b] = v
        elif target == "field":
            setattr(u, a, int(v) if a == "epoch" else v)
        elif target == "lr":
            u.learning_rates.append(v)
        elif target == "memory":
            u.memory[a] = v
        elif target == "extra":
            u.extra[a] = v
    u.params = {k: ParamStats(**v) for k, v in params.items()}
    u.activations = {k: ActivationStats(**v) for k, v in acts.items()}
    if tags:
        u.tags = json.loads(tags)
    return u


class HistogramLayouts:
    """The ``histogram_layouts`` table as seen by one storage: ids by key (writing) and
    ``[(kind, name, bins, offset)]`` by id (reading), read from the file when missing.

    A key is the flat tuple ``(kind, name, bins, kind, name, bins, ...)`` of an update's
    histograms, in the order of its ``limits`` and ``counts``.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple, int] = {}
        self._entries: dict[int, list[tuple[str, str, int, int]]] = {}

    def id_of(self, con: sqlite3.Connection, key: tuple) -> int:
        """The layout id of ``key``, added to the file when new (inside the writer's
        transaction)."""
        lid = self._ids.get(key)
        if lid is None:
            text = json.dumps([list(key[j : j + 3]) for j in range(0, len(key), 3)])
            con.execute("INSERT OR IGNORE INTO histogram_layouts(key) VALUES (?)", (text,))
            lid = con.execute("SELECT id FROM histogram_layouts WHERE key = ?", (text,))
            lid = self._ids[key] = lid.fetchone()[0]
        return lid

    def forget_ids(self) -> None:
        """Forget the ids by key (after a rolled-back transaction that may have added
        some); they are read again from the file when needed."""
        self._ids.clear()

    def entries(self, con: sqlite3.Connection, lid: int) -> list[tuple[str, str, int, int]]:
        """``(kind, name, bins, offset in bins)`` of each histogram of layout ``lid``."""
        got = self._entries.get(lid)
        if got is None:
            (text,) = con.execute(
                "SELECT key FROM histogram_layouts WHERE id = ?", (lid,)
            ).fetchone()
            got, at = [], 0
            for kind, name, bins in json.loads(text):
                got.append((kind, name, int(bins), at))
                at += int(bins)
            self._entries[lid] = got
        return got

    def containing(self, con: sqlite3.Connection, kind: str, name: str) -> list[tuple]:
        """``(layout id, index, offset, bins)`` of every layout holding ``kind``/``name``."""
        out = []
        for (lid,) in con.execute("SELECT id FROM histogram_layouts ORDER BY id").fetchall():
            for k, (kd, nm, bins, at) in enumerate(self.entries(con, lid)):
                if kd == kind and nm == name:
                    out.append((lid, k, at, bins))
        return out


def unpack_histograms(entries, limits: bytes, counts: bytes) -> dict[str, dict]:
    """``{kind: {name: Histogram}}`` of one ``histogram_sets`` row."""
    lohi = np.frombuffer(limits, "<f8").tolist()
    all_counts = np.frombuffer(counts, "<i8")
    out: dict[str, dict] = {}
    for k, (kind, name, bins, at) in enumerate(entries):
        row = all_counts[at : at + bins].tolist()
        out.setdefault(kind, {})[name] = Histogram(lohi[2 * k], lohi[2 * k + 1], row)
    return out


_PARAM_FIELDS = len(ParamStats.__dataclass_fields__)


def with_flat_stats(
    u: Update, params: tuple[str, ...], layers: tuple[str, ...], values: list[float]
) -> Update:
    """A copy of ``u`` holding the statistics given flat (see
    :meth:`UpdatePacker.pack_flat`) as :class:`ParamStats` and :class:`ActivationStats`."""
    n, at = _PARAM_FIELDS, _PARAM_FIELDS * len(params)
    return replace(
        u,
        params={p: ParamStats(*values[n * i : n * i + n]) for i, p in enumerate(params)},
        activations={
            a: ActivationStats(*values[at + 3 * i : at + 3 * i + 3]) for i, a in enumerate(layers)
        },
    )


class UpdatePacker:
    """Updates as the rows that the storage buffers and writes, one tuple each:
    ``(session, worker, iteration, timestamp, names, scalars, tags, histograms)``.

    ``names`` is a tuple shared by every update of one layout, ``scalars`` the values
    packed by :func:`pack_values`, ``tags`` JSON or None, ``histograms`` None or
    ``(key, limits, counts)`` with the key ``(kind, name, bins, ...)`` shared too. A tuple
    of numbers, strings and bytes is not tracked by the garbage collector, where
    thousands of buffered record objects made its full collections (over everything
    torch allocated) cost training time.

    Examples
    --------
    >>> packer = UpdatePacker()
    >>> row = packer.pack(Update("run", "0", 10, 0.0, score=1.5))
    >>> row[:5], row[6:]
    (('run', '0', 10, 0.0, ('score',)), (None, None))
    """

    def __init__(self) -> None:
        self._names_by_key: dict[tuple, tuple[str, ...]] = {}
        self._hist_keys: dict[tuple, tuple] = {}  # (kind, name, bins, ...) of histograms
        self._hist_by_groups: dict[tuple, tuple] = {}  # those keys by (kind, names, bins)

    def pack(self, u: Update) -> tuple:
        """The row of ``u`` (its :class:`Histogram` objects included)."""
        key, values = flatten_update(u)
        names = self._names_by_key.get(key)
        if names is None:
            names = tuple(u.scalars())
            if len(names) != len(values):  # cannot happen; never store garbage
                raise AssertionError("update flattening out of step with scalars()")
            self._names_by_key[key] = names
        hists = None
        if u.histograms:  # one key (shared between updates), two byte strings
            key, limits, counts = [], [], []
            for kind, group in u.histograms.items():
                for name, h in group.items():
                    key += (kind, name, len(h.counts))
                    limits += (h.lo, h.hi)
                    counts += h.counts
            key = tuple(key)
            key = self._hist_keys.setdefault(key, key)
            hists = (key, pack_values(limits), pack_counts(counts))
        tags = json.dumps(u.tags) if u.tags else None
        return (
            u.session_id, u.worker_id, u.iteration, u.timestamp, names,
            pack_values(values), tags, hists,
        )  # fmt: skip

    def pack_flat(
        self,
        u: Update,
        params: tuple[str, ...],
        layers: tuple[str, ...],
        values: list[float] | np.ndarray,
    ) -> tuple:
        """The row of ``u`` with its parameter and activation statistics given as one
        list (or float64 array) of floats instead of objects (``u.params`` and
        ``u.activations`` empty): per parameter the ten :class:`ParamStats` fields in
        their order, then per layer the three :class:`ActivationStats` fields -- the
        listener's numbers, without an object each. The same row as :meth:`pack` makes
        from those objects.

        Examples
        --------
        >>> u = Update("run", "0", 10, 0.0, score=1.5)
        >>> row = UpdatePacker().pack_flat(u, ("w",), (), [1.0] * 10)
        >>> row[4][:3], len(row[5]) // 8
        (('score', 'params/w/param_mean', 'params/w/param_std'), 11)
        """
        if len(values) != _PARAM_FIELDS * len(params) + 3 * len(layers):
            raise ValueError(  # never store garbage
                f"pack_flat: {len(values)} values for {len(params)} parameters and "
                f"{len(layers)} layers"
            )
        (mask, n_lr, _, _, memory, extra), head = flatten_update(u)
        key = (mask + (True,) * (len(params) + len(layers)), n_lr, params, layers, memory, extra)
        names = self._names_by_key.get(key)
        array = isinstance(values, np.ndarray)
        if names is None:  # a new layout: its names come from the objects, once
            listed = values.tolist() if array else values
            return self.pack(with_flat_stats(u, params, layers, listed))
        k = sum(mask) + n_lr  # head values; memory and extra values follow the stats
        if array:  # the listener's array, as it is
            stats = values.astype("<f8", copy=False).tobytes()
            packed = pack_values(head[:k]) + stats + pack_values(head[k:])
        else:
            packed = pack_values(head[:k] + values + head[k:])
        tags = json.dumps(u.tags) if u.tags else None
        return (
            u.session_id, u.worker_id, u.iteration, u.timestamp, names, packed, tags, None,
        )  # fmt: skip

    def pack_with_arrays(self, u: Update, arrays: list[tuple]) -> tuple:
        """The row of ``u`` (without histograms of its own) with histograms given as
        arrays, ``(kind, names, lohi (n, 2), counts (n, bins))`` per kind: the same row
        as :meth:`pack` makes from the equal :class:`Histogram` objects."""
        return self.with_histogram_arrays(self.pack(u), arrays)

    def with_histogram_arrays(self, row: tuple, arrays: list[tuple] | None) -> tuple:
        """``row`` (of an update without histograms) with histograms given as arrays
        (see :meth:`pack_with_arrays`)."""
        if not arrays:
            return row
        # the flat key (kind, name, bins, ...), found by a short key of the groups
        short = tuple((kind, tuple(names), c.shape[1]) for kind, names, _, c in arrays)
        key = self._hist_by_groups.get(short)
        if key is None:
            key = tuple(x for kind, names, b in short for n in names for x in (kind, n, b))
            key = self._hist_by_groups[short] = self._hist_keys.setdefault(key, key)
        limits = np.concatenate([a[2] for a in arrays]).astype("<f8", copy=False)
        counts = np.concatenate([a[3].ravel() for a in arrays]).astype("<i8", copy=False)
        return (*row[:-1], (key, limits.tobytes(), counts.tobytes()))
