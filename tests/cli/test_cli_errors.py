"""Bad input to `embedviz tsne`: exit status 2, one line on stderr, no traceback."""

import subprocess
import sys

import numpy as np
import pytest

from embedviz.cli import main


def _run(*argv, cwd=None):
    proc = subprocess.run(
        [sys.executable, "-m", "embedviz.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return proc.returncode, proc.stderr


def _one_error_line(rc, err):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("embedviz: error: ")
    return lines[0]


def _bad_files(tmp, small):
    data = small.read_bytes()
    files = {
        "missing": tmp / "missing.bin",
        "empty": tmp / "empty.bin",
        "truncated": tmp / "truncated.bin",
        "html": tmp / "page.bin",
        "random": tmp / "random.bin",
        "nan": tmp / "nan.txt",
        "ragged": tmp / "ragged.txt",
        "header": tmp / "header.txt",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["html"].write_text("<!DOCTYPE html><html><body>Not Found</body></html>")
    files["random"].write_bytes(np.random.default_rng(0).bytes(3000))
    files["nan"].write_text("2 2\nfine 1 2\nbad nan 2\n")
    files["ragged"].write_text("2 3\nfine 1 2 3\nshort 1 2\n")
    files["header"].write_text("5 2\nfine 1 2\nalso 3 4\n")
    return files


EXPECTED = {
    "missing": "missing.bin: no such file",
    "empty": "empty.bin: the file is empty",
    "truncated": "truncated: the file ends inside word",
    "html": "this is an HTML page",
    "random": "not a word-vector file",
    "nan": "NaN or infinity, first the word 'bad'",
    "ragged": "line 3 (word 'short') has 2 values",
    "header": "the header says 5 words but the file ends after 2",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_model_file(tmp_path, small_model, case):
    path = _bad_files(tmp_path, small_model[0])[case]
    line = _one_error_line(*_run("tsne", path, "-o", tmp_path / "x.html"))
    assert EXPECTED[case] in line and str(path) in line
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize(
    "target, message",
    [
        ("no/such/dir/map.html", "the directory no/such/dir does not exist"),
        (".", "it is a directory"),
        ("small.bin/map.html", "the directory small.bin does not exist"),
    ],
)
def test_unwritable_output(tmp_path, small_model, target, message):
    path = small_model[0]
    rc, err = _run("tsne", path.name, "-o", target, cwd=path.parent)
    assert message in _one_error_line(rc, err)


@pytest.mark.parametrize(
    "option, what", [("--csv", "CSV"), ("--dl4j-csv", "DL4J CSV"), ("--stats", "statistics")]
)
def test_unwritable_extra_output_checked_before_the_run(tmp_path, small_model, option, what):
    path = small_model[0]
    rc, err = _run("tsne", path, "-o", tmp_path / "m.html", option, tmp_path / "nope" / "m.x")
    assert f"cannot write the {what} to" in _one_error_line(rc, err)


def test_too_few_words_for_perplexity(tmp_path, small_model, capsys):
    argv = ["tsne", str(small_model[0]), "--top", "20", "-o", str(tmp_path / "m.html"), "-q"]
    rc = main(argv)
    assert rc == 2
    line = _one_error_line(rc, capsys.readouterr().err)
    assert "--perplexity 30 needs at least 91 words, but 20 are selected" in line
    assert "pass --perplexity 6.333 or less" in line


def test_words_file_problems(tmp_path, small_model, capsys):
    path = str(small_model[0])
    out = str(tmp_path / "m.html")
    assert main(["tsne", path, "--words", str(tmp_path / "none.txt"), "-o", out]) == 2
    assert "--words file" in capsys.readouterr().err
    only_unknown = tmp_path / "unknown.txt"
    only_unknown.write_text("unicorn\npegasus\n")
    assert main(["tsne", path, "--words", str(only_unknown), "-o", out]) == 2
    assert "only 0 words left to map" in capsys.readouterr().err


def test_bad_labels_file(tmp_path, small_model, capsys):
    labels = tmp_path / "labels.tsv"
    labels.write_text("x0\tone\nx1 two\n")
    argv = ["tsne", str(small_model[0]), "--labels", str(labels), "-o", str(tmp_path / "m.html")]
    assert main(argv) == 2
    line = _one_error_line(2, capsys.readouterr().err)
    assert "line 2: expected word<TAB>label" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["tsne", "m.bin", "--no-such-option"],
        ["tsne"],
        ["nosuchcommand"],
        ["tsne", "m", "--top", "0"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: embedviz" in capsys.readouterr().err


def test_check_and_tsne_stats_leave_a_foreign_file_unchanged(
    tmp_path, small_model, capsys, foreign_sqlite
):
    """Refusing another program's SQLite file must not switch it to WAL or add tables."""
    foreign, before = foreign_sqlite
    assert main(["check", str(foreign)]) == 2
    out = tmp_path / "m.html"
    rc = main(["tsne", str(small_model[0]), "-o", str(out), "--stats", str(foreign), "-q",
               "--max-iter", "250", "--perplexity", "5"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("another program") == 2 and "Traceback" not in err
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("foreign")) == [
        "foreign.db"
    ]


def test_check_on_an_empty_or_damaged_statistics_file(tmp_path, small_model, capsys):
    from embedviz.stats.records import Update
    from embedviz.stats.storage import SQLiteStatsStorage

    empty = tmp_path / "empty.db"
    SQLiteStatsStorage(empty).close()
    assert main(["check", str(empty)]) == 1  # a CI gate over a run that recorded nothing
    assert f"no session recorded in {empty}" in capsys.readouterr().err
    damaged = tmp_path / "damaged.db"
    with SQLiteStatsStorage(damaged) as s:
        s.put_many(
            Update("run", "0", i, 1.0 + i, score=1.0, extra={"kl": 2.0}) for i in range(2000)
        )
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    damaged.write_bytes(bytes(data))
    tsne = ["tsne", str(small_model[0]), "-o", str(tmp_path / "m.html"), "-q", "--perplexity", "5"]
    for argv in (["check", str(damaged)], [*tsne, "--stats", str(damaged)]):
        line = _one_error_line(main(argv), capsys.readouterr().err)
        assert f"{damaged}: damaged statistics file" in line
    rc, err = _run("check", damaged)
    assert "damaged statistics file" in _one_error_line(rc, err)
