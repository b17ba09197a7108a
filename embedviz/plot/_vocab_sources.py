"""What :func:`~embedviz.plot.plot_vocab` maps: its ``vectors`` argument (a file, gensim
vectors or model, ``(words, matrix)``, a ``{word: vector}`` mapping or a Selection) made
into the selection of words to map, with the filters applied."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from embedviz._check import plural
from embedviz._defaults import VOCAB_DEFAULTS
from embedviz.errors import InputError


def selection_of(vectors, top, words, include, exclude, drop_stopwords, drop_punctuation):
    """The selection to map and the name of its source (the page's default title)."""
    from embedviz.vectors import Selection, load_selection, select_words

    filtered = (include, exclude, words) != (None, None, None) or drop_stopwords or drop_punctuation
    if isinstance(vectors, Selection):
        if top is None and not filtered:
            return vectors, "embedviz"
        # select again from the selection: its words in order, their ranks kept
        kv = _indexed(vectors.words, vectors.vectors, vectors.rank, "the Selection")
        vectors = None
    if isinstance(vectors, Mapping):
        vectors = _pair_of_mapping(vectors)
    pair = isinstance(vectors, tuple) and len(vectors) == 2
    if top is None and words is None and not pair:  # a pair (or mapping) is mapped whole
        top = VOCAB_DEFAULTS["top"]
    filters = dict(
        top=top,
        words=words,
        include=include,
        exclude=exclude,
        drop_stopwords=drop_stopwords,
        drop_punctuation=drop_punctuation,
    )
    if vectors is None:
        pass  # a Selection, indexed above
    elif isinstance(vectors, (str, Path)):
        return load_selection(vectors, **filters), Path(vectors).name
    elif pair:
        names, matrix = vectors
        what = getattr(vectors, "what", "(words, matrix)")
        names = [str(w) for w in names]
        try:
            matrix = np.asarray(matrix, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{what}: expected a matrix of numbers, got one that does not convert ({exc})"
            ) from None
        if matrix.ndim != 2 or matrix.shape[0] != len(names):
            raise InputError(
                f"{what}: expected a matrix with one row per word ({len(names)}), "
                f"got shape {matrix.shape}"
            )
        kv = _indexed(names, matrix, None, what)
    else:
        kv = getattr(vectors, "wv", vectors)
        if not hasattr(kv, "key_to_index") or not hasattr(kv, "vectors"):
            raise InputError(
                "vectors: expected a file path, gensim KeyedVectors, a Word2Vec/FastText model, "
                "(words, matrix), a mapping word -> vector or a Selection, got "
                f"{type(vectors).__name__}"
            )
    return select_words(kv, **filters), "embedviz"


class _Pair(tuple):
    """(words, matrix) made from a mapping; ``what`` names it in messages."""

    what = "vectors (a mapping word -> vector)"


def _pair_of_mapping(mapping) -> _Pair:
    """``{word: vector}`` as (words, matrix) in the mapping's order; one InputError for
    an empty mapping, a vector that is not numbers, or vectors of different lengths."""
    what = _Pair.what
    if not mapping:
        raise InputError(f"{what}: expected at least one word, got an empty mapping")
    rows, first = [], None
    for position, (word, vector) in enumerate(mapping.items(), start=1):
        if not isinstance(word, str):
            raise InputError(
                f"{what}: expected words (str) as keys, got {type(word).__name__} "
                f"{word!r:.40} (position {position}); convert the keys to str (decode bytes)"
            )
        try:
            row = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(
                f"{what}: expected a vector of numbers for each word, got "
                f"{type(vector).__name__} {vector!r:.40} for {word!r:.40} (position "
                f"{position}); give each word a list or array of numbers"
            ) from None
        if row.ndim != 1:
            raise InputError(
                f"{what}: expected a 1-D vector of numbers for each word, got shape "
                f"{row.shape} for {word!r:.40} (position {position}); give each word a list "
                "or 1-D array of numbers"
            )
        first = first or (word, row.shape)
        if not row.size:
            raise InputError(
                f"{what}: expected a vector of numbers for each word, got an empty one for "
                f"{word!r:.40} (position {position}); drop the word or give it its vector"
            )
        if row.shape != first[1]:
            raise InputError(
                f"{what}: expected vectors of one length, got shape {first[1]} for "
                f"{first[0]!r:.40} and {row.shape} for {word!r:.40} (position {position}); "
                "give every word a 1-D vector of the same length"
            )
        rows.append(row)
    return _Pair((list(mapping), np.vstack(rows)))


def _indexed(words, matrix, ranks, what: str):
    """Words and vectors with the attributes select_words reads (gensim is not needed)."""
    from embedviz._readers import Raw

    index = {w: i for i, w in enumerate(words)}
    if len(index) != len(words):
        raise InputError(
            f"{what}: the word list repeats {plural(len(words) - len(index), 'word')}; give "
            "each word once"
        )
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{what}: {bad.size} vector(s) hold NaN or infinity, first the word {words[i]!r} "
            f"(position {i + 1}); drop or fix those words"
        )
    if ranks is None:
        ranks = np.arange(1, len(words) + 1, dtype=np.int64)
    return Raw(list(words), index, np.ascontiguousarray(matrix), np.asarray(ranks, np.int64))
