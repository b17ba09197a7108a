"""Tables, headings and notes, and the text in them: numbers, durations, layer names.

Everything a user or a model named is escaped before it goes into a ``Div``
(:func:`escape`); a table's cells are text (Bokeh's DataTable does not read them as HTML).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from bokeh.models import ColumnDataSource, DataTable, Div, TableColumn

NO_VALUE = "—"  # a table cell whose value applies but was not recorded


def escape(text: object) -> str:
    """``text`` as HTML text (for Div contents: words and layer names can hold anything)."""
    return html.escape(str(text), quote=True)


def layer_types(info) -> dict[str, str]:
    """Layer name -> class name from the static info (empty without one)."""
    if info is None:
        return {}
    return {li.name: li.type for li in getattr(info, "layers", []) or [] if li.type}


def layer_label(name: str, types: dict[str, str]) -> str:
    """A layer's name with its class when known: ``"1 (Conv2d)"``; ``"(model)"`` for
    the whole model's empty name.

    Examples
    --------
    >>> layer_label("1", {"1": "Conv2d"}), layer_label("fc", {})
    ('1 (Conv2d)', 'fc')
    """
    shown = name if name else "(model)"
    kind = types.get(name)
    return f"{shown} ({kind})" if kind else shown


def table(
    rows: Sequence[tuple],
    columns: Sequence[str],
    *,
    name: str | None = None,
    height: int | None = None,
    widths: Sequence[int] | None = None,
) -> DataTable:
    """A read-only table of text cells (Bokeh's DataTable shows them as text, not HTML)."""
    data = {c: [("" if r[i] is None else str(r[i])) for r in rows] for i, c in enumerate(columns)}
    cols = [
        TableColumn(field=c, title=c, **({"width": widths[i]} if widths else {}))
        for i, c in enumerate(columns)
    ]
    return DataTable(
        source=ColumnDataSource(data, name=f"{name}:source" if name else None),
        columns=cols,
        index_position=None,
        sortable=False,
        reorderable=False,
        height=height or min(30 + 25 * max(len(rows), 1), 420),
        sizing_mode="stretch_width",
        name=name,
    )


def set_table_rows(t: DataTable, rows: Sequence[tuple]) -> None:
    """Replace the rows of a :func:`table` so that the browser shows them.

    BokehJS redraws a table's grid when its view changes, not when new data holds as
    many rows as before (a live table's rows keep their number): the view's ``tags``
    are bumped after the data.
    """
    columns = list(t.source.data)
    t.source.data = {
        c: [("" if r[i] is None else str(r[i])) for r in rows] for i, c in enumerate(columns)
    }
    t.view.tags = [int(t.view.tags[0]) + 1 if t.view.tags else 1]


def heading(text: str, level: int = 3) -> Div:
    """A section heading (escaped)."""
    return Div(
        text=f"<h{level} style='margin:8px 0 2px 0'>{escape(text)}</h{level}>",
        sizing_mode="stretch_width",
    )


def note_html(text: str) -> str:
    """The HTML of a :func:`note` saying ``text`` (to change a note's text later)."""
    return f"<span style='color:#666'>{escape(text)}</span>"


def note(text: str) -> Div:
    """A grey line of explanation (escaped)."""
    return Div(text=note_html(text), sizing_mode="stretch_width")


def format_duration(seconds: float | None) -> str:
    """``3h 02m 05s`` style; under 10 s with one decimal, under 1 s in milliseconds (a
    short run is not "0s").

    Examples
    --------
    >>> format_duration(0.036), format_duration(2.24), format_duration(3725)
    ('36 ms', '2.2s', '1h 02m 05s')
    """
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 0.9995:
        return f"{max(seconds, 0.0) * 1000:.0f} ms"
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f}s"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else (f"{m}m {sec:02d}s" if m else f"{sec}s")


def format_speed(value: float | None) -> str:
    """A rate for a table cell: ``101,000`` or ``18.4`` (3 significant digits, no
    exponent), NaN/inf spelled out, "—" when not recorded.

    Examples
    --------
    >>> format_speed(100720.5), format_speed(18.37), format_speed(None)
    ('101,000', '18.4', '—')
    """
    if value is None:
        return NO_VALUE
    if not math.isfinite(value) or abs(value) < 100:
        return format_number(value, 3)
    digits = len(str(int(abs(value))))
    return f"{round(value, 3 - digits):,.0f}"


def format_number(value: float | None, digits: int = 4) -> str:
    """A number for a table cell: NaN/inf spelled out, None empty."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
    return f"{value:.{digits}g}"
