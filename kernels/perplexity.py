"""Perplexity calibration: per-point Gaussian precisions over k nearest neighbours.

For each point *i* with neighbour distances ``d_i1 .. d_ik`` (squared euclidean
distances, or cosine distances used as they are), t-SNE's conditional distribution is

    p_{j|i} = exp(-beta_i * d_ij) / sum_l exp(-beta_i * d_il)

and the precision ``beta_i`` is chosen so that its Shannon entropy (in nats) equals
``log(perplexity)`` (van der Maaten and Hinton 2008; over the 3 * perplexity nearest
neighbours only, van der Maaten 2014). The entropy falls monotonically as beta grows,
so a bisection on beta finds it: doubling or halving until the target is bracketed,
then halving the bracket.

Numerical care:

* the row's smallest distance is subtracted before exponentiating (the distribution is
  unchanged), so the largest term is exp(0) = 1 and the sum can never underflow to 0;
* the starting beta is 1 / (mean shifted distance), so distances of any scale (1e-200
  or 1e200) converge in a few dozen steps;
* terms that underflow to 0 are skipped in the entropy, so huge ``beta * d`` never
  makes ``inf * 0 = nan``;
* the unreachable targets have exact answers: when all distances are equal (including
  all exact duplicates at distance 0) or the target is at least log(k), the
  distribution is uniform; when the ties at the smallest distance already give an
  entropy above the target (many duplicates), the limit beta -> inf is uniform over
  those ties. Neither counts as a failed search.

Rows are independent and each writes only its own row of the output, so the parallel
loop is race-free and its result does not depend on the thread count.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _calibrate_row(d, target, tolerance, max_tries, out):
    """Fill ``out`` with p_{j|i} for one row of distances ``d``; return True if converged."""
    k = d.shape[0]
    d_min = d[0]
    for j in range(1, k):
        if d[j] < d_min:
            d_min = d[j]
    mean_shift = 0.0
    n_ties = 0
    for j in range(k):
        s = d[j] - d_min
        mean_shift += s
        if s == 0.0:
            n_ties += 1
    mean_shift /= k

    # Unreachable targets with exact answers.
    if mean_shift == 0.0 or target >= np.log(k) - tolerance:
        for j in range(k):
            out[j] = 1.0 / k
        return True
    if np.log(n_ties) >= target - tolerance:
        for j in range(k):
            out[j] = 1.0 / n_ties if d[j] == d_min else 0.0
        return True

    beta = 1.0 / mean_shift
    beta_lo = 0.0
    beta_hi = np.inf
    converged = False
    for _ in range(max_tries):
        total = 0.0
        weighted = 0.0
        for j in range(k):
            s = d[j] - d_min
            p = np.exp(-beta * s)
            out[j] = p
            total += p
            if p > 0.0:
                weighted += s * p
        entropy = np.log(total) + beta * weighted / total
        diff = entropy - target
        if abs(diff) <= tolerance:
            converged = True
            break
        if diff > 0.0:  # too flat: sharpen
            beta_lo = beta
            beta = beta * 2.0 if beta_hi == np.inf else 0.5 * (beta + beta_hi)
        else:  # too peaked: flatten
            beta_hi = beta
            beta = 0.5 * (beta + beta_lo)
    for j in range(k):
        out[j] /= total
    return converged


@njit(parallel=True, cache=True)
def conditional_probabilities(distances, perplexity, tolerance, max_tries, P_cond):
    """Calibrate every row of ``distances`` to ``perplexity``; write p_{j|i} into ``P_cond``.

    Parameters
    ----------
    distances : (N, k) float64 array
        Distances to each point's k nearest neighbours (self excluded).
    perplexity : float
        Target perplexity; each row's entropy is brought to log(perplexity) nats.
    tolerance : float
        Allowed absolute difference of the entropy from its target, in nats.
    max_tries : int
        Bisection steps per row at most.
    P_cond : (N, k) float64 array
        Output; every row sums to 1.

    Returns
    -------
    int
        The number of rows whose search did not reach the tolerance.
    """
    n = distances.shape[0]
    target = np.log(perplexity)
    failed = np.zeros(n, dtype=np.uint8)
    for i in prange(n):
        if not _calibrate_row(distances[i], target, tolerance, max_tries, P_cond[i]):
            failed[i] = 1
    n_failed = 0
    for i in range(n):
        n_failed += failed[i]
    return n_failed
