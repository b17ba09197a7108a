"""Statistics of torch tensors, computed with few kernel launches and one sync.

Each function returns torch tensors (still on the tensors' device) so that the listener
can stack everything of one iteration and move it to Python with a single ``tolist()``.
Imported only by :class:`~embedviz.stats.listener.StatsListener`.
"""

from __future__ import annotations

import torch

from embedviz.stats.records import Histogram


@torch.no_grad()
def moments(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``(n, 3)`` float64: mean, std and mean magnitude (mean of ``|x|``) of each tensor.

    The std is the sample std (``n - 1`` in the denominator), 0 for one-element tensors.
    """
    if not tensors:
        return torch.zeros((0, 3), dtype=torch.float64)
    rows = []
    for t in tensors:
        std, mean = torch.std_mean(t, correction=1 if t.numel() > 1 else 0)
        rows.append(torch.stack((mean, std)))
    try:
        abs_sums = torch._foreach_norm(tensors, 1)
    except (AttributeError, RuntimeError):  # very old torch or mixed devices
        abs_sums = [t.abs().sum() for t in tensors]
    numels = torch.tensor([max(t.numel(), 1) for t in tensors], dtype=torch.float64)
    first = torch.stack(rows).to(torch.float64)
    mags = torch.stack([a.to(first.device) for a in abs_sums]).to(torch.float64)
    return torch.cat((first, (mags / numels.to(first.device)).unsqueeze(1)), dim=1)


@torch.no_grad()
def activation_moments(output: torch.Tensor) -> torch.Tensor:
    """``(3,)`` float64: mean, std and share of exact zeros of one layer's output."""
    x = output.detach()
    if not x.is_floating_point():
        x = x.float()
    std, mean = torch.std_mean(x, correction=1 if x.numel() > 1 else 0)
    zeros = (x == 0).sum() / max(x.numel(), 1)
    return torch.stack((mean, std, zeros)).to(torch.float64)


@torch.no_grad()
def histograms(tensors: dict[str, torch.Tensor], bins: int) -> dict[str, Histogram]:
    """Equal-width histograms of each tensor between its finite min and max."""
    if not tensors:
        return {}
    names = list(tensors)
    flat = [tensors[n].detach().reshape(-1).float() for n in names]
    finite = [x if bool(torch.isfinite(x).all()) else x[torch.isfinite(x)] for x in flat]
    bounds = []
    for x in finite:
        if x.numel():
            lo, hi = torch.aminmax(x)
            bounds.append(torch.stack((lo, hi)))
        else:
            bounds.append(torch.zeros(2, device=x.device))
    limits = torch.stack([b.cpu() for b in bounds]).tolist()
    out = {}
    counts = []
    for x, (lo, hi) in zip(finite, limits, strict=True):
        if hi > lo:
            counts.append(torch.histc(x, bins=bins, min=lo, max=hi).cpu())
        else:  # constant tensor: everything in the first bin
            c = torch.zeros(bins)
            c[0] = x.numel()
            counts.append(c)
    for name, (lo, hi), c in zip(names, limits, counts, strict=True):
        out[name] = Histogram(float(lo), float(hi), [int(v) for v in c.tolist()])
    return out
