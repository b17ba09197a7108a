"""``python -m embedviz``: the ``embedviz`` command, :func:`embedviz.cli.main`."""

import sys

from embedviz.cli import main

if __name__ == "__main__":
    sys.exit(main())
