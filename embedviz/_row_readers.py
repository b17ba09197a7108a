"""Streaming readers for the rows of word2vec binary and text files (GloVe, fastText .vec).

Each reader takes an open file positioned after the header and returns a :class:`Table`
of the words it kept, their float32 rows and their 1-based record numbers. The first
allocation is what the caller could bound from the header, the limit and the file size;
more rows grow it by doubling, so a header that lies about the count costs nothing.

Words that are not valid UTF-8 (see :func:`decode_word`) are counted in the report and
remember their ``\\xNN``-escaped form, which :func:`embedviz._readers.read` uses when
the decoded word would fall together with another word.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING

import numpy as np

from embedviz.errors import FileFormatError

if TYPE_CHECKING:
    from embedviz.vectors import LoadReport

_CHUNK = 1 << 20
_MAX_WORD_BYTES = 4096
_UTF8 = codecs.getincrementaldecoder("utf-8")
# bytes no word2vec word holds: what word2vec.c splits words at, and NUL (C strings)
_SEPARATOR = re.compile(rb"[\x00\t\n\x0b\x0c\r]")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def decode_word(raw: bytes, unicode_errors: str, report: LoadReport, where: str):
    """``(word, escaped)``: ``raw`` decoded as UTF-8, and None, or for broken UTF-8 its
    ``\\xNN``-escaped form (``backslashreplace``) next to the word ``unicode_errors``
    asks for.

    ``"ignore"`` drops an incomplete character at the end (word2vec.c cuts words at a
    byte limit, mid-character) and escapes any other bad byte; ``"replace"`` puts
    U+FFFD for each bad byte; ``"strict"`` raises. A word that would be empty is the
    escaped form."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        report.broken_utf8 += 1
        if unicode_errors == "strict":
            raise FileFormatError(
                f"{report.path}: {where}: word {raw!r} is not valid UTF-8 ({exc.reason}); pass "
                "unicode_errors='ignore' or 'replace' to read it anyway"
            ) from None
    escaped = raw.decode("utf-8", errors="backslashreplace")
    if unicode_errors == "replace":
        word = raw.decode("utf-8", errors="replace")
    else:  # final=False keeps an incomplete last character back: it is dropped
        word = _UTF8("backslashreplace").decode(raw, final=False)
    return word or escaped, escaped


class Table:
    """Words and their float32 rows, added one at a time (grown by doubling)."""

    def __init__(self, dim: int, first: int) -> None:
        self.data = np.empty((max(first, 1), dim), dtype=np.float32)
        self.words: list[str] = []
        self.ranks: list[int] = []  # record number in the file, 1-based
        self.escaped: dict[int, str] = {}  # index -> \xNN form, for broken UTF-8

    def add(self, word: str, escaped: str | None, rank: int, values) -> None:
        n = len(self.words)
        if n == len(self.data):
            grown = np.empty((2 * n, self.data.shape[1]), dtype=np.float32)
            grown[:n] = self.data
            self.data = grown
        self.data[n] = values
        if escaped is not None:
            self.escaped[n] = escaped
        self.words.append(word)
        self.ranks.append(rank)

    def vectors(self) -> np.ndarray:
        n = len(self.words)
        return self.data if n == len(self.data) else self.data[:n].copy()


# -- word2vec binary --------------------------------------------------------------------


def read_binary(
    f, path, count, dim, n_max, first, offset, keep, unicode_errors, report, strict=True
):
    """Read up to ``n_max`` of the ``count`` records ``word<space>`` + ``dim`` float32."""
    nbytes = 4 * dim
    table = Table(dim, first)
    buf, pos, base = b"", 0, offset  # base: file offset of buf[0]
    r = 0  # records read
    while r < count and len(table.words) < n_max:
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
                _raise_binary_end(path, count, dim, r, buf[pos:], base + pos, len(table.words))
            buf, base, pos = buf[pos:] + more, base + pos, 0
        raw = buf[pos:space].lstrip(b"\n\r")
        r += 1
        if _misaligned(raw):
            raise _misaligned_error(path, r, base + space - len(raw), raw, dim)
        word, escaped = decode_word(raw, unicode_errors, report, f"word {r} (byte {base + pos})")
        if keep is None or keep(word):
            table.add(
                word, escaped, r, np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
            )
        pos = space + 1 + nbytes
    if r == count and strict:  # a limit reads what it asks for, whatever follows
        rest = (buf[pos:] + f.read(1024)).strip()
        if rest:
            kept = len(table.words)
            raise FileFormatError(
                f"{path}: the header says {count} words but the file goes on after word "
                f"{count} (byte {base + pos}); fix the count in line 1, or {_read_first(kept)} "
                f"to read only the words it promises (if the count is right, the dimension "
                f"{dim} in line 1 is wrong)"
            )
    return table


def _misaligned(raw: bytes) -> bool:
    """Whether a binary record's word shows that the reader lost the record boundaries:
    it is empty, holds a byte word2vec never puts in a word, or holds control bytes
    and is not UTF-8 (the tail of a float32 vector)."""
    if not raw or _SEPARATOR.search(raw):
        return True
    if _CONTROL.search(raw):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


def _misaligned_error(path, r, at, raw, dim):
    return FileFormatError(
        f"{path}: word {r} at byte {at} reads as {raw[:40]!r}, which is not a word: the "
        f"records are not where the header puts them, so its dimension {dim} is probably "
        f"wrong (each vector must be {4 * dim} bytes) or this is not word2vec binary (a "
        "text file read with binary=True?); fix line 1 or give the file's real format"
    )


def _read_first(kept: int) -> str:
    """The advice to read only the first ``kept`` words (counted after any filter, as
    ``limit`` and ``--top`` count them)."""
    return f"pass limit={kept} (--top {kept} on the command line)"


def _raise_binary_end(path, count, dim, i, tail, at, kept):
    if not tail.strip():
        raise FileFormatError(
            f"{path}: the header says {count} words but the file ends after {i} words "
            f"(byte {at}); fix the count in line 1" + (f", or {_read_first(kept)}" if kept else "")
            if i
            else f"{path}: the header says {count} words but no word follows it"
        )
    raise FileFormatError(
        f"{path}: truncated: the file ends inside word {i + 1} of {count} (byte {at}, "
        f"{len(tail)} of its at least {4 * dim + 2} bytes); download or export it again"
        + (f", or {_read_first(kept)} to read the complete words before it" if kept else "")
    )


# -- text (word2vec text, fastText .vec, GloVe) -----------------------------------------


def read_text(f, path, count, dim, n_max, first, keep, unicode_errors, report, strict=True):
    """Read up to ``n_max`` lines ``word v1 ... vdim`` (all of them if None); ``strict``
    (no limit given): a line beyond the header's count is an error."""
    table = Table(dim, first)
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
                f"fix the count in line 1, or {_read_first(len(table.words))}"
            )
        if len(parts) > dim + 1 and not any(is_number(p) for p in parts[1:-dim]):
            parts = [b" ".join(parts[:-dim]), *parts[-dim:]]  # a word with spaces (GloVe 840B)
        if len(parts) != dim + 1:
            raise _ragged(path, line_no, parts, dim, source)
        word, escaped = decode_word(parts[0], unicode_errors, report, f"line {line_no}")
        r += 1
        if keep is not None and not keep(word):
            continue
        try:
            values = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            bad = next(p for p in parts[1:] if not is_number(p))
            raise FileFormatError(
                f"{path}: line {line_no} (word {_shown(word)}): "
                f"{_shown(bad.decode(errors='replace'))} is "
                "not a number; every value after the word must be a decimal number"
            ) from None
        table.add(word, escaped, r, values)
        if (
            n_max is not None
            and len(table.words) == n_max
            and (not strict or count is None or r < count)
        ):
            break
    else:
        if count is not None and r < count:
            raise FileFormatError(
                f"{path}: the header says {count} words but the file ends after {r} (line "
                f"{line_no}); fix the count in line 1"
                + (f", or {_read_first(len(table.words))}" if table.words else "")
            )
    return table


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a one-line message, cut to ``limit`` characters (a damaged
    row can hold a 'word' of hundreds of characters)."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _ragged(path, line_no, parts, dim, source):
    word = parts[0].decode(errors="replace")
    return FileFormatError(
        f"{path}: line {line_no} (word {_shown(word)}) has {len(parts) - 1} values, but {source} "
        f"{'says' if source == 'the header' else 'has'} {dim}; every row needs the word and "
        f"exactly {dim} numbers"
    )
