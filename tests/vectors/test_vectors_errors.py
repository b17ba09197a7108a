"""Bad word-vector files give one clear FileFormatError naming the file and the place."""

import gzip

import numpy as np
import pytest

from embedviz.errors import EmbedvizError, FileFormatError, InputError
from embedviz.vectors import load_vectors


def _binary(path, words, dim=3, count=None):
    vecs = np.arange(len(words) * dim, dtype="<f4").reshape(-1, dim) + 1
    body = b"".join(w.encode() + b" " + v.tobytes() for w, v in zip(words, vecs, strict=True))
    n = len(words) if count is None else count
    path.write_bytes(f"{n} {dim}\n".encode() + body)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match=r"nope\.bin: no such file"):
        load_vectors(tmp_path / "nope.bin")


def test_directory(tmp_path):
    with pytest.raises(FileFormatError, match="is a directory"):
        load_vectors(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(FileFormatError, match=r"e\.bin: the file is empty"):
        load_vectors(tmp_path / "e.bin")
    (tmp_path / "w.txt").write_bytes(b"\n  \n")
    with pytest.raises(FileFormatError, match="nothing but whitespace"):
        load_vectors(tmp_path / "w.txt")


def test_truncated_binary(tmp_path):
    path = _binary(tmp_path / "t.bin", ["a", "b", "c", "d"])
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(
        FileFormatError, match=r"truncated: the file ends inside word 4 of 4.*limit=3"
    ):
        load_vectors(path)
    assert load_vectors(path, limit=3).index_to_key == ["a", "b", "c"]


def test_truncated_gzip(tmp_path):
    src = _binary(tmp_path / "t.bin", [f"w{i}" for i in range(2000)], dim=20)
    path = tmp_path / "t.bin.gz"
    path.write_bytes(gzip.compress(src.read_bytes())[:-3000])
    with pytest.raises(
        FileFormatError,
        match=r"t\.bin\.gz: cannot read the gzip data \(.*\); the file is damaged or incomplete",
    ):
        load_vectors(path)


@pytest.mark.parametrize(
    ("words", "count", "message"),
    [
        (["a", "b"], 5, r"header says 5 words but the file ends after 2"),
        (["a", "b", "c"], 2, r"header says 2 words but the file goes on after"),
    ],
    ids=["promises-more", "promises-fewer"],
)
def test_header_count_wrong_binary(tmp_path, words, count, message):
    path = _binary(tmp_path / "h.bin", words, count=count)
    with pytest.raises(FileFormatError, match=message):
        load_vectors(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4 2\na 1 2\nb 3 4\n", r"header says 4 words but the file ends after 2"),
        ("1 2\na 1 2\nb 3 4\n", r"header says 1 words but line 3 holds another"),
        ("3 3\na 1 2 3\nb 1 2\nc 1 2 3\n", r"line 3 \(word 'b'\) has 2 values, but the header"),
        ("a 1 2 3\nb 1 2 3\nc 1 2 3 4\n", r"line 3 \(word 'c'\) has 4 values, but line 1 has 3;"),
        ("a 1 2\nb 1 x2\n", r"line 2 \(word 'b'\): 'x2' is not a number"),
    ],
    ids=["header-promises-more", "header-promises-fewer", "ragged", "ragged-glove", "not-a-number"],
)
def test_damaged_text_names_the_line(tmp_path, text, message):
    (tmp_path / "v.txt").write_text(text)
    with pytest.raises(FileFormatError, match=message):
        load_vectors(tmp_path / "v.txt")


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_nan_inf_name_the_word(tmp_path, value):
    (tmp_path / "nan.txt").write_text(f"3 2\nok 1 2\nbroken {value} 1\nalso 1 2\n")
    with pytest.raises(
        FileFormatError,
        match=r": 1 vector contains NaN or infinity, first the word 'broken' \(word 2\)",
    ):
        load_vectors(tmp_path / "nan.txt")


def test_nan_in_binary(tmp_path):
    path = _binary(tmp_path / "nan.bin", ["a", "b"])
    data = bytearray(path.read_bytes())
    data[-4:] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="first the word 'b'"):
        load_vectors(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.bin"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(
        FileFormatError, match="random.bin: not a word-vector file: line 1 is binary"
    ):
        load_vectors(path)


def test_random_text(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Dear diary,\ntoday I trained a model.\n")
    with pytest.raises(FileFormatError, match="not a word-vector file"):
        load_vectors(path)


def test_html_page(tmp_path):
    path = tmp_path / "GoogleNews-vectors-negative300.bin"
    path.write_text("\n<!DOCTYPE html>\n<html><head><title>404</title></head></html>\n")
    with pytest.raises(FileFormatError, match="this is an HTML page, not word vectors"):
        load_vectors(path)


def test_bad_pickle(tmp_path):
    path = tmp_path / "m.model"
    path.write_bytes(b"\x80\x04junk that is not a pickle")
    with pytest.raises(FileFormatError, match="gensim cannot load it"):
        load_vectors(path)


def test_gensim_model_missing_npy(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(4, count=0)
    kv.add_vectors([f"w{i}" for i in range(20)], np.ones((20, 4), dtype=np.float32))
    kv.save(str(tmp_path / "big.kv"), separately=["vectors"])  # -> big.kv.vectors.npy
    (tmp_path / "big.kv.vectors.npy").unlink()
    with pytest.raises(FileFormatError, match="keep the .npy files next to the model"):
        load_vectors(tmp_path / "big.kv")


def test_duplicates_keep_first_and_report(tmp_path):
    path = _binary(tmp_path / "d.bin", ["a", "b", "a", "c", "b"])
    kv, report = load_vectors(path, return_report=True)
    assert kv.index_to_key == ["a", "b", "c"]
    np.testing.assert_array_equal(kv["a"], [1, 2, 3])
    np.testing.assert_array_equal(kv["c"], [10, 11, 12])
    assert report.duplicates == ["a", "b"]


def test_strict_unicode(tmp_path):
    path = _binary(tmp_path / "u.bin", ["ok", "x"])
    path.write_bytes(path.read_bytes().replace(b"x ", b"\xff "))
    with pytest.raises(FileFormatError, match=r"word 2 .*not valid UTF-8.*unicode_errors='ignore'"):
        load_vectors(path, unicode_errors="strict")


def test_binary_forced_on_glove(tmp_path):
    (tmp_path / "g.txt").write_text("a 1 2\n")
    with pytest.raises(FileFormatError, match="binary word2vec needs a first line 'COUNT DIM'"):
        load_vectors(tmp_path / "g.txt", binary=True)


@pytest.mark.parametrize("limit", [0, -3, 2.5, "10", True])
def test_bad_limit(tmp_path, limit):
    with pytest.raises(InputError, match="limit: expected an integer >= 1, got"):
        load_vectors(tmp_path / "x", limit=limit)


def test_errors_are_embedviz_errors():
    assert issubclass(FileFormatError, EmbedvizError) and issubclass(FileFormatError, ValueError)


def test_words_in_another_case_are_named(caplog):
    from gensim.models import KeyedVectors

    from embedviz.vectors import select_words

    kv = KeyedVectors(2)
    kv.add_vectors(["paris", "London", "the"], np.eye(3, 2, dtype=np.float32))
    with caplog.at_level("WARNING", logger="embedviz.vectors"):
        sel = select_words(kv, words=["Paris", "london", "the", "zzz"])
    assert sel.words == ["the"]  # words match exactly
    assert (
        "3 of 4 words are not in the vocabulary and are skipped: Paris, london, zzz" in caplog.text
    )
    assert "the vocabulary has 'Paris' as 'paris', 'london' as 'London')" in caplog.text


def test_one_duplicate_is_one_word(tmp_path, caplog):
    (tmp_path / "d.txt").write_text("3 2\na 1 2\nb 3 4\na 5 6\n")
    with caplog.at_level("WARNING", logger="embedviz.vectors"):
        load_vectors(tmp_path / "d.txt")
    assert ": 1 word appears more than once; kept the first vector" in caplog.text


def test_limit_reads_a_text_file_with_more_rows_than_its_header(tmp_path):
    # the advice "pass limit=3" for a header that promises 3 words must work
    path = tmp_path / "more.txt"
    path.write_text("3 2\na 1 2\nb 2 3\nc 3 4\nd 5 6\n")
    with pytest.raises(FileFormatError, match=r"holds another; .* pass limit=3 \(--top 3 on"):
        load_vectors(path)
    assert load_vectors(path, limit=3).index_to_key == ["a", "b", "c"]


@pytest.mark.parametrize("binary", [False, True])
def test_the_advised_limit_counts_the_words_a_filter_keeps(tmp_path, binary):
    from gensim.models import KeyedVectors

    words = ["aa", "ab", "ca", "ac", "cb", "ad"]
    kv = KeyedVectors(3)
    kv.add_vectors(words, np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32))
    path = tmp_path / ("v.bin" if binary else "v.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    data = path.read_bytes()
    header_end = data.index(b"\n")
    path.write_bytes(b"9 3" + data[header_end:])  # promises 9 words, holds 6

    def keep(w):
        return not w.startswith("c")

    with pytest.raises(FileFormatError, match=r"pass limit=4 \(--top 4 on the command line\)"):
        load_vectors(path, keep=keep, binary=binary)
    # following the advice reads the 4 words kept before the end
    assert load_vectors(path, keep=keep, limit=4, binary=binary).index_to_key == [
        "aa", "ab", "ac", "ad"
    ]  # fmt: skip


def test_a_long_damaged_word_is_cut_in_the_message(tmp_path):
    """Review 10: a damaged row's 'word' of ~450 characters with NUL bytes was repeated
    whole in the one-line message."""
    word = "x\x00" + "garbage" * 60
    path = tmp_path / "v.txt"
    path.write_text(f"a 1 2\n{word}\nb 1 {'9' * 100}z\n")
    with pytest.raises(FileFormatError) as e:
        load_vectors(path)
    message = str(e.value)
    assert message.startswith(f"{path}: line 2 (word 'x\\x00garbagegarbage")
    assert "…') has 0 values, but line 1 has 2" in message and len(message) < len(word)
    path.write_text(f"a 1 2\nb 1 {'9' * 100}z\n")
    with pytest.raises(FileFormatError, match=r"line 2 \(word 'b'\): '9{39}…' is not a number"):
        load_vectors(path)
