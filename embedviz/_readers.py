"""The word-vector file formats: sniffing, streaming readers, gensim pickles.

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
damaged, which words repeat, or how many words had broken UTF-8); word2vec, GloVe and
fastText files give a :class:`Raw` (gensim is not even imported), which
:meth:`Raw.keyed_vectors` turns into a plain gensim ``KeyedVectors``.

The public entry points are in :mod:`embedviz.vectors`; :func:`read` is this module's.
"""

from __future__ import annotations

import bz2
import gzip
import re
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

import numpy as np

from embedviz.errors import FileFormatError

if TYPE_CHECKING:
    from embedviz.vectors import LoadReport

_CHUNK = 1 << 20
_SNIFF = 1 << 16
_MAX_WORD_BYTES = 4096
_HEADER = re.compile(rb"^\s*(\d+)[ \t]+(\d+)\s*$")


def read(path: Path, limit, binary, keep, unicode_errors, report: LoadReport):
    """Read ``path`` into a :class:`Raw` (word2vec, GloVe, fastText) or a gensim
    KeyedVectors (gensim pickles), filling ``report.format`` and ``report.compression``
    and the problems the readers find; the arguments are those of ``load_vectors``,
    already checked."""
    if not path.exists():
        raise FileFormatError(f"{path}: no such file; check the path to the word vectors")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory; give the word-vector file inside it")
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path}: the file is empty; it holds no word vectors")
    compression, head = _sniff_head(path)
    report.compression = compression
    if not head.strip():
        raise FileFormatError(f"{path}: the file holds nothing but whitespace, no word vectors")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        report.format = "gensim"
        return _load_gensim(path, limit, keep)
    return _load_word2vec_like(path, head, compression, limit, binary, keep, unicode_errors, report)


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


class Raw(NamedTuple):
    """Words and vectors as read, with the attributes
    :func:`~embedviz.vectors.select_words` uses."""

    index_to_key: list[str]
    key_to_index: dict[str, int]
    vectors: np.ndarray
    rank: np.ndarray  # 1-based position of each word in the file

    @property
    def expandos(self) -> dict[str, np.ndarray]:
        return {"rank": self.rank}

    def keyed_vectors(self):
        """The same words as a gensim ``KeyedVectors`` (the rank kept in its expandos)."""
        return _new_keyed_vectors(self.index_to_key, self.vectors, self.key_to_index, self.rank)


def _deduplicate(words: list[str], vectors: np.ndarray, report: LoadReport, ranks) -> Raw:
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
    return Raw(words, key_to_index, vectors, np.asarray(ranks, dtype=np.int64))


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
