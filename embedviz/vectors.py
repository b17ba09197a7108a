"""Reading word vectors into gensim ``KeyedVectors`` and choosing the words to draw.

Formats (sniffed from the content, not from the file name):

* word2vec binary: an ASCII header ``COUNT DIM\\n``, then per word ``word<space>`` and DIM
  little-endian float32 values (word2vec.c also writes a newline after each vector);
* word2vec text and fastText ``.vec``: the same header, then ``word v1 ... vDIM`` per line;
* GloVe text: like word2vec text without the header;
* gensim's own pickles: ``KeyedVectors.save`` (``.kv``) and whole ``Word2Vec``/``FastText``
  models (``.model``), read with gensim (only open pickles you trust).

Any of the text and binary formats may be gzip- or bzip2-compressed. The readers stream
the file: ``limit`` allocates ``min(limit, COUNT)`` rows and never reads beyond them, so
the 10,000 most frequent words of a 3-million-word file cost 10,000 rows of memory.
They are our own (gensim's ``load_word2vec_format`` cannot say at which word a file is
damaged, which words repeat, or how many words had broken UTF-8); the result is a
plain gensim ``KeyedVectors``.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from embedviz.errors import FileFormatError, InputError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SNIFF = 1 << 16
_MAX_WORD_BYTES = 4096
_HEADER = re.compile(rb"^\s*(\d+)[ \t]+(\d+)\s*$")


@dataclass
class LoadReport:
    """What :func:`load_vectors` found besides the vectors.

    ``broken_utf8`` counts words whose bytes were not valid UTF-8 (word2vec.c cuts long
    tokens mid-character); ``duplicates`` lists words seen again later in the file
    (the first vector is kept).
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
    path: str | Path,
    limit: int | None = None,
    binary: bool | None = None,
    *,
    keep: Callable[[str], bool] | None = None,
    unicode_errors: str = "ignore",
    return_report: bool = False,
) -> Any:
    """Read word vectors from a file into a gensim ``KeyedVectors``.

    Parameters
    ----------
    path : str or Path
        word2vec binary or text, fastText ``.vec``, GloVe text, a gensim ``.kv`` or
        ``.model`` file, optionally ``.gz``/``.bz2``-compressed. The format is sniffed.
    limit : int, default=None
        Read only the first ``limit`` words (the most frequent ones in word2vec and GloVe
        files); nothing is allocated for the rest.
    binary : bool, default=None
        Force word2vec binary (True) or text (False) instead of sniffing.
    keep : callable, default=None
        Keep only the words for which ``keep(word)`` is true (see :func:`word_filter`);
        ``limit`` then counts kept words. Memory goes to kept words only, so a filter
        over a 3-million-word file costs what it keeps.
    unicode_errors : {"ignore", "replace", "strict"}, default="ignore"
        What to do with words that are not valid UTF-8: drop the broken bytes, replace
        them with U+FFFD, or raise :class:`~embedviz.errors.FileFormatError`. Either way
        they are counted in the report and logged.
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
    found, report = _read(path, limit, binary, keep, unicode_errors)
    if isinstance(found, _Raw):
        found = _new_keyed_vectors(
            found.index_to_key, found.vectors, found.key_to_index, found.rank
        )
    return (found, report) if return_report else found


def _read(path, limit, binary, keep, unicode_errors):
    """Read a file into a :class:`_Raw` (word2vec, GloVe, fastText: gensim is not even
    imported) or a gensim KeyedVectors (gensim pickles), with its report."""
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer or None, got {limit!r}")
    if unicode_errors not in ("ignore", "replace", "strict"):
        raise InputError(
            f"unicode_errors must be 'ignore', 'replace' or 'strict', got {unicode_errors!r}"
        )
    if not path.exists():
        raise FileFormatError(f"{path}: no such file; check the path to the word vectors")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory; give the word-vector file inside it")
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path}: the file is empty; it holds no word vectors")

    compression, head = _sniff_head(path)
    report = LoadReport(path=str(path), format="", compression=compression)
    if not head.strip():
        raise FileFormatError(f"{path}: the file holds nothing but whitespace, no word vectors")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        report.format = "gensim"
        kv = _load_gensim(path, limit, keep)
    else:
        kv = _load_word2vec_like(
            path, head, compression, limit, binary, keep, unicode_errors, report
        )
    report.n_words, report.vector_size = len(kv.index_to_key), int(kv.vectors.shape[1])
    if report.broken_utf8:
        logger.warning(
            "%s: %d words were not valid UTF-8 (unicode_errors=%r), e.g. %s",
            path,
            report.broken_utf8,
            unicode_errors,
            ", ".join(repr(w) for w in report.broken_examples[:5]),
        )
    if report.duplicates:
        logger.warning(
            "%s: %d words appear more than once; kept the first vector of each, e.g. %s",
            path,
            len(report.duplicates),
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


# -- opening and sniffing ---------------------------------------------------------------


def _open(path: Path, compression: str | None) -> IO[bytes]:
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def _sniff_head(path: Path) -> tuple[str | None, bytes]:
    with open(path, "rb") as f:
        magic = f.read(3)
    compression = "gzip" if magic[:2] == b"\x1f\x8b" else "bz2" if magic == b"BZh" else None
    try:
        with _open(path, compression) as f:
            head = f.read(_SNIFF)
    except (OSError, EOFError) as exc:
        raise FileFormatError(
            f"{path}: looks {compression}-compressed but cannot be decompressed ({exc}); "
            "the download may be incomplete: fetch the file again"
        ) from None
    return compression, head


def _reject_non_vectors(path: Path, head: bytes) -> None:
    start = head.lstrip()[:512].lower()
    if start.startswith((b"<!doctype html", b"<html")) or b"<html" in start or b"<head" in start:
        raise FileFormatError(
            f"{path}: this is an HTML page, not word vectors (a download that saved an error "
            "or login page?); download the vector file itself"
        )
    if start.startswith((b"<?xml", b"<")):
        raise FileFormatError(f"{path}: this is XML/HTML markup, not word vectors")
    if start.startswith(b"pk\x03\x04"):
        raise FileFormatError(f"{path}: this is a zip archive; unzip it and give the file inside")


def _first_line(buf: bytes) -> tuple[bytes, int]:
    """The first line of ``buf`` (without newline) and the offset just after it."""
    end = buf.find(b"\n")
    return (buf, len(buf)) if end == -1 else (buf[:end], end + 1)


def _looks_like_text_row(line: bytes, dim: int | None) -> bool:
    parts = line.split()
    if len(parts) < 2 or (dim is not None and len(parts) != dim + 1):
        return False
    try:
        np.array(parts[1:], dtype=np.float32)
    except ValueError:
        return False
    return True


def _load_word2vec_like(path, head, compression, limit, binary, keep, unicode_errors, report):
    line, after = _first_line(head)
    match = _HEADER.match(line)
    if match:
        count, dim = int(match.group(1)), int(match.group(2))
        if count < 1 or dim < 1:
            raise FileFormatError(
                f"{path}: header line 1 says {count} words of {dim} dimensions; both must be "
                "at least 1"
            )
        report.header_count = count
        if binary is None:
            row, _ = _first_line(head[after:])
            binary = not _looks_like_text_row(row, dim)
        report.format = "word2vec-binary" if binary else "word2vec-text"
    else:
        if binary:
            raise FileFormatError(
                f"{path}: binary word2vec needs a first line 'COUNT DIM', found {line[:60]!r}"
            )
        if not _looks_like_text_row(line, None):
            _reject_non_vectors(path, head)
            printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head[:4096])
            kind = "text" if printable > 0.95 * min(len(head), 4096) else "binary data"
            raise FileFormatError(
                f"{path}: not a word-vector file: line 1 is {kind} that is neither a "
                f"'COUNT DIM' header nor 'word v1 v2 ...' (starts {line[:40]!r}); give a "
                "word2vec (.bin/.txt), GloVe (.txt), fastText (.vec) or gensim (.kv/.model) file"
            )
        count, dim, after = None, len(line.split()) - 1, 0
        report.format = "glove-text"

    n_max = count if count is not None else None
    if limit is not None:
        n_max = limit if n_max is None else min(n_max, limit)
    reader = _read_binary if report.format == "word2vec-binary" else _read_text
    try:
        if n_max is None and keep is None:
            n_max = _count_lines(path, compression)  # allocate once, exactly
        with _open(path, compression) as f:
            f.read(after)
            words, vectors, ranks = reader(
                f, path, count, dim, n_max, after, keep, unicode_errors, report
            )
    except (EOFError, OSError, zlib.error) as exc:
        raise FileFormatError(
            f"{path}: cannot read the {compression or 'file'} data ({exc}); the file is damaged "
            "or incomplete: download or export it again"
        ) from None
    _check_finite(path, words, vectors)
    return _deduplicate(words, vectors, report, ranks)


def _count_lines(path: Path, compression: str | None) -> int:
    n, last = 0, b"\n"
    with _open(path, compression) as f:
        while chunk := f.read(_CHUNK):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


# -- decoding words ---------------------------------------------------------------------


def _decode(raw: bytes, unicode_errors: str, report: LoadReport, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.broken_utf8 += 1
        if unicode_errors == "strict":
            raise FileFormatError(
                f"{report.path}: {where}: word {raw!r} is not valid UTF-8 ({exc.reason}); pass "
                "unicode_errors='ignore' or 'replace' to read it anyway"
            ) from None
        word = raw.decode("utf-8", errors=unicode_errors)
        if len(report.broken_examples) < 20:
            report.broken_examples.append(word)
        return word


# -- word2vec binary --------------------------------------------------------------------


class _Rows:
    """float32 rows added one at a time: allocated once when the number is known, else
    grown by doubling (memory for the rows kept, never for the rest of the file)."""

    def __init__(self, dim: int, expected: int | None, known: bool) -> None:
        size = expected if known and expected else min(expected or 4096, 4096)
        self.data = np.empty((max(size, 1), dim), dtype=np.float32)
        self.n = 0

    def add(self, values) -> None:
        if self.n == len(self.data):
            grown = np.empty((2 * len(self.data), self.data.shape[1]), dtype=np.float32)
            grown[: self.n] = self.data
            self.data = grown
        self.data[self.n] = values
        self.n += 1

    def array(self) -> np.ndarray:
        return self.data if self.n == len(self.data) else self.data[: self.n].copy()


def _read_binary(f, path, count, dim, n_max, offset, keep, unicode_errors, report):
    nbytes = 4 * dim
    rows = _Rows(dim, n_max, known=keep is None)
    words: list[str] = []
    ranks: list[int] = []  # record number in the file, 1-based
    buf, pos, base = b"", 0, offset  # base: file offset of buf[0]
    r = 0  # records read
    while r < count and len(words) < n_max:
        while True:
            space = buf.find(b" ", pos)
            if space != -1 and len(buf) - space - 1 >= nbytes:
                break
            if space == -1 and len(buf) - pos > _MAX_WORD_BYTES:
                raise FileFormatError(
                    f"{path}: word {r + 1} at byte {base + pos} runs past {_MAX_WORD_BYTES} bytes "
                    "without a space: the file is damaged or not word2vec binary"
                )
            more = f.read(_CHUNK)
            if not more:
                _raise_binary_end(path, count, dim, r, buf[pos:], base + pos)
            buf, base, pos = buf[pos:] + more, base + pos, 0
        raw = buf[pos:space].lstrip(b"\n\r")
        word = _decode(raw, unicode_errors, report, f"word {r + 1} (byte {base + pos})")
        r += 1
        if keep is None or keep(word):
            words.append(word)
            ranks.append(r)
            rows.add(np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1))
        pos = space + 1 + nbytes
    if r == count:
        rest = (buf[pos:] + f.read(1024)).strip()
        if rest:
            raise FileFormatError(
                f"{path}: the header says {count} words but the file goes on after word "
                f"{count} (byte {base + pos}); fix the count in line 1, or pass limit={count} "
                "to read only the words it promises"
            )
    return words, rows.array(), ranks


def _raise_binary_end(path, count, dim, i, tail, at):
    if not tail.strip():
        raise FileFormatError(
            f"{path}: the header says {count} words but the file ends after {i} words "
            f"(byte {at}); fix the count in line 1, or pass limit={i}"
            if i
            else f"{path}: the header says {count} words but no word follows it"
        )
    raise FileFormatError(
        f"{path}: truncated: the file ends inside word {i + 1} of {count} (byte {at}, "
        f"{len(tail)} of its at least {4 * dim + 2} bytes); download or export it again"
        + (f", or pass limit={i} to read the complete words before it" if i else "")
    )


# -- text (word2vec text, fastText .vec, GloVe) -----------------------------------------


def _read_text(f, path, count, dim, n_max, offset, keep, unicode_errors, report):
    rows = _Rows(dim, n_max, known=keep is None)
    words: list[str] = []
    ranks: list[int] = []  # record number in the file, 1-based
    line_no = 1 if count is not None else 0
    source = "the header" if count is not None else "line 1"
    r = 0  # records read
    for line in f:
        line_no += 1
        parts = line.split()
        if not parts:
            continue
        if count is not None and r == count:
            raise FileFormatError(
                f"{path}: the header says {count} words but line {line_no} holds another; "
                f"fix the count in line 1, or pass limit={count}"
            )
        if len(parts) > dim + 1 and not any(_is_number(p) for p in parts[1:-dim]):
            parts = [b" ".join(parts[:-dim]), *parts[-dim:]]  # a word with spaces (GloVe 840B)
        if len(parts) != dim + 1:
            raise _ragged(path, line_no, parts, dim, source)
        word = _decode(parts[0], unicode_errors, report, f"line {line_no}")
        r += 1
        if keep is not None and not keep(word):
            continue
        try:
            rows.add(np.array(parts[1:], dtype=np.float32))
        except ValueError:
            bad = next(p for p in parts[1:] if not _is_number(p))
            raise FileFormatError(
                f"{path}: line {line_no} (word {word!r}): {bad.decode(errors='replace')!r} is "
                "not a number; every value after the word must be a decimal number"
            ) from None
        words.append(word)
        ranks.append(r)
        if n_max is not None and len(words) == n_max and (count is None or r < count):
            break
    else:
        if count is not None and r < count:
            raise FileFormatError(
                f"{path}: the header says {count} words but the file ends after {r} (line "
                f"{line_no}); fix the count in line 1, or pass limit={r}"
            )
    return words, rows.array(), ranks


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _ragged(path, line_no, parts, dim, source):
    word = parts[0].decode(errors="replace")
    return FileFormatError(
        f"{path}: line {line_no} (word {word!r}) has {len(parts) - 1} values, but {source} "
        f"says {dim}; every row needs the word and exactly {dim} numbers"
    )


# -- checks and assembly ----------------------------------------------------------------


def _check_finite(path, words, vectors):
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise FileFormatError(
            f"{path}: {bad.size} vectors contain NaN or infinity, first the word "
            f"{words[bad[0]]!r} (word {bad[0] + 1}); remove or fix those rows"
            + (f", or pass limit={bad[0]} to read the words before it" if bad[0] else "")
        )


class _Raw(NamedTuple):
    """Words and vectors as read, with the attributes :func:`select_words` uses."""

    index_to_key: list[str]
    key_to_index: dict[str, int]
    vectors: np.ndarray
    rank: np.ndarray  # 1-based position of each word in the file

    @property
    def expandos(self) -> dict[str, np.ndarray]:
        return {"rank": self.rank}


def _deduplicate(words: list[str], vectors: np.ndarray, report: LoadReport, ranks) -> _Raw:
    """The first occurrence of each word (later ones are listed in the report)."""
    key_to_index: dict[str, int] = {}
    keep = []
    for i, word in enumerate(words):
        if word in key_to_index:
            report.duplicates.append(word)
        else:
            key_to_index[word] = len(keep)
            keep.append(i)
    if report.duplicates:
        vectors = vectors[keep]
        words = [words[i] for i in keep]
        ranks = [ranks[i] for i in keep]
    return _Raw(words, key_to_index, vectors, np.asarray(ranks, dtype=np.int64))


def _new_keyed_vectors(words, vectors, key_to_index=None, ranks=None):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1], count=0, dtype=vectors.dtype)
    kv.index_to_key = list(words)
    kv.key_to_index = key_to_index or {w: i for i, w in enumerate(words)}
    kv.vectors = np.ascontiguousarray(vectors)
    kv.next_index = len(words)
    if ranks is not None:
        kv.expandos["rank"] = np.asarray(ranks, dtype=np.int64)
    return kv


def _load_gensim(path: Path, limit: int | None, keep=None):
    from gensim.models import KeyedVectors
    from gensim.utils import SaveLoad

    try:
        obj = SaveLoad.load(str(path), mmap="r" if limit or keep else None)
    except FileNotFoundError as exc:
        raise FileFormatError(
            f"{path}: gensim saved part of this model in a separate file that is missing "
            f"({exc.filename}); keep the .npy files next to the model file"
        ) from None
    except Exception as exc:  # unpickling foreign data raises anything
        raise FileFormatError(
            f"{path}: looks like a Python pickle but gensim cannot load it "
            f"({type(exc).__name__}: {exc}); save it with gensim's KeyedVectors.save or "
            "Word2Vec.save, or export it with save_word2vec_format"
        ) from None
    kv = getattr(obj, "wv", obj)
    if not isinstance(kv, KeyedVectors):
        raise FileFormatError(
            f"{path}: holds a gensim {type(obj).__name__}, which has no word vectors; give a "
            "KeyedVectors, Word2Vec or FastText file"
        )
    if len(kv.index_to_key) == 0:
        raise FileFormatError(f"{path}: the gensim model holds no words (was it trained?)")
    if keep is not None:
        chosen = [i for i, w in enumerate(kv.index_to_key) if keep(w)][:limit]
        kv = _subset(kv, chosen)
    elif limit is not None and limit < len(kv.index_to_key):
        kv = _subset(kv, range(limit))
    elif limit is not None or isinstance(kv.vectors, np.memmap):
        kv.vectors = np.array(kv.vectors)
    _check_finite(path, kv.index_to_key, kv.vectors)
    return kv


def _subset(kv, indices):
    """A new KeyedVectors of the words at ``indices``, their file rank kept."""
    indices = np.fromiter(indices, dtype=np.int64)
    words = [kv.index_to_key[i] for i in indices]
    return _new_keyed_vectors(words, np.array(kv.vectors[indices]), ranks=indices + 1)


# -- selection --------------------------------------------------------------------------


def _compile(pattern: str | None, name: str) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InputError(
            f"{name} must be a valid regular expression, got {pattern!r}: {exc}"
        ) from None


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
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise InputError(f"top must be a positive integer or None, got {top!r}")
    keep = word_filter(include, exclude, drop_stopwords, drop_punctuation)
    index = kv.key_to_index
    unknown: list[str] = []
    if words is not None:
        if isinstance(words, str):
            raise InputError(f"words must be a list of words, got the string {words!r}")
        candidates: Sequence[str] = list(dict.fromkeys(words))
        unknown = [w for w in candidates if w not in index]
        candidates = [w for w in candidates if w in index]
        if unknown:
            logger.warning(
                "%d of %d words are not in the vocabulary and are skipped: %s",
                len(unknown),
                len(unknown) + len(candidates),
                ", ".join(unknown[:10]),
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
) -> Selection:
    """:func:`load_vectors` and :func:`select_words` in one, reading only what is needed.

    The filters (or the word list) are applied while the file is read, so memory goes
    to the selected words only: the 10,000 most frequent non-stop-words of a 3-million-
    word file cost about 10,000 rows.

    Examples
    --------
    >>> sel = load_selection("data/glove-5k.bin", top=100, drop_stopwords=True)
    ... # doctest: +SKIP
    """
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise InputError(f"top must be a positive integer or None, got {top!r}")
    filters = dict(
        include=include,
        exclude=exclude,
        drop_stopwords=drop_stopwords,
        drop_punctuation=drop_punctuation,
    )
    if words is not None:
        if isinstance(words, str):
            raise InputError(f"words must be a list of words, got the string {words!r}")
        words = list(words)
        found, _ = _read(path, None, binary, frozenset(words).__contains__, unicode_errors)
    else:
        found, _ = _read(path, top, binary, word_filter(**filters), unicode_errors)
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
