"""Statistics of torch tensors, computed with few kernel launches and one sync.

Each function returns torch tensors (still on the tensors' device) so that the listener
can stack everything of one iteration and move it to Python with a single ``tolist()``.
Imported only by :class:`~embedviz.stats.listener.StatsListener`.
"""

from __future__ import annotations

import math

import torch

from embedviz.stats.records import Histogram

_FULL = (torch.float32, torch.float64)


def _row(t: torch.Tensor) -> torch.Tensor:
    """sum, sum of squares and sum of |x| of one tensor (queued, in its dtype)."""
    f = t.detach().reshape(-1)
    if f.dtype not in _FULL:  # half, bfloat16, integers: reduce in float32
        f = f.float()
    return torch.stack((f.sum(), torch.dot(f, f), f.abs().sum()))


def _moments(sums: list[float], n: int) -> list[float]:
    """[mean, sample std, mean |x|] from sums (std from the sum of squares)."""
    total, squares, absolute = sums
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

    Creating it queues three reductions per tensor (no sync); :meth:`values` moves them
    to Python at once: one ``[mean, std, mean |x|]`` list per tensor, the std being the
    sample std (0 for one element) computed from the sums in the tensors' precision.
    """

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        with torch.no_grad():
            self._numels = [t.numel() for t in tensors]
            self._rows = torch.stack([_row(t) for t in tensors]) if tensors else None

    def values(self) -> list[list[float]]:
        if self._rows is None:
            return []
        rows = self._rows.to(torch.float64).cpu().tolist()
        return [_moments(r, n) for r, n in zip(rows, self._numels, strict=True)]


def moments(tensors: list[torch.Tensor]) -> list[list[float]]:
    """``[mean, std, mean magnitude]`` of each tensor (see :class:`Moments`)."""
    return Moments(tensors).values()


def activation_row(output: torch.Tensor) -> torch.Tensor:
    """Queued statistics of one layer's output: sum, sum of squares, non-zero count."""
    with torch.no_grad():
        f = output.detach().reshape(-1)
        if f.dtype not in _FULL:
            f = f.float()
        return torch.stack((f.sum(), torch.dot(f, f), torch.count_nonzero(f).to(f.dtype)))


def activation_values(row: list[float], numel: int) -> tuple[float, float, float]:
    """mean, sample std and share of exact zeros from :func:`activation_row` values."""
    mean, std, _ = _moments([row[0], row[1], 0.0], numel)
    return mean, std, 1.0 - row[2] / numel if numel else math.nan


@torch.no_grad()
def histograms(tensors: dict[str, torch.Tensor], bins: int) -> dict[str, Histogram]:
    """Equal-width histograms of each tensor between its finite min and max."""
    names = [n for n, t in tensors.items() if t.numel()]
    if not names:
        return {}
    flat = [tensors[n].detach().reshape(-1) for n in names]
    flat = [x if x.dtype in _FULL else x.float() for x in flat]
    limits = torch.stack([torch.stack(torch.aminmax(x)).float().cpu() for x in flat]).tolist()
    counts = []
    for i, (x, (lo, hi)) in enumerate(zip(flat, limits, strict=True)):
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN/inf: bin the finite values
            x = x[torch.isfinite(x)]
            lo, hi = limits[i] = torch.stack(torch.aminmax(x)).tolist() if x.numel() else [0, 0]
        if hi > lo:
            idx = ((x - lo) * (bins / (hi - lo))).to(torch.int32).clamp_(0, bins - 1)
            counts.append(torch.bincount(idx, minlength=bins))
        else:  # constant tensor: everything in the first bin
            c = torch.zeros(bins, dtype=torch.int64, device=x.device)
            c[0] = x.numel()
            counts.append(c)
    rows = torch.stack(counts).cpu().tolist()
    return {
        name: Histogram(float(lo), float(hi), row)
        for name, (lo, hi), row in zip(names, limits, rows, strict=True)
    }
