"""Headers that lie, misaligned binary records, and the text/binary decision (review 5,
items 2 to 4): one clear FileFormatError, never a huge allocation or garbage words."""

import bz2
import gzip
import tracemalloc

import numpy as np
import pytest

from embedviz.errors import FileFormatError
from embedviz.vectors import load_vectors

N, DIM = 60, 5


def _vectors(n=N, dim=DIM):
    return np.random.default_rng(3).standard_normal((n, dim)).astype("<f4")


def _binary_bytes(header, vecs, newline=False):
    """word2vec binary: ``header`` line, then ``w<i> `` + float32 per word (word2vec.c
    puts a newline after each vector, gensim does not)."""
    end = b"\n" if newline else b""
    body = b"".join(f"w{i} ".encode() + v.tobytes() + end for i, v in enumerate(vecs))
    return header.encode() + b"\n" + body


def _text_bytes(header, vecs):
    lines = [f"w{i} " + " ".join(f"{x:.6f}" for x in v) for i, v in enumerate(vecs)]
    return ((header + "\n") if header else "").encode() + "\n".join(lines).encode() + b"\n"


def _write(path, data):
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".bz2":
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


def _peak(call):
    tracemalloc.start()
    try:
        call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("name", ["huge.bin", "huge.txt", "huge.bin.gz", "huge.txt.bz2"])
@pytest.mark.parametrize("limit", [None, 10**11])
def test_header_count_too_large_allocates_nothing_big(tmp_path, name, limit):
    binary = ".bin" in name
    data = (_binary_bytes if binary else _text_bytes)(f"1000000000000 {DIM}", _vectors())
    path = _write(tmp_path / name, data)

    def load():
        with pytest.raises(
            FileFormatError,
            match=r"header says 1000000000000 words but the file ends after 60.*limit=60",
        ):
            load_vectors(path, limit=limit)

    assert _peak(load) < 20e6  # the 60 words need 1.2 kB; gzip's buffers some MB


@pytest.mark.parametrize("name", ["dim.bin", "dim.txt", "dim.bin.gz"])
def test_header_dimension_too_large_for_the_file(tmp_path, name):
    binary = ".bin" in name
    data = (_binary_bytes if binary else _text_bytes)(f"{N} 100000000000", _vectors())
    path = _write(tmp_path / name, data)
    with pytest.raises(
        FileFormatError,
        match=r"header \(line 1\) says 100000000000 dimensions, (but the \d+ bytes after it "
        r"cannot hold even one vector|more than the \d+ embedviz reads).*dimension is wrong",
    ):
        load_vectors(path)


def test_dimension_just_too_large_for_a_small_file(tmp_path):
    path = _write(tmp_path / "d.bin", _binary_bytes(f"{N} 400", _vectors()))
    size = path.stat().st_size
    assert 4 * 400 + 1 > size - len(f"{N} 400\n")  # the check below is about this case
    with pytest.raises(FileFormatError, match=r"says 400 dimensions, but the \d+ bytes"):
        load_vectors(path)


def test_limit_larger_than_the_file(tmp_path):
    path = _write(tmp_path / "v.bin", _binary_bytes(f"{N} {DIM}", _vectors()))
    got = load_vectors(path, limit=10**11)
    np.testing.assert_array_equal(got.vectors, _vectors())


@pytest.mark.parametrize("newline", [True, False], ids=["word2vec.c", "gensim"])
@pytest.mark.parametrize("header_dim", [DIM - 1, DIM + 1])
def test_binary_header_dimension_wrong(tmp_path, newline, header_dim):
    data = _binary_bytes(f"{N} {DIM}", _vectors(), newline=newline)
    data = data.replace(f"{N} {DIM}\n".encode(), f"{N} {header_dim}\n".encode(), 1)
    path = _write(tmp_path / "lie.bin", data)
    with pytest.raises(
        FileFormatError,
        match=rf"word \d+ at byte \d+ reads as .*not a word.*its dimension {header_dim} is "
        r"probably wrong",
    ):
        load_vectors(path)


def test_text_file_forced_to_binary(tmp_path):
    path = _write(tmp_path / "good.txt", _text_bytes(f"{N} {DIM}", _vectors()))
    assert load_vectors(path).index_to_key[:2] == ["w0", "w1"]
    with pytest.raises(
        FileFormatError, match=r"looks like word2vec text .*; leave out binary=True to have"
    ):
        load_vectors(path, binary=True)


def test_binary_words_with_valid_control_characters_still_load(tmp_path):
    # a control byte in valid UTF-8 is an odd word, not a sign of misalignment
    vecs = _vectors(3)
    raw = [b"a", b"b\x01c", b"d"]
    body = b"".join(w + b" " + v.tobytes() for w, v in zip(raw, vecs, strict=True))
    path = _write(tmp_path / "ctl.bin", f"3 {DIM}\n".encode() + body)
    assert load_vectors(path).index_to_key == ["a", "b\x01c", "d"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3 3\na 1 2\nb 1 2 3\nc 1 2 3\n", r"line 2 \(word 'a'\) has 2 values, but the header"),
        ("3 3\na 1 2 3 4\nb 1 2 3\n", r"line 2 \(word 'a'\) has 4 values"),
        ("3 3\na 1 2 x\nb 1 2 3\n", r"line 2 \(word 'a'\): 'x' is not a number"),
    ],
    ids=["short", "long", "not-a-number"],
)
def test_damaged_first_row_is_read_as_text(tmp_path, text, message):
    (tmp_path / "v.txt").write_text(text)
    with pytest.raises(FileFormatError, match=message):
        load_vectors(tmp_path / "v.txt")


def test_first_word_with_a_space_is_text(tmp_path):
    (tmp_path / "v.txt").write_text("3 3\nhello world 1 2 3\nb 4 5 6\nc 7 8 9\n")
    got = load_vectors(tmp_path / "v.txt")
    assert got.index_to_key == ["hello world", "b", "c"]
    np.testing.assert_array_equal(got["hello world"], [1, 2, 3])


@pytest.mark.parametrize("dim", [2, 3, 50])
def test_binary_still_sniffed_as_binary(tmp_path, dim):
    vecs = _vectors(40, dim)
    path = _write(tmp_path / "v.txt", _binary_bytes(f"40 {dim}", vecs))
    got, report = load_vectors(path, return_report=True)
    assert report.format == "word2vec-binary"
    np.testing.assert_array_equal(got.vectors, vecs)


@pytest.mark.parametrize("rest", ["", "\n", "\n  \n"])
def test_header_and_nothing_else(tmp_path, rest):
    (tmp_path / "h.txt").write_text(f"3 {DIM}{rest}")
    with pytest.raises(FileFormatError, match=r"h\.txt: the header says 3 words but no word"):
        load_vectors(tmp_path / "h.txt")
