"""Reading word vectors into gensim ``KeyedVectors`` and choosing the words to draw.

:func:`load_vectors` reads word2vec binary and text, fastText ``.vec`` and GloVe text
(any of them gzip- or bzip2-compressed) and gensim's own ``.kv``/``.model`` pickles; the
format is sniffed from the content, not from the file name. A pickle is opened only when
its name says it is one or the caller trusts it (unpickling runs code from the file).
Vectors already in memory (gensim KeyedVectors or a model) are taken as they are.
The readers stream the file (``limit`` rows are all they allocate); they and the file
layouts are in :mod:`embedviz._readers`. :func:`select_words` and :func:`word_filter`
choose the words to map; :func:`load_selection` does both while reading.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from embedviz import _readers
from embedviz._check import check_choice, check_int
from embedviz.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What :func:`load_vectors` found besides the vectors.

    ``broken_utf8`` counts words whose bytes were not valid UTF-8 (word2vec.c cuts long
    tokens mid-character) and ``broken_examples`` shows what the first of them became;
    ``duplicates`` lists words seen again later in the file (the first vector is kept).
    """

    path: str
    format: str
    n_words: int = 0
    vector_size: int = 0
    header_count: int | None = None
    compression: str | None = None
    broken_utf8: int = 0
    broken_examples: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class Selection(NamedTuple):
    """Words chosen by :func:`select_words`, their vectors and 1-based frequency ranks."""

    words: list[str]
    vectors: np.ndarray
    rank: np.ndarray
    unknown: list[str]


def load_vectors(
    path: str | Path | Any,
    limit: int | None = None,
    binary: bool | None = None,
    *,
    keep: Callable[[str], bool] | None = None,
    unicode_errors: str = "ignore",
    trust_pickle: bool | None = None,
    return_report: bool = False,
) -> Any:
    """Read word vectors from a file into a gensim ``KeyedVectors``.

    Parameters
    ----------
    path : str, Path, KeyedVectors or Word2Vec/FastText model
        word2vec binary or text, fastText ``.vec``, GloVe text, a gensim ``.kv`` or
        ``.model`` file, optionally ``.gz``/``.bz2``-compressed. The format is sniffed;
        a UTF-8 byte order mark is skipped. Vectors already in memory (as
        :func:`~embedviz.plot.plot_vocab` takes them) come back as they are, a model's
        as its ``wv``; with ``limit`` or ``keep`` a new KeyedVectors of the chosen
        words (their ranks kept) comes back instead. ``binary``, ``unicode_errors`` and
        ``trust_pickle`` concern files only.
    limit : int, default=None
        Read only the first ``limit`` words (the most frequent ones in word2vec and GloVe
        files); nothing is allocated for the rest.
    binary : bool or None, default=None
        Force word2vec binary (True) or text (False) instead of sniffing (None).
    keep : callable, default=None
        Keep only the words for which ``keep(word)`` is true (see :func:`word_filter`);
        ``limit`` then counts kept words. Memory goes to kept words only, so a filter
        over a 3-million-word file costs what it keeps.
    unicode_errors : {"ignore", "replace", "strict"}, default="ignore"
        What to do with words that are not valid UTF-8. ``"ignore"`` drops an incomplete
        character at the end of a word (word2vec.c cuts long words at a byte limit,
        mid-character: ``b"caf\\xc3"`` is ``"caf"``) and writes any other bad byte as a
        ``\\xNN`` escape (``b"\\xff\\xfe"`` is ``"\\\\xff\\\\xfe"``); ``"replace"`` puts U+FFFD
        for each bad byte; ``"strict"`` raises :class:`~embedviz.errors.FileFormatError`.
        A broken word never becomes empty and never takes the place of another word:
        when its decoded form is already a word of the file (or that of other broken
        bytes), it keeps its ``\\xNN`` form. Broken words are counted in the report and
        logged.
    trust_pickle : bool or None, default=None
        gensim's own files are Python pickles, and unpickling runs code stored in the
        file. With None a pickle is opened only when its name ends in ``.model``,
        ``.kv``, ``.wordvectors``, ``.gensim``, ``.pkl`` or ``.pickle`` (optionally
        ``.gz``/``.bz2`` after it), and any other pickle raises
        :class:`~embedviz.errors.FileFormatError`; True opens any pickle (only for
        files you trust), False none.
    return_report : bool, default=False
        Also return a :class:`LoadReport`.

    Returns
    -------
    KeyedVectors, or (KeyedVectors, LoadReport) with ``return_report``.

    Examples
    --------
    >>> kv = load_vectors("data/glove-5k.bin", limit=1000)  # doctest: +SKIP
    >>> kv.index_to_key[:3]  # doctest: +SKIP
    ['the', 'of', 'to']
    """
    found, report = _read(path, limit, binary, keep, unicode_errors, trust_pickle)
    if isinstance(found, _readers.Raw):
        found = found.keyed_vectors()
    return (found, report) if return_report else found


def _read(path, limit, binary, keep, unicode_errors, trust_pickle):
    """Read a file into a :class:`~embedviz._readers.Raw` (word2vec, GloVe, fastText:
    gensim is not even imported) or a gensim KeyedVectors (gensim pickles), with its
    report; vectors already in memory are taken as they are (see :func:`load_vectors`)."""
    _check_count("limit", limit)
    check_choice("unicode_errors", unicode_errors, ("ignore", "replace", "strict"))
    _check_flag("binary", binary)
    _check_flag("trust_pickle", trust_pickle)
    if not isinstance(path, (str, os.PathLike)):
        return _in_memory(path, limit, keep)
    path = Path(path)
    report = LoadReport(path=str(path), format="")
    kv = _readers.read(path, limit, binary, keep, unicode_errors, trust_pickle, report)
    report.n_words, report.vector_size = len(kv.index_to_key), int(kv.vectors.shape[1])
    if report.broken_utf8:
        examples = ", ".join(repr(w) for w in report.broken_examples[:5])
        logger.warning(
            "%s: %d words were not valid UTF-8 (unicode_errors=%r)%s",
            path,
            report.broken_utf8,
            unicode_errors,
            f"; read as {examples}" if examples else "",
        )
    if report.duplicates:
        logger.warning(
            "%s: %d word%s more than once; kept the first vector of each, e.g. %s",
            path,
            len(report.duplicates),
            "s appear" if len(report.duplicates) > 1 else " appears",
            ", ".join(repr(w) for w in report.duplicates[:5]),
        )
    logger.info(
        "read %d words x %d dims from %s (%s)",
        report.n_words,
        report.vector_size,
        path,
        report.format,
    )
    return kv, report


def _check_flag(name: str, value: Any) -> None:
    if not (value is None or isinstance(value, bool)):
        raise InputError(f"{name}: expected None, True or False, got {value!r:.60}")


def _in_memory(vectors, limit, keep):
    """A KeyedVectors (or a model's ``wv``) as it is, or a new one of its first ``limit``
    words that ``keep`` accepts, with its report."""
    kv = getattr(vectors, "wv", vectors)
    if not hasattr(kv, "key_to_index") or not hasattr(kv, "vectors"):
        raise InputError(
            "path: expected a file path (str or Path), gensim KeyedVectors or a "
            f"Word2Vec/FastText model, got {type(vectors).__name__} {vectors!r:.60}"
        )
    n = len(kv.index_to_key)
    if keep is not None or (limit is not None and limit < n):
        from embedviz._pickles import new_keyed_vectors

        chosen = range(n) if keep is None else (i for i in range(n) if keep(kv.index_to_key[i]))
        idx = np.fromiter(chosen, dtype=np.int64)[:limit]
        file_rank = getattr(kv, "expandos", {}).get("rank")
        rank = np.asarray(file_rank)[idx] if file_rank is not None else idx + 1
        words = [kv.index_to_key[i] for i in idx]
        kv = new_keyed_vectors(words, np.array(kv.vectors[idx]), ranks=rank)
    report = LoadReport(path=f"<{type(vectors).__name__}>", format="in-memory")
    report.n_words, report.vector_size = len(kv.index_to_key), int(kv.vectors.shape[1])
    return kv, report


# -- selection --------------------------------------------------------------------------


def _check_count(name: str, value: Any) -> None:
    if value is not None:
        check_int(name, value, low=1)


def _check_not_string(words: Any) -> None:
    if isinstance(words, str):
        raise InputError(
            f"words: expected a list of words, got the string {words!r:.60}; pass "
            f"[{words!r:.60}] for one word"
        )


def _compile(pattern: str | None, name: str) -> re.Pattern | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise InputError(
            f"{name}: expected a regular expression (a str) or None, got "
            f"{type(pattern).__name__} {pattern!r:.60}"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InputError(
            f"{name}: expected a valid regular expression, got {pattern!r:.60} ({exc}); "
            "escape special characters with a backslash (re.escape does it)"
        ) from None


def _other_case(unknown: Sequence[str], index) -> str:
    """A hint for words the vocabulary holds in another case (words match exactly)."""
    found = {}
    for w in unknown:
        other = next((v for v in (w.lower(), w.capitalize(), w.upper()) if v in index), None)
        if other is not None:
            found[w] = other
    if not found:
        return ""
    shown = ", ".join(f"{w!r} as {v!r}" for w, v in list(found.items())[:5])
    return f" (words match exactly; the vocabulary has {shown})"


def select_words(
    kv: Any,
    top: int | None = None,
    words: Iterable[str] | None = None,
    include: str | None = None,
    exclude: str | None = None,
    drop_stopwords: bool = False,
    drop_punctuation: bool = False,
) -> Selection:
    """Choose the words to map and return them with their vectors and frequency ranks.

    Candidates are ``words`` in the given order (unknown ones are reported and skipped)
    or else the whole vocabulary in file order (frequency order for word2vec, GloVe
    and sorted gensim models). Filters apply next, then the first ``top`` are kept.

    Parameters
    ----------
    kv : KeyedVectors
    top : int, default=None
        Keep at most this many words (all if None).
    words : iterable of str, default=None
        Explicit words; duplicates are removed, unknown words listed in ``unknown``.
    include, exclude : str, default=None
        Regular expressions (``re.search``): keep only matching words / drop matching ones.
    drop_stopwords : bool, default=False
        Drop English stop words (scikit-learn's list, compared in lower case).
    drop_punctuation : bool, default=False
        Drop tokens without a letter or digit.

    Returns
    -------
    Selection
        ``(words, vectors (n, dim) float32, rank (n,) int64 1-based, unknown)``. The rank
        is the word's position in the file (kept by :func:`load_vectors`, also when it
        skipped words), else its position in ``kv``.

    Examples
    --------
    >>> sel = select_words(kv, top=500, drop_stopwords=True)  # doctest: +SKIP
    >>> sel.vectors.shape  # doctest: +SKIP
    (500, 50)
    """
    _check_count("top", top)
    keep = word_filter(include, exclude, drop_stopwords, drop_punctuation)
    index = kv.key_to_index
    unknown: list[str] = []
    if words is not None:
        _check_not_string(words)
        candidates: Sequence[str] = list(dict.fromkeys(words))
        unknown = [w for w in candidates if w not in index]
        candidates = [w for w in candidates if w in index]
        if unknown:
            logger.warning(
                "%d of %d words are not in the vocabulary and are skipped: %s%s",
                len(unknown),
                len(unknown) + len(candidates),
                ", ".join(unknown[:10]),
                _other_case(unknown, index),
            )
    else:
        candidates = kv.index_to_key
    chosen: list[str] = []
    for w in candidates:
        if top is not None and len(chosen) == top:
            break
        if keep is None or keep(w):
            chosen.append(w)
    idx = np.fromiter((index[w] for w in chosen), dtype=np.int64, count=len(chosen))
    file_rank = getattr(kv, "expandos", {}).get("rank")
    rank = np.asarray(file_rank[idx], dtype=np.int64) if file_rank is not None else idx + 1
    return Selection(chosen, np.asarray(kv.vectors[idx], dtype=np.float32), rank, unknown)


def load_selection(
    path: str | Path,
    top: int | None = None,
    words: Iterable[str] | None = None,
    include: str | None = None,
    exclude: str | None = None,
    drop_stopwords: bool = False,
    drop_punctuation: bool = False,
    *,
    binary: bool | None = None,
    unicode_errors: str = "ignore",
    trust_pickle: bool | None = None,
) -> Selection:
    """:func:`load_vectors` and :func:`select_words` in one, reading only what is needed.

    The filters (or the word list) are applied while the file is read, so memory goes
    to the selected words only: the 10,000 most frequent non-stop-words of a 3-million-
    word file cost about 10,000 rows. ``path`` may also be vectors already in memory
    (KeyedVectors, a gensim model), as :func:`load_vectors` takes them. ``binary``,
    ``unicode_errors`` and ``trust_pickle`` are those of :func:`load_vectors`.

    Examples
    --------
    >>> sel = load_selection("data/glove-5k.bin", top=100, drop_stopwords=True)
    ... # doctest: +SKIP
    """
    _check_count("top", top)
    filters = dict(
        include=include,
        exclude=exclude,
        drop_stopwords=drop_stopwords,
        drop_punctuation=drop_punctuation,
    )
    if words is not None:
        _check_not_string(words)
        words = list(words)
        keep = frozenset(words).__contains__
        found, _ = _read(path, None, binary, keep, unicode_errors, trust_pickle)
    else:
        found, _ = _read(path, top, binary, word_filter(**filters), unicode_errors, trust_pickle)
    return select_words(found, top=top, words=words, **filters)


def word_filter(
    include: str | None = None,
    exclude: str | None = None,
    drop_stopwords: bool = False,
    drop_punctuation: bool = False,
) -> Callable[[str], bool] | None:
    """A predicate ``keep(word)`` for the filters of :func:`select_words` (None: no filter).

    Pass it to :func:`load_vectors` to read only the words a selection can use.

    Examples
    --------
    >>> keep = word_filter(include="^[a-z]+$", drop_stopwords=True)
    >>> [w for w in ["the", "cat", "Dog", "x-ray"] if keep(w)]
    ['cat']
    """
    keep_re, drop_re = _compile(include, "include"), _compile(exclude, "exclude")
    stop: frozenset[str] = frozenset()
    if drop_stopwords:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        stop = frozenset(ENGLISH_STOP_WORDS)
    if keep_re is None and drop_re is None and not stop and not drop_punctuation:
        return None

    def keep(word: str) -> bool:
        if keep_re is not None and not keep_re.search(word):
            return False
        if drop_re is not None and drop_re.search(word):
            return False
        if stop and word.lower() in stop:
            return False
        return not drop_punctuation or any(c.isalnum() for c in word)

    return keep
