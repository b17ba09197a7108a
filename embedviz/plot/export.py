"""Writing maps and coordinates: self-contained HTML, CSV, DL4J CSV, TensorBoard projector.

Every writer is atomic: it writes a temporary file in the target's directory and
renames it over the target only once the content is complete, so a failure (a full
disk, an exception half-way) leaves any previous file untouched and no half-written
one behind. Inside :func:`write_together` the renames wait until the block ends, so
a set of files (a page and its CSV) is replaced all at once or not at all. A path
that cannot be written raises :class:`~embedviz.errors.InputError` naming it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedviz.errors import InputError
from embedviz.plot._inputs import check_coords, check_words

logger = logging.getLogger(__name__)

PROJECTOR_TENSOR = "vectors.tsv"
PROJECTOR_METADATA = "metadata.tsv"
PROJECTOR_CONFIG = "projector_config.pbtxt"


# --------------------------------------------------------------------------- atomic
@dataclass
class _Staged:
    """Files written to temporary names, waiting for :func:`write_together` to end."""

    files: list[tuple[str, Path, str]] = field(default_factory=list)  # (temp, target, what)
    made_dirs: list[Path] = field(default_factory=list)


_staged: ContextVar[_Staged | None] = ContextVar("embedviz_export_staged", default=None)


@contextlib.contextmanager
def write_together() -> Iterator[None]:
    """Replace every file the writers of this module write in the block at once, at its end.

    Each writer still writes a complete temporary file next to its target; the renames
    happen only when the block ends without an exception, in the order the files were
    written (write the most important file, e.g. the page, last). An exception in the
    block removes the temporary files and leaves every target as it was. If a rename
    fails, the error names the files already replaced and those left as they were.

    Examples
    --------
    >>> with write_together():  # doctest: +SKIP
    ...     write_csv("map.csv", coords, words)
    ...     save_html(layout, "map.html")
    """
    staged = _Staged()
    token = _staged.set(staged)
    try:
        yield
    except BaseException:
        _discard(staged.files)
        for directory in reversed(staged.made_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
        raise
    finally:
        _staged.reset(token)
    _commit(staged.files)


def _discard(files) -> None:
    for tmp, _, _ in files:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _commit(files) -> None:
    done: list[Path] = []
    for j, (tmp, path, what) in enumerate(files):
        try:
            os.replace(tmp, path)
        except OSError as exc:
            _discard(files[j:])
            written = ", ".join(map(str, done)) or "none"
            kept = ", ".join(str(p) for _, p, _ in files[j:])
            raise InputError(
                f"cannot write {what} to {str(path)!r}: {exc.strerror or exc}; "
                f"already written: {written}; not written (left as they were): {kept}"
            ) from None
        done.append(path)
        logger.info("wrote %s to %s", what, path)


def check_target(path, what: str) -> Path:
    """``path`` as a Path if a file could be written there; else an InputError saying why.

    Only the path is checked (no file is created): it must not be a directory or a
    special file (a device, a pipe), and its directory must exist.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(
            f"cannot write {what} to {str(path)!r}: it is a directory; give a file name"
        )
    if path.exists() and not path.is_file():
        raise InputError(
            f"cannot write {what} to {str(path)!r}: it is not a regular file (a device or a "
            "pipe); give a file name"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError(
            f"cannot write {what} to {str(path)!r}: {str(parent)!r} is a file, not a directory; "
            "choose another path"
        )
    if not parent.is_dir():
        raise InputError(
            f"cannot write {what} to {str(path)!r}: directory {str(parent)!r} does not "
            "exist; create it or choose another path"
        )
    return path


def _atomic_write(path, write: Callable[[io.TextIOBase], None], what: str) -> Path:
    """Write text through ``write(file)`` into a temporary file, then rename it to ``path``
    (at the end of :func:`write_together` when inside one)."""
    path = check_target(path, what)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(
            f"cannot write {what} to {str(path)!r}: {exc.strerror or exc}; choose a "
            "writable location"
        ) from None
    staged = _staged.get()
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if staged is None:
            os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(
                f"cannot write {what} to {str(path)!r}: {exc.strerror or exc}; choose a "
                "writable location"
            ) from None
        raise
    if staged is not None:
        staged.files.append((tmp, path, what))
    else:
        logger.info("wrote %s to %s", what, path)
    return path


# ----------------------------------------------------------------------------- HTML
def save_html(layout, path, title: str = "embedviz") -> Path:
    """Write a Bokeh layout as one self-contained HTML page (works offline, from file://).

    BokehJS is inlined (no CDN); the page title is HTML-escaped by Bokeh's template;
    word maps from :func:`scatter_2d` / :func:`scatter_3d` escape every word they put
    into HTML themselves. Where the browser's WebGL is software-rendered (no GPU),
    a small script in the page hides it so BokehJS draws with the faster plain
    canvas; ``?webgl=force`` in the URL keeps WebGL.

    Parameters
    ----------
    layout : bokeh.models.LayoutDOM
        What to save, e.g. the result of :func:`embedviz.plot.scatter_2d`.
    path : str or Path
        The HTML file to write (replaced atomically if it exists).
    title : str, default="embedviz"
        The page title (browser tab).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    InputError
        If ``layout`` is no Bokeh layout or the path cannot be written.

    Examples
    --------
    >>> import numpy as np
    >>> from embedviz.plot import scatter_2d
    >>> save_html(scatter_2d(np.random.rand(3, 2), ["a", "b", "c"]), "map.html")  # doctest: +SKIP
    """
    from bokeh.document import Document
    from bokeh.embed import file_html
    from bokeh.model import Model
    from bokeh.resources import INLINE

    from embedviz.plot._common import js

    if not isinstance(layout, Model | Document):
        raise InputError(
            f"layout: expected a Bokeh layout (a Model or a Document), got "
            f"{type(layout).__name__} {layout!r:.60}; pass what scatter_2d, scatter_3d or "
            "plot_vocab returned"
        )
    check_target(path, "the HTML page")  # before the page is built
    html = file_html(layout, resources=INLINE, title=str(title))
    # before BokehJS: use the plain canvas where WebGL has no GPU (see software_gl.js)
    head = html.find("<head>")
    if head >= 0:
        at = head + len("<head>")
        html = f"{html[:at]}\n<script>\n{js('software_gl')}</script>{html[at:]}"
    return _atomic_write(path, lambda f: f.write(html), "the HTML page")


# ------------------------------------------------------------------------------ CSV
def _check_table(coords, words) -> tuple[np.ndarray, list[str]]:
    coords = check_coords(coords, (2, 3), drawn=False)
    return coords, check_words(words, coords.shape[0], "coords")


def _column(values, n: int, name: str) -> list:
    if values is None:
        return [""] * n
    values = list(np.asarray(values, dtype=object).ravel())
    if len(values) != n:
        raise InputError(
            f"{name}: expected {n} entries (one per word), got {len(values)}; give one value "
            "per word"
        )
    return [_plain(v) for v in values]


def _plain(v):
    """numpy scalars -> Python, so the CSV shows 3 rather than np.int64(3)."""
    return v.item() if isinstance(v, np.generic) else v


def write_csv(path, coords, words, rank=None, clusters=None) -> Path:
    """Write coordinates as CSV with a header ``x,y[,z],word,rank,cluster``.

    Fields are quoted by the :mod:`csv` module where needed, so words with commas,
    quotes or newlines read back intact. Coordinates keep full precision; an absent
    ``rank`` or ``clusters`` leaves its column empty.

    Parameters
    ----------
    path : str or Path
        The CSV file to write (replaced atomically).
    coords : array of shape (N, 2) or (N, 3)
    words : sequence of str, length N
    rank, clusters : sequence of length N, default=None

    Returns
    -------
    Path

    Examples
    --------
    >>> write_csv("map.csv", [[0.5, 1.0]], ["cat"], rank=[1])  # doctest: +SKIP
    """
    coords, words = _check_table(coords, words)
    n = len(words)
    ranks = _column(rank, n, "rank")
    labels = _column(clusters, n, "clusters")
    header = ["x", "y", "z"][: coords.shape[1]] + ["word", "rank", "cluster"]

    def write(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i in range(n):
            w.writerow([repr(float(v)) for v in coords[i]] + [words[i], ranks[i], labels[i]])

    return _atomic_write(path, write, "the CSV file")


def write_dl4j_csv(path, coords, words) -> Path:
    """Write ``x,y,word`` lines as Deeplearning4j's ``BarnesHutTsne.saveAsFile`` did.

    No header and no quoting: each line is the coordinates joined by commas, a comma
    and the word (3D coordinates give ``x,y,z,word``). A word containing a comma or a
    line break therefore breaks this format for any reader; use :func:`write_csv`
    for a file that reads back safely. Kept for tools that expect DL4J's layout.

    Parameters
    ----------
    path : str or Path
    coords : array of shape (N, 2) or (N, 3)
    words : sequence of str, length N

    Returns
    -------
    Path

    Examples
    --------
    >>> write_dl4j_csv("coords.csv", [[0.5, 1.0]], ["cat"])  # doctest: +SKIP
    """
    coords, words = _check_table(coords, words)
    bad = sum(1 for w in words if "," in w or "\n" in w or "\r" in w)
    if bad:
        logger.warning(
            "%d word(s) contain a comma or line break; the DL4J layout cannot quote them "
            "(use write_csv for a safe file)",
            bad,
        )

    def write(f):
        for i, word in enumerate(words):
            f.write(",".join(repr(float(v)) for v in coords[i]) + "," + word + "\n")

    return _atomic_write(path, write, "the DL4J CSV file")


# ------------------------------------------------------------------------ projector
def _tsv_field(text: str) -> str:
    """A TSV cell: tabs and line breaks would split it, so they become the two characters
    ``\\t``, ``\\n``, ``\\r``; everything else, backslashes included, is kept as it is,
    because TensorBoard's projector shows each cell verbatim (it unescapes nothing)."""
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_projector(
    directory,
    vectors,
    words: Sequence[str],
    metadata: Mapping[str, Sequence] | None = None,
) -> Path:
    """Write TensorBoard projector files: ``vectors.tsv``, ``metadata.tsv``, the config.

    ``vectors.tsv`` has one tab-separated vector per line; ``metadata.tsv`` has the
    words alone (no header, as the projector wants for one column) or, with
    ``metadata``, a header ``word<TAB>name...`` and one row per word;
    ``projector_config.pbtxt`` names both files, so ``tensorboard --logdir DIRECTORY``
    (or uploading the two TSVs to projector.tensorflow.org) shows them. Tabs and line
    breaks inside words are written as ``\\t``, ``\\n``.

    Parameters
    ----------
    directory : str or Path
        Created if missing.
    vectors : array of shape (N, D)
        The original vectors (not the t-SNE coordinates).
    words : sequence of str, length N
    metadata : mapping of column name to a sequence of length N, default=None
        Extra columns, e.g. ``{"cluster": labels, "rank": ranks}``.

    Returns
    -------
    Path
        The directory.

    Examples
    --------
    >>> write_projector("proj", np.eye(2), ["a", "b"], {"cluster": [0, 1]})  # doctest: +SKIP
    """
    vectors = check_coords(
        vectors, None, name="vectors", fix="the projector cannot show them: drop or fix those rows"
    )
    words = check_words(words, vectors.shape[0], "vectors")
    n = len(words)
    columns: list[tuple[str, list]] = []
    for name, values in (metadata or {}).items():
        columns.append((str(name), _column(values, n, f"metadata[{name!r}]")))
    directory = Path(directory).expanduser()
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staged = _staged.get()
        if staged is not None:  # removed again if the block fails
            staged.made_dirs.extend(reversed(missing))
    except OSError as exc:
        raise InputError(
            f"cannot create the projector directory {str(directory)!r}: "
            f"{exc.strerror or exc}; choose a writable location"
        ) from None

    def write_vectors(f):
        for row in vectors:
            f.write("\t".join(f"{v:.7g}" for v in row) + "\n")

    def write_metadata(f):
        if not columns:
            for w in words:
                f.write(_tsv_field(w) + "\n")
            return
        f.write("\t".join(["word"] + [_tsv_field(c) for c, _ in columns]) + "\n")
        for i, w in enumerate(words):
            cells = [w] + [str(values[i]) for _, values in columns]
            f.write("\t".join(_tsv_field(c) for c in cells) + "\n")

    config = (
        "embeddings {\n"
        '  tensor_name: "embedviz"\n'
        f'  tensor_path: "{PROJECTOR_TENSOR}"\n'
        f'  metadata_path: "{PROJECTOR_METADATA}"\n'
        "}\n"
    )
    _atomic_write(directory / PROJECTOR_TENSOR, write_vectors, "the projector vectors")
    _atomic_write(directory / PROJECTOR_METADATA, write_metadata, "the projector metadata")
    _atomic_write(directory / PROJECTOR_CONFIG, lambda f: f.write(config), "the projector config")
    return directory
