"""`embedviz tsne` end to end, its defaults, and its answers to bad input."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from embedviz._defaults import TSNE_DEFAULTS, VOCAB_DEFAULTS
from embedviz.cli import build_parser, main
from embedviz.plot._command_options import clusters_colour
from embedviz.plot.commands import tsne_params


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_end_to_end(tmp_path, small_model, fast_args, capsys):
    path, words, groups = small_model
    out, table = tmp_path / "map.html", tmp_path / "map.csv"
    dl4j, projector = tmp_path / "dl4j.csv", tmp_path / "projector"
    argv = ["tsne", str(path), "-o", str(out), "--csv", str(table), "--clusters", "3"]
    argv += ["--dl4j-csv", str(dl4j), "--projector", str(projector), *fast_args]
    assert main(argv) == 0
    err = capsys.readouterr().err
    for written in (out, table, dl4j, projector):
        assert str(written) in err  # it says where it wrote what
    html = out.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html  # every word escaped ...
    assert '"&lt;script&gt;alert(1)&lt;/script&gt;"' in html  # ... and there, as text
    rows = _read_csv(table)
    assert rows[0] == ["x", "y", "word", "rank", "cluster"]
    body = rows[1:]
    assert [r[2] for r in body] == words  # incl. the word with a comma and quotes
    assert [int(r[3]) for r in body] == list(range(1, len(words) + 1))
    xy = np.array([[float(r[0]), float(r[1])] for r in body])
    assert np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    assert adjusted_rand_score(groups, [r[4] for r in body]) == 1.0
    assert len(dl4j.read_text(encoding="utf-8").splitlines()) == len(words)
    assert {p.name for p in projector.iterdir()} >= {"projector_config.pbtxt"}
    meta = (projector / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert meta[0] == "word\trank\tcluster" and len(meta) == len(words) + 1
    assert [line.split("\t")[2] for line in meta[1:]] == [r[4] for r in body]


@pytest.mark.slow
def test_subprocess_3d_quiet(tmp_path, small_model, fast_args):
    path, words, _ = small_model
    out, table = tmp_path / "m3.html", tmp_path / "m3.csv"
    argv = ["tsne", str(path), "-o", str(out), "--dims", "3", "--csv", str(table), "-q"]
    proc = subprocess.run(
        [sys.executable, "-m", "embedviz.cli", *argv, *fast_args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""  # --quiet
    rows = _read_csv(table)
    assert rows[0] == ["x", "y", "z", "word", "rank", "cluster"] and len(rows) == len(words) + 1
    assert out.stat().st_size > 10_000


def test_main_restores_logging(tmp_path, small_model, fast_args):
    import logging

    package = logging.getLogger("embedviz")
    before = (package.handlers[:], package.propagate, package.level)
    argv = ["tsne", str(small_model[0]), "-o", str(tmp_path / "m.html"), *fast_args]
    assert main(argv) == 0
    assert (package.handlers, package.propagate, package.level) == before


def test_default_output_name(tmp_path, small_model, fast_args, monkeypatch):
    path, _, _ = small_model
    monkeypatch.chdir(tmp_path)
    assert main(["tsne", str(path), "-q", *fast_args]) == 0
    assert (tmp_path / "small.html").is_file()
    from pathlib import Path

    from embedviz.plot._command_files import default_output

    assert default_output(Path("x/GoogleNews-vectors-negative300.bin.gz")) == Path(
        "GoogleNews-vectors-negative300.html"
    )
    assert default_output(Path("wiki.en.vec")) == Path("wiki.en.html")


def test_words_file_unknown_words_reported(tmp_path, small_model, fast_args, capsys):
    path, words, _ = small_model
    chosen = words[:12] + ["unicorn", "pegasus"] + words[20:30]
    word_file = tmp_path / "words.txt"
    word_file.write_text("\n".join(chosen) + "\n\n", encoding="utf-8")
    table = tmp_path / "w.csv"
    argv = ["tsne", str(path), "--words", str(word_file), "--csv", str(table)]
    assert main([*argv, "-o", str(tmp_path / "w.html"), *fast_args]) == 0
    err = capsys.readouterr().err
    assert "embedviz: warning: 2 of 24 words are not in the vocabulary" in err
    assert "unicorn, pegasus" in err
    assert [r[2] for r in _read_csv(table)[1:]] == words[:12] + words[20:30]


def test_words_file_is_mapped_whole_unless_top_is_given(
    tmp_path, small_model, fast_args, capsys, monkeypatch
):
    """--words maps every listed word (the default --top is for the most frequent words);
    an explicit --top cuts the list, with a warning."""
    monkeypatch.setitem(VOCAB_DEFAULTS, "top", 18)  # a default smaller than the list
    path, words, _ = small_model
    chosen = words[5:35]
    word_file = tmp_path / "words.txt"
    word_file.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    table = tmp_path / "w.csv"
    argv = ["tsne", str(path), "--csv", str(table), "-o", str(tmp_path / "w.html"), *fast_args]
    assert main([*argv, "--words", str(word_file)]) == 0
    assert [r[2] for r in _read_csv(table)[1:]] == chosen
    assert "warning" not in capsys.readouterr().err
    assert main([*argv, "--words", str(word_file), "--top", "20"]) == 0
    assert [r[2] for r in _read_csv(table)[1:]] == chosen[:20]
    err = capsys.readouterr().err
    assert (
        f"warning: --top 20 keeps the first 20 of the 30 words found from --words {word_file}"
        in err
    )
    assert main(argv) == 0  # without --words the default applies
    assert [r[2] for r in _read_csv(table)[1:]] == words[:18]


def _text_model(path, words, matrix):
    lines = [f"{len(words)} {matrix.shape[1]}"]
    lines += [
        w + " " + " ".join(f"{v:.6f}" for v in row) for w, row in zip(words, matrix, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_all_zero_vectors_are_left_out_with_one_warning(tmp_path, small_model, fast_args, capsys):
    """A zero vector (a padding token) has no cosine distance: left out, named once."""
    _, words, groups = small_model
    rng = np.random.default_rng(3)
    matrix = np.repeat(rng.normal(size=(3, 8)) * 4, 15, axis=0) + rng.normal(size=(45, 8))
    zero = ["<pad>", "<unk>", "<s>", "</s>", "<mask>", "<sep>", "<cls>"]
    positions = [0, 3, 9, 17, 26, 31, 44]
    names = [f"w{i}" for i in range(45)]
    for p, z in zip(positions, zero, strict=True):
        names[p] = z
        matrix[p] = 0.0
    model = _text_model(tmp_path / "pad.txt", names, matrix)
    table = tmp_path / "p.csv"
    argv = ["tsne", str(model), "-o", str(tmp_path / "p.html"), "--csv", str(table), *fast_args]
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning" in line]
    assert len(lines) == 1, err
    assert "left out 7 words with an all-zero vector" in lines[0]
    assert all(repr(z) in lines[0] for z in zero[:5]) and "and 2 more" in lines[0]
    assert "--metric euclidean" in lines[0]
    kept = [r[2] for r in _read_csv(table)[1:]]
    assert kept == [w for w in names if w not in zero]
    # the euclidean metric keeps them (a zero vector is a point like any other)
    assert main([*argv, "--metric", "euclidean", "-q"]) == 0
    assert [r[2] for r in _read_csv(table)[1:]] == names


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--perplexity", "nan"], "--perplexity: expected a number >= 1, got nan"),
        (["--threads", "0"], "--threads: expected a positive integer or a negative one"),
        (["--threads", "0"], "got 0; pass e.g. --threads -1"),
        (["--theta", "-1"], "--theta: expected a number >= 0, got -1.0"),
        (["--pca", "1000"], "--pca 1000: 45 words of 16 dimensions have at most 16"),
        (["--include", "("], "--include '(' is not a valid regular expression"),
        (["--exclude", "[a"], "--exclude '[a' is not a valid regular expression"),
    ],
)
def test_messages_name_the_options(tmp_path, small_model, capsys, extra, expected):
    argv = ["tsne", str(small_model[0]), "-o", str(tmp_path / "m.html"), "--perplexity", "5"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert expected in err and f"embedviz: error: {extra[0]}" in err
    for api_name in ("n_jobs", "pca_components", "perplexity=", "theta=", "include must"):
        assert api_name not in err
    assert "embedding" not in err  # found before the t-SNE


def test_library_warnings_become_one_warning_line(capsys):
    """Warnings from other libraries (numba, scikit-learn) come out as our own lines,
    also with --quiet, and the warning machinery is restored afterwards."""
    import warnings

    from embedviz.cli import _command_logging

    before = warnings.showwarning
    for quiet in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            with _command_logging(quiet):
                warnings.warn("Number of distinct clusters (1)\n found", UserWarning, stacklevel=1)
        err = capsys.readouterr().err
        assert err.splitlines() == [
            "embedviz: warning: Number of distinct clusters (1) found (UserWarning from "
            "test_cli_tsne)"
        ]
    assert warnings.showwarning is before


def test_labels_file(tmp_path, small_model, fast_args):
    path, words, groups = small_model
    labels = tmp_path / "meta.tsv"
    lines = ["word\tlabel"] + [f"{w}\tgroup-{g}" for w, g in zip(words, groups, strict=True)]
    labels.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # last word unlabelled
    table = tmp_path / "l.csv"
    argv = ["tsne", str(path), "--labels", str(labels), "--csv", str(table), "-q"]
    assert main([*argv, "-o", str(tmp_path / "l.html"), *fast_args]) == 0
    clusters = [r[4] for r in _read_csv(table)[1:]]
    assert clusters[:-1] == [f"group-{g}" for g in groups[:-1]]
    assert clusters[-1] == "(no label)"


def test_stats_session_and_check(tmp_path, small_model, fast_args, capsys):
    pytest.importorskip("embedviz.stats.tsne_stats")
    from embedviz.stats.storage import SQLiteStatsStorage

    path, _, _ = small_model
    db = tmp_path / "runs.db"
    argv = ["tsne", str(path), "-o", str(tmp_path / "s.html"), "--stats", str(db), "-q"]
    assert main([*argv, *fast_args]) == 0
    storage = SQLiteStatsStorage(db)
    try:
        (session,) = storage.list_sessions()
        updates = storage.get_updates(session)
        assert [u.iteration for u in updates] == [50, 100, 150, 200, 250]
        assert all(np.isfinite(u.extra["kl"]) for u in updates)
    finally:
        storage.close()
    # and `embedviz check` reads it
    assert main(["check", str(db)]) == 0  # a clean run: no finding is an error
    out = capsys.readouterr().out
    assert f"{db}: 1 session(s)" in out and "summary:" in out
    assert main(["check", str(tmp_path / "none.db")]) == 2


def test_an_output_that_is_an_input_or_another_output_is_refused(
    tmp_path, small_model, fast_args, capsys
):
    path, _, _ = small_model
    db = tmp_path / "runs.db"
    db.write_bytes(b"earlier statistics")
    before = path.read_bytes()
    cases = [
        (["-o", str(db), "--stats", str(tmp_path / "." / "runs.db")], "statistics", "page"),
        (["-o", str(path)], "page", "word vectors"),
        (["-o", str(tmp_path / "a.html"), "--csv", str(path)], "CSV", "word vectors"),
    ]
    for extra, what, other in cases:
        assert main(["tsne", str(path), "-q", *extra, *fast_args]) == 2
        err = capsys.readouterr().err
        assert f"the {what} would overwrite the {other}" in err and "Traceback" not in err
    assert db.read_bytes() == b"earlier statistics" and path.read_bytes() == before


def test_report_refuses_to_overwrite_its_statistics_file(tmp_path, small_model, fast_args, capsys):
    pytest.importorskip("embedviz.stats.tsne_stats")
    path, _, _ = small_model
    db = tmp_path / "runs.db"
    argv = ["tsne", str(path), "-o", str(tmp_path / "s.html"), "--stats", str(db), "-q"]
    assert main([*argv, *fast_args]) == 0
    before = db.read_bytes()
    assert main(["report", str(db), "-o", str(db)]) == 2
    assert "would overwrite the statistics file" in capsys.readouterr().err
    assert db.read_bytes() == before


def test_defaults_are_the_shared_defaults():
    from embedviz import TSNE

    args = build_parser().parse_args(["tsne", "model.bin"])
    params = tsne_params(args)
    api = TSNE().get_params()
    vocab_keys = {"metric": "metric", "random_state": "seed", "n_components": "dims"}
    for name, value in params.items():
        if name == "verbose":
            assert value is True  # a progress bar unless --quiet
        elif name in vocab_keys:
            assert value == VOCAB_DEFAULTS[vocab_keys[name]], name
        else:
            assert value == TSNE_DEFAULTS[name] == api[name], name
    assert args.clusters is None  # resolved in run_tsne: at most one cluster per word
    assert clusters_colour(None, 1000) == VOCAB_DEFAULTS["clusters"]
    assert args.perplexity is None  # resolved in run_tsne: lowered for few words
    assert args.top is None  # resolved in run_tsne: VOCAB_DEFAULTS["top"], or all of --words
    # and every option reaches the estimator under its own name
    argv = ["tsne", "m", "--perplexity", "7", "--theta", "0.3", "--max-iter", "11"]
    argv += ["--stop-lying-iter", "3", "--learning-rate", "99", "--momentum", "0.1"]
    argv += ["--final-momentum", "0.2", "--switch-momentum-iter", "4", "--adagrad"]
    argv += ["--pca", "5", "--no-normalize", "--seed", "9", "--dims", "3", "--metric", "euclidean"]
    argv += ["--early-exaggeration", "4", "--threads", "1", "--quiet"]
    got = tsne_params(build_parser().parse_args(argv))
    assert got == {
        "perplexity": 7.0, "theta": 0.3, "max_iter": 11, "stop_lying_iter": 3,
        "learning_rate": 99.0, "momentum": 0.1, "final_momentum": 0.2,
        "switch_momentum_iter": 4, "use_adagrad": True, "pca_components": 5,
        "normalize": False, "random_state": 9, "n_components": 3, "metric": "euclidean",
        "early_exaggeration": 4.0, "n_jobs": 1, "verbose": False,
    }  # fmt: skip
    TSNE(**got)._check_params()  # all valid estimator parameters


def test_import_is_light_and_help_fast():
    code = (
        "import sys, embedviz.cli; embedviz.cli.build_parser();"
        "heavy = [m for m in ('bokeh', 'numba', 'gensim', 'torch', 'sklearn') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
    proc = subprocess.run(
        [sys.executable, "-m", "embedviz.cli", "tsne", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--perplexity" in proc.stdout and "(default: 30," in proc.stdout


def test_clusters_0_draws_one_colour(tmp_path, small_model, fast_args):
    path, words, _ = small_model
    table = tmp_path / "map.csv"
    argv = ["tsne", str(path), "-o", str(tmp_path / "m.html"), "--csv", str(table)]
    assert main([*argv, "--clusters", "0", *fast_args]) == 0
    assert {r[4] for r in _read_csv(table)[1:]} == {"0"}  # one group: no k-means
