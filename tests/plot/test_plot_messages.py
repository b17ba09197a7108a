"""Argument messages of the plots, the export writers and the word selection: the one
form ``"name: expected ..., got <value>; what to do"`` (review 7, should-fix 6)."""

import re

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.plot import scatter_2d, scatter_3d
from embedviz.plot.export import save_html, write_csv, write_dl4j_csv, write_projector
from embedviz.vectors import select_words

XY = np.zeros((3, 2))
WORDS = ["a", "b", "c"]


class _KV:  # what select_words reads of gensim's KeyedVectors
    index_to_key = ["cat", "dog", "the"]
    key_to_index = {w: i for i, w in enumerate(index_to_key)}
    vectors = np.eye(3, dtype=np.float32)


# (call, the name the message starts with, what must follow "got ")
CASES = [
    (lambda: scatter_2d(XY, WORDS, n_labels=-1), "n_labels", "-1"),
    (lambda: scatter_2d(XY, WORDS, n_labels="5"), "n_labels", "'5'"),
    (lambda: scatter_2d(XY, WORDS, n_labels=True), "n_labels", "True"),
    (lambda: scatter_2d("abc", WORDS), "coords", "a str"),
    (lambda: scatter_3d(XY, WORDS), "coords", "shape (3, 2)"),
    (lambda: scatter_2d(XY, "abc"), "words", "the string 'abc'"),
    (lambda: scatter_2d(XY, None), "words", "NoneType"),
    (lambda: scatter_2d(XY, ["a", None, "c"]), "words[1]", "NoneType None"),
    (lambda: scatter_2d(XY, WORDS, rank=[1, 0, 2]), "rank", "0 at position 1"),
    (lambda: scatter_2d(XY, WORDS, clusters=[0, None, 1]), "clusters[1]", "None"),
    (
        lambda: scatter_2d(XY, WORDS, neighbors=[[("a", "x")], [], []]),
        "neighbors[0][0]",
        "('a', 'x')",
    ),
    (lambda: scatter_2d(XY, WORDS, neighbors=[[(1, 0.5)], [], []]), "neighbors[0][0]", "(1, "),
    (lambda: write_csv("x.csv", XY, WORDS, rank=[1, 2]), "rank", "2"),
    (lambda: write_csv("x.csv", XY, WORDS, clusters=[1]), "clusters", "1"),
    (lambda: write_csv("x.csv", [["a", "b"]], ["a"]), "coords", "a list"),
    (lambda: write_dl4j_csv("x.csv", np.zeros(3), WORDS), "coords", "shape (3,)"),
    (lambda: write_dl4j_csv("x.csv", XY, ["a", "b", 3]), "words[2]", "int 3"),
    (lambda: write_projector("p", np.zeros((0, 4)), []), "vectors", "shape (0, 4)"),
    (lambda: write_projector("p", [["x"]], ["a"]), "vectors", "a list"),
    (lambda: write_projector("p", np.eye(3), WORDS[:2]), "words", "2"),
    (lambda: save_html(None, "x.html"), "layout", "NoneType None"),
    (lambda: save_html([1, 2], "x.html"), "layout", "list [1, 2]"),
    (lambda: select_words(_KV(), words="cat"), "words", "the string 'cat'"),
    (lambda: select_words(_KV(), include="("), "include", "'('"),
    (lambda: select_words(_KV(), exclude=5), "exclude", "int 5"),
]


@pytest.mark.parametrize("call, name, got", CASES)
def test_each_message_names_the_argument_what_is_allowed_and_the_value(
    call, name, got, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a call that wrongly succeeds writes nothing outside
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name}: expected "), message
    assert f", got {got}" in message, message
    assert "must" not in message, message
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_numpy_integers_are_integers_for_n_labels():
    scatter_2d(XY, WORDS, n_labels=np.int64(2))  # the one integer rule of the package


def test_a_csv_may_hold_no_rows_or_nan(tmp_path):
    """Only a plot needs rows and finite numbers; the CSV writers keep what they get."""
    lines = write_csv(tmp_path / "e.csv", np.zeros((0, 2)), []).read_text().splitlines()
    assert lines == ["x,y,word,rank,cluster"]
    lines = write_csv(tmp_path / "n.csv", [[np.nan, 1.0]], ["a"]).read_text().splitlines()
    assert lines[1] == "nan,1.0,a,,"


def test_a_regex_message_says_what_is_wrong_and_what_to_do():
    with pytest.raises(InputError) as info:
        select_words(_KV(), include="(")
    assert re.search(
        r"\(missing \), unterminated subpattern at position 0\); escape", str(info.value)
    )
