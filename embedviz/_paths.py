"""Small path helpers shared by the commands."""

from __future__ import annotations

import os
from pathlib import Path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same existing file (through any link), or
    the same resolved path when one of them does not exist yet.

    Examples
    --------
    >>> same_file("runs.db", "./runs.db")
    True
    """
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return Path(a).resolve() == Path(b).resolve()
