"""embedviz.stats: training statistics (issue 4).

:class:`StatsListener` records a PyTorch training run, :class:`Word2VecStats` a gensim
word2vec run and :class:`TSNEStats` a t-SNE fit, into an :class:`InMemoryStatsStorage`,
a :class:`SQLiteStatsStorage` file or, over HTTP, a :class:`RemoteStatsRouter`.

Importing this package is cheap: it imports neither torch, bokeh nor gensim; each
public name is imported from its module on first use (as :mod:`embedviz` does).

Examples
--------
>>> from embedviz.stats import InMemoryStatsStorage
>>> InMemoryStatsStorage().list_sessions()
[]
"""

from embedviz._lazy import lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "StatsListener": "embedviz.stats.listener",
    "Word2VecStats": "embedviz.stats.word2vec",
    "TSNEStats": "embedviz.stats.tsne_stats",
    "InMemoryStatsStorage": "embedviz.stats.storage",
    "SQLiteStatsStorage": "embedviz.stats.storage",
    "RemoteStatsRouter": "embedviz.stats.remote",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
