"""The word-vector file formats: sniffing, checks, and assembling what the readers read.

Formats (sniffed from the content, not from the file name):

* word2vec binary: an ASCII header ``COUNT DIM\\n``, then per word ``word<space>`` and DIM
  little-endian float32 values (word2vec.c also writes a newline after each vector);
* word2vec text and fastText ``.vec``: the same header, then ``word v1 ... vDIM`` per line;
* GloVe text: like word2vec text without the header;
* gensim's own pickles: ``KeyedVectors.save`` (``.kv``) and whole ``Word2Vec``/``FastText``
  models (``.model``), opened with gensim only when trusted (see :mod:`embedviz._pickles`).

A UTF-8 byte order mark before any of them is skipped. Any of the text and binary
formats may be gzip- or bzip2-compressed. A header is chosen as binary only when the
bytes after it are not text, so a text file with a damaged first row gets the text
reader's message about that row.

The readers (:mod:`embedviz._row_readers`) stream the file: ``limit`` allocates
``min(limit, COUNT)`` rows and never reads beyond them, so the 10,000 most frequent
words of a 3-million-word file cost 10,000 rows of memory. No header is trusted with
memory: the first allocation is also bounded by the rows the file's size can hold
(for compressed files, by the most that gzip can expand), and a dimension that cannot
fit in the file is refused before anything is allocated. They are our own (gensim's
``load_word2vec_format`` cannot say at which word a file is damaged, which words
repeat, or how many words had broken UTF-8); word2vec, GloVe and fastText files give
a :class:`Raw` (gensim is not even imported), which :meth:`Raw.keyed_vectors` turns
into a plain gensim ``KeyedVectors``.

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

from embedviz import _pickles
from embedviz._row_readers import read_binary, read_text
from embedviz.errors import FileFormatError

if TYPE_CHECKING:
    from embedviz.vectors import LoadReport

_CHUNK = 1 << 20
_SNIFF = 1 << 16
_HEADER = re.compile(rb"^\s*(\d+)[ \t]+(\d+)\s*$")
_BOM = b"\xef\xbb\xbf"
_FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # fastText's native .bin model
_MAX_DIM = 1 << 20  # a million float32 per word: 4 MB a row
_INTEGER = re.compile(rb"[+-]?\d+")
_NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_MAX_RATIO = 1032  # the most that deflate expands; a guess for bzip2 (rows grow if more)


def read(path: Path, limit, binary, keep, unicode_errors, trust_pickle, report: LoadReport):
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
    compression, head, skip, total = _sniff_head(path)
    report.compression = compression
    if not head.strip():
        raise FileFormatError(f"{path}: the file holds nothing but whitespace, no word vectors")
    if _pickles.is_pickle(head):
        report.format = "gensim"
        _pickles.check_trusted(path, trust_pickle)
        return _pickles.load(path, limit, keep)
    if _is_fasttext_model(head):
        raise FileFormatError(
            f"{path}: this is a fastText binary model (the .bin of fasttext.cc), not word2vec "
            "binary; give the .vec file that comes with it, or load it with "
            "gensim.models.fasttext.load_facebook_vectors(path) and pass the KeyedVectors on"
        )
    source = _Source(path, compression, skip, total)
    return _load_word2vec_like(source, head, limit, binary, keep, unicode_errors, report)


# -- opening and sniffing ---------------------------------------------------------------


def _is_fasttext_model(head: bytes) -> bool:
    """Whether ``head`` starts a fastText native model: the magic number and a version,
    or (models from before 2017) twelve int32 training arguments in their ranges."""
    if head[:4] == _FASTTEXT_MAGIC:
        return True
    if len(head) < 48:
        return False
    args = np.frombuffer(head, dtype="<i4", count=12).tolist()
    dim, ws, epoch, _, neg, ngrams, loss, model, bucket, minn, maxn, _ = args
    return all(
        (
            0 < dim <= 10_000,
            0 < ws <= 1000,
            0 < epoch <= 100_000,
            0 <= neg <= 1000,
            0 < ngrams <= 10,
            0 < loss <= 4,  # hs, ns, softmax, ova
            0 < model <= 3,  # cbow, skipgram, supervised
            0 <= bucket <= 10**9,
            0 <= minn <= maxn <= 1000,
        )
    )


class _Source(NamedTuple):
    path: Path
    compression: str | None
    skip: int  # bytes before the data (a byte order mark)
    total: int | None  # bytes of data after ``skip`` once decompressed, where known


def _open(path: Path, compression: str | None) -> IO[bytes]:
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def _sniff_head(path: Path) -> tuple[str | None, bytes, int, int | None]:
    """``(compression, head, skip, total)``: the first bytes of the data without a byte
    order mark, the length of that mark, and the data's size where it is known."""
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
    total = len(head) if len(head) < _SNIFF else None
    if compression is None:
        total = path.stat().st_size
    skip = len(_BOM) if head.startswith(_BOM) else 0
    return compression, head[skip:], skip, None if total is None else total - skip


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


def _is_text(sample: bytes) -> bool:
    """Whether at most 5 % of ``sample`` is control bytes (but whitespace) or bytes that
    are not UTF-8: float32 data has far more of both."""
    sample = sample[:4096]
    control = sum(b < 32 and b not in b"\t\n\r\x0b\x0c" or b == 127 for b in sample)
    not_utf8 = len(sample) - len(sample.decode("utf-8", errors="ignore").encode())
    return (control + not_utf8) * 20 <= len(sample)


def _load_word2vec_like(source, head, limit, binary, keep, unicode_errors, report):
    path = source.path
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
        if source.total == len(head) and not head[after:].strip():  # head: the whole data
            raise FileFormatError(f"{path}: the header says {count} words but no word follows it")
        rest = head[after:]
        text_like = _looks_like_text_row(_first_line(rest)[0], dim) or _is_text(rest)
        forced_binary = binary is True and text_like
        if binary is None:
            binary = not text_like
        report.format = "word2vec-binary" if binary else "word2vec-text"
        _check_header_dim(source, dim, after, binary)
    else:
        if binary:
            glove = _looks_like_text_row(line, None)
            raise FileFormatError(
                f"{path}: binary word2vec needs a first line 'COUNT DIM', found {line[:60]!r}"
                + ("; the file looks like GloVe text: leave out binary=True" if glove else "")
            )
        if not _looks_like_text_row(line, None):
            _reject_non_vectors(path, head)
            kind = "text" if _is_text(head) else "binary data"
            raise FileFormatError(
                f"{path}: not a word-vector file: line 1 is {kind} that is neither a "
                f"'COUNT DIM' header nor 'word v1 v2 ...' (starts {head.lstrip()[:40]!r}); "
                "give a word2vec (.bin/.txt), GloVe (.txt), fastText (.vec) or gensim "
                "(.kv/.model) file"
            )
        count, dim, after = None, len(line.split()) - 1, 0
        report.format = "glove-text"
        _check_glove(path, head, line, dim)

    n_max = count
    if limit is not None:
        n_max = limit if n_max is None else min(n_max, limit)
    try:
        if n_max is None and keep is None:
            n_max = _count_lines(path, source.compression)  # allocate once, exactly
        first = _first_allocation(source, n_max, keep, dim, binary)
        with _open(path, source.compression) as f:
            f.read(source.skip + after)
            if binary:
                try:
                    table = read_binary(
                        f, path, count, dim, n_max, first, source.skip + after, keep,
                        unicode_errors, report, strict=limit is None,
                    )  # fmt: skip
                except FileFormatError:
                    if forced_binary:  # the advice of the binary reader does not apply
                        raise _forced_binary_error(path, dim) from None
                    raise
            else:
                table = read_text(
                    f, path, count, dim, n_max, first, keep, unicode_errors, report,
                    strict=limit is None,
                )  # fmt: skip
    except (EOFError, OSError, zlib.error) as exc:
        raise FileFormatError(
            f"{path}: cannot read the {source.compression or 'file'} data ({exc}); the file is "
            "damaged or incomplete: download or export it again"
        ) from None
    vectors = table.vectors()
    _check_finite(path, table.words, vectors)
    return _deduplicate(table.words, vectors, table.ranks, table.escaped, report)


def _forced_binary_error(path, dim: int) -> FileFormatError:
    """binary=True on what looks like word2vec text (the binary reader's own advice, to
    fix the header, does not apply)."""
    return FileFormatError(
        f"{path}: binary=True reads it as word2vec binary, but it looks like word2vec text "
        f"(words and {dim} numbers a line) and does not read as binary; leave out "
        "binary=True to have the format sniffed, or pass binary=False"
    )


def _check_header_dim(source: _Source, dim: int, after: int, binary: bool) -> None:
    """Refuse a header dimension that no word-vector map can use or the file cannot hold."""
    path = source.path
    if dim < 2:
        raise FileFormatError(
            f"{path}: the header (line 1) says 1 dimension per word; a map needs word vectors "
            "of at least 2 dimensions: is this a vocabulary or word-count file?"
        )
    if dim > _MAX_DIM:
        raise FileFormatError(
            f"{path}: the header (line 1) says {dim} dimensions, more than the {_MAX_DIM} "
            "embedviz reads: the header's dimension is wrong or this is not a word-vector "
            "file; fix line 1"
        )
    row = 4 * dim + 1 if binary else 2 * dim + 1  # the fewest bytes one record can take
    room = None if source.total is None else source.total - after
    if room is not None and row > room:
        raise FileFormatError(
            f"{path}: the header (line 1) says {dim} dimensions, but the {room} bytes after "
            f"it cannot hold even one vector of that size ({row} bytes at least): the "
            "header's dimension is wrong or this is not a word-vector file; fix line 1"
        )


def _check_glove(path: Path, head: bytes, line: bytes, dim: int) -> None:
    """Refuse headerless files that are not word vectors: one number per word (a
    vocabulary or count file) or rows that start with a number (a bare matrix)."""
    if dim < 2:
        raise FileFormatError(
            f"{path}: line 1 ({line[:60].decode(errors='replace')!r}) has one number after "
            "the word; a map needs word vectors of at least 2 dimensions: is this a "
            "vocabulary or word-count file? give the word-vector file"
        )
    rows = [ln.split() for ln in head.splitlines()[:20]]
    firsts = [parts[0] for parts in rows if len(parts) > 1]
    if all(map(_NUMBER.fullmatch, firsts)) and not all(map(_INTEGER.fullmatch, firsts)):
        shown = ", ".join(repr(w.decode()) for w in firsts[:3])
        raise FileFormatError(
            f"{path}: the first {len(firsts)} rows start with a number ({shown}), not a "
            "word: this looks like a matrix without words (such as a TensorBoard projector "
            "vectors.tsv, whose words are in metadata.tsv); give a word-vector file, or load "
            "the matrix yourself and pass (words, matrix) to plot_vocab"
        )


def _first_allocation(source: _Source, n_max: int | None, keep, dim: int, binary: bool) -> int:
    """Rows to allocate first: ``n_max``, but never more than the data can hold (a
    header may lie about the count), and a few thousand when a filter keeps words."""
    row = 4 * dim + 1 if binary else 2 * dim + 1
    if source.total is not None:
        room = source.total
    else:  # compressed: its size times the most that deflate expands
        room = source.path.stat().st_size * _MAX_RATIO
    first = max(1, room // row)
    if n_max is not None:
        first = min(first, n_max)
    return min(first, 4096) if keep is not None else first


def _count_lines(path: Path, compression: str | None) -> int:
    n, last = 0, b"\n"
    with _open(path, compression) as f:
        while chunk := f.read(_CHUNK):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


# -- checks and assembly ----------------------------------------------------------------


def _check_finite(path, words, vectors):
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise FileFormatError(
            f"{path}: {bad.size} vector{'s contain' if bad.size > 1 else ' contains'} NaN "
            f"or infinity, first the word "
            f"{words[bad[0]]!r} (word {bad[0] + 1}); remove or fix those rows"
            + (
                f", or pass limit={bad[0]} (--top {bad[0]} on the command line) to read the "
                "words before it"
                if bad[0]
                else ""
            )
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
        return _pickles.new_keyed_vectors(
            self.index_to_key, self.vectors, self.key_to_index, self.rank
        )


def _deduplicate(words, vectors, ranks, escaped, report: LoadReport) -> Raw:
    """The first occurrence of each word (later ones are listed in the report).

    A word decoded from broken UTF-8 (``escaped`` maps its index to its ``\\xNN`` form)
    never takes the place of another word: when its decoded form is a word of the
    file, or the form of other broken bytes, it keeps its escaped form instead."""
    if escaped:
        words = list(words)
        taken = {w for i, w in enumerate(words) if i not in escaped}
        chosen: dict[str, str] = {}  # escaped form (the bytes) -> the word they became
        for i, alt in escaped.items():
            if alt not in chosen:
                chosen[alt] = alt if words[i] in taken else words[i]
                taken.add(chosen[alt])
            words[i] = chosen[alt]
        report.broken_examples = list(chosen.values())[:20]
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
