"""The training UI: the live Bokeh server (``embedviz ui``) and the static report.

``UIServer`` (:mod:`embedviz.ui.server`) serves the overview, model, system, compare
and embeddings pages for attached storages and, when enabled, receives records from
remote routers (``http_api.md``); ``write_report`` (:mod:`embedviz.ui.report`) writes
one self-contained HTML file. Both are imported on first use, so ``import embedviz.ui``
does not import Bokeh.
"""

from importlib import import_module

_LAZY = {
    "UIServer": "embedviz.ui.server",
    "write_report": "embedviz.ui.report",
    "run_ui": "embedviz.ui.commands",
    "run_report": "embedviz.ui.commands",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedviz.ui' has no attribute {name!r}")
