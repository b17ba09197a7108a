"""The system page (``/train/system``): memory and CPU load over time, hardware and software.

One line per worker of the session (DDP ranks side by side): process RSS and, where
recorded, CUDA memory allocated, both in MiB; CPU load in percent. Below, one
hardware and one software table per worker. The CPU load is the process's, in percent
of one CPU (several busy cores read more than 100); a first sample of 0 (psutil's
priming call, in files written before the listener left it out) is not drawn.
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column, row

from embedviz.ui.pages._common import Page
from embedviz.ui.pages.charts import (
    MAX_POINTS,
    add_hover,
    colour,
    draw_series,
    line_chart,
    new_marks,
)
from embedviz.ui.pages.kinds import session_kind, step_name
from embedviz.ui.pages.live import LiveSeries, UpdateFeed, last_iteration
from embedviz.ui.pages.widgets import format_number, heading, table

MIB = 2.0**20
CHARTS = (
    ("memory/rss_bytes", "Process memory (RSS)", "MiB", MIB),
    ("memory/cuda_allocated_bytes", "GPU memory allocated", "MiB", MIB),
    ("memory/cpu_percent", "CPU load of the process", "% of one CPU (process)", 1.0),
)
CPU = "memory/cpu_percent"


def _cpu_series(storage, session_id: str, worker_id: str):
    """The process's CPU load without the priming artefact: psutil's first
    ``cpu_percent`` only starts the measurement and reads 0, so files written before
    :mod:`embedviz.stats.system` left that sample out hold a 0 as their first point;
    it is not drawn (newer files have no such sample)."""
    s = storage.get_series(session_id, worker_id, CPU, MAX_POINTS)
    if len(s) and s.values[0] == 0.0:
        s = s.take(np.arange(1, len(s)))
    return s


def _scaled(div: float):
    return None if div == 1.0 else (lambda v: v / div)


def hardware_rows(info) -> list[tuple[str, str]]:
    """(property, value) rows of a worker's hardware."""
    if info is None:
        return [("hardware", "not recorded")]
    hw = info.hardware or {}
    rows = []
    if "cpu_count" in hw:
        rows.append(("CPUs", str(hw["cpu_count"])))
    if "memory_bytes" in hw:
        rows.append(("memory", f"{hw['memory_bytes'] / 2**30:.1f} GiB"))
    for i, gpu in enumerate(hw.get("gpus") or []):
        if isinstance(gpu, dict):
            mem = gpu.get("memory_bytes")
            extra = f" ({mem / 2**30:.1f} GiB)" if isinstance(mem, int | float) else ""
            rows.append((f"GPU {i}", f"{gpu.get('name', '')}{extra}"))
    if not hw.get("gpus"):
        rows.append(("GPUs", "none"))
    for k, v in hw.items():
        if k not in ("cpu_count", "memory_bytes", "gpus"):
            rows.append((k, str(v)))
    return rows


def software_rows(info) -> list[tuple[str, str]]:
    """(property, value) rows of a worker's software."""
    if info is None:
        return [("software", "not recorded")]
    return [(k, str(v)) for k, v in (info.software or {}).items()] or [("software", "")]


def build_system(storage, session_id: str, worker_id: str | None = None) -> Page:
    """The system page of one session (every worker, or only ``worker_id``).

    Returns
    -------
    Page
        ``sources`` holds ``"<series>:<worker>"`` (e.g. ``"memory/rss_bytes:0"``, values
        in MiB for memory) and ``"hardware:<worker>"``, ``"software:<worker>"`` tables.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage()
    >>> st.put(Update("run", "0", 1, 0.0, memory={"rss_bytes": 2.0**20}))
    >>> build_system(st, "run").sources["memory/rss_bytes:0"].data["y"].tolist()
    [1.0]
    """
    workers = [worker_id] if worker_id is not None else storage.list_workers(session_id)
    page = Page(layout=None)
    charts, live = [], []
    first = workers[0] if workers else None
    step = "iteration"
    if first is not None:
        info = storage.get_static_info(session_id, first)
        step = step_name(session_kind(info, storage.get_latest_update(session_id, first)))
    for name, title, unit, div in CHARTS:
        series = []
        marks = new_marks(f"{name}:marks")
        for w in workers:
            got = _cpu_series(storage, session_id, w) if name == CPU else None
            s = LiveSeries(name, f"worker {w}", transform=_scaled(div)).load(
                storage, session_id, w, marks, series=got
            )
            if len(s.source.data["x"]) or name != "memory/cuda_allocated_bytes":
                series.append((w, s))
        if not series:
            continue
        p = line_chart(title, unit, x_label=step, name=name)
        drawn = []
        for i, (w, s) in enumerate(series):
            page.sources[f"{name}:{w}"] = s.source
            drawn.append(draw_series(p, s, colour(i, len(series)), width=2))
            # samples are sparse (a short run may hold one): each is a dot too
            p.scatter("x", "y", source=s.source, color=colour(i, len(series)), size=5)
            live.append((w, s))
        add_hover(p, drawn, marks, "{0.0}")
        charts.append(p)

    feeds = {
        w: UpdateFeed(storage, session_id, w, last_iteration(storage, session_id, w))
        for w in workers
    }

    def refresh() -> int:
        n = 0
        for w, feed in feeds.items():
            updates = feed()
            if updates:
                n += sum(s.push_updates(updates) for ww, s in live if ww == w)
        return n

    page.refreshers.append(refresh)
    tables = []
    for w in workers:
        info = storage.get_static_info(session_id, w)
        hw = table(hardware_rows(info), ["property", "value"], name=f"hardware:{w}")
        sw = table(software_rows(info), ["property", "value"], name=f"software:{w}")
        page.sources[f"hardware:{w}"] = hw.source
        page.sources[f"software:{w}"] = sw.source
        latest = storage.get_latest_update(session_id, w)
        rss = latest.memory.get("rss_bytes") if latest else None
        tables.append(
            heading(
                f"Worker {w}" + (f" — RSS now {format_number(rss / MIB, 4)} MiB" if rss else ""), 4
            )
        )
        tables.append(
            row(
                column(heading("Hardware", 5), hw, sizing_mode="stretch_width"),
                column(heading("Software", 5), sw, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            )
        )
    if not charts:
        charts.append(heading("No memory or CPU samples recorded"))
    page.layout = column(*charts, *tables, sizing_mode="stretch_width")
    return page
