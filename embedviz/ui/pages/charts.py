"""Line charts with our look, and the marks that show NaN/inf points.

Non-finite values are never drawn as 0: the line has a gap there and a red marker sits
at the top (NaN, +inf) or bottom (-inf) edge of the frame, on a private 0..1 range
(:data:`MARKS_RANGE`), with the value in its tooltip. An exact 0 in a log10 chart is no
blow-up: it gets a grey circle at the bottom edge (``kind`` ``"zero"`` in the marks
source; the rest are ``"bad"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from bokeh.events import LegendItemClick
from bokeh.models import (
    BasicTickFormatter,
    CDSView,
    ColumnDataSource,
    CustomJS,
    GlyphRenderer,
    GroupFilter,
    HoverTool,
    Legend,
    LegendItem,
    Line,
    LinearScale,
    Range1d,
)
from bokeh.palettes import Category10_10, Category20_20
from bokeh.plotting import figure

if TYPE_CHECKING:
    from embedviz.ui.pages.live import LiveSeries

MAX_POINTS = 1000  # per drawn series: 500 min/max pairs, about one per pixel of a chart
# per series of a chart with one line per parameter tensor or layer (often 50 lines):
# 150 min/max pairs each keep such a chart light for the browser (about 3 s saved when
# opening the overview of a 100k-iteration x 50-tensor run)
MULTI_MAX_POINTS = 300
CHART_HEIGHT = 240
MARK_TOP, MARK_BOTTOM = 0.96, 0.04
MARKS_RANGE = "embedviz_marks"
# a linear/log toggle's callback (args ``linear``, ``log``: the two charts): show one;
# the one shown fits its ranges again (a chart hidden so far kept the ranges of the
# data it had when the page was drawn)
SHOW_SCALE = """
linear.visible = cb_obj.active == 0
log.visible = cb_obj.active == 1
const shown = cb_obj.active == 1 ? log : linear
setTimeout(() => shown.reset.emit(), 0)
"""


def colour(i: int, n: int) -> str:
    """The ``i``-th of ``n`` distinguishable colours."""
    return (Category10_10 if n <= 10 else Category20_20)[i % (10 if n <= 10 else 20)]


def mark_columns(x: np.ndarray, values: np.ndarray, label: str, zeros: bool = False) -> dict:
    """Marks for the non-finite drawn ``values``; ``zeros``: a drawn -inf is an exact 0
    under :func:`~embedviz.ui.pages.smoothing.log10_or_nonfinite` (kind ``"zero"``, its
    own marker), not a blow-up."""
    bad = ~np.isfinite(values)
    v = values[bad]
    zero = np.isneginf(v) if zeros else np.zeros(len(v), bool)
    return {
        "x": x[bad],
        "y": np.where(v < 0, MARK_BOTTOM, MARK_TOP),
        "value": [
            "0" if z else ("NaN" if math.isnan(a) else ("+inf" if a > 0 else "-inf"))
            for a, z in zip(v, zero, strict=True)
        ],
        "series": [label] * int(bad.sum()),
        "kind": ["zero" if z else "bad" for z in zero],
    }


def marks_columns_empty() -> dict:
    """The columns of an empty marks source."""
    return {"x": np.zeros(0, np.int64), "y": np.zeros(0), "value": [], "series": [], "kind": []}


def line_chart(
    title: str,
    y_label: str,
    *,
    height: int = CHART_HEIGHT,
    x_label: str = "iteration",
    y_axis_type: str = "linear",
    x_axis_type: str = "linear",
    name: str | None = None,
):
    """An empty figure with our look and an invisible 0..1 range for the NaN/inf marks."""
    p = figure(
        title=title,
        height=height,
        sizing_mode="stretch_width",
        x_axis_label=x_label,
        y_axis_label=y_label,
        y_axis_type=y_axis_type,
        x_axis_type=x_axis_type,
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        active_scroll=None,
        toolbar_location="right",
        name=name,
    )
    p.extra_y_ranges = {MARKS_RANGE: Range1d(0, 1)}
    # the marks sit at the frame's edges on a log y axis too (its scale would put 0..1
    # on a log scale, and the marks out of sight)
    p.extra_y_scales = {MARKS_RANGE: LinearScale()}
    if y_axis_type == "linear":
        # 150000 rather than 1.500e+5 (word2vec losses, words/s); tiny values keep exponents
        p.yaxis.formatter = BasicTickFormatter(power_limit_high=9)
    p.title.text_font_size = "13px"
    p.outline_line_color = None
    p.grid.grid_line_alpha = 0.35
    p.min_border_left = 60
    return p


def draw_series(
    p,
    s: LiveSeries,
    color: str,
    *,
    width: float = 1.5,
    smoothed_too: bool = False,
    x: str = "x",
):
    """Draw ``s`` on ``p``: its line (raw faint and smoothed bold, or plain).

    Returns the line renderer, named after the series (the tooltip of
    :func:`add_hover` shows that name; BokehJS inserts it as text, not HTML).
    """
    if smoothed_too:
        p.line(x, "y", source=s.source, color=color, line_width=1, alpha=0.35)
        return p.line(x, "ys", source=s.source, color=color, line_width=2, name=s.label)
    return p.line(x, "y", source=s.source, color=color, line_width=width, name=s.label)


def add_hover(
    p,
    drawn: Sequence,
    marks: ColumnDataSource | None = None,
    y_format: str = "{0.0000g}",
    x: str = "x",
) -> list:
    """One tooltip for the lines in ``drawn``; red x markers (with tooltips) for ``marks``,
    grey circles for its exact zeros. Returns the markers' renderers."""
    if drawn:
        p.add_tools(
            HoverTool(
                renderers=list(drawn),
                line_policy="nearest",
                tooltips=[("", "$name"), ("iteration", "@x"), ("value", f"@y{y_format}")],
            )
        )
    if marks is not None:
        bad = p.scatter(
            x,
            "y",
            source=marks,
            view=CDSView(filter=GroupFilter(column_name="kind", group="bad")),
            y_range_name=MARKS_RANGE,
            marker="x",
            size=11,
            line_width=2,
            color="#d62728",
        )
        # an exact 0 of a log10 series: its own marker at the bottom edge (a dead unit or
        # a frozen tensor is no numerical blow-up)
        zero = p.scatter(
            x,
            "y",
            source=marks,
            view=CDSView(filter=GroupFilter(column_name="kind", group="zero")),
            y_range_name=MARKS_RANGE,
            marker="circle",
            size=7,
            line_width=1.5,
            line_color="#555555",
            fill_color="white",
        )
        p.add_tools(
            HoverTool(
                renderers=[bad],
                description="NaN / inf",
                tooltips=[("", "@series"), ("iteration", "@x"), ("value", "@value")],
            ),
            HoverTool(
                renderers=[zero],
                description="exactly zero",
                tooltips=[("", "@series"), ("iteration", "@x"), ("value", "exactly zero")],
            ),
        )
        return [bad, zero]
    return []


# BokehJS 3.9 re-renders a legend's entries (a canvas and DOM nodes each, and a style
# and layout pass of the page) whenever any model its items reach changes: the lines'
# sources too, so every streamed point did (about a third of the browser's work per
# live update of the overview). The entries therefore name stand-ins: a line renderer
# each, of the same look, on a source that never changes, of one NaN point (nothing is
# drawn on the chart; for an empty source BokehJS draws no swatch); a click hides the
# stand-in (the legend greys the entry) and this callback of the legend, run just
# before, has the drawn line follow it (args ``drawn``, ``stand_ins``)
LEGEND_FOLLOW = """
setTimeout(() => { stand_ins.forEach((s, i) => { drawn[i].visible = s.visible }) }, 0)
"""


def add_legend(
    p,
    renderers: Sequence,
    labels: Sequence[str],
    colors: Sequence[str],
    *,
    dashes: Sequence[str] | None = None,
    width: float = 1.5,
    limit: int = 12,
) -> None:
    """A legend right of the frame naming each line (when there are at most ``limit``);
    clicking an entry hides its line.

    ``colors``, ``dashes`` and ``width``: the look of each line in ``renderers``, drawn
    by the entry's stand-in (see :data:`LEGEND_FOLLOW`): a live chart's streamed points
    never make the browser rebuild the legend.
    """
    if not renderers or len(renderers) > limit:
        return
    dashes = list(dashes) if dashes is not None else ["solid"] * len(renderers)
    stand_ins, empty = [], ColumnDataSource({"x": [math.nan], "y": [math.nan]})  # one for all
    for r, color, dash in zip(renderers, colors, dashes, strict=True):
        stand_in = GlyphRenderer(
            data_source=empty,
            glyph=Line(x="x", y="y", line_color=color, line_width=width, line_dash=dash),
            visible=r.visible,
        )
        p.renderers.append(stand_in)
        stand_ins.append(stand_in)
    items = [
        LegendItem(label=str(lab)[:40], renderers=[s])
        for lab, s in zip(labels, stand_ins, strict=True)
    ]
    legend = Legend(
        items=items,
        click_policy="hide",
        label_text_font_size="11px",
        spacing=0,
        padding=4,
        margin=4,
    )
    legend.js_on_event(
        LegendItemClick,
        CustomJS(args={"drawn": list(renderers), "stand_ins": stand_ins}, code=LEGEND_FOLLOW),
    )
    p.add_layout(legend, "right")


def new_marks(name: str) -> ColumnDataSource:
    """An empty marks source (NaN/inf points) shared by the series of one chart."""
    return ColumnDataSource(marks_columns_empty(), name=name)
