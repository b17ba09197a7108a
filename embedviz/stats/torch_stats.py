"""Statistics of torch tensors for :class:`~embedviz.stats.listener.StatsListener`.

One call per *group* of tensors (the gradients, the parameters and updates, one layer's
output) returns a :class:`TensorStats`: per tensor the sum, sum of squares, sum of
magnitudes and number of non-zero values (float64 accumulators), and when asked its
histogram between its finite min and max.

CPU tensors (the common case, and the one where the listener's cost shows most) are read
in place by compiled loops that walk a table of the tensors' addresses, so a group costs
one call whatever its size: the sums vectorise (~0.1 ns per value), the min and max are
found on the values' bits read as integers -- an order-preserving map that the compiler
vectorises, where a float min/max loop does not -- and also reveal NaN and inf; binning
computes a chunk's bin numbers in a vectorised loop, in the values' own precision, then
counts them into eight partial histograms (~0.3 ns per value). The update the optimizer
applied is computed in the same pass as the statistics of parameters and updates
(:func:`step_stats`), from the listener's one copy of the parameters (and written into
it, in place, when its histogram is asked for).

Tensors on other devices use torch reductions, queued without a sync; their numbers are
moved to Python with one ``tolist()`` per group.

Imported only by :class:`~embedviz.stats.listener.StatsListener` (it imports torch).
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import torch

from embedviz.stats._tensor_kernels import _assemble, _before_step, _group, _step, _tensor
from embedviz.stats.records import Histogram

_FULL = (torch.float32, torch.float64)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """1-D view (or copy) of a tensor in float32/float64, detached; sparse tensors (the
    gradient of ``Embedding(sparse=True)``) made dense, implicit zeros included."""
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    f = t.reshape(-1)
    return f if f.dtype in _FULL else f.float()  # half, bfloat16, integers: float32


def _dense(t: torch.Tensor) -> torch.Tensor:
    """The tensor itself when its elements fill its memory (any order: sums and
    histograms do not care; read through its address, so not detached), else a
    contiguous float copy."""
    if (
        t.layout == torch.strided
        and t.dtype in _FULL
        and (
            t.is_contiguous()
            or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))
        )
    ):
        return t
    return _flat(t).contiguous()


def _compiled(tensors, compiled: bool | None) -> bool:
    """The compiled loops read memory: CPU tensors only (``compiled=False`` forces torch)."""
    return compiled is not False and all(t.is_cpu for t in tensors)


def _table(tensors: list[torch.Tensor]) -> np.ndarray:
    """Rows: the tensors' addresses, element counts and element sizes (4 or 8)."""
    rows = [(t.data_ptr(), t.numel(), t.element_size()) for t in tensors]
    return np.array(rows, np.int64).reshape(-1, 3).T.copy()


class TensorStats:
    """Numbers of a group of tensors, from :func:`tensor_stats` or :func:`step_stats`.

    Holds per tensor its sums, moments and element count, and its histogram when one was
    asked for. CPU groups are done (their arrays may be the listener's kept ones: read
    them before its next report); groups on other devices hold queued torch reductions
    (and copies of the tensors, for histograms) until read.
    """

    def __init__(self, numels: list[int], sums, lohi=None, counts=None, flat=None, bins=0):
        self.numels = numels
        self._sums = sums  # np.ndarray (n, 8) or a queued torch tensor (n, 4)
        self._lohi = lohi
        self._counts = counts
        self._flat = flat  # non-CPU: tensors to bin when histograms are read
        self.bins = bins

    def _rows(self) -> list[list[float]]:
        """Per tensor ``[sum, sum of squares, sum of |x|, non-zero count, mean, std,
        mean |x|, share of zeros]`` (see :func:`~embedviz.stats._tensor_kernels._finish`)."""
        s = self._sums
        if isinstance(s, np.ndarray):
            return s.tolist()  # the compiled loops wrote the moments
        rows = s.to(torch.float64).cpu().tolist()
        for r, n in zip(rows, self.numels, strict=True):
            r += _moments(r, n) + [1.0 - r[3] / n if n else math.nan]
        return rows

    def sums_array(self) -> np.ndarray:
        """The rows of :meth:`_rows` as an array (n, 8): the compiled loops' own."""
        s = self._sums
        if isinstance(s, np.ndarray):
            return s
        return np.array(self._rows(), np.float64).reshape(-1, 8)

    def moments(self) -> list[list[float]]:
        """Per tensor ``[mean, sample std, mean |x|]`` (std 0 for one element)."""
        return [r[4:7] for r in self._rows()]

    def activation_values(self) -> list[tuple[float, float, float]]:
        """Per tensor ``(mean, sample std, share of exact zeros)``; NaN is not a zero."""
        return [(r[4], r[5], r[7]) for r in self._rows()]

    def histograms(self, names: list[str]) -> dict[str, Histogram]:
        """Histogram of each non-empty tensor, by name (``{}`` when none were asked for)."""
        names, lohi, counts = self.histogram_arrays(names)
        lohi, counts = lohi.tolist(), counts.tolist()
        return {name: Histogram(*lohi[k], counts[k]) for k, name in enumerate(names)}

    def histogram_arrays(self, names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(names, lohi (n, 2), counts (n, bins))`` of the non-empty tensors'
        histograms (none when none were asked for); the arrays may be the listener's
        kept ones."""
        if not self.bins:
            return [], np.zeros((0, 2)), np.zeros((0, 0), np.int64)
        if self._flat is not None:
            done = self._materialised()
            self._sums, self._lohi, self._counts, self._flat = (
                done._sums,
                done._lohi,
                done._counts,
                None,
            )
        if all(self.numels):
            return names, self._lohi, self._counts
        keep = [k for k, n in enumerate(self.numels) if n]
        return [names[k] for k in keep], self._lohi[keep], self._counts[keep]

    @staticmethod
    def join(groups: list[TensorStats]) -> TensorStats:
        """One group of the tensors of several (one transfer for all when they are on
        one non-CPU device)."""
        numels = [n for g in groups for n in g.numels]
        bins = groups[0].bins if groups else 0
        if any(g.bins != bins for g in groups):
            raise ValueError("TensorStats.join: groups with different numbers of bins")
        if all(isinstance(g._sums, np.ndarray) and g._flat is None for g in groups):
            return TensorStats(
                numels,
                np.concatenate([g._sums for g in groups]),
                np.concatenate([g._lohi for g in groups]),
                np.concatenate([g._counts for g in groups]),
                bins=bins,
            )
        devices = {g._sums.device for g in groups if isinstance(g._sums, torch.Tensor)}
        if len(devices) == 1 and all(isinstance(g._sums, torch.Tensor) for g in groups):
            flat = [f for g in groups for f in g._flat or ()]
            return TensorStats(
                numels,
                torch.cat([g._sums for g in groups]),
                flat=flat if bins else None,
                bins=bins,
            )
        return TensorStats.join([g._materialised() for g in groups])  # mixed devices

    def _materialised(self) -> TensorStats:
        """This group with every number on the CPU, as numpy arrays."""
        if isinstance(self._sums, np.ndarray) and self._flat is None:
            return self
        n = len(self.numels)
        sums, lohi, counts = _outputs(n, self.bins)
        if n:
            sums[:] = self._rows()
        if self.bins:
            done = _histograms_torch(dict(enumerate(self._flat)), self.bins)
            for k, h in done.items():
                lohi[k] = h.lo, h.hi
                counts[k] = h.counts
        return TensorStats(self.numels, sums, lohi, counts, bins=self.bins)


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


def _outputs(n: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums and moments (n, 8, see :func:`_finish`), limits (n, 2), counts (n, bins)."""
    return np.zeros((n, 8)), np.zeros((n, 2)), np.zeros((n, bins), np.int64)


class Outputs:
    """Result arrays for up to ``n`` tensors, made once and filled on every report.

    A report of a small model costs more in touching numpy's code and memory again,
    cold, every ``frequency`` iterations than in the numbers themselves (measured:
    building a 6-row table takes 1.5 us warm, 15 us after the training step has
    evicted the caches), so the listener keeps its result arrays, their rows and the
    address tables of its parameters (:class:`ParamLayout`) between reports. What a
    :class:`TensorStats` made from them holds is valid until the next report.
    """

    def __init__(self, n: int, bins: int) -> None:
        self.sums, self.lohi, self.counts = _outputs(n, bins)
        self.no_counts = np.zeros((n, 0), np.int64)
        self.rows = {
            bins: list(zip(self.sums, self.lohi, self.counts, strict=True)),
            0: list(zip(self.sums, self.lohi, self.no_counts, strict=True)),
        }
        self.bins = bins

    def arrays(self, m: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first ``m`` rows; counts with ``bins`` (the configured number, or 0)."""
        counts = self.counts if bins else self.no_counts
        if m == len(self.sums):
            return self.sums, self.lohi, counts
        return self.sums[:m], self.lohi[:m], counts[:m]


def tensor_stats(
    tensors: list[torch.Tensor],
    bins: int = 0,
    compiled: bool | None = None,
    out: Outputs | None = None,
) -> TensorStats:
    """Sums (and with ``bins > 0`` histograms) of each tensor.

    The compiled loops when every tensor is on the CPU, else torch reductions;
    ``compiled=False`` forces torch (tests). Both give the same numbers. ``out`` (kept
    by the caller between calls) saves allocations on the CPU path.

    Examples
    --------
    >>> tensor_stats([torch.tensor([1.0, -1.0, 0.0])], bins=2).moments()
    [[0.0, 1.0, 0.6666666666666666]]
    """
    numels = [t.numel() for t in tensors]
    if not tensors:
        return TensorStats(numels, *_outputs(0, bins), bins=bins)
    if _compiled(tensors, compiled):
        dense = [_dense(t) for t in tensors]  # kept alive during the call
        if out is not None and len(dense) <= len(out.sums):
            sums, lohi, counts = out.arrays(len(dense), bins)
        else:
            sums, lohi, counts = _outputs(len(dense), bins)
        if len(dense) == 1:  # one layer's output: no table to build
            t = dense[0]
            _tensor(t.data_ptr(), numels[0], t.element_size(), sums[0], lohi[0], counts[0])
        else:
            _group(*_table(dense), sums, lohi, counts)
        return TensorStats(numels, sums, lohi, counts, bins=bins)
    flat = [_flat(t) for t in tensors]
    with torch.no_grad():
        queued = []
        for f in flat:
            nonzero = torch.count_nonzero(f).to(f.dtype)  # fast on GPUs (slow only on CPU)
            queued += (f.sum(), torch.dot(f, f), f.abs().sum(), nonzero)
        sums = torch.stack(queued).reshape(-1, 4)  # one transfer for the whole group
    # histograms are binned later, from a copy: an in-place op (ReLU) may overwrite these
    keep = [f.clone() for f in flat] if bins else None
    return TensorStats(numels, sums, flat=keep, bins=bins)


def layer_stats(output: torch.Tensor, bins: int, out: Outputs, k: int) -> TensorStats | None:
    """One layer's output into row ``k`` of ``out`` (CPU; returns None), else (other
    devices, other dtypes, strided) a :class:`TensorStats` of its own."""
    if (
        output.is_cpu
        and output.layout == torch.strided
        and output.dtype in _FULL
        and output.is_contiguous()
        and k < len(out.sums)
    ):
        sums, lohi, counts = out.rows[bins][k]
        _tensor(output.data_ptr(), output.numel(), output.element_size(), sums, lohi, counts)
        return None
    return tensor_stats([output], bins)


class ParamLayout:
    """The model's (CPU, contiguous, float) parameters as the compiled loops see them:
    their address table, where each one's bytes go in a :class:`ParamCopy`, and the
    gradients' table. Made once and kept while the parameters stay where they are
    (:meth:`fits`), so a report touches each parameter through two cheap calls.
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.table = _table(params)
        self.numels = self.table[1].tolist()
        nbytes = self.table[1] * self.table[2]
        self.offsets = np.zeros(len(params), np.int64)
        np.cumsum(nbytes[:-1], out=self.offsets[1:])
        self.ends = self.offsets + nbytes
        self.nbytes = int(nbytes.sum())
        self.shapes = [(p.dtype, p.shape) for p in params]
        self._key = list(zip(self.table[0].tolist(), self.numels, strict=True))
        # the gradients' addresses, written through a stdlib array into the numpy array
        # that shares its memory (no numpy call per report)
        self._grad_addresses = array("q", bytes(8 * len(params)))
        self._grad_table = np.frombuffer(self._grad_addresses, np.int64)

    @staticmethod
    def of(params: list[torch.Tensor]) -> ParamLayout | None:
        """The layout of these parameters, or None when the compiled path cannot read
        them (other devices or dtypes, strided or sparse parameters)."""
        usable = _compiled(params, None) and all(
            p.layout == torch.strided and p.dtype in _FULL and p.is_contiguous() for p in params
        )
        return ParamLayout(params) if usable and params else None

    def fits(self, params: list[torch.Tensor]) -> bool:
        """The parameters are still in this memory, with these sizes (a parameter that
        moved, ``p.data = ...``, needs a new layout)."""
        return [(p.data_ptr(), p.numel()) for p in params] == self._key

    def before_step(
        self,
        grads: list[torch.Tensor | None],
        bins: int,
        out: Outputs,
        spare: ParamCopy | None = None,
    ) -> tuple[TensorStats | None, ParamCopy]:
        """Statistics of one gradient per parameter and the copy of the parameters, in
        one compiled call (into ``spare``, a copy of this layout no longer needed, when
        given). The statistics are None when a gradient is missing, sparse or strided
        (the caller takes the general path). torch keeps a dense gradient's size and
        dtype those of its parameter (it refuses any other ``p.grad``)."""
        addresses = self._grad_addresses
        stats = None
        sums, lohi, counts = out.arrays(len(grads), bins)
        # sparse gradients are not contiguous
        dense = not any(g is None or not g.is_contiguous() for g in grads)
        if dense:
            for k, g in enumerate(grads):
                addresses[k] = g.data_ptr()
            stats = TensorStats(self.numels, sums, lohi, counts, bins=bins)
        copy = spare if spare is not None and spare.layout is self else ParamCopy(layout=self)
        t = self.table
        _before_step(
            dense, self._grad_table, t[1], t[2], sums, lohi, counts, t[0], copy.start, self.offsets
        )
        return stats, copy


class ParamCopy:
    """The listener's one copy of the parameters, taken before the optimizer step.

    ``ParamCopy(params)`` clones the parameters (other devices, strided parameters);
    ``ParamCopy(layout=...)`` is one buffer for their bytes as they are, which
    :meth:`ParamLayout.before_step` fills in the same compiled call as the gradients'
    statistics.
    """

    def __init__(
        self, params: list[torch.Tensor] | None = None, layout: ParamLayout | None = None
    ) -> None:
        self.layout = layout
        if layout is not None:
            self.buffer = torch.empty(layout.nbytes, dtype=torch.uint8)
            self.start = self.buffer.data_ptr()
        else:
            self.clones = [p.detach().clone(memory_format=torch.contiguous_format) for p in params]

    def tensors(self) -> list[torch.Tensor]:
        """The copies as tensors (views of the buffer)."""
        if self.layout is None:
            return self.clones
        lay = self.layout
        return [
            self.buffer[a:b].view(dtype).reshape(shape)
            for a, b, (dtype, shape) in zip(lay.offsets, lay.ends, lay.shapes, strict=True)
        ]


def step_stats(
    params: list[torch.Tensor],
    before: ParamCopy,
    bins: int = 0,
    out: tuple[Outputs, Outputs] | None = None,
) -> tuple[TensorStats, TensorStats]:
    """Statistics of the parameters and of the update ``params - before`` the optimizer
    applied. The update is written into ``before``, in place, when ``bins`` asks for
    histograms (on the compiled path; the general path always writes it)."""
    lay = before.layout
    if lay is not None and lay.fits(params):
        numels = lay.numels
        n = len(params)
        if out is not None and n == len(out[0].sums):
            p_out, u_out = out[0].arrays(n, bins), out[1].arrays(n, bins)
        else:
            p_out, u_out = _outputs(n, bins), _outputs(n, bins)
        t = lay.table
        _step(t[0], before.start, lay.offsets, t[1], t[2], p_out, u_out)
        return TensorStats(numels, *p_out, bins=bins), TensorStats(numels, *u_out, bins=bins)
    numels = [p.numel() for p in params]
    copies = before.tensors()  # the general case: torch ops
    detached = [p.detach() for p in params]
    with torch.no_grad():
        torch._foreach_sub_(copies, detached)  # before - after
        torch._foreach_neg_(copies)  # negated: exactly after - before
    return tensor_stats(detached, bins), tensor_stats(copies, bins)


_NO_LAYERS = np.zeros((0, 8))


def flat_values(
    params: TensorStats,
    grads: TensorStats,
    updates: TensorStats,
    acts: TensorStats | None,
    out: np.ndarray,
) -> np.ndarray:
    """A report's numbers in the order of
    :meth:`~embedviz.stats.sqlite_layout.UpdatePacker.pack_flat` (per parameter the ten
    :class:`~embedviz.stats.records.ParamStats` fields, then per layer the three
    :class:`~embedviz.stats.records.ActivationStats` fields), written by one compiled
    call into the start of ``out`` (float64, long enough), which is returned.

    Examples
    --------
    >>> w = tensor_stats([torch.tensor([1.0, -1.0])])
    >>> flat_values(w, w, w, None, np.zeros(10)).tolist()
    [0.0, 1.4142135623730951, 1.0, 0.0, 1.4142135623730951, 1.0, 0.0, 1.4142135623730951, 1.0, 1.0]
    """
    layers = _NO_LAYERS if acts is None else acts.sums_array()
    values = out[: 10 * len(params.numels) + 3 * len(layers)]
    _assemble(params.sums_array(), grads.sums_array(), updates.sums_array(), layers, values)
    return values


def load_kernels() -> None:
    """Compile (first use on a machine) or load from numba's cache (~0.5 s) every
    compiled loop, on two float32 values: the loops take addresses, so these
    specialisations serve every model and dtype. The listener calls it when it is
    created, so that the cost is paid before training rather than in its first report."""
    x = torch.tensor([1.0, -2.0])
    stats = tensor_stats([x, x], bins=2)  # _group
    stats.moments()
    out = Outputs(1, 2)
    layer_stats(x, 2, out, 0)  # _tensor
    layout = ParamLayout([x])
    x.grad = x.detach().clone()
    _, copy = layout.before_step([x.grad], 2, out)  # _before_step
    p, u = step_stats([x], copy, 2, out=(out, Outputs(1, 2)))  # _step
    flat_values(p, p, u, p, np.zeros(13))  # _assemble
    x.grad = None


def _single_precision_bins(dtype, lo: float, hi: float, scale: float):
    """``(lo, scale)`` rounded to float32 when float32 values are binned in float32 (their
    range and the scale fit in it), else None: the rule of the compiled loop
    (:func:`~embedviz.stats._tensor_kernels._count`)."""
    if dtype != torch.float32:
        return None
    with np.errstate(over="ignore"):
        lo32, hi32, scale32 = np.float32(lo), np.float32(hi), np.float32(scale)
        fits = abs(hi32 - lo32) < np.inf and 0 < scale32 < np.inf
    return (float(lo32), float(scale32)) if fits else None


def _histograms_torch(tensors: dict[str, torch.Tensor], bins: int) -> dict[str, Histogram]:
    """Histograms with torch ops (any device): two syncs for all tensors, plus one per
    tensor holding NaN or inf."""
    names = [n for n, x in tensors.items() if x.numel()]
    flat = [tensors[n] for n in names]
    if not flat:
        return {}
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
            scale = bins / (hi - lo)
            single = _single_precision_bins(x.dtype, lo, hi, scale)
            if single is not None:  # as the compiled loop: float32 arithmetic
                f = (x - single[0]) * single[1]
            else:
                f = (x.to(torch.float64) - lo) * scale
            counts.append(torch.bincount(f.to(torch.int64).clamp_(0, bins - 1), minlength=bins))
        else:  # constant: everything in the first bin
            c = torch.zeros(bins, dtype=torch.int64, device=x.device)
            c[0] = x.numel()
            counts.append(c)
    rows = torch.stack(counts).cpu().tolist()
    return {
        n: Histogram(float(lo), float(hi), row)
        for n, (lo, hi), row in zip(names, limits, rows, strict=True)
    }
