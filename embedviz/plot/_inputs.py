"""Checking the inputs of ``scatter_2d`` / ``scatter_3d`` and encoding them compactly.

Cluster labels (int or str) become small unsigned codes into their sorted names; the
neighbour lists become flat ``idx`` / ``sim`` arrays with ``k`` entries per word (the
page layout is described in :mod:`embedviz.plot._common`).
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from embedviz.errors import InputError

logger = logging.getLogger(__name__)

#: neighbours kept per word in the page (more are dropped, with a log message)
MAX_NEIGHBORS = 10
_DIGITS = re.compile(r"(\d+)")


def check_inputs(coords, words, rank, clusters, neighbors, n_labels, dims):
    """Validate and normalise the arguments of ``scatter_2d`` / ``scatter_3d``."""
    try:
        coords = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"coords must be a numeric array of shape (N, {dims}); could not convert it ({exc})"
        ) from None
    if coords.ndim != 2 or coords.shape[1] != dims:
        raise InputError(
            f"coords must have shape (N, {dims}), got {coords.shape}; "
            f"pass one row of {dims} coordinates per word"
        )
    n = coords.shape[0]
    if n == 0:
        raise InputError("coords is empty; pass at least one word to plot")
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():
        raise InputError(
            f"coords has {int(bad.sum())} row(s) with NaN or inf, the first at row "
            f"{int(np.argmax(bad))}; remove them or fix the embedding"
        )
    if isinstance(words, str):
        raise InputError("words must be a sequence of strings, got a single string")
    words = list(words)
    if len(words) != n:
        raise InputError(f"words has {len(words)} entries but coords has {n} rows; they must match")
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise InputError(f"words[{i}] is {type(w).__name__} {w!r}; every word must be a str")
    if rank is not None:
        rank_arr = np.asarray(rank)
        if rank_arr.shape != (n,) or not np.issubdtype(rank_arr.dtype, np.integer):
            raise InputError(
                f"rank must be {n} integers (frequency rank, 1-based), got shape "
                f"{rank_arr.shape} and dtype {rank_arr.dtype}"
            )
        if n and rank_arr.min() < 1:
            raise InputError(f"rank must be >= 1 (1-based), got {int(rank_arr.min())}")
        rank = rank_arr.astype(np.int64)
    codes = names = None
    if clusters is not None:
        clusters = (
            list(np.asarray(clusters, dtype=object).ravel())
            if not isinstance(clusters, list)
            else clusters
        )
        if len(clusters) != n:
            raise InputError(
                f"clusters has {len(clusters)} labels but coords has {n} rows; they must match"
            )
        codes, names = _encode_clusters(clusters)
    nbr_idx = nbr_sim = None
    extra: list[str] = []
    if neighbors is not None:
        nbr_idx, nbr_sim, extra = _encode_neighbors(neighbors, words)
    if not isinstance(n_labels, (int, np.integer)) or isinstance(n_labels, bool) or n_labels < 0:
        raise InputError(f"n_labels must be an integer >= 0, got {n_labels!r}")
    return coords, words, rank, codes, names, nbr_idx, nbr_sim, extra


def _encode_clusters(clusters):
    """Labels (int or str) -> (codes uint8/uint16, names as str): numbers first, by value,
    then text in natural order (L2 before L10)."""
    for i, c in enumerate(clusters):
        if c is None or (isinstance(c, float) and math.isnan(c)):
            raise InputError(f"clusters[{i}] is {c!r}; every word needs a cluster label")
    keys = sorted(set(clusters), key=lambda c: (not _is_int(c), _sort_key(c)))
    if len(keys) > 65535:
        raise InputError(f"clusters has {len(keys)} distinct labels; at most 65535 are supported")
    lookup = {k: j for j, k in enumerate(keys)}
    dtype = np.uint8 if len(keys) <= 255 else np.uint16
    codes = np.fromiter((lookup[c] for c in clusters), dtype=dtype, count=len(clusters))
    names = [str(int(k)) if _is_int(k) else str(k) for k in keys]
    return codes, names


def _is_int(c) -> bool:
    return isinstance(c, (int, np.integer)) and not isinstance(c, bool)


def _sort_key(c):
    return int(c) if _is_int(c) else natural_key(str(c))


def natural_key(text: str) -> tuple:
    """Sort key that orders the numbers inside labels by value: L2 before L10.

    Text parts compare without case, then the text itself breaks ties (L01 / L1).
    """
    parts = _DIGITS.split(text)  # text, number, text, ..., text: the kinds alternate
    return (
        tuple(int(p) if j % 2 else p.casefold() for j, p in enumerate(parts)),
        text,
    )


def _encode_neighbors(neighbors, words):
    """Lists of (word, similarity) -> flat index / similarity arrays (k per word)."""
    n = len(words)
    if len(neighbors) != n:
        raise InputError(
            f"neighbors has {len(neighbors)} lists but there are {n} words; pass one list "
            "of (word, cosine_similarity) pairs per word"
        )
    k = max((len(lst) for lst in neighbors), default=0)
    if k > MAX_NEIGHBORS:
        logger.info("keeping the %d nearest of up to %d neighbours per word", MAX_NEIGHBORS, k)
        k = MAX_NEIGHBORS
    k = max(k, 1)
    index = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    extra: list[str] = []
    total = n
    idx = np.full(n * k, -1, dtype=np.int64)
    sim = np.zeros(n * k, dtype=np.int8)
    for i, lst in enumerate(neighbors):
        for j, pair in enumerate(list(lst)[:k]):
            try:
                word, s = pair
                s = float(s)
            except (TypeError, ValueError):
                raise InputError(
                    f"neighbors[{i}][{j}] is {pair!r}; each neighbour must be a "
                    "(word, cosine_similarity) pair"
                ) from None
            if not isinstance(word, str) or not math.isfinite(s):
                raise InputError(
                    f"neighbors[{i}][{j}] is {pair!r}; the word must be a str and the "
                    "similarity a finite number"
                )
            pos = index.get(word)
            if pos is None:
                pos = index[word] = total
                extra.append(word)
                total += 1
            idx[i * k + j] = pos
            sim[i * k + j] = int(round(min(1.0, max(-1.0, s)) * 100))
    idx_dtype = np.int16 if total < 2**15 else np.int32
    return idx.astype(idx_dtype), sim, extra


def smallest_uint(values: np.ndarray) -> np.ndarray:
    """The same non-negative integers in the narrowest unsigned dtype Bokeh can encode."""
    top = int(values.max()) if values.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    raise InputError(f"value {top} is too large for the page")  # pragma: no cover
