"""Bad input to `embedviz tsne`: exit status 2, one line on stderr, no traceback."""

import subprocess
import sys
from pathlib import Path

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
        ("no/such/dir/map.html", "directory 'no/such/dir' does not exist"),
        (".", "it is a directory"),
        ("small.bin/map.html", "'small.bin' is a file, not a directory"),
    ],
)
def test_unwritable_output(tmp_path, small_model, target, message):
    path = small_model[0]
    rc, err = _run("tsne", path.name, "-o", target, cwd=path.parent)
    assert message in _one_error_line(rc, err)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("option", ["-o", "--csv", "--projector"])
def test_a_target_that_only_trying_shows_unwritable_fails_before_the_run(
    tmp_path, small_model, fast_args, capsys, option
):
    """/proc takes no new files, though os.access says it does for root: the output is
    tried (a file created and removed) before the t-SNE, not found out after it."""
    argv = ["tsne", str(small_model[0]), "-o", str(tmp_path / "m.html"), *fast_args]
    target = {"-o": "/proc/embedviz-x.html", "--csv": "/proc/embedviz-x.csv"}.get(
        option, "/proc/embedviz-test/out"
    )
    rc = main([*argv, option, target])
    line = _one_error_line(rc, capsys.readouterr().err)  # no "embedding ..." line before it
    assert "cannot write the" in line and "/proc" in line
    assert not (tmp_path / "m.html").exists()


def test_a_failed_export_keeps_every_old_output(tmp_path, small_model, fast_args, monkeypatch):
    """The page, CSV and projector files are replaced together or not at all."""
    from embedviz.errors import InputError
    from embedviz.plot import export

    page, table, projector = tmp_path / "m.html", tmp_path / "m.csv", tmp_path / "proj"
    page.write_text("old page")
    table.write_text("old csv")

    def broken(*args, **kwargs):
        raise InputError("cannot write the DL4J CSV file: No space left on device")

    monkeypatch.setattr(export, "write_dl4j_csv", broken)
    argv = ["tsne", str(small_model[0]), "-o", str(page), "--csv", str(table), "-q"]
    argv += ["--projector", str(projector), "--dl4j-csv", str(tmp_path / "d.csv"), *fast_args]
    assert main(argv) == 2
    assert page.read_text() == "old page" and table.read_text() == "old csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.html", "small.bin"]


@pytest.mark.parametrize(
    "option, what", [("--csv", "CSV"), ("--dl4j-csv", "DL4J CSV"), ("--stats", "statistics")]
)
def test_unwritable_extra_output_checked_before_the_run(tmp_path, small_model, option, what):
    path = small_model[0]
    rc, err = _run("tsne", path, "-o", tmp_path / "m.html", option, tmp_path / "nope" / "m.x")
    assert f"cannot write the {what} to" in _one_error_line(rc, err)


def test_fewer_than_four_words(tmp_path, small_model, capsys):
    argv = ["tsne", str(small_model[0]), "--top", "3", "-o", str(tmp_path / "m.html"), "-q"]
    assert main(argv) == 2
    line = _one_error_line(2, capsys.readouterr().err)
    assert "t-SNE needs at least 4 words (at the smallest perplexity, 1), but 3 are" in line
    assert "--perplexity" not in line  # no advice to pass a perplexity below 1


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
    err = capsys.readouterr().err
    assert err.startswith("embedviz: error: ") and err.count("\n") == 1, err
    assert "--help lists the options" in err


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


def test_a_pickle_under_another_name_is_opened_only_with_trust_pickle(tmp_path, fast_args, capsys):
    """Unpickling runs code from the file: vectors.bin that is really a pickle is refused
    (its code never runs) unless --trust-pickle says the file is trusted."""
    import pickle

    from gensim.models import KeyedVectors

    marker = tmp_path / "ran.txt"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "code from the file ran"))

    evil = tmp_path / "vectors.bin"
    evil.write_bytes(pickle.dumps(Payload(), protocol=4))
    out = tmp_path / "m.html"
    line = _one_error_line(main(["tsne", str(evil), "-o", str(out)]), capsys.readouterr().err)
    assert "--trust-pickle" in line and not marker.exists() and not out.exists()
    rng = np.random.default_rng(0)
    kv = KeyedVectors(8, count=0)
    kv.add_vectors([f"w{i}" for i in range(40)], rng.normal(size=(40, 8)).astype(np.float32))
    trusted = tmp_path / "gensim.bin"
    kv.save(str(trusted))  # gensim's pickle, under a name that does not say so
    assert main(["tsne", str(trusted), "-o", str(out), "-q", *fast_args]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert main(["tsne", str(trusted), "-o", str(out), "-q", "--trust-pickle", *fast_args]) == 0
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_words_that_are_one_point_get_one_message(tmp_path, metric, capsys):
    path = tmp_path / "same.txt"
    path.write_text("6 3\n" + "".join(f"{w} 1 2 3\n" for w in "abcdef"))
    argv = ["tsne", str(path), "-o", str(tmp_path / "m.html"), "--perplexity", "1"]
    assert main([*argv, "--metric", metric, "-q"]) == 2
    err = capsys.readouterr().err
    line = _one_error_line(2, err)
    assert line.startswith("embedviz: error: word vectors: expected ") and "6 " in line
    assert "check the file, or select other words" in line
    assert "warning" not in err  # k-means no longer warns about one distinct point first


def test_names_in_error_lines_cannot_rewrite_the_terminal(tmp_path, capsys):
    # a file name with ESC and a right-to-left override, given to check and report
    path = tmp_path / "x\x1b[2Jy\u202e.db"
    for argv in (["check", str(path)], ["report", str(path), "-o", str(tmp_path / "r.html")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\u202e" not in err, err
        assert "x\\x1b[2Jy\\u202e.db" in err
