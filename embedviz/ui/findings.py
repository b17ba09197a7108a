"""The diagnostics' findings as a page section (severity, where, evidence, advice).

The findings come from :mod:`embedviz.stats.diagnostics` (the statistics package owns
the rules); this module only asks for them and lays them out. Every text is escaped:
layer names and evidence can hold anything.
"""

from __future__ import annotations

from bokeh.models import Div

from embedviz.stats.diagnostics import where_of
from embedviz.ui.diagnose import get_findings
from embedviz.ui.pages._common import escape

__all__ = ["FINDINGS_STYLE", "findings_html", "findings_view", "get_findings"]

FINDINGS_STYLE = {"max-height": "480px", "overflow-y": "auto"}
_COLOURS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}


def findings_html(findings: list[dict]) -> str:
    """HTML for the findings list (all text escaped)."""
    if not findings:
        return "<span style='color:#2ca02c'>No problems found.</span>"
    order = {"error": 0, "warning": 1, "info": 2}
    parts = []
    for f in sorted(findings, key=lambda f: order.get(str(f.get("severity")), 3)):
        sev = str(f.get("severity") or "info")
        parts_where = [where_of(str(f.get("check")), f["layer"])] if f.get("layer") else []
        its = f.get("iterations")
        if isinstance(its, list | tuple) and len(its) == 2:
            parts_where.append(f"iterations {its[0]}–{its[1]}")
        where = ", ".join(parts_where)
        title = (f.get("check") or f.get("title") or "").replace("_", " ")
        parts.append(
            "<div style='margin:4px 0;padding:6px 10px;border-left:4px solid "
            f"{_COLOURS.get(sev, '#777')};background:#fafafa'>"
            f"<b style='color:{_COLOURS.get(sev, '#777')}'>{escape(sev.upper())}</b> "
            f"<b>{escape(title)}</b> <span style='color:#666'>{escape(where)}</span><br>"
            f"{escape(f.get('evidence') or '')}<br>"
            f"<span style='color:#333'><i>{escape(f.get('advice') or '')}</i></span></div>"
        )
    return "".join(parts)


def findings_view(storage, session_id: str, worker_id: str | None = None) -> Div:
    """A Div listing the findings, most severe first."""
    return Div(
        text=findings_html(get_findings(storage, session_id, worker_id)),
        sizing_mode="stretch_width",
        name="findings",
        styles=FINDINGS_STYLE,
    )
