"""Interactive word maps (2D and 3D Bokeh scatter plots) and their exports.

``scatter_2d`` and ``scatter_3d`` return Bokeh layouts; ``save_html`` writes one as a
self-contained page; ``write_csv``, ``write_dl4j_csv`` and ``write_projector`` export
coordinates and vectors. ``plot_vocab`` (word vectors in, map out) is imported on
first use. Bokeh itself is imported only when a function is called.
"""

from embedviz._lazy import lazy_exports

_EXPORTS = {
    "scatter_2d": "embedviz.plot.scatter",
    "scatter_3d": "embedviz.plot.scatter3d",
    "save_html": "embedviz.plot.export",
    "write_csv": "embedviz.plot.export",
    "write_dl4j_csv": "embedviz.plot.export",
    "write_projector": "embedviz.plot.export",
    "plot_vocab": "embedviz.plot.vocab",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
