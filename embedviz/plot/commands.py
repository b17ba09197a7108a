"""``embedviz tsne``: a word-vector file to an interactive t-SNE map, from the command line.

Registered in :data:`embedviz.cli.COMMANDS`; the options map onto :class:`embedviz.TSNE`
(:func:`tsne_params`) and :func:`embedviz.plot.plot_vocab`. Everything a long run could
trip over afterwards is checked before it: the options (messages name the options, not
the estimator's parameters), and every output, by creating and removing a file beside
it (:mod:`embedviz.plot._command_files`). The outputs are written together at the end.

Nothing heavy is imported here: numpy, numba and bokeh come when the command runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embedviz._defaults import TSNE_DEFAULTS, VOCAB_DEFAULTS
from embedviz.errors import InputError
from embedviz.plot._command_files import (
    check_directory,
    check_distinct,
    check_writable,
    read_labels,
    read_word_list,
    write_outputs,
)
from embedviz.plot._command_options import (
    check_options,
    check_page_suffix,
    choose_perplexity,
    clusters_colour,
    option_message,
    option_names_in_log,
    page_path,
    tsne_params,
)

logger = logging.getLogger("embedviz.cli")


def add_tsne_command(subparsers) -> None:
    """Register ``embedviz tsne MODEL``: a word-vector file to an interactive t-SNE map."""
    D, V = TSNE_DEFAULTS, VOCAB_DEFAULTS
    p = subparsers.add_parser(
        "tsne",
        help="map word vectors with t-SNE into an interactive HTML page",
        description=(
            "Read word vectors (word2vec .bin/.txt, GloVe, fastText .vec, gensim .kv/.model), "
            "embed the most frequent words with t-SNE and write a self-contained interactive "
            "page (hover, search, clusters; 2D or rotatable 3D)."
        ),
        epilog="example: embedviz tsne data/glove-5k.bin -o glove-5k.html",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="word-vector file")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="open MODEL also when it is a Python pickle (gensim's own format) under a name "
        "other than .model/.kv/.wordvectors/.gensim/.pkl/.pickle; loading a pickle runs code "
        "stored in it, so use this only for files you trust",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT.html",
        help="page to write (default: MODEL's name with .html for its suffix: "
        "vectors.bin -> vectors.html)",
    )
    sel = p.add_argument_group("which words")
    sel.add_argument(
        "--top",
        type=_positive_int,
        default=None,  # resolved in run_tsne: every listed word with --words
        metavar="N",
        help=f"map the N most frequent words (default: {V['top']}; with --words: every word "
        "listed, or its first N when --top is given)",
    )
    sel.add_argument(
        "--words",
        metavar="FILE",
        help="map the words listed in FILE (one a line) instead of the most frequent",
    )
    sel.add_argument("--include", metavar="REGEX", help="keep only words matching REGEX")
    sel.add_argument("--exclude", metavar="REGEX", help="drop words matching REGEX")
    sel.add_argument(
        "--drop-stopwords",
        action="store_true",
        help="drop English stop words and tokens without a letter or digit",
    )
    t = p.add_argument_group("t-SNE")

    def number(option: str, kind, default, help: str) -> None:
        metavar = "N" if kind is int else "X"
        t.add_argument(option, type=kind, default=default, metavar=metavar, help=help)

    t.add_argument("--dims", type=int, choices=(2, 3), default=V["dims"], help="2D or 3D map")
    t.add_argument(
        "--metric",
        choices=("cosine", "euclidean"),
        default=V["metric"],
        help="distance between word vectors",
    )
    t.add_argument(
        "--perplexity",
        type=float,
        default=None,  # resolved in run_tsne: D["perplexity"], lowered for few words
        metavar="X",
        help=f"effective number of neighbours (default: {D['perplexity']:g}, lowered with a "
        f"warning when fewer than {3 * D['perplexity'] + 1:g} words are selected; a value "
        "given here is never lowered)",
    )
    number("--theta", float, D["theta"], "Barnes-Hut accuracy")
    number("--max-iter", int, D["max_iter"], "iterations")
    number(
        "--stop-lying-iter",
        int,
        D["stop_lying_iter"],
        "iteration at which early exaggeration ends (earlier if it shrinks the whole map "
        "1000-fold, as it can on small vocabularies; the log says so)",
    )
    number(
        "--early-exaggeration",
        float,
        D["early_exaggeration"],
        "factor on P until --stop-lying-iter",
    )
    number("--learning-rate", _learning_rate, D["learning_rate"], "a number or 'auto'")
    number("--momentum", float, D["momentum"], "momentum until --switch-momentum-iter")
    number("--final-momentum", float, D["final_momentum"], "momentum after it")
    number(
        "--switch-momentum-iter",
        int,
        D["switch_momentum_iter"],
        "iteration at which the momentum switches",
    )
    t.add_argument(
        "--adagrad",
        action="store_true",
        default=D["use_adagrad"],
        help="AdaGrad step sizes instead of gains",
    )
    number(
        "--pca",
        int,
        D["pca_components"],
        "reduce the vectors to N principal components first (default: off)",
    )
    t.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        default=D["normalize"],
        help="do not centre and scale the vectors (--metric euclidean only: cosine "
        "distances ignore the scale and the vectors are never centred for them)",
    )
    number("--seed", int, V["seed"], "random seed, 0 to 4294967295")
    number("--threads", int, D["n_jobs"], "-1: all cores")
    c = p.add_argument_group("colours and output")
    c.add_argument(
        "--clusters",
        type=_cluster_count,
        default=None,  # resolved in clusters_colour: V["clusters"], at most one per word
        metavar="K",
        help=f"colour by K k-means clusters (default: {V['clusters']}; 0: one colour; at "
        "most one per word)",
    )
    c.add_argument(
        "--labels", metavar="FILE", help="colour by labels from a TSV file: word<TAB>label per line"
    )
    c.add_argument("--csv", metavar="PATH", help="also write x,y[,z],word,rank,cluster")
    c.add_argument(
        "--dl4j-csv",
        metavar="PATH",
        help="also write x,y[,z],word as Deeplearning4j's BarnesHutTsne.saveAsFile",
    )
    c.add_argument(
        "--projector",
        metavar="DIR",
        help="also write TensorBoard projector files (vectors/metadata TSV, config)",
    )
    c.add_argument(
        "--stats",
        metavar="DB",
        help="record the t-SNE run (KL, gradient norm) in a statistics database",
    )
    c.add_argument("--title", help="page title (default: MODEL's file name)")
    c.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or progress messages (warnings and errors are still shown)",
    )
    p.set_defaults(func=run_tsne)


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default unless it is None or a switch."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, True, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text.strip()


def _positive_int(text: str, low: int = 1) -> int:
    what = "a positive integer" if low == 1 else f"an integer >= {low}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _cluster_count(text: str) -> int:
    return _positive_int(text, low=0)


def _learning_rate(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def run_tsne(args: argparse.Namespace) -> int:
    """``embedviz tsne``: load, select, embed, draw and write."""
    model = Path(args.model)
    output = page_path(args.output, model)
    outputs = [("page", output)] + [
        (what, Path(value))
        for what, value in (
            ("CSV", args.csv),
            ("DL4J CSV", args.dl4j_csv),
            ("statistics", args.stats),
        )
        if value
    ]
    inputs = [("word vectors", model)] + [
        (what, Path(value))
        for what, value in (("word list", args.words), ("labels", args.labels))
        if value
    ]
    check_distinct(outputs, inputs)
    check_options(args)
    for what, path in outputs:  # fail before a long run, not after it
        check_writable(path, what)
    check_page_suffix(output)
    if args.projector:
        check_directory(Path(args.projector), "projector files")
    words = read_word_list(args.words) if args.words else None
    labels = read_labels(args.labels) if args.labels else None

    from embedviz.plot.vocab import drop_zero_vectors, plot_vocab
    from embedviz.tsne.estimator import TSNE

    selection = _select(args, model, words)
    if args.metric == "cosine":
        selection = drop_zero_vectors(selection, advice="--metric euclidean keeps such words")
    if len(selection.words) < 2:
        raise InputError(
            f"only {len(selection.words)} words left to map from {model}; check --top, --words "
            "and the filters"
        )
    from embedviz.tsne.affinity import MIN_SAMPLES

    n, dim = selection.vectors.shape
    if n < MIN_SAMPLES:
        raise InputError(
            f"t-SNE needs at least {MIN_SAMPLES} words (at the smallest perplexity, 1), but "
            f"{n} are selected from {model}; select more words (--top, --words)"
        )
    params = tsne_params(args)
    params["perplexity"] = choose_perplexity(args.perplexity, n, model)
    if args.pca is not None and args.pca > min(n, dim):
        raise InputError(
            f"--pca {args.pca}: {n} words of {dim} dimensions have at most {min(n, dim)} "
            f"principal components; pass --pca {min(n, dim)} or less, or leave it out"
        )
    stats = _stats_callback(args, model, selection.words, params) if args.stats else None
    tsne = TSNE(**params, callbacks=(stats,) if stats else ())
    colour = labels if labels is not None else clusters_colour(args.clusters, n)
    title = args.title or model.name
    try:
        with option_names_in_log():
            layout, table = plot_vocab(selection, tsne=tsne, colour=colour, title=title)
    except InputError as exc:
        _close_stats(stats)
        raise InputError(option_message(str(exc))) from None
    except BaseException:
        _close_stats(stats)
        raise
    # the map first: statistics that cannot be written must not cost the user the page
    write_outputs(args, layout, table, selection, output, title, labels)
    return _close_stats(stats)


def _select(args, model: Path, words: list[str] | None):
    """The words to map: --top of the file, or every word of --words (its first --top
    when --top is given, with a warning when that leaves words out)."""
    from embedviz.vectors import Selection, load_selection

    top = args.top if words is not None or args.top is not None else VOCAB_DEFAULTS["top"]
    selection = load_selection(
        model,
        top=None if words is not None else top,
        words=words,
        include=args.include,
        exclude=args.exclude,
        drop_stopwords=args.drop_stopwords,
        drop_punctuation=args.drop_stopwords,
        trust_pickle=True if args.trust_pickle else None,
    )
    if words is not None and top is not None and len(selection.words) > top:
        logger.warning(
            "--top %d keeps the first %d of the %d words found from --words %s",
            top,
            top,
            len(selection.words),
            args.words,
        )
        selection = Selection(
            selection.words[:top], selection.vectors[:top], selection.rank[:top], selection.unknown
        )
    return selection


def _stats_callback(args, model: Path, words: list[str], params: dict):
    try:
        from embedviz.stats.listener import TSNEStats
        from embedviz.stats.storage import SQLiteStatsStorage
    except ImportError as exc:  # pragma: no cover - the stats package ships with embedviz
        raise InputError(f"--stats is not available in this installation ({exc})") from None
    storage = SQLiteStatsStorage(args.stats)
    config = {"model": str(model), "n_words": len(words), **_json_safe(params)}
    stats = TSNEStats(storage, config=config, labels=words)
    logger.info("recording the t-SNE run as session %s in %s", stats.session_id, args.stats)
    return stats


def _close_stats(stats) -> int:
    """Close the ``--stats`` recording: 0 when every record of the run is in the file,
    else 1 after one error line that counts every record not written: those the
    storage dropped during the run while the file failed (its buffer bound, each drop
    logged then) and those it still held when the file could not be written within a
    few seconds at the end (locked by another process, disk full). What it could not
    take is then given up, so nothing waits or complains at exit."""
    if stats is None:
        return 0
    from embedviz.errors import StatsWriteError
    from embedviz.stats.sqlite_close import CLOSE_WAIT

    storage = stats.storage
    stats.close(flush=False)
    try:
        storage.close(timeout=CLOSE_WAIT, drop_unwritten=True)
    except StatsWriteError as exc:
        during = storage.dropped - exc.unwritten  # _give_up counts its own in .dropped
        logger.error(
            "%s: %d statistics record(s) of this run are lost (%s): the file could not be "
            "written within %g s (%s); the other outputs were written; %s",
            exc.path, during + exc.unwritten, _lost_parts(during, exc.unwritten), CLOSE_WAIT,
            exc.cause, _STATS_ADVICE,
        )  # fmt: skip
        return 1
    if storage.dropped:  # the file failed during the run, then worked again
        logger.error(
            "%s: %d statistics record(s) of this run are lost: dropped during the run while "
            "the file could not be written (the records before and after are written); the "
            "other outputs were written; %s",
            storage.path, storage.dropped, _STATS_ADVICE,
        )  # fmt: skip
        return 1
    return 0


_STATS_ADVICE = (
    "end the program that holds the file locked or free disk space, then run again to "
    "record the whole run"
)


def _lost_parts(during: int, at_end: int) -> str:
    """``'3 dropped during the run, 2 not written at the end'``, either part alone
    when the other is 0."""
    parts = [f"{during} dropped during the run"] if during else []
    if at_end or not parts:
        parts.append(f"{at_end} not written at the end")
    return ", ".join(parts)


def _json_safe(params: dict) -> dict:
    return {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool, type(None)))}
