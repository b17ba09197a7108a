"""The ``embedviz`` command line.

Each subcommand is added by a small function ``add_NAME_command(subparsers)`` listed in
:data:`COMMANDS` as ``"module:function"``; the function registers its options and sets
``func`` (called with the parsed arguments, returns the exit status). ``tsne`` lives in
:mod:`embedviz.plot.commands`, ``ui``, ``report`` and ``check`` in
:mod:`embedviz.ui.commands`. While a command runs, embedviz's log messages and the warnings of any
library (numba, scikit-learn) are printed as ``embedviz: [warning: ]...`` lines.

This module imports nothing heavy: numpy, gensim, numba and bokeh are imported when a
command runs, so ``embedviz --help`` answers at once.

Exit status: 0 on success, 2 for a user error (:class:`~embedviz.errors.EmbedvizError`,
printed as one line ``embedviz: error: ...`` without a traceback; argparse's own errors,
an unknown option or a bad value, take the same form and name the ``--help`` of the
subcommand they concern), 130 on Ctrl-C, 141
(128 + SIGPIPE, as a shell tool ends) when the reader of the output goes away
(``embedviz check runs.db | head``), without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

from embedviz import __version__
from embedviz.errors import EmbedvizError
from embedviz.stats.limits import escape_controls

logger = logging.getLogger("embedviz.cli")

# subcommand adders, in the order `embedviz --help` lists them
COMMANDS = [
    "embedviz.plot.commands:add_tsne_command",
    "embedviz.ui.commands:add_ui_command",
    "embedviz.ui.commands:add_report_command",
    "embedviz.ui.commands:add_check_command",
]


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line, as every other error of the command (its usage
    is in ``--help``); subcommands' parsers are of this class too."""

    def error(self, message: str):
        message = " ".join(message.split())
        self.exit(2, f"embedviz: error: {message} ({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = _Parser(
        prog="embedviz",
        description="Look inside trained models: t-SNE maps of word vectors, training statistics.",
    )
    parser.add_argument("--version", action="version", version=f"embedviz {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    sub.required = True
    for spec in COMMANDS:
        module, _, name = spec.partition(":")
        getattr(import_module(module), name)(sub)
    parser.set_defaults(_commands=sub.choices)  # a command's own parser, for its errors
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``argv`` parsed; an unknown option is reported with the usage of the subcommand it
    was given to (``embedviz ui --bogus`` shows ``embedviz ui``'s usage, not the top
    level's), exit status 2."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = getattr(args, "_commands", {}).get(getattr(args, "command", None), parser)
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run ``embedviz`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Examples
    --------
    >>> main(["tsne", "data/glove-5k.bin", "-o", "glove.html", "--quiet"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parse_args(parser, argv)
    if argv is None and args.command == "tsne":  # the `embedviz` program owns its process
        from embedviz.tsne import prefer_workqueue

        prefer_workqueue()
    with _command_logging(getattr(args, "quiet", False)):
        try:
            status = int(args.func(args) or 0)
            sys.stdout.flush()  # a reader gone shows here, not in Python's flush at exit
            return status
        except EmbedvizError as exc:
            message = " ".join(str(exc).split())
            print(f"embedviz: error: {escape_controls(message)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("embedviz: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            _drop_stdout()
            return 141


def _drop_stdout() -> None:
    """The reader of stdout went away (``| head``): send what is still buffered, and
    anything printed later, to /dev/null, so that Python's flush at exit raises no
    second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is no file (a test, a notebook)
        pass


class _Formatter(logging.Formatter):
    def format(self, record):
        text = escape_controls(super().format(record), keep="\n\t")
        if not record.name.startswith("embedviz"):  # a library's message routed here
            text = f"{text} ({record.name.partition('.')[0]})"
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
    # Bokeh's warnings as our lines too: Bokeh gives its logger a handler of its own
    # when imported (lines like "WARNING:bokeh.server.util:..."), unless it has one
    bokeh = logging.getLogger("bokeh")
    saved = (package.handlers[:], package.propagate, package.level, export.level, access.level)
    saved_bokeh = (bokeh.handlers[:], bokeh.propagate)
    package.handlers[:] = [handler]
    package.propagate = False
    bokeh_handler = logging.StreamHandler(sys.stderr)
    bokeh_handler.setFormatter(_Formatter("%(message)s"))
    bokeh_handler.setLevel(logging.WARNING)
    bokeh_handler.addFilter(_said_by_us)
    bokeh.handlers[:] = [bokeh_handler]
    bokeh.propagate = False
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
        bokeh.handlers[:], bokeh.propagate = saved_bokeh
        package.setLevel(saved[2])
        export.setLevel(saved[3])
        access.setLevel(saved[4])


def _said_by_us(record: logging.LogRecord) -> bool:
    """False for Bokeh's warning about a wildcard websocket origin: the UI, which sets
    that origin for ``--host 0.0.0.0``, says what it means in its own warning."""
    return not (record.name == "bokeh.server.util" and "wildcard" in str(record.msg).lower())


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
