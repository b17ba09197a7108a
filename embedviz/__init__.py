"""embedviz: look inside trained models.

A fast Barnes-Hut t-SNE (:class:`TSNE`), word-vector maps (:func:`load_vectors`,
:func:`plot_vocab`, :func:`save_html`) and training statistics
(:class:`StatsListener` with its storages, the ``embedviz ui`` web UI).

Importing embedviz is cheap: it compiles no numba kernel and imports neither bokeh
nor torch. Each public name is imported from its module on first use.
"""

from embedviz._lazy import lazy_exports
from embedviz._source import map_source_kernels

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "TSNE": "embedviz.tsne.estimator",
    "load_vectors": "embedviz.vectors",
    "select_words": "embedviz.vectors",
    "plot_vocab": "embedviz.plot",
    "save_html": "embedviz.plot.export",
    "StatsListener": "embedviz.stats.listener",
    "Word2VecStats": "embedviz.stats.listener",
    "TSNEStats": "embedviz.stats.listener",
    "InMemoryStatsStorage": "embedviz.stats.storage",
    "SQLiteStatsStorage": "embedviz.stats.storage",
    "RemoteStatsRouter": "embedviz.stats.remote",
    "UIServer": "embedviz.ui.server",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
map_source_kernels(__path__[0])  # Python started in a source checkout
