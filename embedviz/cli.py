"""The ``embedviz`` command line.

Each subcommand is added by a small function ``add_NAME_command(subparsers)`` listed in
:data:`COMMANDS` as ``"module:function"``; the function registers its options and sets
``func`` (called with the parsed arguments, returns the exit status). Adding ``ui``,
``report`` or ``check`` is one line here plus the function in its own package.

This module imports nothing heavy: numpy, gensim, numba and bokeh are imported when a
command runs, so ``embedviz --help`` answers at once.

Exit status: 0 on success, 2 for a user error (:class:`~embedviz.errors.EmbedvizError`,
printed as one line ``embedviz: error: ...`` without a traceback, like argparse's own
usage errors), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import warnings
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

from embedviz import __version__
from embedviz._defaults import TSNE_DEFAULTS, VOCAB_DEFAULTS
from embedviz.errors import EmbedvizError, InputError

logger = logging.getLogger("embedviz.cli")

# subcommand adders, in the order `embedviz --help` lists them
COMMANDS = [
    "embedviz.cli:add_tsne_command",
    "embedviz.ui.commands:add_ui_command",
    "embedviz.ui.commands:add_report_command",
    "embedviz.cli:add_check_command",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="embedviz",
        description="Look inside trained models: t-SNE maps of word vectors, training statistics.",
    )
    parser.add_argument("--version", action="version", version=f"embedviz {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    sub.required = True
    for spec in COMMANDS:
        module, _, name = spec.partition(":")
        getattr(import_module(module), name)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``embedviz`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Examples
    --------
    >>> main(["tsne", "data/glove-5k.bin", "-o", "glove.html", "--quiet"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with _command_logging(getattr(args, "quiet", False)):
        try:
            return int(args.func(args) or 0)
        except EmbedvizError as exc:
            message = " ".join(str(exc).split())
            print(f"embedviz: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("embedviz: interrupted", file=sys.stderr)
            return 130


class _Formatter(logging.Formatter):
    def format(self, record):
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"embedviz: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"embedviz: warning: {text}"
        return f"embedviz: {text}"


@contextmanager
def _command_logging(quiet: bool):
    """embedviz's messages on stderr as ``embedviz: ...`` for one command; the logging
    set-up is restored afterwards (``main`` may run inside a test or a notebook)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    package, export = logging.getLogger("embedviz"), logging.getLogger("embedviz.plot.export")
    access = logging.getLogger("tornado.access")  # the UI's request lines
    saved = (package.handlers[:], package.propagate, package.level, export.level, access.level)
    package.handlers[:] = [handler]
    package.propagate = False
    package.setLevel(logging.WARNING if quiet else logging.INFO)
    export.setLevel(logging.WARNING)  # the command reports its own files, once each
    if quiet:
        access.setLevel(logging.ERROR)
    show = warnings.showwarning
    warnings.showwarning = _log_warning  # numba's, scikit-learn's: one line, like ours
    try:
        yield
    finally:
        warnings.showwarning = show
        package.handlers[:], package.propagate = saved[0], saved[1]
        package.setLevel(saved[2])
        export.setLevel(saved[3])
        access.setLevel(saved[4])


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning from any library as one ``embedviz: warning: ...`` line."""
    text = " ".join(str(message).split())
    logger.warning("%s (%s from %s)", text, category.__name__, _module_of(filename))


def _module_of(filename: str) -> str:
    """``.../site-packages/sklearn/cluster/_kmeans.py`` -> ``sklearn``."""
    parts = Path(filename).parts
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return Path(parts[parts.index("site-packages") + 1]).stem
    return Path(filename).stem


# -- embedviz check ---------------------------------------------------------------------


def add_check_command(subparsers) -> None:
    """Register ``embedviz check DB``: the diagnostics of :mod:`embedviz.stats.diagnostics`."""
    p = subparsers.add_parser(
        "check",
        help="diagnose recorded runs (exit status 1 when a finding is an error)",
        description=(
            "Read a statistics file and print findings (exploding or vanishing updates, loss "
            "spikes, dead units, divergence, ...) with their evidence and advice."
        ),
        epilog="example: embedviz check runs.db",
    )
    p.add_argument("storage", metavar="DB", help="statistics file")
    p.add_argument("--session", help="check only this session (default: every one)")
    p.set_defaults(func=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from embedviz.stats.diagnostics import run_check

    return run_check(args.storage, session=args.session)


# -- embedviz tsne ----------------------------------------------------------------------


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
        "other than .model/.kv/.pkl; loading a pickle runs code stored in it, so use this "
        "only for files you trust",
    )
    p.add_argument(
        "-o", "--output", metavar="OUT.html", help="page to write (default: MODEL's name + .html)"
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
    number("--perplexity", float, D["perplexity"], "effective number of neighbours")
    number("--theta", float, D["theta"], "Barnes-Hut accuracy")
    number("--max-iter", int, D["max_iter"], "iterations")
    number(
        "--stop-lying-iter", int, D["stop_lying_iter"], "iteration at which early exaggeration ends"
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
    number("--pca", int, D["pca_components"], "reduce the vectors to N principal components first")
    t.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        default=D["normalize"],
        help="do not centre and scale the vectors",
    )
    number("--seed", int, V["seed"], "random seed")
    number("--threads", int, D["n_jobs"], "-1: all cores")
    c = p.add_argument_group("colours and output")
    c.add_argument(
        "--clusters",
        type=_positive_int,
        default=V["clusters"],
        metavar="K",
        help="colour by K k-means clusters",
    )
    c.add_argument(
        "--labels", metavar="FILE", help="colour by labels from a TSV file: word<TAB>label per line"
    )
    c.add_argument("--csv", metavar="PATH", help="also write x,y[,z],word,rank,cluster")
    c.add_argument(
        "--dl4j-csv",
        metavar="PATH",
        help="also write x,y,word as Deeplearning4j's BarnesHutTsne.saveAsFile",
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _learning_rate(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def tsne_params(args: argparse.Namespace) -> dict:
    """The :class:`~embedviz.TSNE` keyword arguments that ``embedviz tsne`` options give."""
    return {
        "n_components": args.dims,
        "perplexity": args.perplexity,
        "theta": args.theta,
        "max_iter": args.max_iter,
        "stop_lying_iter": args.stop_lying_iter,
        "early_exaggeration": args.early_exaggeration,
        "learning_rate": args.learning_rate,
        "momentum": args.momentum,
        "final_momentum": args.final_momentum,
        "switch_momentum_iter": args.switch_momentum_iter,
        "use_adagrad": args.adagrad,
        "pca_components": args.pca,
        "normalize": args.normalize,
        "metric": args.metric,
        "random_state": args.seed,
        "n_jobs": args.threads,
        "verbose": not args.quiet,
    }


def run_tsne(args: argparse.Namespace) -> int:
    """``embedviz tsne``: load, select, embed, draw and write."""
    model = Path(args.model)
    output = Path(args.output) if args.output else _default_output(model)
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
    _check_distinct(outputs, inputs)
    _check_options(args)
    for what, path in outputs:  # fail before a long run, not after it
        _check_writable(path, what)
    if args.projector:
        _check_directory(Path(args.projector), "projector files")
    words = _read_word_list(args.words) if args.words else None
    labels = _read_labels(args.labels) if args.labels else None

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
    n, dim = selection.vectors.shape
    if n < 3 * args.perplexity + 1:
        raise InputError(
            f"--perplexity {args.perplexity:g} needs at least {math.ceil(3 * args.perplexity + 1)} "
            f"words, but {n} are selected from {model}; pass --perplexity {(n - 1) / 3:.4g} "
            "or less, or select more words"
        )
    if args.pca is not None and args.pca > min(n, dim):
        raise InputError(
            f"--pca {args.pca}: {n} words of {dim} dimensions have at most {min(n, dim)} "
            f"principal components; pass --pca {min(n, dim)} or less, or leave it out"
        )
    stats = _stats_callback(args, model, selection.words) if args.stats else None
    tsne = TSNE(**tsne_params(args), callbacks=(stats,) if stats else ())
    colour = labels if labels is not None else args.clusters
    title = args.title or model.name
    try:
        layout, table = plot_vocab(selection, tsne=tsne, colour=colour, title=title)
    except InputError as exc:
        raise InputError(_option_message(str(exc))) from None
    finally:
        if stats is not None:
            stats.close()
            stats.storage.close()
    _write_outputs(args, layout, table, selection, output, title, labels)
    return 0


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


#: the option that sets each estimator parameter, for messages meant for CLI users
OPTION_NAMES = {
    "n_components": "--dims",
    "perplexity": "--perplexity",
    "theta": "--theta",
    "max_iter": "--max-iter",
    "stop_lying_iter": "--stop-lying-iter",
    "early_exaggeration": "--early-exaggeration",
    "learning_rate": "--learning-rate",
    "momentum": "--momentum",
    "final_momentum": "--final-momentum",
    "switch_momentum_iter": "--switch-momentum-iter",
    "pca_components": "--pca",
    "metric": "--metric",
    "random_state": "--seed",
    "n_jobs": "--threads",
}
_PARAMETER = re.compile(
    r"(?<![\w-])(" + "|".join(sorted(OPTION_NAMES, key=len, reverse=True)) + r")\b(=)?"
)


def _option_message(text: str) -> str:
    """An estimator's message with its parameter names replaced by the options:
    ``got n_jobs=0`` becomes ``got --threads 0``."""
    return _PARAMETER.sub(lambda m: OPTION_NAMES[m[1]] + (" " if m[2] else ""), text)


def _check_options(args: argparse.Namespace) -> None:
    """The t-SNE options and the regular expressions, checked before anything is read."""
    from embedviz.tsne.estimator import TSNE

    try:
        TSNE(**tsne_params(args))._check_params()
    except InputError as exc:
        raise InputError(_option_message(str(exc))) from None
    for option, pattern in (("--include", args.include), ("--exclude", args.exclude)):
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(
                f"{option} {pattern!r} is not a valid regular expression ({exc}); escape "
                "special characters with a backslash, e.g. '\\('"
            ) from None


def _write_outputs(args, layout, table, selection, output, title, labels):
    """Every output written to a temporary file first, then all moved into place at
    once (the page last): a failure leaves the previous files as they were."""
    from embedviz.plot import export

    coords = _coords(table)
    written = []
    try:
        with export.write_together():
            if args.csv:
                path = export.write_csv(
                    args.csv, coords, table["word"], table["rank"], table["cluster"]
                )
                written.append(("CSV", path))
            if args.dl4j_csv:
                path = export.write_dl4j_csv(args.dl4j_csv, coords, table["word"])
                written.append(("DL4J CSV", path))
            if args.projector:
                column = "label" if labels is not None else "cluster"
                metadata = {
                    "rank": [int(r) for r in table["rank"]],
                    column: [str(c) for c in table["cluster"]],
                }
                path = export.write_projector(
                    args.projector, selection.vectors, table["word"], metadata
                )
                written.append(("projector files", path))
            written.insert(0, ("page", export.save_html(layout, output, title=title)))
    except OSError as exc:
        raise InputError(f"cannot write {exc.filename or ''}: {exc.strerror or exc}") from None
    for what, path in written:
        size = f" ({_size(path)})" if Path(path).is_file() else ""
        logger.info("wrote %s %s%s", what, path, size)


def _default_output(model: Path) -> Path:
    """``GoogleNews-vectors-negative300.bin.gz`` -> ``GoogleNews-vectors-negative300.html``
    in the current directory."""
    name = model.name
    for suffix in (".gz", ".bz2"):
        name = name.removesuffix(suffix)
    return Path(Path(name).stem + ".html")


def _coords(table):
    import numpy as np

    return np.column_stack([table[axis] for axis in "xyz" if axis in table])


def _size(path) -> str:
    n = Path(path).stat().st_size
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _check_distinct(outputs: list[tuple[str, Path]], inputs: list[tuple[str, Path]]) -> None:
    """Refuse an output that is an input or another output (it would be overwritten)."""
    from embedviz._paths import same_file

    for i, (what, path) in enumerate(outputs):
        for other, earlier in inputs + outputs[:i]:
            if same_file(path, earlier):
                raise InputError(
                    f"the {what} would overwrite the {other} {earlier}: both name one file; "
                    "choose another path"
                )


def _check_writable(path: Path, what: str) -> None:
    """Create and remove a file beside ``path``: only trying tells (``os.access`` says yes
    to root on a read-only or virtual file system)."""
    from embedviz.plot.export import check_target

    path = check_target(path, f"the {what}")
    _probe(path.parent, what, path)


def _check_directory(path: Path, what: str) -> None:
    """The projector directory: an existing one must take files; a new one must be
    creatable (a directory is created and removed in its nearest existing parent)."""
    from embedviz.plot import export

    if path.exists() and not path.is_dir():
        raise InputError(f"cannot write the {what} to {path}: it is a file, not a directory")
    if path.is_dir():
        for name in (export.PROJECTOR_TENSOR, export.PROJECTOR_METADATA, export.PROJECTOR_CONFIG):
            export.check_target(path / name, f"the {what}")
        _probe(path, what, path)
        return
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir():
        raise InputError(
            f"cannot write the {what} to {path}: {parent} is a file, not a directory; "
            "choose another path"
        )
    _probe(parent, what, path, directory=True)


def _probe(parent: Path, what: str, target: Path, directory: bool = False) -> None:
    import tempfile

    try:
        if directory:
            os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".embedviz-probe."))
        else:
            fd, name = tempfile.mkstemp(dir=parent, prefix=".embedviz-probe.")
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        raise InputError(
            f"cannot write the {what} to {target}: {exc.strerror or exc} (in {parent}); "
            "choose a writable location"
        ) from None


def _read_text(path: str, what: str) -> list[str]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} file {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None


def _read_word_list(path: str) -> list[str]:
    """Words from a file, one a line (the first tab-separated column; blank lines skipped)."""
    words = [line.split("\t")[0].strip() for line in _read_text(path, "--words")]
    words = [w for w in words if w]
    if not words:
        raise InputError(f"--words file {path} lists no words; put one word on each line")
    return words


def _read_labels(path: str) -> dict[str, str]:
    """Labels from a metadata TSV: ``word<TAB>label`` per line; a 'word<TAB>label' header
    line is skipped."""
    labels: dict[str, str] = {}
    for number, line in enumerate(_read_text(path, "--labels"), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise InputError(
                f"--labels file {path}, line {number}: expected word<TAB>label, got {line[:60]!r}"
            )
        word, label = parts[0].strip(), parts[1].strip()
        if number == 1 and word.lower() == "word" and label.lower() in ("label", "labels"):
            continue
        labels.setdefault(word, label)
    if not labels:
        raise InputError(f"--labels file {path} holds no word<TAB>label lines")
    return labels


def _stats_callback(args, model: Path, words: list[str]):
    try:
        from embedviz.stats.listener import TSNEStats
        from embedviz.stats.storage import SQLiteStatsStorage
    except ImportError as exc:  # pragma: no cover - the stats package ships with embedviz
        raise InputError(f"--stats is not available in this installation ({exc})") from None
    storage = SQLiteStatsStorage(args.stats)
    config = {"model": str(model), "n_words": len(words), **_json_safe(tsne_params(args))}
    stats = TSNEStats(storage, config=config, labels=words)
    logger.info("recording the t-SNE run as session %s in %s", stats.session_id, args.stats)
    return stats


def _json_safe(params: dict) -> dict:
    return {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool, type(None)))}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
