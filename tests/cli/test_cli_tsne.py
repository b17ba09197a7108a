"""`embedviz tsne` end to end, its defaults, and its answers to bad input."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from embedviz._defaults import TSNE_DEFAULTS, VOCAB_DEFAULTS
from embedviz.cli import build_parser, main, tsne_params


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
    assert "<script>alert(1)</script>" not in html  # every word escaped
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

    from embedviz.cli import _default_output

    assert _default_output(Path("x/GoogleNews-vectors-negative300.bin.gz")) == Path(
        "GoogleNews-vectors-negative300.html"
    )
    assert _default_output(Path("wiki.en.vec")) == Path("wiki.en.html")


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
    assert main(["check", str(db)]) in (0, 1)
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
    assert args.top == VOCAB_DEFAULTS["top"] and args.clusters == VOCAB_DEFAULTS["clusters"]
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
    assert (
        proc.returncode == 0 and "--perplexity" in proc.stdout and "(default: 30.0)" in proc.stdout
    )
