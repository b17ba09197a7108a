"""Every format round-trips through gensim's own writers (issue 3, build item 1)."""

import gzip
import re
import tracemalloc

import numpy as np
import pytest
from gensim.models import KeyedVectors

from embedviz.errors import FileFormatError
from embedviz.vectors import load_vectors, select_words, word_filter

FORMATS = [
    ("v.bin", dict(binary=True), "word2vec-binary"),
    ("v.txt", dict(binary=False), "word2vec-text"),
    ("v.bin.gz", dict(binary=True), "word2vec-binary"),
    ("v.txt.gz", dict(binary=False), "word2vec-text"),
    ("v.txt.bz2", dict(binary=False), "word2vec-text"),
    ("glove.txt", dict(binary=False, write_header=False), "glove-text"),
    ("glove.txt.gz", dict(binary=False, write_header=False), "glove-text"),
]


@pytest.mark.parametrize("name, kwargs, fmt", FORMATS)
def test_round_trip_gensim_writer(tmp_path, kv, name, kwargs, fmt, words):
    path = tmp_path / name
    kv.save_word2vec_format(str(path), **kwargs)
    got, report = load_vectors(path, return_report=True)
    assert report.format == fmt
    assert got.index_to_key == words
    assert got["日本語"].shape == (7,)
    # binary is exact; gensim's text writer prints %f-like reprs of float32
    np.testing.assert_allclose(got.vectors, kv.vectors, rtol=1e-6, atol=1e-6)
    assert report.broken_utf8 == 0 and report.duplicates == []


@pytest.mark.parametrize("name, kwargs, fmt", FORMATS[:2])
def test_matches_gensim_reader(tmp_path, kv, name, kwargs, fmt):
    path = tmp_path / name
    kv.save_word2vec_format(str(path), **kwargs)
    ref = KeyedVectors.load_word2vec_format(str(path), binary=kwargs["binary"])
    got = load_vectors(path)
    assert got.index_to_key == ref.index_to_key
    np.testing.assert_array_equal(got.vectors, ref.vectors)
    # the result is a working gensim object
    assert got.most_similar("the", topn=1) == ref.most_similar("the", topn=1)


def test_format_sniffed_from_content_not_suffix(tmp_path, kv, words):
    as_txt = tmp_path / "really-binary.txt"
    as_bin = tmp_path / "really-text.bin"
    kv.save_word2vec_format(str(as_txt), binary=True)
    kv.save_word2vec_format(str(as_bin), binary=False)
    # gzip detected by magic bytes, not the name
    plain = tmp_path / "plain.vec"
    with gzip.open(plain, "wb") as f:
        f.write(as_bin.read_bytes())
    for path, fmt in [
        (as_txt, "word2vec-binary"),
        (as_bin, "word2vec-text"),
        (plain, "word2vec-text"),
    ]:
        got, report = load_vectors(path, return_report=True)
        assert report.format == fmt
        assert got.index_to_key == words


def test_binary_flag_forces_reader(tmp_path, kv, words):
    path = tmp_path / "v.bin"
    kv.save_word2vec_format(str(path), binary=True)
    assert load_vectors(path, binary=True).index_to_key == words


def test_fasttext_vec_with_trailing_spaces_and_crlf(tmp_path):
    lines = ["3 4", "hello 0.1 0.2 0.3 0.4 ", "world 1 2 3 4 ", "ünï -1e-3 2.5E2 0 -0"]
    path = tmp_path / "wiki.vec"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    got = load_vectors(path)
    assert got.index_to_key == ["hello", "world", "ünï"]
    np.testing.assert_array_equal(got["ünï"], np.array([-1e-3, 250, 0, 0], dtype=np.float32))


def test_word2vec_c_binary_with_newlines_between_records(tmp_path):
    # word2vec.c writes "\n" after each vector; gensim's writer does not
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((3, 5)).astype("<f4")
    words = ["a", "bb", "ç"]
    body = b"".join(
        w.encode() + b" " + v.tobytes() + b"\n" for w, v in zip(words, vecs, strict=True)
    )
    path = tmp_path / "w2v.bin"
    path.write_bytes(b"3 5\n" + body)
    got = load_vectors(path)
    assert got.index_to_key == ["a", "bb", "ç"]
    np.testing.assert_array_equal(got.vectors, vecs)


def test_gensim_native_keyedvectors_and_models(tmp_path, kv, words):
    from gensim.models import FastText, Word2Vec

    kv.save(str(tmp_path / "v.kv"))
    got = load_vectors(tmp_path / "v.kv")
    assert got.index_to_key == words
    np.testing.assert_array_equal(got.vectors, kv.vectors)
    assert load_vectors(tmp_path / "v.kv", limit=4).index_to_key == words[:4]

    sentences = [["cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]] * 20
    for cls in (Word2Vec, FastText):
        model = cls(sentences, vector_size=8, min_count=1, epochs=1, workers=1, seed=1)
        path = tmp_path / f"{cls.__name__}.model"
        model.save(str(path))
        got = load_vectors(path)
        assert got.index_to_key == model.wv.index_to_key
        np.testing.assert_array_equal(got.vectors, model.wv.vectors)


@pytest.mark.parametrize("binary", [True, False])
def test_limit_reads_first_words_and_never_the_rest(tmp_path, kv, binary, words):
    path = tmp_path / "v"
    kv.save_word2vec_format(str(path), binary=binary)
    # damage everything after the first few words: limit must not look there
    data = path.read_bytes()
    cut = data.index(b"x1" if binary else b"\nx1") + 2
    path.write_bytes(data[:cut] + b"\x00garbage" * 50)
    got = load_vectors(path, limit=5)
    assert got.index_to_key == words[:5]
    np.testing.assert_allclose(got.vectors, kv.vectors[:5], atol=1e-6)
    # the whole file: the damage is reported with the file and where, not as a bare
    # float() or numpy ValueError
    where = "truncated: the file ends inside word 9 of 49" if binary else "line 10 .* has 0 values"
    with pytest.raises(FileFormatError, match=f"^{re.escape(str(path))}: {where}"):
        load_vectors(path)


def _big_binary(path, n, dim):
    """A word2vec binary file of ``n`` random words w0, w1, ... written by gensim."""
    rng = np.random.default_rng(2)
    big = KeyedVectors(dim, count=0)
    big.add_vectors([f"w{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32))
    big.save_word2vec_format(str(path), binary=True)
    return path


def test_limit_allocates_only_the_rows_asked_for(tmp_path):
    path = _big_binary(tmp_path / "big.bin", 100_000, 50)
    assert path.stat().st_size > 20e6
    tracemalloc.start()
    try:
        got = load_vectors(path, limit=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got.index_to_key) == 1000
    assert peak < 5e6, f"peak {peak / 1e6:.1f} MB for 1000 x 50 floats from a 20 MB file"


def _binary_file(path, words_bytes, dim=3):
    vecs = np.arange(len(words_bytes) * dim, dtype="<f4").reshape(-1, dim)
    body = b"".join(w + b" " + v.tobytes() for w, v in zip(words_bytes, vecs, strict=True))
    path.write_bytes(f"{len(words_bytes)} {dim}\n".encode() + body)
    return vecs


def test_broken_utf8_counted_and_handled(tmp_path):
    path = tmp_path / "cut.bin"
    # "café" cut in the middle of é (c3 a9), as word2vec.c truncates long tokens
    _binary_file(path, [b"ok", b"caf\xc3", b"na\xc3\xafve", b"\xe6\x97\xa5\xe6"])
    got, report = load_vectors(path, return_report=True)
    assert report.broken_utf8 == 2
    assert got.index_to_key == ["ok", "caf", "naïve", "日"]
    ref = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="ignore")
    assert got.index_to_key == ref.index_to_key

    got = load_vectors(path, unicode_errors="replace")
    assert got.index_to_key[1] == "caf\ufffd"


def test_broken_utf8_in_text_file(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes(b"3 2\nab\xc3 1 2\nx\xffy 3 4\ncd 5 6\n")
    got, report = load_vectors(path, return_report=True)
    # the cut character at the end is dropped; the byte in the middle is kept as \xff
    assert got.index_to_key == ["ab", "x\\xffy", "cd"]
    assert report.broken_utf8 == 2 and report.broken_examples == ["ab", "x\\xffy"]


def test_glove_840b_word_with_spaces(tmp_path):
    path = tmp_path / "glove.840B.txt"
    path.write_text("the 1 2\n. . . 3 4\nend 5 6\n")
    got = load_vectors(path)
    assert got.index_to_key == ["the", ". . .", "end"]
    np.testing.assert_array_equal(got[". . ."], [3, 4])


def test_markup_like_tokens_are_words(tmp_path):
    # "<unk>" and "</s>" head many vocabularies: they are words, not an HTML page
    (tmp_path / "glove.txt").write_text("<unk> 1 2\n</s> 3 4\n<html> 5 6\n")
    assert load_vectors(tmp_path / "glove.txt").index_to_key == ["<unk>", "</s>", "<html>"]
    (tmp_path / "w2v.txt").write_text("2 2\n</s> 1 2\n<head> 3 4\n")
    assert load_vectors(tmp_path / "w2v.txt").index_to_key == ["</s>", "<head>"]


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("v.bin", dict(binary=True)),
        ("v.txt", dict(binary=False)),
        ("g.txt.gz", dict(binary=False, write_header=False)),
        ("v.kv", None),
    ],
)
def test_keep_reads_only_matching_words_with_file_rank(tmp_path, kv, words, name, kwargs):
    path = tmp_path / name
    if kwargs is None:
        kv.save(str(path))
    else:
        kv.save_word2vec_format(str(path), **kwargs)
    keep = word_filter(include=r"^w\d*[13579]$")
    expected = [w for w in words if keep(w)]
    got = load_vectors(path, keep=keep)
    assert got.index_to_key == expected
    np.testing.assert_allclose(got.vectors, kv[expected], atol=1e-6)
    limited = load_vectors(path, keep=keep, limit=3)
    assert limited.index_to_key == expected[:3]
    sel = select_words(limited)
    np.testing.assert_array_equal(sel.rank, [words.index(w) + 1 for w in expected[:3]])


def test_keep_still_checks_the_whole_file(tmp_path, kv):
    path = tmp_path / "v.bin"
    kv.save_word2vec_format(str(path), binary=True)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        load_vectors(path, keep=lambda w: w == "the")
    assert load_vectors(path, keep=lambda w: w == "the", limit=1).index_to_key == ["the"]


def test_keep_allocates_only_for_kept_words(tmp_path):
    path = _big_binary(tmp_path / "big.bin", 40_000, 128)
    tracemalloc.start()
    try:
        got = load_vectors(path, keep=lambda w: w.endswith("00"))  # 399 words, whole file
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got.index_to_key) == 399 and got.index_to_key[:2] == ["w100", "w200"]
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB to keep 399 of 40,000 words (20 MB)"
