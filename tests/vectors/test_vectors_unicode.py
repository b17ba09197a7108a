"""Words that are not valid UTF-8 (review 5, item 5): an incomplete character at the end
is word2vec.c's byte cut and is dropped; other bad bytes stay visible as \\xNN; a broken
word is never empty and never falls together with another word."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from embedviz.vectors import load_vectors


def _binary(path, words, dim=3):
    vecs = np.arange(len(words) * dim, dtype="<f4").reshape(-1, dim) + 1
    body = b"".join(w + b" " + v.tobytes() for w, v in zip(words, vecs, strict=True))
    path.write_bytes(f"{len(words)} {dim}\n".encode() + body)
    return vecs


def _text(path, words, dim=3):
    vecs = np.arange(len(words) * dim, dtype="<f4").reshape(-1, dim) + 1
    values = [" ".join(str(x) for x in v).encode() for v in vecs]
    lines = [w + b" " + v for w, v in zip(words, values, strict=True)]
    path.write_bytes(f"{len(words)} {dim}\n".encode() + b"\n".join(lines) + b"\n")
    return vecs


@pytest.mark.parametrize("write", [_binary, _text], ids=["binary", "text"])
def test_cut_at_the_end_dropped_other_bytes_escaped(tmp_path, write):
    path = tmp_path / "v"
    raw = [b"ok", b"caf\xe9", b"\xff\xfe", b"\xc3", b"na\xc3\xafve", b"\xe6\x97\xa5\xe6"]
    vecs = write(path, raw)
    got, report = load_vectors(path, return_report=True)
    # b"caf\xe9" and b"\xe6\x97\xa5\xe6" end in an incomplete character; b"\xc3" is
    # nothing but one, so it keeps its escape rather than becoming ""
    assert got.index_to_key == ["ok", "caf", "\\xff\\xfe", "\\xc3", "naïve", "日"]
    assert "" not in got.key_to_index
    assert report.broken_utf8 == 4 and report.duplicates == []
    np.testing.assert_array_equal(got.vectors, vecs)


def test_broken_words_never_merge_into_real_words(tmp_path):
    path = tmp_path / "collide.bin"
    raw = [b"caf\xc3", b"caf", b"caf\xe9", b"caf\xc3", b"x"]
    vecs = _binary(path, raw)
    got, report = load_vectors(path, return_report=True)
    # "caf" is a word of the file: the broken ones keep their bytes, in file order
    assert got.index_to_key == ["caf\\xc3", "caf", "caf\\xe9", "x"]
    np.testing.assert_array_equal(got["caf"], vecs[1])
    np.testing.assert_array_equal(got["caf\\xe9"], vecs[2])
    # the same broken bytes twice are a real duplicate: the first vector is kept
    np.testing.assert_array_equal(got["caf\\xc3"], vecs[0])
    assert report.duplicates == ["caf\\xc3"]
    assert report.broken_utf8 == 3 and report.broken_examples == ["caf\\xc3", "caf\\xe9"]


def test_two_different_cuts_stay_apart(tmp_path):
    path = tmp_path / "cuts.bin"
    vecs = _binary(path, [b"abc\xc3", b"abc\xe2\x82"])
    got, report = load_vectors(path, return_report=True)
    assert got.index_to_key == ["abc", "abc\\xe2\\x82"]
    np.testing.assert_array_equal(got.vectors, vecs)
    assert report.duplicates == []


def test_replace_does_not_merge_either(tmp_path):
    path = tmp_path / "r.bin"
    vecs = _binary(path, [b"a\xff", b"a\xfe", b"b\xc3"])
    got = load_vectors(path, unicode_errors="replace")
    assert got.index_to_key == ["a\ufffd", "a\\xfe", "b\ufffd"]
    np.testing.assert_array_equal(got.vectors, vecs)


def test_agrees_with_gensim_on_word2vec_cuts(tmp_path):
    # where the only damage is word2vec.c's cut, the words are gensim's (errors="ignore")
    path = tmp_path / "cut.bin"
    _binary(path, [b"ok", b"caf\xc3", b"na\xc3\xafve", b"\xe6\x97\xa5\xe6"])
    ref = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="ignore")
    assert load_vectors(path).index_to_key == ref.index_to_key == ["ok", "caf", "naïve", "日"]


def test_a_filter_sees_the_decoded_word(tmp_path):
    path = tmp_path / "f.bin"
    _binary(path, [b"caf\xc3", b"tea", b"\xff"])
    assert load_vectors(path, keep=lambda w: w.startswith("caf")).index_to_key == ["caf"]
