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

from embedviz._check import check_int
from embedviz.errors import InputError

logger = logging.getLogger(__name__)

#: neighbours kept per word in the page (more are dropped, with a log message)
MAX_NEIGHBORS = 10
_DIGITS = re.compile(r"(\d+)")


def check_inputs(coords, words, rank, clusters, neighbors, n_labels, dims):
    """Validate and normalise the arguments of ``scatter_2d`` / ``scatter_3d``."""
    coords = check_coords(coords, (dims,))
    n = coords.shape[0]
    words = check_words(words, n, "coords")
    if rank is not None:
        rank_arr = np.asarray(rank)
        if rank_arr.shape != (n,) or not np.issubdtype(rank_arr.dtype, np.integer):
            raise InputError(
                f"rank: expected {n} integers (1-based frequency ranks, one per word), got "
                f"shape {rank_arr.shape} and dtype {rank_arr.dtype}; pass None to leave it out"
            )
        if n and rank_arr.min() < 1:
            raise InputError(
                f"rank: expected integers >= 1 (1-based), got {int(rank_arr.min())} at "
                f"position {int(np.argmin(rank_arr))}; add 1 to 0-based ranks"
            )
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
                f"clusters: expected {n} labels (one per word), got {len(clusters)}; pass one "
                "label per row of coords"
            )
        codes, names = _encode_clusters(clusters)
    nbr_idx = nbr_sim = None
    extra: list[str] = []
    if neighbors is not None:
        nbr_idx, nbr_sim, extra = _encode_neighbors(neighbors, words)
    check_int("n_labels", n_labels, low=0)
    return coords, words, rank, codes, names, nbr_idx, nbr_sim, extra


def check_coords(
    coords,
    dims: tuple[int, ...] | None,
    drawn: bool = True,
    name: str = "coords",
    fix: str = "remove them or fix the embedding",
) -> np.ndarray:
    """``coords`` as a float64 array of shape ``(N, d)`` with ``d`` in ``dims`` (None: any
    number of columns), else one InputError naming ``name`` (the plots, the CSV writers
    and the projector's vectors share it); ``drawn``: also at least one row, every number
    finite (``fix`` says what to do about rows that are not; a CSV file may hold none, or
    NaN)."""
    shape = " or ".join(f"(N, {d})" for d in dims) if dims else "(N, D)"
    numbers = f"one row of {' or '.join(map(str, dims))} numbers" if dims else "one vector"
    coordinates = f"one row of {' or '.join(map(str, dims))} coordinates" if dims else "one vector"
    try:
        array = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name}: expected a numeric array of shape {shape}, got a "
            f"{type(coords).__name__} that does not convert ({exc}); pass {numbers} per word"
        ) from None
    if array.ndim != 2 or (dims and array.shape[1] not in dims):
        raise InputError(
            f"{name}: expected shape {shape}, got shape {array.shape}; pass {coordinates} per word"
        )
    if not drawn:
        return array
    if array.shape[0] == 0:
        raise InputError(
            f"{name}: expected at least one row, got shape {array.shape}; pass at least one "
            f"word{' to plot' if dims else ''}"
        )
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise InputError(
            f"{name}: expected finite numbers, got {int(bad.sum())} row(s) with NaN or inf, "
            f"the first at row {int(np.argmax(bad))}; {fix}"
        )
    return array


def check_words(words, n: int, against: str) -> list[str]:
    """``words`` as a list of ``n`` strings (one per row of ``against``), else one
    InputError naming the first wrong entry."""
    if isinstance(words, str):
        raise InputError(
            f"words: expected a sequence of strings, got the string {words!r:.60}; pass a "
            f"list with one word per row of {against}"
        )
    try:
        words = list(words)
    except TypeError:
        raise InputError(
            f"words: expected a sequence of strings, got {type(words).__name__}; pass a list "
            f"with one word per row of {against}"
        ) from None
    if len(words) != n:
        raise InputError(
            f"words: expected {n} entries (one per row of {against}), got {len(words)}; "
            f"pass one word per row of {against}"
        )
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise InputError(
                f"words[{i}]: expected a str, got {type(w).__name__} {w!r:.60}; convert "
                "every word to str"
            )
    return words


def _encode_clusters(clusters):
    """Labels (int or str) -> (codes uint8/uint16, names as str): numbers first, by value,
    then text in natural order (L2 before L10)."""
    for i, c in enumerate(clusters):
        if c is None or (isinstance(c, float) and math.isnan(c)):
            raise InputError(
                f"clusters[{i}]: expected a label (an int or a str), got {c!r:.60}; every "
                "word needs a cluster label"
            )
    keys = sorted(set(clusters), key=lambda c: (not _is_int(c), _sort_key(c)))
    if len(keys) > 65535:
        raise InputError(
            f"clusters: expected at most 65535 distinct labels, got {len(keys)}; group the "
            "labels into fewer clusters"
        )
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
            f"neighbors: expected {n} lists (one per word), got {len(neighbors)}; pass one "
            "list of (word, cosine_similarity) pairs per word"
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
                    f"neighbors[{i}][{j}]: expected a (word, cosine_similarity) pair, got "
                    f"{pair!r:.60}; give each neighbour as such a pair"
                ) from None
            if not isinstance(word, str) or not math.isfinite(s):
                raise InputError(
                    f"neighbors[{i}][{j}]: expected a str word and a finite similarity, got "
                    f"{pair!r:.60}; fix that pair"
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
    raise InputError(  # pragma: no cover
        f"values: expected integers below 2**32 to put into the page, got {top}"
    )
