"""The files of ``embedviz tsne``: its word list and labels in, its outputs out.

Outputs are checked before the run by trying (a file created and removed beside each;
``os.access`` says yes to root on a read-only or virtual file system) and written at the
end with :func:`embedviz.plot.export.write_together`, the page last, so a failure never
leaves a half-new set of files.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from embedviz.errors import InputError

logger = logging.getLogger("embedviz.cli")


def write_outputs(args, layout, table, selection, output, title, labels):
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


def default_output(model: Path) -> Path:
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


def check_distinct(outputs: list[tuple[str, Path]], inputs: list[tuple[str, Path]]) -> None:
    """Refuse an output that is an input or another output (it would be overwritten)."""
    from embedviz._paths import same_file

    for i, (what, path) in enumerate(outputs):
        for other, earlier in inputs + outputs[:i]:
            if same_file(path, earlier):
                raise InputError(
                    f"the {what} would overwrite the {other} {earlier}: both name one file; "
                    "choose another path"
                )


def check_writable(path: Path, what: str) -> None:
    """Create and remove a file beside ``path``: only trying tells (``os.access`` says yes
    to root on a read-only or virtual file system)."""
    from embedviz.plot.export import check_target

    path = check_target(path, f"the {what}")
    _probe(path.parent, what, path)


def check_directory(path: Path, what: str) -> None:
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


def read_word_list(path: str) -> list[str]:
    """Words from a file, one a line (the first tab-separated column; blank lines skipped)."""
    words = [line.split("\t")[0].strip() for line in _read_text(path, "--words")]
    words = [w for w in words if w]
    if not words:
        raise InputError(f"--words file {path} lists no words; put one word on each line")
    return words


def read_labels(path: str) -> dict[str, str]:
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
