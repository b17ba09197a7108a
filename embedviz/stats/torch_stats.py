"""Statistics of torch tensors for :class:`~embedviz.stats.listener.StatsListener`.

CPU tensors (the common case, and the one where the listener's cost shows most) are
read in place through ``Tensor.numpy()`` by small compiled loops: one call per tensor
computes its sum, sum of squares, sum of magnitudes and non-zero count (float64
accumulators, vectorised), another its histogram. On one CPU thread that is ~0.1 ns per
value and ~2 us per tensor, where separate torch reductions cost ~3-5 us each per
tensor, ``torch.count_nonzero`` ~4 ns per value on ReLU outputs and ``torch.bincount``
1-2 ns per value. Tensors on other devices use torch reductions, queued without a sync;
the listener moves them to Python with one ``tolist()`` per report.

Imported only by :class:`~embedviz.stats.listener.StatsListener` (it imports torch).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from embedviz.stats.records import Histogram

_FULL = (torch.float32, torch.float64)
# Let LLVM reorder the sums so that they vectorise; NaN and inf still propagate (no
# "nnan"/"ninf" flags).
_FAST = {"reassoc", "nsz", "contract"}
# Up to this many values a histogram's limits are found by the compiled loop (~0.5 ns per
# value, no call overhead) instead of torch.aminmax (~2 us per call, 0.1 ns per value).
_SMALL = 4096


def _flat(t: torch.Tensor) -> torch.Tensor:
    """1-D view (or copy) of a tensor in float32/float64, detached."""
    f = t.detach().reshape(-1)
    return f if f.dtype in _FULL else f.float()  # half, bfloat16, integers: float32


def _on_cpu(tensors) -> bool:
    return all(t.device.type == "cpu" for t in tensors)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _sums(x, out):  # pragma: no cover - compiled
    """out[:4] = sum, sum of squares, sum of |x| and number of non-zero values (NaN
    counts as non-zero) of the 1-D array ``x``, accumulated in float64."""
    s = 0.0
    s2 = 0.0
    sa = 0.0
    nz = 0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        s += v
        s2 += v * v
        sa += abs(v)
        nz += v != 0
    out[0] = s
    out[1] = s2
    out[2] = sa
    out[3] = nz


@njit(cache=True, nogil=True)
def _bin_counts(x, lo, hi, out):  # pragma: no cover - compiled
    """Counts of ``x``'s values in ``len(out)`` equal-width bins over ``[lo, hi]``, written
    into ``out``: bin ``floor((v - lo) * bins / (hi - lo))``, ``hi`` in the last bin.
    Needs finite ``lo < hi`` and every value in ``[lo, hi]`` (no NaN). Four partial
    histograms break the store-to-load chain on runs of equal values (ReLU zeros)."""
    bins = out.shape[0]
    top = bins - 1
    scale = bins / (hi - lo)
    part = np.zeros((4, bins), np.int64)
    n = x.shape[0]
    m = n - n % 4
    for i in range(0, m, 4):
        for q in range(4):
            j = int((np.float64(x[i + q]) - lo) * scale)
            part[q, min(max(j, 0), top)] += 1
    for i in range(m, n):
        j = int((np.float64(x[i]) - lo) * scale)
        part[0, min(max(j, 0), top)] += 1
    for b in range(bins):
        out[b] = part[0, b] + part[1, b] + part[2, b] + part[3, b]


@njit(cache=True, nogil=True)
def _finite_histogram(x, out):  # pragma: no cover - compiled
    """:func:`_bin_counts` of the finite values of ``x`` between their min and max (the
    slow path for arrays with NaN or inf); returns ``(min, max)``, ``(0, 0)`` without
    finite values, everything in the first bin when they are all equal."""
    bins = out.shape[0]
    out[:] = 0
    lo = np.inf
    hi = -np.inf
    finite = 0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        if abs(v) < np.inf:  # false for NaN and +-inf
            finite += 1
            lo = min(lo, v)
            hi = max(hi, v)
    if finite == 0:
        return 0.0, 0.0
    if not hi > lo:
        out[0] = finite
        return lo, hi
    top = bins - 1
    scale = bins / (hi - lo)
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        if v >= lo and v <= hi:
            j = int((v - lo) * scale)
            out[j if j < top else top] += 1
    return lo, hi


def _moments(sums: list[float], n: int) -> list[float]:
    """[mean, sample std, mean |x|] from sums (std from the sum of squares)."""
    total, squares, absolute = sums[:3]
    if n == 0:
        return [math.nan, math.nan, math.nan]
    mean = total / n
    if n == 1:
        std = 0.0
    else:
        var = (squares - n * mean * mean) / (n - 1)
        std = math.sqrt(var) if var > 0 else (0.0 if var == var else math.nan)
    return [mean, std, absolute / n]


class Moments:
    """Mean, std and mean magnitude of several tensors.

    CPU tensors are reduced at once by a compiled loop (float64 sums); other devices get
    three queued torch reductions per tensor (in the tensor's precision, no sync) and
    :meth:`values` moves them to Python at once. ``values()`` gives one
    ``[mean, std, mean |x|]`` list per tensor, the std being the sample std (0 for one
    element). ``compiled=False`` forces the torch reductions (tests).
    """

    def __init__(self, tensors: list[torch.Tensor], compiled: bool | None = None) -> None:
        self._numels = [t.numel() for t in tensors]
        self._sums = None
        if not tensors:
            return
        if _on_cpu(tensors) if compiled is None else compiled:
            sums = np.empty((len(tensors), 4))
            for i, t in enumerate(tensors):
                _sums(_flat(t).numpy(), sums[i])
            self._sums = sums
            return
        with torch.no_grad():
            queued = []
            for t in tensors:
                f = _flat(t)
                queued += (f.sum(), torch.dot(f, f), f.abs().sum())
            self._sums = torch.stack(queued).reshape(-1, 3)  # one launch for all tensors

    def values(self) -> list[list[float]]:
        if self._sums is None:
            return []
        s = self._sums
        rows = s.tolist() if isinstance(s, np.ndarray) else s.to(torch.float64).cpu().tolist()
        return [_moments(r, n) for r, n in zip(rows, self._numels, strict=True)]


def moments(tensors: list[torch.Tensor], compiled: bool | None = None) -> list[list[float]]:
    """``[mean, std, mean magnitude]`` of each tensor (see :class:`Moments`)."""
    return Moments(tensors, compiled).values()


def activation_row(output: torch.Tensor, compiled: bool | None = None):
    """Statistics of one layer's output: sum, sum of squares, non-zero count.

    A list of floats for a CPU tensor, a queued 3-element tensor on other devices (see
    :func:`rows_to_lists`). NaN counts as non-zero (as in ``torch.count_nonzero``).
    """
    f = _flat(output)
    if f.device.type == "cpu" if compiled is None else compiled:
        out = np.empty(4)
        _sums(f.numpy(), out)
        return [out[0], out[1], out[3]]
    with torch.no_grad():  # count_nonzero is fast on GPUs (slow only on CPU)
        nonzero = torch.count_nonzero(f).to(f.dtype)
        return torch.stack((f.sum(), torch.dot(f, f), nonzero))


def rows_to_lists(rows: list) -> list[list[float]]:
    """:func:`activation_row` results as lists of floats (one sync for all tensors)."""
    queued = [r for r in rows if isinstance(r, torch.Tensor)]
    if not queued:
        return rows
    moved = iter(torch.stack([r.to(torch.float64) for r in queued]).cpu().tolist())
    return [next(moved) if isinstance(r, torch.Tensor) else r for r in rows]


def activation_values(row: list[float], numel: int) -> tuple[float, float, float]:
    """mean, sample std and share of exact zeros from :func:`activation_row` values."""
    mean, std, _ = _moments([row[0], row[1], 0.0], numel)
    return mean, std, 1.0 - row[2] / numel if numel else math.nan


def _histograms_torch(tensors: dict[str, torch.Tensor], bins: int) -> dict[str, Histogram]:
    """:func:`histograms` with torch ops (any device): two syncs for all tensors, plus
    one per tensor holding NaN or inf."""
    names = list(tensors)
    flat = [tensors[n] for n in names]
    finite = torch.stack([torch.isfinite(x).all() for x in flat]).cpu().tolist()
    limits = torch.stack([torch.stack(torch.aminmax(x)) for x in flat])
    limits = limits.to(torch.float64).cpu().tolist()  # exact: no float32 rounding of lo/hi
    counts = []
    for i, x in enumerate(flat):
        if not finite[i]:  # bin the finite values
            x = x[torch.isfinite(x)]
            limits[i] = (
                torch.stack(torch.aminmax(x)).to(torch.float64).tolist()
                if x.numel()
                else [0.0, 0.0]
            )
        lo, hi = limits[i]
        if hi > lo:
            idx = ((x.to(torch.float64) - lo) * (bins / (hi - lo))).to(torch.int64)
            counts.append(torch.bincount(idx.clamp_(0, bins - 1), minlength=bins))
        else:  # constant: everything in the first bin
            c = torch.zeros(bins, dtype=torch.int64, device=x.device)
            c[0] = x.numel()
            counts.append(c)
    rows = torch.stack(counts).cpu().tolist()
    return {
        n: Histogram(float(lo), float(hi), row)
        for n, (lo, hi), row in zip(names, limits, rows, strict=True)
    }


def histograms(
    tensors: dict[str, torch.Tensor], bins: int, compiled: bool | None = None
) -> dict[str, Histogram]:
    """Equal-width histograms of each tensor between its finite min and max.

    ``compiled``: count with the compiled loop (CPU tensors) or with torch; default the
    compiled loop for CPU tensors. Both give the same counts.
    """
    out = {}
    queued = {}
    counts = np.empty(bins, np.int64)
    for name, t in tensors.items():
        if not t.numel():
            continue
        x = _flat(t)
        if not (x.device.type == "cpu" if compiled is None else compiled):
            queued[name] = x
            continue
        if x.numel() <= _SMALL:  # one call does it all
            lo, hi = _finite_histogram(x.numpy(), counts)
        else:
            lo, hi = torch.aminmax(x)  # torch's vectorised min/max: ~0.1 ns per value
            lo, hi = lo.item(), hi.item()
            if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN or inf
                lo, hi = _finite_histogram(x.numpy(), counts)
            elif hi > lo:
                _bin_counts(x.numpy(), lo, hi, counts)
            else:  # constant tensor: everything in the first bin
                counts[:] = 0
                counts[0] = x.numel()
        out[name] = Histogram(float(lo), float(hi), counts.tolist())
    if queued:
        done = _histograms_torch(queued, bins)
        out = {n: out[n] if n in out else done[n] for n in tensors if n in out or n in done}
    return out
