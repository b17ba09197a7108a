"""save_html, CSV, DL4J CSV and TensorBoard projector files (issue 3)."""

from __future__ import annotations

import csv
import os
import re

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.plot import export, save_html, scatter_2d, write_csv, write_dl4j_csv, write_projector


def test_save_html_is_self_contained_and_escapes(tmp_path, small_map, evil_words):
    m = small_map
    title = "<script>alert(1)</script>"
    layout = scatter_2d(m["coords"][:, :2], m["words"], title=title, neighbors=m["neighbors"])
    path = save_html(layout, tmp_path / "map.html", title=title)
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "map.html"
    assert not re.search(r"<script[^>]+src=", html)  # no CDN, nothing fetched
    assert "cdn.bokeh.org" not in html and "<link" not in html
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in html
    for word in evil_words + [title]:
        if "<" in word:
            assert word not in html  # raw markup from a word appears nowhere
    # exactly the scripts bokeh writes: no word can close or open one
    opened = len(re.findall(r"<script\b", html))
    assert opened == len(re.findall(r"</script>", html))
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # a normal file, not mkstemp's 0600


def test_save_html_size_stays_within_budget(tmp_path, rng):
    n = 3000
    words = [f"word{i}" for i in range(n)]
    neighbors = [[(words[(i + j) % n], 0.5) for j in range(1, 11)] for i in range(n)]
    layout = scatter_2d(
        rng.normal(size=(n, 2)), words, clusters=rng.integers(0, 20, n), neighbors=neighbors
    )
    size = save_html(layout, tmp_path / "big.html").stat().st_size
    assert size <= 1.6e6 + 150 * n


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "map.csv"
    target.write_text("old content", encoding="utf-8")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.os, "replace", broken_replace)
    with pytest.raises(InputError, match="map.csv.*No space left on device"):
        write_csv(target, np.zeros((2, 2)), ["a", "b"])
    assert target.read_text(encoding="utf-8") == "old content"
    assert os.listdir(tmp_path) == ["map.csv"]  # no temporary file left behind


def test_exception_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "map.html"

    def boom(fd):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(export.os, "fsync", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_dl4j_csv(target, np.zeros((2, 2)), ["a", "b"])
    assert os.listdir(tmp_path) == []


def test_unwritable_paths_raise_input_error_naming_them(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"file\.txt' is a file, not a directory"):
        write_csv(blocker / "out.csv", np.zeros((1, 2)), ["a"])
    with pytest.raises(InputError, match="is a directory"):
        write_csv(tmp_path, np.zeros((1, 2)), ["a"])
    with pytest.raises(InputError, match="missing"):
        save_html(scatter_2d(np.zeros((1, 2)), ["a"]), tmp_path / "missing" / "map.html")


WORDS = ["plain", "with,comma", 'quote"d', "line\nbreak", "tab\there", "😀", "</div>", ""]


@pytest.mark.parametrize("dims", [2, 3])
def test_csv_round_trips_through_the_csv_module(tmp_path, rng, dims):
    coords = rng.normal(size=(len(WORDS), dims)) * 1e3
    rank = np.arange(len(WORDS)) + 1
    clusters = ["a", "b,c"] * (len(WORDS) // 2)
    path = write_csv(tmp_path / "c.csv", coords, WORDS, rank=rank, clusters=clusters)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["x", "y", "z"][:dims] + ["word", "rank", "cluster"]
    body = rows[1:]
    assert len(body) == len(WORDS)
    np.testing.assert_array_equal(np.array([r[:dims] for r in body], dtype=float), coords)
    assert [r[dims] for r in body] == WORDS
    assert [int(r[dims + 1]) for r in body] == list(rank)
    assert [r[dims + 2] for r in body] == clusters


def test_csv_leaves_missing_columns_empty(tmp_path):
    path = write_csv(tmp_path / "c.csv", [[1.5, 2.5]], ["a"])
    assert path.read_text(encoding="utf-8").splitlines() == ["x,y,word,rank,cluster", "1.5,2.5,a,,"]


def test_dl4j_csv_has_its_plain_layout(tmp_path, rng, caplog):
    coords = rng.normal(size=(3, 2))
    words = ["king", "queen", "a,b"]
    path = write_dl4j_csv(tmp_path / "d.csv", coords, words)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3  # no header
    for line, (x, y), word in zip(lines[:2], coords[:2], words[:2], strict=True):
        fx, fy, w = line.split(",")
        assert (float(fx), float(fy), w) == (x, y, word)
    assert lines[2].endswith(",a,b")  # not quoted: the format cannot
    assert "comma" in caplog.text
    with pytest.raises(
        InputError, match=r"coords: expected shape \(N, 2\) or \(N, 3\), got shape \(3, 4\)"
    ):
        write_dl4j_csv(tmp_path / "d.csv", np.zeros((3, 4)), ["a", "b", "c"])


def test_projector_files(tmp_path, rng):
    vectors = rng.normal(size=(len(WORDS), 5)).astype(np.float32)
    out = write_projector(tmp_path / "proj", vectors, WORDS)
    assert np.allclose(np.loadtxt(out / "vectors.tsv", delimiter="\t"), vectors, rtol=1e-6)
    meta = (out / "metadata.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(meta) == len(WORDS)  # one column: no header
    assert meta[0] == "plain" and meta[3] == "line\\nbreak" and meta[4] == "tab\\there"
    config = (out / "projector_config.pbtxt").read_text()
    paths = re.findall(r'(tensor_path|metadata_path): "([^"]+)"', config)
    assert dict(paths) == {"tensor_path": "vectors.tsv", "metadata_path": "metadata.tsv"}
    assert config.count("{") == config.count("}") == 1


def test_projector_metadata_columns_get_a_header(tmp_path, rng):
    vectors = rng.normal(size=(3, 4))
    out = write_projector(
        tmp_path, vectors, ["a", "b", "c"], metadata={"cluster": [0, 1, 1], "rank": [1, 2, 3]}
    )
    with open(out / "metadata.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows == [["word", "cluster", "rank"], ["a", "0", "1"], ["b", "1", "2"], ["c", "1", "3"]]
    with pytest.raises(
        InputError, match=r"metadata\['cluster'\]: expected 3 entries \(one per word\), got 2"
    ):
        write_projector(tmp_path, vectors, ["a", "b", "c"], metadata={"cluster": [0, 1]})
    with pytest.raises(
        InputError,
        match="vectors: expected finite numbers, got 3 row.* NaN or inf, the first at row 0",
    ):
        write_projector(tmp_path, np.full((3, 4), np.nan), ["a", "b", "c"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_special_file_is_never_replaced(tmp_path):
    """A pipe or a device (as root, /dev/null) must not be renamed over with a file."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="not a regular file"):
        write_csv(pipe, np.zeros((1, 2)), ["a"])
    assert pipe.is_fifo() and os.listdir(tmp_path) == ["pipe"]


def test_write_together_replaces_all_files_at_the_end_or_none(tmp_path, rng):
    page, table, proj = tmp_path / "m.html", tmp_path / "m.csv", tmp_path / "new" / "proj"
    page.write_text("old page")
    table.write_text("old csv")
    with pytest.raises(RuntimeError, match="later failure"):
        with export.write_together():
            write_csv(table, np.zeros((1, 2)), ["a"])
            write_projector(proj, np.ones((1, 3)), ["a"])
            assert table.read_text() == "old csv"  # written, not yet in place
            raise RuntimeError("later failure")
    assert page.read_text() == "old page" and table.read_text() == "old csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.html"]  # no temp, no dir
    with export.write_together():
        write_csv(table, np.zeros((1, 2)), ["a"])
        save_html(scatter_2d(np.zeros((1, 2)), ["a"]), page)
    assert table.read_text().startswith("x,y,word") and page.read_text().startswith("<!DOCTYPE")


def test_write_together_names_what_a_failed_rename_left(tmp_path):
    first, second, third = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    third.write_text("old c")
    with pytest.raises(InputError) as info:
        with export.write_together():
            for path in (first, second, third):
                write_csv(path, np.zeros((1, 2)), ["a"])
            second.mkdir()  # the rename onto b.csv now fails
    message = str(info.value)
    assert (
        f"already written: {first}; not written (left as they were): {second}, {third}" in message
    )
    assert first.read_text().startswith("x,y") and third.read_text() == "old c"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv"]


def _projector_cells(path):
    """metadata.tsv read as TensorBoard's projector reads it: lines split at \\n, cells
    at \\t, nothing unescaped."""
    return [line.split("\t") for line in path.read_text(encoding="utf-8").split("\n")[:-1]]


def test_projector_metadata_keeps_backslashes_and_cells_whole(tmp_path):
    words = ["back\\slash", "C:\\new", "tab\there", "line\nbreak", "cr\rhere", "plain"]
    out = write_projector(tmp_path, np.ones((6, 2)), words, metadata={"label": ["x\ty"] * 6})
    rows = _projector_cells(out / "metadata.tsv")
    assert rows[0] == ["word", "label"] and all(len(r) == 2 for r in rows)
    assert [r[0] for r in rows[1:]] == [
        "back\\slash", "C:\\new", "tab\\there", "line\\nbreak", "cr\\rhere", "plain"
    ]  # fmt: skip
    assert rows[1][1] == "x\\ty"
