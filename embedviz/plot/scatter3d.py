"""The 3D word map: a rotatable point cloud in a static page.

Bokeh has no 3D glyphs, so the page keeps ``x, y, z`` (centred and scaled to unit
radius) in the data source and a CustomJS (``rotate.js``) projects them for the
yaw and pitch of two sliders: a rotation about the vertical axis, then about the
horizontal one, with a mild perspective (camera at distance 3). Dragging on the
plot moves the sliders (``drag.js``). Depth is shown three ways: nearer points are
larger, more opaque and drawn last (rows are reordered by depth with a counting
sort; column ``orig`` keeps each row's original index, so hover, search, tap and
labels still find their word). Hover, search, colours, labels and the side panel
are those of the 2D map.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from embedviz.plot import _common as C
from embedviz.plot._inputs import check_inputs, smallest_uint
from embedviz.plot.scatter import SIDEBAR_WIDTH

logger = logging.getLogger(__name__)

FRAME_SIZE = 700
CAMERA_DISTANCE = 3.0
HOME_YAW = 30.0
HOME_PITCH = 20.0
DEGREES_PER_PIXEL = 0.4


def project(xyz: np.ndarray, yaw: float, pitch: float, camera: float = CAMERA_DISTANCE):
    """Screen coordinates and depth in [0, 1] (1 = nearest) as ``rotate.js`` computes them.

    Parameters
    ----------
    xyz : array of shape (N, 3)
        Centred coordinates scaled to unit radius.
    yaw, pitch : float
        Rotation in degrees about the vertical axis, then the horizontal one.
    camera : float, default=3.0
        Distance of the camera from the centre, in units of the radius.

    Returns
    -------
    (px, py, depth) : three arrays of shape (N,)

    Examples
    --------
    >>> px, py, d = project(np.eye(3), 0.0, 0.0)
    """
    a, b = np.radians(yaw), np.radians(pitch)
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    x1 = np.cos(a) * x + np.sin(a) * z
    z1 = -np.sin(a) * x + np.cos(a) * z
    y2 = np.cos(b) * y - np.sin(b) * z1
    z2 = np.sin(b) * y + np.cos(b) * z1
    f = camera / (camera - z2)
    return x1 * f, y2 * f, np.clip((z2 + 1) / 2, 0, 1)


def scatter_3d(
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
    """Draw words at 3D coordinates as a rotatable interactive Bokeh layout.

    Drag on the plot or move the yaw / pitch sliders to turn the cloud; the wheel
    zooms. Parameters are those of :func:`embedviz.plot.scatter_2d`, with
    ``coords`` of shape (N, 3).

    Returns
    -------
    bokeh.models.LayoutDOM
        The plot beside its controls; save it with :func:`embedviz.plot.save_html`.

    Raises
    ------
    InputError
        If shapes or lengths disagree, or coordinates hold NaN or inf.

    Examples
    --------
    >>> import numpy as np
    >>> layout = scatter_3d(np.random.rand(3, 3), ["cat", "dog", "fish"])
    """
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColumnDataSource,
        Div,
        LinearInterpolator,
        ResetTool,
        SaveTool,
        Slider,
        TapTool,
        WheelZoomTool,
    )

    coords, words, rank, codes, names, nbr_idx, nbr_sim, extra = check_inputs(
        coords, words, rank, clusters, neighbors, n_labels, dims=3
    )
    n = len(words)
    centred = coords - coords.mean(axis=0)
    # unit radius for 99.5% of the points: a few outliers must not shrink the cloud
    radius = float(np.quantile(np.sqrt((centred**2).sum(axis=1)), 0.995))
    xyz = (centred / (radius if radius > 0 else 1.0)).astype(np.float32)

    # initial projection and depth order, exactly as rotate.js would compute them
    px, py, depth = project(xyz.astype(np.float64), HOME_YAW, HOME_PITCH)
    order = np.argsort(np.minimum(np.floor(depth * 512), 511), kind="stable")
    data = {
        "x": xyz[order, 0],
        "y": xyz[order, 1],
        "z": xyz[order, 2],
        "px": px[order].astype(np.float32),
        "py": py[order].astype(np.float32),
        "d": depth[order].astype(np.float32),
        "orig": smallest_uint(order),
    }
    if codes is not None:
        data["c"] = codes[order]
    points = ColumnDataSource(data, name="embedviz_points")
    limit = 1.1
    home = (-limit, limit, -limit, limit)
    screen = np.column_stack([px, py])
    base = C.base_label_indices(screen, words, rank, n_labels, home, (FRAME_SIZE, FRAME_SIZE))
    meta, nbrs, labels = C.make_sources(words, rank, codes, nbr_idx, nbr_sim, base, screen)

    plot = C.map_figure(
        title, home, FRAME_SIZE, FRAME_SIZE, n, tools=[WheelZoomTool(), ResetTool(), SaveTool()]
    )
    color, pal = C.fill_color(codes, names)
    size = C.point_size(n)
    alpha = C.point_alpha(n)
    far_near = [0.0, 1.0]
    size_by_depth = LinearInterpolator(x=far_near, y=[size * 0.5, size * 1.5])
    alpha_by_depth = LinearInterpolator(x=far_near, y=[alpha * 0.3, alpha])
    size_spec = {"field": "d", "transform": size_by_depth}
    alpha_spec = {"field": "d", "transform": alpha_by_depth}
    renderer = plot.scatter(
        "px",
        "py",
        source=points,
        size=size_spec,
        fill_color=color,
        line_color=None,
        fill_alpha=alpha_spec,
        selection_fill_alpha=1.0,
        selection_line_color="#222222",
        selection_line_width=1.0,
        nonselection_fill_alpha=0.15,
        name="embedviz_scatter",
    )
    yaw = Slider(
        start=-180, end=180, step=1, value=HOME_YAW, title="yaw (°)", width=SIDEBAR_WIDTH,
        name="embedviz_yaw",
    )  # fmt: skip
    pitch = Slider(
        start=-90, end=90, step=1, value=HOME_PITCH, title="pitch (°)", width=SIDEBAR_WIDTH,
        name="embedviz_pitch",
    )  # fmt: skip
    common = C.common_args(points, meta, nbrs, labels, names, extra, "px", "py", legend_title)
    rotate = C.callback("rotate", yaw=yaw, pitch=pitch, camera=CAMERA_DISTANCE, **common)
    yaw.js_on_change("value", rotate)
    pitch.js_on_change("value", rotate)
    drag = C.callback("drag", yaw=yaw, pitch=pitch, degrees_per_pixel=DEGREES_PER_PIXEL, **common)
    for event in ("panstart", "pan", "panend"):
        plot.js_on_event(event, drag)

    plot.add_tools(C.hover_tool(renderer, "@orig", common))
    widgets, tap = C.controls(
        common, plot.x_range, plot.y_range, home, width=SIDEBAR_WIDTH, yaw=yaw, pitch=pitch,
        home_angles=(HOME_YAW, HOME_PITCH),
    )  # fmt: skip
    plot.add_tools(TapTool(renderers=[renderer], callback=tap, behavior="select"))
    plot.add_layout(C.label_set(labels, size))
    legend = C.add_legend(plot, names, codes, words, rank, pal, max(size, 6.0), legend_title)
    hint = "drag the plot or move the sliders to turn the cloud; the wheel zooms"
    help_div = Div(text=hint, width=SIDEBAR_WIDTH, styles={"color": "#777", "font-size": "11px"})
    side = column(
        yaw, pitch, help_div, *widgets, *([legend] if legend else []), width=SIDEBAR_WIDTH
    )
    logger.debug("3D map of %d words", n)
    return row(plot, side, name="embedviz_layout")
