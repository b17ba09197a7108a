"""The embeddings page (``/embeddings``): t-SNE and word2vec runs and their snapshots.

The chart shows the run's objective over iterations: the KL divergence of a t-SNE run
(``extra/kl``), the per-epoch loss of a word2vec run (``extra/loss``), else the score.
Below, a stored snapshot is drawn with the same word map as ``embedviz tsne``
(:func:`embedviz.plot.scatter.scatter_2d` / :func:`~embedviz.plot.scatter3d.scatter_3d`,
with their search box): a 2-D or 3-D embedding as it is, word vectors projected on
their first two principal components. A selector goes back through the snapshots; new
snapshots are added while the run goes on.
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column
from bokeh.models import Div, Select

from embedviz.ui.pages._common import Page
from embedviz.ui.pages.charts import add_hover, draw_series, line_chart, new_marks
from embedviz.ui.pages.kinds import PhaseShading, exaggeration_span, session_kind, step_name
from embedviz.ui.pages.live import LiveSeries, UpdateFeed, pick_worker
from embedviz.ui.pages.prune import prune_on_swap
from embedviz.ui.pages.widgets import escape

MAX_SNAPSHOT_POINTS = 5000


def objective_name(storage, session_id: str, worker_id: str) -> str:
    """The series that measures this run: ``extra/kl``, ``extra/loss`` or ``score``."""
    latest = storage.get_latest_update(session_id, worker_id)
    if latest is not None:
        for key in ("kl", "loss"):
            if key in latest.extra:
                return f"extra/{key}"
    return "score"


def snapshot_coords(snapshot) -> np.ndarray:
    """2-D or 3-D coordinates to draw: an embedding as it is, vectors by PCA to 2-D."""
    a = snapshot.array()
    if a.ndim != 2 or len(a) == 0:
        return np.zeros((0, 2))
    if snapshot.kind == "embedding" and a.shape[1] in (2, 3):
        return a
    centred = a - a.mean(axis=0)
    if a.shape[1] <= 2:
        return np.pad(centred, ((0, 0), (0, 2 - a.shape[1])))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def snapshot_view(snapshot):
    """The word map of one snapshot (or a note when it cannot be drawn)."""
    from embedviz.plot.scatter import scatter_2d
    from embedviz.plot.scatter3d import scatter_3d

    coords = snapshot_coords(snapshot)[:MAX_SNAPSHOT_POINTS]
    n = len(coords)
    if n < 2 or not np.isfinite(coords).all():
        return Div(
            text=f"<i>Snapshot at iteration {snapshot.iteration} has no drawable points.</i>"
        )
    labels = list(snapshot.labels[:n])
    labels += [str(i) for i in range(len(labels), n)]
    kind = snapshot.kind.replace("_", " ")
    step = "epoch" if snapshot.kind == "word_vectors" else "iteration"
    title = f"{kind} at {step} {snapshot.iteration}"
    if coords.shape[1] == 3:
        return scatter_3d(coords, labels, title=title)
    return scatter_2d(coords, labels, title=title)


def build_embeddings(storage, session_id: str, worker_id: str | None = None) -> Page:
    """The embeddings page of one session.

    Returns
    -------
    Page
        ``sources`` holds ``"objective"`` (the KL/loss/score line) and the snapshot
        selector is the model named ``"snapshot_select"`` (values: iterations).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage(); st.put(Update("t", "0", 50, 0.0, extra={"kl": 2.5}))
    >>> build_embeddings(st, "t").sources["objective"].data["y"].tolist()
    [2.5]
    """
    worker_id = pick_worker(storage, session_id, worker_id)
    page = Page(layout=None)
    if worker_id is None:
        page.layout = Div(text=f"<i>Session {escape(session_id)}: nothing recorded yet.</i>")
        return page
    name = objective_name(storage, session_id, worker_id)
    label = {"extra/kl": "KL divergence", "extra/loss": "loss per epoch"}.get(name, "score")
    info = storage.get_static_info(session_id, worker_id)
    kind = session_kind(info, storage.get_latest_update(session_id, worker_id))
    step = step_name(kind)
    marks = new_marks("objective:marks")
    s = LiveSeries(name, label).load(storage, session_id, worker_id, marks)
    page.sources["objective"] = s.source
    page.sources["objective:marks"] = marks
    title = f"{label} over {step}s" if name != "extra/loss" else label
    p = line_chart(title, label, x_label=step, name="objective_chart")
    shading = None
    if kind == "tsne":
        shading = PhaseShading(exaggeration_span(storage.get_updates(session_id, worker_id)))
        shading.add_to(p)
    add_hover(p, [draw_series(p, s, "#1f77b4", width=2)], marks)

    snaps = storage.get_snapshots(session_id, worker_id)
    by_iteration = {str(sn.iteration): sn for sn in snaps}
    options = list(by_iteration)[::-1]  # newest first
    select = Select(
        title=f"Snapshot ({step})",
        options=options or [""],
        value=options[0] if options else "",
        width=260,
        name="snapshot_select",
        visible=bool(options),  # an empty selector says nothing; shown with the first
    )
    holder = prune_on_swap(column(sizing_mode="stretch_width", name="snapshot_holder"))

    def show(key: str) -> None:
        sn = by_iteration.get(key)
        holder.children = [
            snapshot_view(sn)
            if sn is not None
            else Div(text="<i>No snapshots recorded for this run.</i>")
        ]

    show(select.value)
    select.on_change("value", lambda attr, old, new: show(new))
    feed = UpdateFeed(storage, session_id, worker_id, s.last_iteration)
    state = {"n_snaps": len(snaps)}

    def refresh() -> int:
        updates = feed()
        n = s.push_updates(updates) if updates else 0
        if shading is not None and updates:
            shading.update(updates)
        count = len(storage.get_snapshots(session_id, worker_id)) if updates else state["n_snaps"]
        if count != state["n_snaps"]:
            state["n_snaps"] = count
            at_newest = select.value == (select.options[0] if select.options else "")
            for sn in storage.get_snapshots(session_id, worker_id):
                by_iteration[str(sn.iteration)] = sn
            select.options = list(by_iteration)[::-1]
            select.visible = True
            if at_newest:
                select.value = select.options[0]
            n += 1
        return n

    page.refreshers.append(refresh)
    page.layout = column(p, select, holder, sizing_mode="stretch_width")
    return page
