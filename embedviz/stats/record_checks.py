"""Checking what is made in-process: :func:`check_name` (ids and names), :func:`check_record`
(records built in Python, before a storage takes them) and :func:`check_read_window`
(the window of a ``get_updates`` call), each refusing with one
:class:`~embedviz.errors.InputError` that names the field.

It also holds the field checks (numbers, 64-bit integers, names, timestamps, histogram
and snapshot shapes) that :func:`~embedviz.stats.validation.record_from_dict` builds on,
so that both refuse the same values with the same messages; it imports nothing from
:mod:`embedviz.stats.validation`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from embedviz._check import check_int
from embedviz.errors import InputError
from embedviz.stats.limits import (
    CONTROL_CHARS,
    INT64_MAX,
    INT64_MIN,
    MAX_HISTOGRAM_BINS,
    MAX_NAME_CHARS,
)
from embedviz.stats.records import (
    _TYPE_NAMES,
    HISTOGRAM_KINDS,
    EvalRecord,
    Histogram,
    Record,
    Snapshot,
    StaticInfo,
    Update,
    to_json,
)

__all__ = ["TIMESTAMP_RANGE", "check_name", "check_read_window", "check_record"]


def _fail(where: str, expected: str, value: Any) -> None:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise InputError(f"{where}: expected {expected}, got {shown}")


def _int64(where: str, value: int) -> None:
    """Integers must fit SQLite's signed 64 bits (JSON allows any size)."""
    if not INT64_MIN <= value <= INT64_MAX:
        shown = str(value) if len(str(value)) <= 30 else f"an integer of {len(str(value))} digits"
        raise InputError(
            f"{where}: expected an integer within signed 64 bits [-2**63, 2**63 - 1], got "
            f"{shown}; send it as a float or a string"
        )


def _no_surrogates(where: str, value: str) -> None:
    """Strings must be valid Unicode (JSON allows a lone ``\\ud800``; SQLite cannot store it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{where}: expected valid Unicode text, got a string with a lone surrogate "
            f"{value[exc.start]!r} at character {exc.start}; send UTF-8 text"
        ) from None


def _number(where: str, value: Any, optional: bool = False) -> float | int | None:
    """A real number (numpy's too, not bool) as a Python ``int`` or ``float``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(where, "a number" + (" or null" if optional else ""), value)
    if isinstance(value, numbers.Integral):
        value = int(value)
        _int64(where, value)
        return value
    return float(value)


def _integer(where: str, value: Any, optional: bool = False) -> int | None:
    """An integer (:class:`numbers.Integral`, numpy's too, not bool) as a Python ``int``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(where, "an integer" + (" or null" if optional else ""), value)
    value = int(value)
    _int64(where, value)
    return value


def _string(where: str, value: Any) -> str:
    """An id or a name: a string of at most MAX_NAME_CHARS characters, valid Unicode,
    none of :data:`~embedviz.stats.limits.CONTROL_CHARS` (controls, bidi formatting)."""
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        _fail(where, f"a string of at most {MAX_NAME_CHARS} characters", value)
    _no_surrogates(where, value)
    bad = CONTROL_CHARS.search(value)
    if bad is not None:
        raise InputError(
            f"{where}: expected a name without control characters (nor bidirectional "
            f"formatting ones), got {value[:40]!r} with {bad.group()!r} at character "
            f"{bad.start()}; remove it (newlines, escape sequences and right-to-left "
            "overrides would rewrite or disguise what embedviz check prints)"
        )
    return value


def check_name(value: Any, where: str = "name") -> str:
    """Refuse an id or a name that no record may hold; returns it.

    What every record wants of its session and worker ids, parameter, layer and metric
    names, tags and labels: a string of at most ``MAX_NAME_CHARS`` characters, valid
    Unicode, without control characters nor bidirectional formatting ones
    (:data:`~embedviz.stats.limits.CONTROL_CHARS`). A producer checks its ids with this
    when it is built, so that its first ``put`` cannot fail in the middle of a training.

    Examples
    --------
    >>> check_name("run-1", "session_id")
    'run-1'
    >>> check_name("a\\nb", "session_id")
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: session_id: expected a name without control characters ...
    """
    return _string(where, value)


def _mapping(where: str, value: Any) -> dict:
    if not isinstance(value, dict):
        _fail(where, "an object", value)
    for key in value:
        _string(f"{where} key", key)
    return value


def _histogram_object(where: str, h: Any) -> None:
    """Refuse a bad histogram of a Python record: its types first (real ``lo`` and
    ``hi``, ``counts`` a list of integers), then its shape; made only for a bad one."""
    if not isinstance(h, Histogram):
        _fail(where, "a Histogram", h)
    _number(f"{where}.lo", h.lo)
    _number(f"{where}.hi", h.hi)
    if not isinstance(h.counts, list | tuple | np.ndarray):
        _fail(f"{where}.counts", f"a list of 1 to {MAX_HISTOGRAM_BINS} integers", h.counts)
    for i, c in enumerate(h.counts):
        if isinstance(c, bool) or not isinstance(c, numbers.Integral):
            _fail(f"{where}.counts[{i}]", "an integer", c)
    _histogram_shape(where, h)
    _fail(where, "a histogram of finite lo <= hi and counts >= 0", h)  # not reached


def _histogram_shape(where: str, h: Histogram) -> None:
    """At least one bin, finite ``lo <= hi``, counts >= 0 (what the pages draw)."""
    if len(h.counts) < 1:
        _fail(f"{where}.counts", "at least one bin", h.counts)
    if not (math.isfinite(h.lo) and math.isfinite(h.hi) and h.lo <= h.hi):
        raise InputError(
            f"{where}: expected finite limits lo <= hi, got lo={h.lo!r}, hi={h.hi!r}; bin "
            "the finite values between their min and max"
        )
    low = min(h.counts)
    if low < 0:
        _fail(f"{where}.counts", "counts >= 0", low)


# Unix seconds a timestamp may hold: from 1970 to 1e11 (year 5138); beyond, dates
# cannot be formatted (Python's datetime stops at year 9999) and NaN cannot be stored
TIMESTAMP_RANGE = (0.0, 1e11)


def _timestamp(where: str, value: Any) -> float | int:
    number = _number(where, value)
    if not TIMESTAMP_RANGE[0] <= number <= TIMESTAMP_RANGE[1]:  # False for NaN
        raise InputError(
            f"{where}: expected Unix seconds between {TIMESTAMP_RANGE[0]:g} and "
            f"{TIMESTAMP_RANGE[1]:g} (finite), got {value!r}; record time.time()"
        )
    return number


def _iteration(where: str, value: Any) -> int:
    number = _integer(where, value)
    if number < 0:
        _fail(where, "an integer >= 0", value)
    return number


def _number_map(where: str, data: Any) -> dict[str, float | int]:
    _mapping(where, data)
    return {k: _number(f"{where}.{k}", v) for k, v in data.items()}


def _common(where: str, data: dict, per_iteration: bool = True) -> None:
    _string(f"{where}.session_id", data.get("session_id"))
    _string(f"{where}.worker_id", data.get("worker_id"))
    _timestamp(f"{where}.timestamp", data.get("timestamp"))
    if per_iteration:
        _iteration(f"{where}.iteration", data.get("iteration"))


def _snapshot_shape(where: str, labels: list, vectors: Any) -> None:
    """Rows of one length; as many labels as rows when labels are given."""
    rows = len(vectors)
    if rows:
        try:
            shape = np.shape(vectors)
        except ValueError:  # numpy refuses ragged nested lists
            shape = ()
        if len(shape) != 2:
            lengths = sorted({len(row) for row in vectors if hasattr(row, "__len__")})
            raise InputError(
                f"{where}.vectors: expected rows of one length (a matrix), got {rows} rows of "
                f"lengths {lengths[:5]}; give every item the same number of dimensions"
            )
    if labels and len(labels) != rows:
        raise InputError(
            f"{where}.labels: expected one label per row of vectors ({rows}), got "
            f"{len(labels)}; give as many labels as rows, or none"
        )


def check_read_window(after_iteration: Any, last: Any) -> tuple[int | None, int | None]:
    """The ``after_iteration`` and ``last`` of a ``get_updates`` call, checked the same
    for every storage: each None or an integer (numpy's too), ``last >= 0`` (``0``
    selects nothing). Returned as Python ints clipped to what an iteration can be
    (``-1 <= after_iteration``, ``last <= 2**63 - 1``), so SQLite can bind them.

    Examples
    --------
    >>> check_read_window(None, 10)
    (None, 10)
    >>> check_read_window("a", None)
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: after_iteration: expected an integer or None, got 'a'
    """
    after = _optional_int("after_iteration", after_iteration, None)
    if after is not None:
        after = min(max(after, -1), INT64_MAX)
    count = _optional_int("last", last, 0)
    if count is not None:
        count = min(count, INT64_MAX)
    return after, count


def _optional_int(name: str, value: Any, low: int | None) -> int | None:
    if value is None:
        return None
    try:
        return check_int(name, value, low=low)
    except InputError:
        bound = "" if low is None else f" >= {low}"
        raise InputError(f"{name}: expected an integer{bound} or None, got {value!r:.60}") from None


# ---------------------------------------------------------------------------------------
# the records a storage takes (Python objects): shared by every storage

_INTS = frozenset({int})  # what histogram counts are once checked
_NAMES_SEEN: set[tuple] = set()  # name tuples already checked (bounded, see _names)


def _names(where: str, names: tuple) -> None:
    """Each name of a parameter, layer or histogram (checked once per tuple of names)."""
    if names in _NAMES_SEEN:
        return
    for name in names:
        _string(f"{where} name", name)
    if len(_NAMES_SEEN) > 4096:
        _NAMES_SEEN.clear()
    _NAMES_SEEN.add(names)


def check_record(record: Record, where: str = "record") -> None:
    """Refuse a record that no storage could keep or show, before it is stored.

    Every storage calls this in ``put``, so the in-memory and SQLite storages (and the
    remote router) take exactly the same records: ids and names as
    :func:`~embedviz.stats.validation.record_from_dict` wants them, a finite timestamp in
    :data:`TIMESTAMP_RANGE`, an iteration >= 0, histograms with at least one bin, finite
    ``lo <= hi`` and counts >= 0, snapshot vectors that form a matrix with one label per
    row (or none), numeric metrics and static info that JSON can hold. Values of an
    update are not checked one by one (that would cost training time); the listener
    makes them.

    Integers are any :class:`numbers.Integral` but bool (``np.int64`` too) and numbers
    any real number, as everywhere in the package; the iteration, timestamp and
    metrics of a record it takes are set to Python ``int`` / ``float`` in place (what
    JSON and SQLite take).

    Raises
    ------
    InputError
        Naming the record (session, worker, iteration), the field and the value.

    Examples
    --------
    >>> check_record(Update("s", "0", 1, float("nan")))
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: record (session 's', worker '0', iteration 1).timestamp: ...
    """
    if type(record) not in _TYPE_NAMES:
        raise InputError(
            f"{where}: expected StaticInfo, Update, EvalRecord or Snapshot, got "
            f"{type(record).__name__}"
        )
    iteration = getattr(record, "iteration", None)
    integral = isinstance(iteration, numbers.Integral) and not isinstance(iteration, bool)
    shown = int(iteration) if integral else iteration
    at = "" if isinstance(record, StaticInfo) else f", iteration {shown!r:.30}"
    where = (
        f"{where} (session {str(record.session_id)[:40]!r}, worker "
        f"{str(record.worker_id)[:40]!r}{at})"
    )
    ids = (record.session_id, record.worker_id)
    if type(ids[0]) is not str or type(ids[1]) is not str or ids not in _NAMES_SEEN:
        _common(where, vars(record), per_iteration=False)  # strings before they are keys
        _names(where, ids)
    ts = record.timestamp
    if type(ts) is not float or not TIMESTAMP_RANGE[0] <= ts <= TIMESTAMP_RANGE[1]:
        record.timestamp = _timestamp(f"{where}.timestamp", ts)  # numpy's -> Python's
    if iteration is not None or not isinstance(record, StaticInfo):
        if type(iteration) is not int or not 0 <= iteration <= INT64_MAX:
            record.iteration = _iteration(f"{where}.iteration", iteration)
    if isinstance(record, Update):
        for name in ("params", "activations", "histograms", "tags"):
            if type(getattr(record, name)) is not dict:
                _mapping(f"{where}.{name}", getattr(record, name))
        if record.params:
            _names(f"{where}.params", tuple(record.params))
        if record.activations:
            _names(f"{where}.activations", tuple(record.activations))
        for kind, group in record.histograms.items():
            if kind not in HISTOGRAM_KINDS:
                _fail(f"{where}.histograms", f"keys among {HISTOGRAM_KINDS}", kind)
            _mapping(f"{where}.histograms.{kind}", group)
            _names(f"{where}.histograms.{kind}", tuple(group))
            for name, h in group.items():  # the message is made only for a bad one
                try:
                    lo, hi, counts = h.lo, h.hi, h.counts
                    good = len(counts) and -math.inf < lo <= hi < math.inf and min(counts) >= 0
                except (AttributeError, TypeError):
                    good = False
                if not good:
                    _histogram_object(f"{where}.histograms.{kind}.{name}", h)
                if type(counts) is not list or not _INTS.issuperset(map(type, counts)):
                    integral = all(
                        isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in counts
                    )
                    if integral:  # numpy's (an array) -> Python's; else check_update_values
                        h.counts = [int(c) for c in counts]  # refuses it, in every storage
                if type(lo) is not float or type(hi) is not float:
                    h.lo, h.hi = float(lo), float(hi)
        for key, value in record.tags.items():
            _string(f"{where}.tags key", key)
            _string(f"{where}.tags.{key}", value)
    elif isinstance(record, EvalRecord):
        record.metrics = _number_map(f"{where}.metrics", record.metrics)
    elif isinstance(record, Snapshot):
        _string(f"{where}.kind", record.kind)
        if not isinstance(record.labels, list | tuple | np.ndarray):
            _fail(f"{where}.labels", "a list of strings", record.labels)
        labels = list(record.labels)
        for i, label in enumerate(labels):
            _string(f"{where}.labels[{i}]", label)
        vectors = record.vectors
        if not isinstance(vectors, list | tuple | np.ndarray):
            _fail(f"{where}.vectors", "a list of rows of numbers (or a 2-d array)", vectors)
        if len(vectors):
            try:
                matrix = np.asarray(vectors, dtype=np.float64)
            except (TypeError, ValueError):
                matrix = None
            if matrix is None or matrix.ndim != 2:
                if matrix is None and all(isinstance(r, list) for r in vectors):
                    _snapshot_shape(where, labels, vectors)  # ragged: says so
                _fail(f"{where}.vectors", "rows of numbers of one length (a matrix)", vectors)
        _snapshot_shape(where, labels, vectors)
    else:
        _string(f"{where}.kind", record.kind)
        try:
            to_json(record)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{where}: expected static info that JSON can hold (numbers, strings, "
                f"lists, dicts), got {exc}; convert the value to one of those"
            ) from None
