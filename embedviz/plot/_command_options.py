"""The options of ``embedviz tsne``: checked before anything is read, and the
estimator's words turned into the options' in what the user reads.

:func:`check_options` refuses a bad option (messages name the options, not TSNE's
parameters); :func:`page_path` and :func:`check_page_suffix` the page's name;
:func:`choose_perplexity` and :func:`clusters_colour` resolve what depends on the
number of words selected;
:func:`option_names_in_log` shows the t-SNE's log messages with the options' names.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from contextlib import contextmanager
from pathlib import Path

from embedviz._defaults import TSNE_DEFAULTS, VOCAB_DEFAULTS
from embedviz.errors import InputError

logger = logging.getLogger("embedviz.cli")


def tsne_params(args: argparse.Namespace) -> dict:
    """The :class:`~embedviz.TSNE` keyword arguments that ``embedviz tsne`` options give."""
    return {
        "n_components": args.dims,
        "perplexity": TSNE_DEFAULTS["perplexity"] if args.perplexity is None else args.perplexity,
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


def page_path(name: str | None, model: Path) -> Path:
    """The page's path: ``-o``'s, or MODEL's name with .html (``-o ""`` and ``-o -``
    refused: no name, and the page is a file, not standard output)."""
    from embedviz.plot._command_files import default_output

    if name is None:
        return default_output(model)
    if name in ("", "-"):
        got = "an empty name" if name == "" else "'-' (the page is a file, not standard output)"
        raise InputError(
            f"-o/--output: expected a file name ending in .html or .htm for the page, got "
            f"{got}; "
            f"name a file, or leave -o out to write {default_output(model)}"
        )
    return Path(name)


def check_page_suffix(path: Path) -> None:
    """Refuse a page name that does not end in .html or .htm (``-o map.png``): the page
    is HTML. Checked after the paths themselves (a directory, a missing one, an input
    named as the page), whose messages say more."""
    if path.suffix.lower() in (".html", ".htm"):
        return
    name = str(path)
    stem = name[: -len(path.suffix)] if path.suffix else name.rstrip(".")
    raise InputError(
        "-o/--output: expected a file name ending in .html or .htm (the page is HTML), got "
        f"{name!r:.80}; name it e.g. {stem + '.html'!r:.80}"
    )


def choose_perplexity(given: float | None, n: int, model: Path) -> float:
    """The perplexity for ``n`` words: ``--perplexity`` as given, refused when the words are
    too few for it; when not given, the default lowered to what the words allow (one
    warning), as :func:`~embedviz.plot.plot_vocab` does with its own t-SNE."""
    from embedviz.tsne.affinity import largest_perplexity

    perplexity = TSNE_DEFAULTS["perplexity"] if given is None else given
    if n >= 3 * perplexity + 1:
        return perplexity
    largest = largest_perplexity(n)
    if given is not None:
        raise InputError(
            f"--perplexity {given:g} needs at least {math.ceil(3 * given + 1)} words, but {n} "
            f"are selected from {model}; pass --perplexity {largest:.12g} or less (or leave it "
            "out to have it lowered), or select more words"
        )
    logger.warning(
        "only %d words are selected from %s: the default perplexity %g needs at least %d; "
        "using perplexity %.12g instead (--perplexity chooses one)",
        n, model, perplexity, math.ceil(3 * perplexity + 1), largest,
    )  # fmt: skip
    return largest


def clusters_colour(k: int | None, n: int):
    """``colour`` for :func:`plot_vocab` from ``--clusters K``: "none" for 0; more
    clusters than words are cut to one per word, with a warning when K was given (the
    default, as plot_vocab's, is cut without one)."""
    if k is None:
        return min(VOCAB_DEFAULTS["clusters"], n)
    if k == 0:
        return "none"
    if k > n:
        logger.warning(
            "--clusters %d is more than the %d words selected: using %d clusters, one word "
            "each (ask for fewer to see groups)",
            k, n, n,
        )  # fmt: skip
        return n
    return k


class _OptionNames(logging.Filter):
    """The t-SNE's log messages with its parameter names as the options that set them
    (``max_iter=100`` -> ``--max-iter 100``), for the command's user."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = option_message(record.getMessage()), ()
        return True


@contextmanager
def option_names_in_log():
    estimator = logging.getLogger("embedviz.tsne")
    names = _OptionNames()
    estimator.addFilter(names)
    try:
        yield
    finally:
        estimator.removeFilter(names)


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


def option_message(text: str) -> str:
    """An estimator's message with its parameter names replaced by the options:
    ``n_jobs: ..., got 0; pass e.g. n_jobs=-1`` becomes ``--threads: ..., got 0; pass
    e.g. --threads -1``."""
    return _PARAMETER.sub(lambda m: OPTION_NAMES[m[1]] + (" " if m[2] else ""), text)


def check_options(args: argparse.Namespace) -> None:
    """The t-SNE options and the regular expressions, checked before anything is read."""
    from embedviz.tsne.estimator import TSNE

    seed = args.seed
    if not 0 <= seed < 2**32:
        raise InputError(
            f"--seed: expected an integer from 0 to {2**32 - 1}, got {seed}; pass e.g. --seed 0"
        )
    try:
        TSNE(**tsne_params(args))._check_params()
    except InputError as exc:
        raise InputError(option_message(str(exc))) from None
    if not args.normalize and args.metric == "cosine":
        logger.warning(
            "--no-normalize changes nothing with --metric cosine (cosine distances ignore "
            "the vectors' scale, and they are never centred for them); it applies to "
            "--metric euclidean"
        )
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
