"""The overview's model and performance tables: rows (property, value) that apply.

Which rows a session gets depends on its kind (:mod:`embedviz.ui.pages.kinds`): a t-SNE
run has no layers or parameters but points and a perplexity; a word2vec run counts
epochs and words/s instead of iterations and examples/s. A value that applies but was
not recorded reads "—" (``NO_VALUE``), never an empty cell.
"""

from __future__ import annotations

import time

from embedviz.ui.pages.kinds import session_kind
from embedviz.ui.pages.widgets import NO_VALUE, format_duration, format_number, format_speed

# the configuration keys shown in the model table, per kind: (key, row name)
CONFIG_ROWS = {
    "torch": (
        ("batch_size", "batch size"),
        ("n_classes", "classes"),
        ("lr_scheduler", "lr scheduler"),
        ("world_size", "world size"),
    ),
    "tsne": (
        ("n_samples", "points"),
        ("n_components", "dimensions"),
        ("perplexity", "perplexity"),
        ("metric", "metric"),
        ("max_iter", "iterations planned"),
        ("dataset", "data"),
    ),
    "word2vec": (
        ("vocabulary_size", "vocabulary"),
        ("vector_size", "vector size"),
        ("sg", "architecture"),
        ("window", "window"),
        ("negative", "negative samples"),
        ("epochs", "epochs planned"),
        ("corpus", "corpus"),
    ),
}


def model_rows(info, kind: str | None = None) -> list[tuple[str, str]]:
    """Rows (property, value) describing the model of a static info record.

    Only rows that apply to the session's ``kind`` are listed (a t-SNE run has no layers
    and no parameters); a value that applies but was not recorded reads "—".

    Examples
    --------
    >>> from embedviz.stats.records import StaticInfo
    >>> model_rows(StaticInfo("t", "0", 0.0, kind="tsne", model_class="TSNE",
    ...                       config={"perplexity": 30}))
    [('kind', 'tsne'), ('model', 'TSNE'), ('perplexity', '30')]
    """
    if info is None:
        return [("model", "no static info recorded")]
    kind = kind or session_kind(info)
    rows = [("kind", info.kind or NO_VALUE), ("model", info.model_class or NO_VALUE)]
    if kind == "torch":
        layers = [layer for layer in info.layers if layer.n_params]
        rows.append(("layers with parameters", str(len(layers))))
    if kind != "tsne":
        rows.append(
            ("parameters", format_number(info.n_params) if info.n_params is not None else NO_VALUE)
        )
    opt = info.optimizer or {}
    if opt.get("class"):
        groups = opt.get("param_groups") or [{}]
        # the hyperparameters in use: zero/False ones (dampening=0, nesterov=False) left out
        hyper = ", ".join(
            f"{k}={v}"
            for k, v in groups[0].items()
            if isinstance(v, int | float | str) and not isinstance(v, bool) and v != 0
        )
        rows.append(("optimizer", f"{opt['class']} ({hyper})" if hyper else opt["class"]))
    config = info.config or {}
    for key, label in CONFIG_ROWS.get(kind, CONFIG_ROWS["torch"]):
        if key in config and config[key] is not None:
            value = config[key]
            if key == "sg":
                value = "skip-gram" if value else "CBOW"
            rows.append(
                (label, format_number(value) if isinstance(value, int | float) else str(value))
            )
    return rows


def first_point(storage, session_id: str, worker_id: str) -> tuple[int, float] | None:
    """(iteration, timestamp) of the worker's first update, or None."""
    s = storage.get_series(session_id, worker_id, "score", max_points=None)
    if len(s):
        return int(s.iterations[0]), float(s.timestamps[0])
    updates = storage.get_updates(session_id, worker_id)
    return (updates[0].iteration, updates[0].timestamp) if updates else None


def _when(timestamp: float) -> str:
    """Local date and time of a Unix timestamp; "—" for one no date can show (files
    written before timestamps were checked may hold NaN or 1e300)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
    except (OverflowError, ValueError, OSError):
        return "—"


AVERAGE = "(run average)"  # from the first to the newest update
LAST = "(last report)"  # the listener's window before the newest update


def performance_rows(
    storage, session_id: str, worker_id: str, info, first, kind: str = "torch", latest=None
) -> list[tuple]:
    """Rows (property, value): start, runtime, last update, the last iteration recorded
    (iterations count from 0 and are recorded every ``frequency``; word2vec's epochs,
    from 1), speeds, each labelled with its span: steps/s averaged over the run, and
    steps/s and examples/s (words/s) of the last report, side by side (the same window).
    Speeds a kind does not record are left out (t-SNE has no examples/s); one it
    records but that is missing reads "—". ``latest``: the newest update when the
    caller has just read it (else it is read).
    """
    if latest is None:
        latest = storage.get_latest_update(session_id, worker_id)
    steps = "epochs" if kind == "word2vec" else "iterations"
    last = "epochs" if kind == "word2vec" else "last iteration"  # epochs count from 1
    if latest is None or first is None:
        return [(last, "none recorded yet")]
    first_it, first_t = first
    start = info.timestamp if info is not None else first_t
    rate = None
    if latest.timestamp > first_t:
        rate = (latest.iteration - first_it) / (latest.timestamp - first_t)
    rows = [
        ("start", _when(start)),
        ("runtime", format_duration(latest.timestamp - start)),
        ("last update", _when(latest.timestamp)),
        (last, f"{latest.iteration:,}"),
        (f"{steps}/s {AVERAGE}", format_speed(rate)),
    ]
    if kind == "word2vec":
        speed = (latest.extra or {}).get("words_per_sec")
        rows.append((f"words/s {LAST}", format_speed(speed)))
    elif kind == "torch" or latest.examples_per_sec is not None:
        # both from the listener's last window, so that examples / iterations is the
        # batch size (the run average includes evaluations and pauses)
        rows.append((f"{steps}/s {LAST}", format_speed(latest.minibatches_per_sec)))
        rows.append((f"examples/s {LAST}", format_speed(latest.examples_per_sec)))
    rows.append(("updates stored", f"{storage.count_updates(session_id, worker_id):,}"))
    return rows
