"""What each kind of session records, and the overview charts drawn for it.

A session's :class:`~embedviz.stats.records.StaticInfo` names its ``kind``:

* ``"torch"``: a neural network (score, update:parameter ratios, standard deviations);
* ``"tsne"`` (:class:`~embedviz.stats.tsne_stats.TSNEStats`): the score is the KL
  divergence; ``extra/grad_norm`` is the gradient norm; ``tags["phase"]`` (and
  ``extra/exaggeration`` > 1) marks the early exaggeration phase, during which the KL
  divergence of the exaggerated affinities is not yet the one being minimised
  (van der Maaten 2014);
* ``"word2vec"`` (:class:`~embedviz.stats.word2vec.Word2VecStats`): one update per
  epoch; the score is that epoch's loss; ``extra/alpha`` the learning rate reached,
  ``extra/words_per_sec`` the training speed.

:data:`KIND_CHARTS` lists, per kind, the series drawn beside the score; a series that was
never recorded is left out, so no empty panel is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from bokeh.models import BoxAnnotation, Label

from embedviz.ui.pages.charts import add_hover, draw_series, line_chart, new_marks
from embedviz.ui.pages.live import LiveSeries


@dataclass(frozen=True)
class KindChart:
    """One chart of a series that a kind of session records."""

    series: str
    title: str
    y_label: str
    log_y: bool = False


KIND_CHARTS = {
    "tsne": (
        KindChart(
            "extra/grad_norm",
            "Gradient norm (falls as the layout settles)",
            "gradient norm",
            log_y=True,
        ),
    ),
    "word2vec": (
        KindChart("extra/alpha", "Learning rate alpha (decays linearly)", "alpha"),
        KindChart("extra/words_per_sec", "Training speed", "words/s"),
    ),
}
SCORE_TITLES = {
    "tsne": ("KL divergence (the t-SNE objective)", "KL divergence"),
    "word2vec": ("Loss per epoch (word2vec)", "loss"),
}
NO_LAYERS = {
    "tsne": (
        "A t-SNE run has no layers",
        "Its KL divergence and gradient norm are on the Overview page, its embedding on "
        "the Embeddings page.",
    ),
    "word2vec": (
        "A word2vec model has no layers to inspect",
        "Its loss, learning rate and speed per epoch are on the Overview page, snapshots "
        "of its word vectors on the Embeddings page.",
    ),
}
STEP_NAMES = {"word2vec": "epoch"}  # what one recorded step is called (x-axis label)
PHASE_COLOUR = "#ff7f0e"


def session_kind(info, latest=None) -> str:
    """The kind of a session: its static info's ``kind``, else guessed from the newest
    update (``extra["kl"]``: t-SNE; ``extra["alpha"]``: word2vec), else ``"torch"``.

    Examples
    --------
    >>> from embedviz.stats.records import Update
    >>> session_kind(None, Update("t", "0", 50, 0.0, extra={"kl": 2.5}))
    'tsne'
    """
    kind = getattr(info, "kind", None)
    if kind:
        return kind
    extra = getattr(latest, "extra", None) or {}
    if "kl" in extra:
        return "tsne"
    if "alpha" in extra:
        return "word2vec"
    return "torch"


def step_name(kind: str) -> str:
    """``"epoch"`` for word2vec, else ``"iteration"``."""
    return STEP_NAMES.get(kind, "iteration")


def score_titles(kind: str) -> tuple[str, str]:
    """(chart title, y-axis label) of the score chart of a session of ``kind``."""
    return SCORE_TITLES.get(kind, ("Score (loss)", "score"))


def exaggeration_span(updates) -> tuple[int, int] | None:
    """(first, last) iteration recorded in the early exaggeration phase, or None.

    An update is in that phase when its ``tags["phase"]`` is ``"exaggeration"`` or,
    without a tag, when ``extra["exaggeration"]`` is above 1.

    Examples
    --------
    >>> from embedviz.stats.records import Update
    >>> ups = [Update("t", "0", i, 0.0, tags={"phase": p})
    ...        for i, p in ((50, "exaggeration"), (250, "exaggeration"), (300, "main"))]
    >>> exaggeration_span(ups)
    (50, 250)
    """
    inside = []
    for u in updates:
        phase = (u.tags or {}).get("phase")
        if phase is None:
            factor = (u.extra or {}).get("exaggeration")
            phase = "exaggeration" if factor is not None and factor > 1 else None
        if phase == "exaggeration":
            inside.append(u.iteration)
    return (min(inside), max(inside)) if inside else None


class PhaseShading:
    """The early exaggeration phase shaded on charts of a t-SNE session, kept current."""

    def __init__(self, span: tuple[int, int] | None) -> None:
        self.span = span
        self.boxes: list[BoxAnnotation] = []
        self.labels: list[Label] = []

    def add_to(self, p) -> None:
        """Shade the phase on figure ``p`` (hidden until a phase is known)."""
        left, right = self.span or (0, 0)
        box = BoxAnnotation(
            left=left,
            right=right,
            fill_color=PHASE_COLOUR,
            fill_alpha=0.10,
            line_alpha=0,
            visible=self.span is not None,
            name="exaggeration_phase",
        )
        label = Label(
            x=left,
            y=4,
            x_units="data",
            y_units="screen",
            text="early exaggeration",
            text_font_size="11px",
            text_color=PHASE_COLOUR,
            visible=self.span is not None,
        )
        p.add_layout(box)
        p.add_layout(label)
        self.boxes.append(box)
        self.labels.append(label)

    def update(self, updates) -> None:
        """Widen the shaded span with the exaggeration updates among ``updates``."""
        new = exaggeration_span(updates)
        if new is None:
            return
        self.span = (
            new if self.span is None else (min(self.span[0], new[0]), max(self.span[1], new[1]))
        )
        for box, label in zip(self.boxes, self.labels, strict=True):
            box.left, box.right, box.visible = self.span[0], self.span[1], True
            label.x, label.visible = self.span[0], True


def kind_charts(storage, session_id: str, worker_id: str, kind: str, page, shading=None):
    """The charts of the series a session of ``kind`` records beyond its score.

    Each series is registered in ``page.sources`` under its name (e.g.
    ``"extra/grad_norm"``) with a ``"<name>:marks"`` source; series never recorded are
    skipped. Returns ``(series, figures)``.
    """
    wanted = KIND_CHARTS.get(kind, ())
    if not wanted:
        return [], []
    present = set(storage.list_series(session_id, worker_id))
    series, figures = [], []
    for spec in wanted:
        if spec.series not in present:
            continue
        marks = new_marks(f"{spec.series}:marks")
        s = LiveSeries(spec.series, spec.y_label).load(storage, session_id, worker_id, marks)
        page.sources[spec.series] = s.source
        page.sources[f"{spec.series}:marks"] = marks
        p = line_chart(
            spec.title,
            spec.y_label,
            x_label=step_name(kind),
            y_axis_type="log" if spec.log_y else "linear",
            name=f"chart:{spec.series}",
        )
        if shading is not None:
            shading.add_to(p)
        add_hover(p, [draw_series(p, s, "#1f77b4", width=2)], marks)
        series.append(s)
        figures.append(p)
    return series, figures
