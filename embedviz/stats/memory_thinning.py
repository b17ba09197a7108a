"""How :class:`~embedviz.stats.storage.InMemoryStatsStorage` stays bounded: thinning a
list of records (sorted by iteration) to buckets of a power-of-two number of iterations,
keeping each bucket's lowest and highest score (spikes survive) and the list's first and
newest records (:func:`thin_at`), and an estimate of the memory a record holds
(:func:`record_bytes`)."""

from __future__ import annotations

import bisect
import itertools
import math
import sys

from embedviz.stats.records import EvalRecord, Record, Snapshot, Update


def iteration_of(record) -> int:
    return record.iteration


def _chosen(part: list, score) -> set[int]:
    """Positions in ``part`` (one bucket's records, by iteration) that thinning keeps:
    the first lowest and the last highest finite score (a spike or a dip survives, a flat
    stretch keeps its ends), or, without finite scores, the bucket's first record; and
    the first non-finite score."""
    values = [score(r) for r in part] if score is not None else [None] * len(part)
    finite = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if finite:
        keep = {min(finite, key=values.__getitem__), max(finite[::-1], key=values.__getitem__)}
    else:
        keep = {0}
    odd = (i for i, v in enumerate(values) if v is not None and not math.isfinite(v))
    keep.update(itertools.islice(odd, 1))
    return keep


def bucket_kept(items: list, lo: int, hi: int, score) -> list[int]:
    """Positions (sorted, in ``items``) kept of the bucket ``items[lo:hi]``: its
    :func:`_chosen`, and the list's first and newest records when they are in it."""
    keep = _chosen(items[lo:hi], score)
    if lo == 0:
        keep.add(0)
    if hi == len(items):
        keep.add(hi - lo - 1)
    return [lo + i for i in sorted(keep)]


def bucket_end(items: list, lo: int, width: int) -> int:
    """The end of the bucket (iterations ``k * width`` to ``(k + 1) * width - 1``) that
    starts at ``items[lo]``."""
    top = (items[lo].iteration // width + 1) * width
    return bisect.bisect_left(items, top, lo=lo, key=iteration_of)


def thin_at(items: list, width: int, score) -> list:
    """``items`` (sorted by iteration) reduced to buckets of ``width`` iterations."""
    out = []
    lo = 0
    while lo < len(items):
        hi = bucket_end(items, lo, width)
        out.extend(items[i] for i in bucket_kept(items, lo, hi, score))
        lo = hi
    return out


# What records hold in memory, estimated so as not to fall below the truth (CPython
# 3.11, measured with tracemalloc, see test_in_memory_estimate_is_not_below_the_truth):
# a float or int is 24-32 bytes plus its 8-byte slot; a dataclass object with its
# __dict__ ~150 bytes; a string sys.getsizeof plus its slot. Measured / estimated:
# updates of 200 ParamStats 0.75, of 200 ActivationStats 0.69, of 30 histograms of 30
# counts 0.72, snapshots of 2000 labelled rows of 50 numbers 0.81 and of 2 numbers 0.93
# (the old flat 40 bytes a number gave 1.28, 2.21, 0.89, 0.86 and 1.3 or more).
_NUMBER_BYTES = 40  # one number in a list or an object, with its slot
_OBJECT_BYTES = 160  # one dataclass object (ParamStats, Histogram, a record)
_SLOT_BYTES = 40  # one entry of a dict or list, beyond what it points to
_STATS_NUMBERS = {"params": 10, "activations": 3}  # fields of ParamStats, ActivationStats


def _keys_bytes(d: dict) -> int:
    """The strings of a dict's keys and the dict's entries."""
    return sum(map(sys.getsizeof, d)) + _SLOT_BYTES * len(d)


def record_bytes(r: Record) -> int:
    """An estimate of the memory a record holds (not below the truth, see above)."""
    if isinstance(r, Update):
        n = 800 + _NUMBER_BYTES * len(r.learning_rates)
        for name, per in _STATS_NUMBERS.items():
            stats = getattr(r, name)
            n += _keys_bytes(stats) + (_OBJECT_BYTES + _NUMBER_BYTES * per) * len(stats)
        for group in r.histograms.values():
            n += _keys_bytes(group) + _SLOT_BYTES
            n += sum(_OBJECT_BYTES + _NUMBER_BYTES * (len(h.counts) + 3) for h in group.values())
        for numbers in (r.memory, r.extra):
            n += _keys_bytes(numbers) + _NUMBER_BYTES * len(numbers)
        n += _keys_bytes(r.tags) + sum(map(sys.getsizeof, r.tags.values()))
        return n
    if isinstance(r, Snapshot):
        rows = sum(_NUMBER_BYTES * len(v) + 2 * _SLOT_BYTES for v in r.vectors)
        labels = sum(map(sys.getsizeof, r.labels)) + 8 * len(r.labels)
        return 800 + rows + labels
    if isinstance(r, EvalRecord):
        return 800 + _keys_bytes(r.metrics) + _NUMBER_BYTES * len(r.metrics)
    return 4096  # static info
