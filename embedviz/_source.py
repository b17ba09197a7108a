"""``embedviz.kernels`` in a source checkout.

The repository keeps the numba kernels in a top-level ``kernels/`` folder that is
installed as ``embedviz.kernels``. Python started inside the repository (the README's
examples read ``data/...``) imports ``embedviz`` from the checkout, which puts the
checkout first on ``sys.path``, ahead of the installed copy; there ``embedviz/`` has no
``kernels`` folder. :func:`map_source_kernels` then points ``embedviz.kernels`` at
``kernels/``, as the installed package has it. It imports nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


class _SourceKernels:
    """A meta path finder for the one name ``embedviz.kernels`` (its submodules are
    then found in its folder as usual)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, name, path=None, target=None):
        if name != "embedviz.kernels":
            return None
        return importlib.util.spec_from_file_location(
            name, self.folder / "__init__.py", submodule_search_locations=[str(self.folder)]
        )


def map_source_kernels(package_dir: str) -> None:
    """When ``package_dir`` (embedviz's folder) is a checkout's, without ``kernels``
    inside it but with ``../kernels``, make ``embedviz.kernels`` that folder."""
    here = Path(package_dir)
    folder = here.parent / "kernels"
    if (here / "kernels").is_dir() or not (folder / "__init__.py").is_file():
        return  # an installed embedviz, or no checkout around it
    if not any(isinstance(f, _SourceKernels) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceKernels(folder))
