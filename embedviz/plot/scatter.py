"""The 2D word map: a Bokeh scatter with hover, search, labels, clusters and tap.

The page is static (no server): every interaction is a small CustomJS callback
(``embedviz/plot/*.js``) working on compact data sources, see
:mod:`embedviz.plot._common` for their layout. From 5,000 points on the plot draws
with WebGL; labels are drawn for the ``n_labels`` most frequent words and for
searched or tapped ones only, so text never piles up on 100k points.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from embedviz.plot import _common as C
from embedviz.plot._inputs import check_inputs

logger = logging.getLogger(__name__)

FRAME_WIDTH = 760
FRAME_HEIGHT = 640
SIDEBAR_WIDTH = 260


def scatter_2d(
    coords: np.ndarray,
    words: Sequence[str],
    *,
    rank: np.ndarray | None = None,
    clusters: Sequence | None = None,
    neighbors: Sequence[Sequence[tuple[str, float]]] | None = None,
    title: str = "embedviz",
    n_labels: int = 50,
    legend_title: str = "cluster",
):
    """Draw words at 2D coordinates as an interactive Bokeh layout.

    Parameters
    ----------
    coords : array of shape (N, 2)
        Coordinates, e.g. a t-SNE embedding. Must be finite.
    words : sequence of str, length N
        The word of each row.
    rank : array of int, length N, default=None
        Frequency rank (1-based) shown on hover and used to pick the labelled
        words; None means the input order is the frequency order.
    clusters : sequence of int or str, length N, default=None
        Cluster label per word: colours the points and fills the legend.
    neighbors : list of N lists of (word, cosine_similarity), default=None
        Nearest neighbours in the original space, shown on hover and on tap
        (at most 10 per word are kept).
    title : str, default="embedviz"
        Plot title.
    n_labels : int, default=50
        How many of the most frequent words carry a permanent label (labels longer
        than 40 characters are cut; hover and tap show the whole word).
    legend_title : str, default="cluster"
        What ``clusters`` are, e.g. "label" for labels of your own: the legend's title
        and the name shown with the group on hover and tap. Legends of more than 30
        entries are a scrolling list under the controls.

    Returns
    -------
    bokeh.models.LayoutDOM
        The plot beside its controls (search box, regex toggle, reset, panel);
        save it with :func:`embedviz.plot.save_html`.

    Raises
    ------
    InputError
        If shapes or lengths disagree, or coordinates hold NaN or inf.

    Examples
    --------
    >>> import numpy as np
    >>> layout = scatter_2d(np.random.rand(3, 2), ["cat", "dog", "fish"], clusters=[0, 0, 1])
    """
    from bokeh.layouts import column, row
    from bokeh.models import (
        BoxZoomTool,
        ColumnDataSource,
        PanTool,
        ResetTool,
        SaveTool,
        TapTool,
        WheelZoomTool,
    )

    coords, words, rank, codes, names, nbr_idx, nbr_sim, extra = check_inputs(
        coords, words, rank, clusters, neighbors, n_labels, dims=2
    )
    n = len(words)
    xy = coords.astype(np.float32)
    data = {"x": xy[:, 0], "y": xy[:, 1]}
    if codes is not None:
        data["c"] = codes
    points = ColumnDataSource(data, name="embedviz_points")
    home = C.home_view(xy.astype(np.float64), FRAME_WIDTH, FRAME_HEIGHT)
    base = C.base_label_indices(xy, words, rank, n_labels, home, (FRAME_WIDTH, FRAME_HEIGHT))
    meta, nbrs, labels = C.make_sources(words, rank, codes, nbr_idx, nbr_sim, base, xy)

    plot = C.map_figure(
        title,
        home,
        FRAME_WIDTH,
        FRAME_HEIGHT,
        n,
        tools=[PanTool(), WheelZoomTool(), BoxZoomTool(), ResetTool(), SaveTool()],
        active_drag="auto",
    )
    color, pal = C.fill_color(codes, names)
    size = C.point_size(n)
    renderer = plot.scatter(
        "x",
        "y",
        source=points,
        size=size,
        fill_color=color,
        line_color=None,
        fill_alpha=C.point_alpha(n),
        selection_fill_alpha=1.0,
        selection_line_color="#222222",
        selection_line_width=1.0,
        nonselection_fill_alpha=0.2,
        nonselection_fill_color=color,
        name="embedviz_scatter",
    )
    common = C.common_args(points, meta, nbrs, labels, names, extra, "x", "y", legend_title)
    plot.add_tools(C.hover_tool(renderer, "$index", common))
    widgets, tap = C.controls(common, plot.x_range, plot.y_range, home, width=SIDEBAR_WIDTH)
    plot.add_tools(TapTool(renderers=[renderer], callback=tap, behavior="select"))
    plot.add_layout(C.label_set(labels, size))
    legend = C.add_legend(plot, names, codes, words, rank, pal, max(size, 6.0), legend_title)
    logger.debug("2D map of %d words, %d clusters", n, 0 if names is None else len(names))
    side = column(*widgets, *([legend] if legend else []), width=SIDEBAR_WIDTH)
    return row(plot, side, name="embedviz_layout")
