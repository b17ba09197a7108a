"""Files that are not word vectors, and what comes before them (review 5, items 6, 10,
12): a vocabulary, a bare matrix, a byte order mark, a fastText native model."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from embedviz.errors import FileFormatError
from embedviz.vectors import load_vectors

BOM = b"\xef\xbb\xbf"


def test_vocabulary_file_is_refused(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(f"word{i} {10000 - i}\n" for i in range(200)))
    with pytest.raises(
        FileFormatError,
        match=r"vocab\.txt: line 1 \('word0 10000'\) has one number after the word.*at least 2 "
        r"dimensions.*vocabulary or word-count file",
    ):
        load_vectors(path)


def test_header_with_one_dimension_is_refused(tmp_path):
    (tmp_path / "one.txt").write_text("3 1\na 1\nb 2\nc 3\n")
    with pytest.raises(FileFormatError, match=r"says 1 dimension per word.*at least 2"):
        load_vectors(tmp_path / "one.txt")


def test_projector_matrix_is_refused(tmp_path):
    from embedviz.plot.export import write_projector

    rng = np.random.default_rng(0)
    write_projector(tmp_path / "proj", rng.standard_normal((30, 6)), [f"w{i}" for i in range(30)])
    path = tmp_path / "proj" / "vectors.tsv"
    with pytest.raises(
        FileFormatError,
        match=r"vectors\.tsv: the first 20 rows start with a number \('-?0\.\d+.*a matrix "
        r"without words.*projector vectors\.tsv",
    ):
        load_vectors(path)


def test_number_words_still_load(tmp_path):
    # integer tokens ("1", "1999") are words; so is a real word that parses as a number
    (tmp_path / "n.txt").write_text("1 0.5 0.5\n1999 0.1 0.2\n")
    assert load_vectors(tmp_path / "n.txt").index_to_key == ["1", "1999"]
    (tmp_path / "m.txt").write_text("0.5 0.5 0.5\nthe 0.1 0.2\n")
    assert load_vectors(tmp_path / "m.txt").index_to_key == ["0.5", "the"]


@pytest.mark.parametrize("header", [True, False], ids=["word2vec", "glove"])
@pytest.mark.parametrize("compress", [False, True])
def test_byte_order_mark_is_skipped(tmp_path, header, compress):
    text = ("2 3\n" if header else "") + "w0 1 2 3\nw1 4 5 6\n"
    data = BOM + text.encode()
    path = tmp_path / "bom.txt"
    path.write_bytes(gzip.compress(data) if compress else data)
    got, report = load_vectors(path, return_report=True)
    assert report.format == ("word2vec-text" if header else "glove-text")
    assert got.index_to_key == ["w0", "w1"]
    np.testing.assert_array_equal(got["w0"], [1, 2, 3])


def test_byte_order_mark_before_binary(tmp_path):
    vecs = np.random.default_rng(1).standard_normal((2, 4)).astype("<f4")
    body = b"".join(w + b" " + v.tobytes() for w, v in zip([b"a", b"b"], vecs, strict=True))
    (tmp_path / "b.bin").write_bytes(BOM + b"2 4\n" + body)
    got = load_vectors(tmp_path / "b.bin")
    assert got.index_to_key == ["a", "b"]
    np.testing.assert_array_equal(got.vectors, vecs)


FASTTEXT = r"this is a fastText binary model.*\.vec file.*load_facebook_vectors"


def test_fasttext_native_model(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    sentences = [["cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]] * 10
    model = FastText(sentences, vector_size=4, min_count=1, epochs=1, workers=1, seed=1)
    path = tmp_path / "cc.en.4.bin"
    save_facebook_model(model, str(path))
    assert path.read_bytes()[:4] == (793712314).to_bytes(4, "little")
    with pytest.raises(FileFormatError, match=rf"cc\.en\.4\.bin: {FASTTEXT}"):
        load_vectors(path)


def test_fasttext_model_from_before_the_magic_number():
    import gensim

    path = Path(gensim.__file__).parent / "test" / "test_data" / "lee_fasttext.bin"
    if not path.exists():
        pytest.skip("gensim's test data is not installed")
    assert path.read_bytes()[:4] != (793712314).to_bytes(4, "little")
    with pytest.raises(FileFormatError, match=FASTTEXT):
        load_vectors(path)


def test_binary_junk_is_quoted_from_its_first_bytes(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\n\x00\x01\x02 junk \xff" * 20)
    with pytest.raises(FileFormatError, match=r"binary data .*\(starts b'\\x00\\x01") as info:
        load_vectors(path)
    assert "b''" not in str(info.value)


def _text_vectors(tmp_path, header: bool) -> Path:
    rng = np.random.default_rng(3)
    rows = [f"w{i} " + " ".join(f"{v:.5f}" for v in rng.normal(size=5)) for i in range(22)]
    path = tmp_path / ("text_named.bin" if header else "glove_named.bin")
    path.write_text(("22 5\n" if header else "") + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("header", [True, False])
def test_binary_true_on_a_text_file_says_it_looks_like_text(tmp_path, header):
    path = _text_vectors(tmp_path, header)
    assert len(load_vectors(path)) == 22  # sniffed: text
    kind = "word2vec text" if header else "GloVe text"
    with pytest.raises(FileFormatError) as error:
        load_vectors(path, binary=True)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert f"looks like {kind}" in message and "leave out binary=True" in message
    assert "fix the count" not in message  # the binary reader's advice does not apply
