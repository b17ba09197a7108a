"""Compiled loops over the memory of CPU tensors, for :mod:`embedviz.stats.torch_stats`.

A tensor is given as its address, element count and element size (4: float32, 8:
float64); ``numba.carray`` views that memory as an array, so one call can walk a whole
table of tensors without a Python object per tensor. Results go into caller-owned rows:
``sums`` (8 values: sum, sum of squares, sum of |x|, non-zero count, then mean, std,
mean |x| and share of zeros, see :func:`_finish`), ``lohi`` (the histogram's limits)
and ``counts`` (its bins; length 0 for none).

The callers keep every tensor alive during a call and pass only dense memory.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Let LLVM reorder the sums so that they vectorise; NaN and inf still propagate (no
# "nnan"/"ninf" flags).
_FAST = {"reassoc", "nsz", "contract"}


@intrinsic
def _address(typingctx, addr):  # pragma: no cover - compiled
    """An integer address as a ``void*`` (for ``numba.carray``)."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(types.int64), codegen


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
def _key_range(x, bits, low_bits):  # pragma: no cover - compiled
    """Smallest and largest value of the float array ``x`` read through ``bits`` (the
    same memory as int32/int64), as floats.

    ``k = b ^ ((b >> sign) & low_bits)`` maps IEEE floats to integers in the same order
    (-NaN < -inf < ... < -0 < +0 < ... < +inf < +NaN); integer min/max vectorise. The
    result is NaN when a NaN is present, +-inf when an infinity is.
    """
    sign = bits.itemsize * 8 - 1
    lo = bits[0] ^ ((bits[0] >> sign) & low_bits)
    hi = lo
    for i in range(bits.shape[0]):
        b = bits[i]
        k = b ^ ((b >> sign) & low_bits)
        lo = min(lo, k)
        hi = max(hi, k)
    back = np.empty(2, bits.dtype)  # the map is its own inverse
    back[0] = lo ^ ((lo >> sign) & low_bits)
    back[1] = hi ^ ((hi >> sign) & low_bits)
    floats = back.view(x.dtype)
    return np.float64(floats[0]), np.float64(floats[1])


_CHUNK = 4096  # values binned per round: their bin numbers stay in L1
_PARTS = 8  # partial histograms counted into in turn


@njit(cache=True, nogil=True)
def _bin_counts(x, lo, hi, out):  # pragma: no cover - compiled
    """Counts of ``x``'s values in ``len(out)`` equal-width bins over ``[lo, hi]``, written
    into ``out``: bin ``floor((v - lo) * (bins / (hi - lo)))`` computed in ``x``'s own
    precision (float32 arithmetic for float32 values: a value within a float32 rounding
    of a bin edge may fall one bin off float64's choice), ``hi`` in
    the last bin. Needs finite ``lo < hi`` and every value in ``[lo, hi]`` (no NaN).

    In chunks: first every bin number of the chunk (a loop the compiler vectorises), into
    a byte per value when the bins fit; then the counting, into eight partial histograms
    in turn, which breaks the chains of loads and stores of one counter when many values
    fall into one bin (ReLU zeros, gradients near 0). ~40 % faster than computing the bin
    numbers in float64 and counting into four."""
    bins = out.shape[0]
    part = np.zeros((_PARTS, bins), np.int64)
    if bins <= 256:
        _count(x, lo, hi, part, np.empty(_CHUNK, np.uint8))
    else:
        _count(x, lo, hi, part, np.empty(_CHUNK, np.int32))
    for b in range(bins):
        total = 0
        for k in range(_PARTS):
            total += part[k, b]
        out[b] = total


@njit(cache=True, nogil=True)
def _count(x, lo, hi, part, buffer):  # pragma: no cover - compiled
    scale = part.shape[1] / (hi - lo)
    top = part.shape[1] - 1
    lo32 = np.float32(lo)
    scale32 = np.float32(scale)
    if x.itemsize == 4 and abs(np.float32(hi) - lo32) < np.inf and 0 < scale32 < np.inf:
        _count_chunks(x, lo32, scale32, np.float32(top), part, buffer)
    else:  # float64, or float32 values whose range or scale float32 cannot hold
        _count_chunks(x, lo, scale, np.float64(top), part, buffer)


@njit(cache=True, nogil=True)
def _count_chunks(x, lo, scale, top, part, buffer):  # pragma: no cover - compiled
    """:func:`_bin_counts`'s loops; ``lo``, ``scale`` and ``top`` (the last bin) are of
    ``x``'s float type, so the bin numbers are computed in its precision."""
    zero = top - top
    for start in range(0, x.shape[0], _CHUNK):
        chunk = x[start : start + _CHUNK]
        m = chunk.shape[0]
        idx = buffer[:m]
        for i in range(m):  # vectorised
            idx[i] = min(max((chunk[i] - lo) * scale, zero), top)
        whole = m - m % _PARTS
        for i in range(0, whole, _PARTS):
            for k in range(_PARTS):  # unrolled: _PARTS is a constant
                part[k, idx[i + k]] += 1
        for i in range(whole, m):
            part[0, idx[i]] += 1


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


@njit(cache=True, nogil=True)
def _finish(row, n):  # pragma: no cover - compiled
    """row[4:8] = mean, sample std (0 for one value), mean |x| and share of exact zeros
    from the sums in row[:4] of ``n`` values (NaN without values)."""
    if n == 0:
        row[4:8] = np.nan
        return
    mean = row[0] / n
    std = 0.0
    if n > 1:
        var = (row[1] - n * mean * mean) / (n - 1)
        std = np.sqrt(var) if var > 0 else (0.0 if var == var else np.nan)
    row[4] = mean
    row[5] = std
    row[6] = row[2] / n
    row[7] = 1.0 - row[3] / n


@njit(cache=True, nogil=True)
def _one(x, bits, low_bits, sums, lohi, counts):  # pragma: no cover - compiled
    """Sums and moments of ``x`` (see :func:`_finish`) and, when ``counts`` has bins, its
    histogram (limits in ``lohi``)."""
    _sums(x, sums)
    _finish(sums, x.shape[0])
    _histogram(x, bits, low_bits, lohi, counts)


@njit(cache=True, nogil=True)
def _histogram(x, bits, low_bits, lohi, counts):  # pragma: no cover - compiled
    """``x``'s histogram into ``counts`` (none when it has no bins), limits in ``lohi``."""
    if counts.shape[0] == 0 or x.shape[0] == 0:
        return
    lo, hi = _key_range(x, bits, low_bits)
    if not (abs(lo) < np.inf and abs(hi) < np.inf):  # NaN or inf somewhere
        lo, hi = _finite_histogram(x, counts)
    elif hi > lo:
        _bin_counts(x, lo, hi, counts)
    else:  # constant: everything in the first bin
        counts[:] = 0
        counts[0] = x.shape[0]
    lohi[0] = lo
    lohi[1] = hi


@njit(cache=True, nogil=True)
def _tensor(address, size, itemsize, sums, lohi, counts):  # pragma: no cover - compiled
    if itemsize == 4:
        x32 = carray(_address(address), (size,), np.float32)
        b32 = carray(_address(address), (size,), np.int32)
        _one(x32, b32, np.int32(0x7FFFFFFF), sums, lohi, counts)
    else:
        x64 = carray(_address(address), (size,), np.float64)
        b64 = carray(_address(address), (size,), np.int64)
        _one(x64, b64, np.int64(0x7FFFFFFFFFFFFFFF), sums, lohi, counts)


@njit(cache=True, nogil=True)
def _group(addresses, sizes, itemsizes, sums, lohi, counts):  # pragma: no cover - compiled
    """:func:`_one` for each tensor of a table of addresses, sizes and item sizes (4:
    float32, 8: float64); ``counts`` is ``(n, bins)``, ``(n, 0)`` for no histograms."""
    for k in range(addresses.shape[0]):
        _tensor(addresses[k], sizes[k], itemsizes[k], sums[k], lohi[k], counts[k])


@njit(cache=True, nogil=True)
def _copy(addresses, sizes, itemsizes, start, offsets):  # pragma: no cover - compiled
    """Copy each tensor of a table to ``start + offsets[k]``, element by element (4 or 8
    bytes: a loop the compiler turns into wide moves)."""
    for k in range(addresses.shape[0]):
        n = sizes[k]
        if itemsizes[k] == 4:
            src32 = carray(_address(addresses[k]), (n,), np.int32)
            dst32 = carray(_address(start + offsets[k]), (n,), np.int32)
            for i in range(n):
                dst32[i] = src32[i]
        else:
            src64 = carray(_address(addresses[k]), (n,), np.int64)
            dst64 = carray(_address(start + offsets[k]), (n,), np.int64)
            for i in range(n):
                dst64[i] = src64[i]


@njit(cache=True, nogil=True, fastmath=_FAST)
def _pair(a, b, bits_a, bits_b, low_bits, p_row, u_row, p_hist, u_hist):  # pragma: no cover
    """One pass over the parameters ``a`` and the copy ``b`` taken before the step: the
    update ``a - b`` (in their own precision, exact as torch) and the sums of both go
    into ``p_row``/``u_row`` (see :func:`_sums`); then their histograms. The update
    replaces ``b`` when its histogram is asked for (else ``b`` is only read: no
    write-back of the copy's memory on a report without histograms)."""
    s, s2, sa, nz = 0.0, 0.0, 0.0, 0
    t, t2, ta, nzu = 0.0, 0.0, 0.0, 0
    keep = u_hist[1].shape[0] > 0
    for i in range(a.shape[0]):
        u = a[i] - b[i]
        if keep:  # the same in every round: the compiler makes two loops
            b[i] = u
        v = np.float64(a[i])
        w = np.float64(u)
        s += v
        s2 += v * v
        sa += abs(v)
        nz += v != 0
        t += w
        t2 += w * w
        ta += abs(w)
        nzu += w != 0
    p_row[0], p_row[1], p_row[2], p_row[3] = s, s2, sa, nz
    u_row[0], u_row[1], u_row[2], u_row[3] = t, t2, ta, nzu
    _finish(p_row, a.shape[0])
    _finish(u_row, a.shape[0])
    _histogram(a, bits_a, low_bits, p_hist[0], p_hist[1])
    _histogram(b, bits_b, low_bits, u_hist[0], u_hist[1])


@njit(cache=True, nogil=True)
def _step(after, start, offsets, sizes, itemsizes, p_out, u_out):  # pragma: no cover - compiled
    """The update ``after - before`` into ``before`` (the copy at ``start + offsets[k]``)
    and the statistics of the parameters (``after``) and of the updates, in one pass per
    tensor (:func:`_pair`); ``p_out``/``u_out`` = (sums, lohi, counts)."""
    for k in range(after.shape[0]):
        n = sizes[k]
        a, b = after[k], start + offsets[k]
        p_hist = (p_out[1][k], p_out[2][k])
        u_hist = (u_out[1][k], u_out[2][k])
        if itemsizes[k] == 4:
            a32 = carray(_address(a), (n,), np.float32)
            b32 = carray(_address(b), (n,), np.float32)
            ia32 = carray(_address(a), (n,), np.int32)
            ib32 = carray(_address(b), (n,), np.int32)
            _pair(
                a32, b32, ia32, ib32, np.int32(0x7FFFFFFF), p_out[0][k], u_out[0][k], p_hist, u_hist
            )
        else:
            a64 = carray(_address(a), (n,), np.float64)
            b64 = carray(_address(b), (n,), np.float64)
            ia64 = carray(_address(a), (n,), np.int64)
            ib64 = carray(_address(b), (n,), np.int64)
            _pair(
                a64,
                b64,
                ia64,
                ib64,
                np.int64(0x7FFFFFFFFFFFFFFF),
                p_out[0][k],
                u_out[0][k],
                p_hist,
                u_hist,
            )


@njit(cache=True, nogil=True)
def _before_step(
    grads, g_addresses, sizes, itemsizes, sums, lohi, counts, p_addresses, start, offsets
):  # pragma: no cover - compiled
    """Before the optimizer step: :func:`_group` of the gradients (when ``grads``, else
    the caller does them) and :func:`_copy` of the parameters to ``start``."""
    if grads:
        _group(g_addresses, sizes, itemsizes, sums, lohi, counts)
    _copy(p_addresses, sizes, itemsizes, start, offsets)


@njit(cache=True, nogil=True)
def _assemble(p, g, u, a, out):  # pragma: no cover - compiled
    """The listener's numbers of one report into ``out``, in the order of
    :meth:`~embedviz.stats.sqlite_layout.UpdatePacker.pack_flat`: per parameter ``k``
    the mean, std and mean ``|x|`` (columns 4-6 of :func:`_finish`'s rows) of ``p[k]``
    (parameters), ``g[k]`` (gradients) and ``u[k]`` (updates), then the update:parameter
    ratio (mean ``|update|`` / mean ``|parameter|``; inf for a moved zero parameter, 0
    for an unmoved one); then per layer ``j`` the mean, std and share of zeros of
    ``a[j]`` (columns 4, 5, 7)."""
    for k in range(p.shape[0]):
        o = 10 * k
        for j in range(3):
            out[o + j] = p[k, 4 + j]
            out[o + 3 + j] = g[k, 4 + j]
            out[o + 6 + j] = u[k, 4 + j]
        if p[k, 6] > 0:
            out[o + 9] = u[k, 6] / p[k, 6]
        elif u[k, 6] > 0:
            out[o + 9] = np.inf
        else:
            out[o + 9] = 0.0
    o = 10 * p.shape[0]
    for j in range(a.shape[0]):
        out[o + 3 * j] = a[j, 4]
        out[o + 3 * j + 1] = a[j, 5]
        out[o + 3 * j + 2] = a[j, 7]
