"""`embedviz tsne` and plot_vocab follow one rule for what depends on the words selected
(a perplexity or a cluster count the user did not choose is fitted to the words, one
they chose is kept or refused), and the options' messages speak in options."""

import csv
import logging
import re

import pytest

from embedviz import TSNE
from embedviz.cli import main
from embedviz.errors import InputError
from embedviz.plot.vocab import plot_vocab

SHORT = ["--max-iter", "250", "--stop-lying-iter", "50", "--switch-momentum-iter", "50"]


def _lines(err, kind):
    return [line for line in err.splitlines() if line.startswith(f"embedviz: {kind}: ")]


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


def test_default_perplexity_is_lowered_for_few_words_as_in_plot_vocab(
    tmp_path, small_model, capsys, caplog
):
    path = small_model[0]
    table = tmp_path / "m.csv"
    argv = ["tsne", str(path), "--top", "20", "-o", str(tmp_path / "m.html"), "--csv", str(table)]
    assert main([*argv, *SHORT]) == 0
    warnings = _lines(capsys.readouterr().err, "warning")
    assert len(warnings) == 1, warnings
    assert "default perplexity 30 needs at least 91" in warnings[0]
    assert "using perplexity 6.33 instead" in warnings[0]
    assert len(_csv_rows(table)) == 20
    # plot_vocab's own t-SNE does the same, with one warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="embedviz"):
        plot_vocab(path, top=20)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and "using perplexity=6.33" in said[0]


def test_a_perplexity_the_user_chose_is_refused_when_too_large(tmp_path, small_model, capsys):
    path = small_model[0]
    argv = ["tsne", str(path), "--top", "20", "-o", str(tmp_path / "m.html"), "-q"]
    assert main([*argv, "--perplexity", "30"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedviz: error: --perplexity 30 needs at least 91 words, but 20 are")
    assert "pass --perplexity 6.33 or less" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.html").exists()
    # a t-SNE passed to plot_vocab keeps its perplexity too: refused, naming what fits
    with pytest.raises(InputError, match=r"perplexity: expected at most 6\.33 for 20 points"):
        plot_vocab(path, top=20, tsne=TSNE(perplexity=30, metric="cosine"))


@pytest.mark.parametrize("n", [4, 12, 13, 20, 301, 30_001])
def test_the_largest_perplexity_named_is_accepted(n):
    """The value a refusal names is taken as given (12 words once said 3.667, which 12
    words refuse: (12 - 1) / 3 = 3.666...)."""
    from embedviz.tsne.affinity import check_perplexity, largest_perplexity

    largest = largest_perplexity(n)
    with pytest.raises(InputError) as refused:
        check_perplexity(n, largest + 0.01)
    named = re.search(r"at most (\S+) for", str(refused.value)).group(1)
    assert float(named) == largest and check_perplexity(n, float(named)) == largest
    assert largest > (n - 1) / 3 - 0.01


def test_max_iter_within_exaggeration_warns_in_options(tmp_path, small_model, capsys):
    argv = ["tsne", str(small_model[0]), "-o", str(tmp_path / "m.html"), "--perplexity", "5"]
    argv += ["--max-iter", "40", "--early-exaggeration", "4"]
    assert main(argv) == 0
    warnings = _lines(capsys.readouterr().err, "warning")
    assert len(warnings) == 1, warnings
    assert "--max-iter 40 leaves no iteration after early exaggeration" in warnings[0]
    assert "(--stop-lying-iter 250)" in warnings[0] and "max_iter" not in warnings[0]


def test_more_clusters_than_words(tmp_path, small_model, capsys, caplog):
    path = small_model[0]
    table = tmp_path / "m.csv"
    argv = ["tsne", str(path), "--top", "20", "-o", str(tmp_path / "m.html"), "--csv", str(table)]
    assert main([*argv, "--clusters", "50", "--perplexity", "5", *SHORT]) == 0
    warnings = _lines(capsys.readouterr().err, "warning")
    assert warnings == [
        "embedviz: warning: --clusters 50 is more than the 20 words selected: using 20 "
        "clusters, one word each (ask for fewer to see groups)"
    ]
    assert len({row[4] for row in _csv_rows(table)}) == 20
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="embedviz"):
        _, table = plot_vocab(path, top=20, colour=50)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("colour=50 asks for more clusters than there are words (20)" in m for m in said)
    assert len(set(table["cluster"].tolist())) == 20
    # the default (12) on 8 words is cut without a word, in both entry points
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="embedviz"):
        _, table = plot_vocab(path, top=8, tsne=TSNE(perplexity=2, max_iter=300))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(set(table["cluster"].tolist())) == 8
    assert main([*argv[:3], "8", *argv[4:], "--perplexity", "2", *SHORT]) == 0
    assert _lines(capsys.readouterr().err, "warning") == []


def test_colour_0_is_one_colour_as_clusters_0(small_model):
    _, table = plot_vocab(small_model[0], top=20, colour=0)
    assert set(table["cluster"].tolist()) == {0}


@pytest.mark.parametrize(
    "name, message",
    [
        ("map.png", "expected a file name ending in .html or .htm (the page is HTML), got "),
        ("-", "got '-' (the page is a file, not standard output)"),
        ("", "got an empty name; name a file, or leave -o out to write small.html"),
        ("map.", "got 'map.'; name it e.g. 'map.html'"),
    ],
)
def test_page_names_that_are_not_html_pages(
    tmp_path, small_model, capsys, monkeypatch, name, message
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["tsne", str(small_model[0]), "-o", name, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedviz: error: -o/--output: ") and message in err
    if name == "map.png":
        assert err.endswith("name it e.g. 'map.html'\n")
    assert list(work.iterdir()) == []  # nothing written, not even a file called '-'


def test_page_suffix_in_capitals_is_a_page(tmp_path, small_model):
    page = tmp_path / "MAP.HTML"
    argv = ["tsne", str(small_model[0]), "-o", str(page), "--perplexity", "5", "-q", *SHORT]
    assert main(argv) == 0 and page.read_text().lstrip().lower().startswith("<!doctype html")


def test_seed_out_of_range_is_a_command_line_message(tmp_path, small_model, capsys):
    assert main(["tsne", str(small_model[0]), "-o", str(tmp_path / "m.html"), "--seed", "-1"]) == 2
    assert capsys.readouterr().err == (
        "embedviz: error: --seed: expected an integer from 0 to 4294967295, got -1; pass e.g. "
        "--seed 0\n"
    )


def test_no_normalize_with_cosine_says_it_changes_nothing(tmp_path, small_model, capsys):
    argv = ["tsne", str(small_model[0]), "-o", str(tmp_path / "m.html"), "--perplexity", "5"]
    assert main([*argv, *SHORT, "--no-normalize"]) == 0
    warnings = _lines(capsys.readouterr().err, "warning")
    assert (
        len(warnings) == 1 and "--no-normalize changes nothing with --metric cosine" in warnings[0]
    )
    assert main([*argv, *SHORT, "--no-normalize", "--metric", "euclidean"]) == 0
    assert _lines(capsys.readouterr().err, "warning") == []
