"""Values as drawn: log10 that keeps 0 and negatives apart, and TensorBoard's smoothing.

Plain numpy (no Bokeh). :func:`ema` is the debiased exponential moving average that
TensorBoard draws over a noisy score; :func:`smoothing_weight` lowers its weight on short
series so that a few points are not dragged behind.
"""

from __future__ import annotations

import math

import numpy as np

SMOOTHING = 0.8  # TensorBoard-style exponential moving average weight (on long series)
SMOOTHING_WINDOW = 0.1  # the average spans at most this fraction of a series' points


def log10_or_nonfinite(values: np.ndarray) -> np.ndarray:
    """log10 of positive values; 0 becomes -inf, negatives and NaN become NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    pos = values > 0
    out[pos] = np.log10(values[pos])
    out[values == 0] = -np.inf
    out[np.isposinf(values)] = np.inf
    return out


def smoothing_weight(weight: float, n_points: int) -> float:
    """The EMA weight used on a series of ``n_points``: ``weight``, lowered on short series.

    An exponential moving average of weight ``w`` spans about ``1 / (1 - w)`` points and
    lags ``w / (1 - w)`` points behind the raw line; that span is kept to at most
    :data:`SMOOTHING_WINDOW` of the series, so 15 points are barely smoothed (weight 1/3)
    while a series of 50 or more gets the full ``weight``. 10 points or fewer are not
    smoothed at all.

    Examples
    --------
    >>> smoothing_weight(0.8, 1000), round(smoothing_weight(0.8, 15), 4), smoothing_weight(0.8, 8)
    (0.8, 0.3333, 0.0)
    """
    span = max(1.0, SMOOTHING_WINDOW * n_points)
    return max(0.0, min(float(weight), 1.0 - 1.0 / span))


def _ema_sums(v: np.ndarray, w: float, acc: float) -> np.ndarray:
    """``acc_j = w * acc_(j-1) + (1 - w) * v_j`` for every j, vectorised by blocks:
    within a block ``acc_j = w**(j+1) * acc + (1 - w) * m * w**(j+1) * cumsum(x_i *
    w**-(i+1))`` with ``x = v / m``, ``m`` the block's largest magnitude. The block is
    short enough that ``w**-len`` stays below 1e200 and the scaled values are at most
    1, so nothing overflows whatever the values (up to float64's largest)."""
    if w >= 1.0:  # nothing new ever counts
        return np.full(len(v), acc)
    if w < 1e-100:  # the previous average weighs nothing next to a new value
        return (1.0 - w) * v
    n = len(v)
    block = max(1, int(200.0 / -math.log10(w)))
    decay = w ** np.arange(1, min(block, n) + 1, dtype=np.float64)
    grow = 1.0 / decay
    out = np.empty(n)
    for start in range(0, n, block):
        x = v[start : start + block]
        k = len(x)
        m = float(np.max(np.abs(x)))
        part = decay[:k] * acc
        if m > 0:
            part += (1.0 - w) * m * (decay[:k] * np.cumsum((x / m) * grow[:k]))
        out[start : start + k] = part
        acc = out[start + k - 1]
    return out


def ema(values: np.ndarray, weight: float, state: tuple[float, float] = (0.0, 0.0)):
    """Debiased exponential moving average over the finite values (TensorBoard's smoothing).

    Returns ``(smoothed, state)``; pass ``state`` back to continue the average on new
    points. Non-finite inputs give NaN and do not disturb the average. Vectorised (100k
    points in a few ms rather than 40 ms point by point): the running sum by blocks
    (:func:`_ema_sums`), its weight after ``k`` finite points ``w**k * norm0 + 1 - w**k``.

    Examples
    --------
    >>> np.round(ema(np.array([1.0, np.nan, 3.0]), 0.5)[0], 4).tolist()
    [1.0, nan, 2.3333]
    """
    acc, norm = float(state[0]), float(state[1])
    w = float(weight)
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    ok = np.isfinite(values)
    v = values[ok]
    if len(v):
        sums = _ema_sums(v, w, acc)
        decay = w ** np.arange(1, len(v) + 1, dtype=np.float64)
        norms = decay * norm + (1.0 - decay)
        out[ok] = sums / norms
        acc, norm = float(sums[-1]), float(norms[-1])
    return out, (acc, norm)
