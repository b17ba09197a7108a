"""What the 2D and 3D word maps share: compact data sources, frame, colours, controls.

(The inputs are checked and encoded in :mod:`embedviz.plot._inputs`.)

Layout of a map's data (kept small: a 100k-word page must stay a few MB):

``points`` (the drawn source, ``name="embedviz_points"``)
    2D: ``x, y`` float32 and ``c`` (cluster code). 3D adds ``z``, the projection
    ``px, py``, the depth ``d`` in [0, 1] and ``orig`` (original index of each row,
    rows are reordered by depth so near points are drawn last).
``meta`` (``name="embedviz_meta"``), in the order of the input
    ``word`` (str), ``rank`` (int, only when it is not simply 1..N) and ``cluster``
    (code into the list of cluster names).
``nbrs`` (``name="embedviz_neighbors"``), flat, ``k`` entries per word
    ``idx``: index into ``words + extra words`` (-1 pads short lists), ``sim``: cosine
    similarity in hundredths (int8).
``clusters`` (``name="embedviz_clusters"``), ``extra`` (``name="embedviz_extra_words"``)
    the cluster names (``name``) and the neighbours that are not on the map (``word``).
``labels`` (``name="embedviz_labels"``)
    the text labels: ``x, y, text``, ``i`` (original index) and ``kind`` (``"base"`` for
    the most frequent words, ``"search"``, ``"pin"``).

Every text that reaches HTML (tooltips, the side panel, messages) is escaped:
tooltips by Bokeh's templating, the panel and messages by ``ev.escape`` in ``_lib.js``.
"""

from __future__ import annotations

import colorsys
import html
import math
from collections.abc import Sequence
from functools import cache
from importlib import resources

import numpy as np

from embedviz.plot._inputs import smallest_uint

#: labels drawn for search hits (the most frequent matches)
MAX_SEARCH_LABELS = 100
#: from this many points on, plots draw with WebGL
WEBGL_THRESHOLD = 5000
#: permanent map labels are cut to this many characters (hover and tap show the word)
MAX_LABEL_CHARS = 40
#: legend entries are cut to this many characters
MAX_LEGEND_CHARS = 30
#: legends with more entries, or a wider entry (pixels at 8pt, estimated), become a
#: scrolling list in the side bar: beside the plot they would push the controls out of
#: a 1280-px window
MAX_PLOT_LEGEND = 30
MAX_PLOT_LEGEND_WIDTH = 185


def short_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was longer
    (``_lib.js``'s ``ev.short`` does the same)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------- labels


def base_label_indices(
    xy: np.ndarray, words: Sequence[str], rank, n_labels: int, home, frame: tuple[int, int]
) -> list[int]:
    """Original indices of up to ``n_labels`` frequent words whose labels do not overlap.

    Words are taken in frequency order; a word is skipped when its label box (about
    6.5 px a character, 13 px high, in the home view of a ``frame`` of pixels) would
    overlap a label already chosen, so the dense middle of a map does not turn into
    a smudge of function words.
    """
    n = len(words)
    if n_labels == 0:
        return []
    order = np.arange(n) if rank is None else np.argsort(rank, kind="stable")
    order = order[: max(20 * n_labels, 200)]
    x0, x1, y0, y1 = home
    sx = (xy[order, 0] - x0) / (x1 - x0) * frame[0]
    sy = (xy[order, 1] - y0) / (y1 - y0) * frame[1]
    boxes: list[tuple[float, float, float, float]] = []
    chosen: list[int] = []
    for j, i in enumerate(order):
        left, right = sx[j], sx[j] + 6 + 6.5 * min(len(words[i]), MAX_LABEL_CHARS)
        bottom, top = sy[j] - 6.5, sy[j] + 6.5
        if any(left < b[1] and b[0] < right and bottom < b[3] and b[2] < top for b in boxes):
            continue
        boxes.append((left, right, bottom, top))
        chosen.append(int(i))
        if len(chosen) == n_labels:
            break
    return chosen


# --------------------------------------------------------------------------- colours
def palette(n_colors: int) -> list[str]:
    """``n_colors`` distinguishable colours (Category10/20, then spread-out Turbo)."""
    from bokeh.palettes import Category10, Category20, turbo

    if n_colors <= 10:
        return list(Category10[10][: max(n_colors, 1)])
    if n_colors <= 20:
        # dark shades first, then their light partners
        c20 = list(Category20[20])
        return (c20[0::2] + c20[1::2])[:n_colors]
    if n_colors <= 256:
        # Turbo, visited with a stride coprime to n: neighbouring clusters differ
        base = list(turbo(n_colors))
        step = max(2, int(round(n_colors * 0.382)))
        while math.gcd(step, n_colors) != 1:
            step += 1
        return [base[(j * step) % n_colors] for j in range(n_colors)]
    # golden-angle hues at three lightness levels
    out = []
    for j in range(n_colors):
        r, g, b = colorsys.hls_to_rgb((j * 0.618034) % 1.0, (0.35, 0.5, 0.65)[j % 3], 0.75)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


def point_size(n: int) -> float:
    """Marker size (screen pixels) that keeps N points readable."""
    return float(np.clip(12.0 - 2.0 * math.log10(max(n, 1)), 3.0, 9.0))


def point_alpha(n: int) -> float:
    return float(np.clip(1.05 - 0.1 * math.log10(max(n, 1)), 0.45, 0.85))


def fill_color(codes, names):
    """The points' fill colour and the palette: a colour per cluster code (column ``c``
    of the points), or one blue and None without clusters."""
    from bokeh.models import LinearColorMapper

    if codes is None:
        return "#3b6fb6", None
    pal = palette(len(names))
    mapper = LinearColorMapper(palette=pal, low=-0.5, high=len(pal) - 0.5)
    return {"field": "c", "transform": mapper}, pal


# ----------------------------------------------------------------------------- JS
@cache
def js(name: str) -> str:
    """The text of ``embedviz/plot/<name>.js``."""
    return resources.files("embedviz.plot").joinpath(f"{name}.js").read_text(encoding="utf-8")


# the names _lib.js reads; every callback gets them (see common_args)
LIB_ARGS = (
    "points", "meta", "nbrs", "labels", "clusters", "extra", "k", "xf", "yf", "group",
    "label_chars",
)  # fmt: skip
LIB_PRELUDE = (
    f"const ev = Function({', '.join(repr(a) for a in LIB_ARGS)}, lib.code)"
    f"({', '.join(LIB_ARGS)})\n"
)


def callback(name: str, **args):
    """A CustomJS running ``<name>.js`` with ``ev``, the helpers of ``_lib.js``."""
    from bokeh.models import CustomJS

    return CustomJS(args=args, code=LIB_PRELUDE + js(name))


# -------------------------------------------------------------------- sources, tools
def make_sources(words, rank, codes, nbr_idx, nbr_sim, base, label_xy):
    """The ``meta``, ``nbrs`` and ``labels`` sources (see the module docstring); the labels
    start as the ``base`` words at ``label_xy`` (the drawn coordinates of each word)."""
    from bokeh.models import ColumnDataSource

    meta_data = {"word": list(words)}
    if rank is not None and not np.array_equal(rank, np.arange(1, len(words) + 1)):
        meta_data["rank"] = smallest_uint(rank)
    if codes is not None:
        meta_data["cluster"] = codes
    meta = ColumnDataSource(meta_data, name="embedviz_meta")
    nbrs = None
    if nbr_idx is not None:
        nbrs = ColumnDataSource({"idx": nbr_idx, "sim": nbr_sim}, name="embedviz_neighbors")
    labels = ColumnDataSource(
        {
            "x": [float(label_xy[i, 0]) for i in base],
            "y": [float(label_xy[i, 1]) for i in base],
            "text": [short_text(words[i], MAX_LABEL_CHARS) for i in base],
            "i": list(base),
            "kind": ["base"] * len(base),
        },
        name="embedviz_labels",
    )
    return meta, nbrs, labels


def label_set(labels, size: float):
    """Labels drawn beside their points (canvas text: nothing to escape)."""
    from bokeh.models import LabelSet

    return LabelSet(
        x="x",
        y="y",
        text="text",
        source=labels,
        x_offset=size / 2 + 1,
        y_offset=-4,
        text_font_size="9pt",
        text_color="#222222",
        text_font_style="normal",
        background_fill_color="white",
        background_fill_alpha=0.55,
        name="embedviz_label_set",
    )


def map_figure(title: str, home, frame_width: int, frame_height: int, n: int, **kwargs):
    """The plot both maps draw in: ranges at the ``home`` view, no axes or grid, WebGL
    from :data:`WEBGL_THRESHOLD` points on; ``kwargs`` (tools, ...) go to ``figure``."""
    from bokeh.models import Range1d
    from bokeh.plotting import figure

    plot = figure(
        title=title,
        x_range=Range1d(home[0], home[1], name="embedviz_x_range"),
        y_range=Range1d(home[2], home[3], name="embedviz_y_range"),
        frame_width=frame_width,
        frame_height=frame_height,
        output_backend="webgl" if n >= WEBGL_THRESHOLD else "canvas",
        active_scroll="auto",
        toolbar_location="above",
        name="embedviz_plot",
        **kwargs,
    )
    plot.axis.visible = False
    plot.grid.visible = False
    plot.outline_line_color = "#dddddd"
    return plot


def hover_tool(renderer, index_field: str, common: dict):
    """Hover showing word, rank, cluster and neighbours, all through one formatter.

    ``index_field`` is ``"$index"`` (2D) or ``"@orig"`` (3D) and yields the original
    index that the formatter looks up; Bokeh escapes each formatted value.
    """
    from bokeh.models import CustomJSHover, HoverTool

    formatter = CustomJSHover(args=common, code=LIB_PRELUDE + js("hover"))
    f = index_field
    template = (
        '<div style="max-width:280px;font-family:sans-serif">'
        f'<div style="font-weight:bold;font-size:14px">{f}{{word}}</div>'
        f'<div style="color:#555;font-size:11px">rank {f}{{rank}} &nbsp; {f}{{cluster}}</div>'
        '<div style="white-space:pre-line;font-size:11px;color:#222;margin-top:3px">'
        f"{f}{{nbrs}}</div></div>"
    )
    return HoverTool(
        renderers=[renderer],
        tooltips=template,
        formatters={f: formatter},
        point_policy="snap_to_data",
        # of overlapping points, show the one drawn on top (the last row; in 3D the nearest)
        sort_by=[("$index", "descending")],
        limit=1,
    )


def common_args(points, meta, nbrs, labels, names, extra, xf, yf, group="cluster"):
    """Arguments every callback gets (the names ``_lib.js`` expects); ``group`` names
    what the colours show ("cluster", or "label" for the user's labels)."""
    from bokeh.models import ColumnDataSource, CustomJS

    k = 0 if nbrs is None else len(nbrs.data["idx"]) // len(meta.data["word"])
    clusters = ColumnDataSource({"name": list(names or [])}, name="embedviz_clusters")
    extra_words = ColumnDataSource({"word": list(extra)}, name="embedviz_extra_words")
    # never run: it only carries the helpers' code, once for the whole page
    lib = CustomJS(code=js("_lib"), name="embedviz_lib")
    return dict(
        points=points,
        meta=meta,
        nbrs=nbrs,
        labels=labels,
        clusters=clusters,
        extra=extra_words,
        k=int(k),
        xf=xf,
        yf=yf,
        group=str(group),
        label_chars=MAX_LABEL_CHARS,
        lib=lib,
    )


def controls(common, x_range, y_range, home, width=260, yaw=None, pitch=None, home_angles=None):
    """Search box, regex toggle, message, reset button and the tapped-word panel.

    Returns ``(widgets, tap_callback)``.
    """
    from bokeh.models import Button, Checkbox, Div, TextInput

    search = TextInput(
        placeholder="search words (space-separated)",
        width=width,
        name="embedviz_search",
    )
    regex = Checkbox(label="regular expression", active=False, name="embedviz_regex")
    message = Div(text="", width=width, name="embedviz_message")
    info = Div(
        text='<span style="color:#777">tap a point to list its neighbours</span>',
        width=width,
        name="embedviz_info",
        styles={"font-size": "12px", "font-family": "sans-serif"},
    )
    reset = Button(label="reset", width=80, name="embedviz_reset")
    args = dict(
        common,
        search=search,
        regex_toggle=regex,
        message=message,
        info=info,
        x_range=x_range,
        y_range=y_range,
        home=[float(v) for v in home],
        max_search_labels=MAX_SEARCH_LABELS,
        yaw=yaw,
        pitch=pitch,
        home_angles=list(home_angles or [0.0, 0.0]),
    )
    for mode in ("value", "value_input"):
        search.js_on_change(mode, callback("search", mode=mode, **args))
    regex.js_on_change("active", callback("search", mode="toggle", **args))
    reset.js_on_click(callback("reset", **args))
    tap = callback("tap", **args)
    widgets = [search, regex, message, reset, info]
    return widgets, tap


def home_view(
    xy: np.ndarray, frame_width: int, frame_height: int, pad: float = 0.05, label_pad: float = 0.1
):
    """Ranges (x0, x1, y0, y1) around the points with equal scale on both axes.

    Labels are drawn to the right of their points, so the right edge gets ``label_pad``
    (a fraction of the x span) more room than the others: words near it are not cut off.
    """
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    lo, hi = lo - pad * span, hi + pad * span
    hi[0] += label_pad * span[0]
    w, h = hi - lo
    aspect = frame_width / frame_height
    if w / h > aspect:
        h = w / aspect
    else:
        w = h * aspect
    cx, cy = (lo + hi) / 2
    return (cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2)


def legend_labels(names, codes, words, rank, n_examples: int = 2) -> list[str]:
    """Cluster names (cut to :data:`MAX_LEGEND_CHARS`); numbered clusters (k-means) also
    show their most frequent words, words with a letter or digit first (",", "/" and
    "--" are frequent and say little)."""
    if not all(name.lstrip("-").isdigit() for name in names):
        return [short_text(name, MAX_LEGEND_CHARS) for name in names]
    order = np.arange(len(words)) if rank is None else np.argsort(rank, kind="stable")
    examples: list[list[str]] = [[] for _ in names]
    for telling in (True, False):  # then any word, for a cluster of punctuation
        missing = sum(len(ex) < n_examples for ex in examples)
        for i in order:
            if missing == 0:
                break
            ex = examples[codes[i]]
            word = short_text(words[i], 12)
            if len(ex) < n_examples and word not in ex:
                if telling and not any(ch.isalnum() for ch in words[i]):
                    continue
                ex.append(word)
                missing -= len(ex) == n_examples
    return [f"{name}  {', '.join(ex)}" for name, ex in zip(names, examples, strict=True)]


def add_legend(plot, names, codes, words, rank, colors, size: float, title: str = "cluster"):
    """One legend entry per cluster; returns None, or a Div for the side bar.

    Up to :data:`MAX_PLOT_LEGEND` entries no wider than :data:`MAX_PLOT_LEGEND_WIDTH`
    go into a Bokeh legend beside the plot. Each entry gets its own empty
    renderer of the cluster's colour, so the legend does not depend on the row order of
    the points (3D reorders them on every turn). More or longer entries would make the
    page wider than a screen and push the search box out of it, so they become a list
    in the side bar that scrolls (returned as a Div).
    """
    from bokeh.models import ColumnDataSource, Legend, LegendItem

    if names is None or len(names) < 2:
        return None
    texts = legend_labels(names, codes, words, rank)
    if len(texts) > MAX_PLOT_LEGEND or max(map(text_width, texts)) > MAX_PLOT_LEGEND_WIDTH:
        return legend_div(texts, colors, title)
    items = []
    for name, color in zip(texts, colors, strict=True):
        # one point at NaN: never drawn, but the legend has a glyph to draw
        empty = ColumnDataSource({"x": [math.nan], "y": [math.nan]})
        r = plot.scatter("x", "y", source=empty, size=size, fill_color=color, line_color=None)
        items.append(LegendItem(label=name, renderers=[r]))
    legend = Legend(
        items=items,
        label_text_font_size="8pt" if len(items) > 20 else "9pt",
        label_height=12,
        glyph_width=12,
        glyph_height=12,
        spacing=0,
        padding=4,
        margin=4,
        title=title,
        title_text_font_size="9pt",
        click_policy="none",
        name="embedviz_legend",
    )
    plot.add_layout(legend, "right")
    return None


def text_width(text: str) -> float:
    """A generous estimate of ``text``'s width in pixels at 8pt sans-serif."""
    return sum(
        9.0 if c in "MWmw@%" or ord(c) >= 0x2E80 else 7.0 if c.isupper() else 5.5 for c in text
    )


def legend_div(texts, colors, title: str, width: int = 260, height: int = 300):
    """A legend as an HTML list that scrolls (every text escaped here, in Python)."""
    from bokeh.models import Div

    rows = "".join(
        '<div style="white-space:nowrap;overflow:hidden;text-overflow:ellipsis" '
        f'title="{html.escape(text)}"><span style="display:inline-block;width:10px;height:10px;'
        f'border-radius:5px;margin-right:5px;background:{color}"></span>{html.escape(text)}</div>'
        for text, color in zip(texts, colors, strict=True)
    )
    return Div(
        text=(
            f'<div style="font-weight:bold;margin-bottom:2px">{html.escape(title)} '
            f'<span style="font-weight:normal;color:#777">({len(texts)})</span></div>'
            f'<div style="max-height:{height}px;overflow-y:auto;border:1px solid #eee;'
            f'padding:2px 4px">{rows}</div>'
        ),
        width=width,
        name="embedviz_legend",
        styles={"font-size": "11px", "font-family": "sans-serif"},
    )
