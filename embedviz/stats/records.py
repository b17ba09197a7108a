"""The records that training-statistics producers write and the UI reads.

Every record is a plain dataclass keyed by ``(session_id, worker_id)``; per-iteration
records also carry ``iteration`` and ``timestamp`` (Unix seconds, wall clock).

* :class:`StaticInfo` -- once per session and worker: model, layers, optimizer,
  hardware, software and configuration.
* :class:`Update` -- once per reported iteration: score, throughput, learning rates,
  per-parameter statistics (:class:`ParamStats`), per-layer activation statistics
  (:class:`ActivationStats`), histograms (:class:`Histogram`), memory, extra scalars
  (``kl``, ``grad_norm`` for t-SNE; ``alpha``, ``words_per_sec`` for word2vec) and
  string tags (``phase`` for t-SNE).
* :class:`EvalRecord` -- metrics computed on a held-out set, never smoothed.
* :class:`Snapshot` -- vectors of chosen items at one iteration (word vectors during
  word2vec training, a t-SNE embedding), for the embeddings page.

:func:`to_dict` converts a record to a plain dict (JSON): ``{"type": "update",
"session_id": ..., ...}``; :func:`~embedviz.stats.validation.record_from_dict` converts
back, checking every field (:mod:`embedviz.stats.validation`). Non-finite floats stay
floats (``nan``/``inf``).

Scalar series names (see :meth:`Update.scalars`) are ``score``, ``examples_per_sec``,
``minibatches_per_sec``, ``collect_seconds``, ``epoch``, ``lr/<group>``,
``params/<name>/<stat>`` (stat is a :class:`ParamStats` field),
``activations/<layer>/<stat>``, ``memory/<key>``, ``extra/<key>`` and, from
:class:`EvalRecord`, ``eval/<metric>``. Parameter names are PyTorch's (``0.weight``,
``encoder.fc.bias``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedviz.errors import InputError

SCHEMA_VERSION = 1

HISTOGRAM_KINDS = ("params", "grads", "updates", "activations")


@dataclass
class ParamStats:
    """Statistics of one parameter tensor at one iteration.

    ``param_*`` describe the parameter after the optimizer step (as the next forward
    pass sees it); ``grad_*`` the gradient that step used; ``update`` is the change the
    optimizer actually applied (after momentum, Adam, weight decay):
    ``param_after - param_before``. ``update_param_ratio`` is
    ``update_mean_magnitude / param_mean_magnitude`` (healthy near 1e-3). Gradient and
    update fields are ``None`` when the tensor had no gradient or was not stepped.
    """

    param_mean: float
    param_std: float
    param_mean_magnitude: float
    grad_mean: float | None = None
    grad_std: float | None = None
    grad_mean_magnitude: float | None = None
    update_mean: float | None = None
    update_std: float | None = None
    update_mean_magnitude: float | None = None
    update_param_ratio: float | None = None


@dataclass
class ActivationStats:
    """Mean and standard deviation of one layer's output; share of exact zeros."""

    mean: float
    std: float
    zero_fraction: float | None = None


@dataclass
class Histogram:
    """Counts in ``len(counts)`` equal-width bins spanning ``[lo, hi]``."""

    lo: float
    hi: float
    counts: list[int]

    def edges(self) -> np.ndarray:
        """Bin edges, ``len(counts) + 1`` values from ``lo`` to ``hi``."""
        return np.linspace(self.lo, self.hi, len(self.counts) + 1)


@dataclass
class LayerInfo:
    """One module of the model: name (PyTorch's), class name and its own parameters."""

    name: str
    type: str
    n_params: int
    param_shapes: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class StaticInfo:
    """What does not change during a session, recorded once per worker.

    ``kind`` is ``"torch"``, ``"word2vec"``, ``"tsne"`` or ``"other"``. ``optimizer`` is
    ``{"class": name, "param_groups": [hyper-parameters of each group]}``; ``hardware``
    has ``cpu_count``, ``memory_bytes`` and ``gpus`` (list of ``{"name", "memory_bytes"}``);
    ``software`` has ``python``, ``torch``, ``os``, ``hostname``, ``embedviz``. ``config``
    is free-form (batch size, ``n_classes``, a configured learning-rate schedule, ...).
    """

    session_id: str
    worker_id: str
    timestamp: float
    kind: str = "torch"
    model_class: str | None = None
    n_params: int | None = None
    layers: list[LayerInfo] = field(default_factory=list)
    optimizer: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    software: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Update:
    """Everything recorded at one reported iteration of one worker.

    ``histograms`` maps a kind (``"params"``, ``"grads"``, ``"updates"``,
    ``"activations"``) to ``{name: Histogram}``; it is empty on iterations that are not
    on the histogram cadence. ``memory`` holds ``rss_bytes``, ``cpu_percent`` and, with
    CUDA, ``cuda_allocated_bytes`` and ``cuda_reserved_bytes``. ``collect_seconds`` is the
    time the listener spent collecting this record.
    """

    session_id: str
    worker_id: str
    iteration: int
    timestamp: float
    score: float | None = None
    epoch: int | None = None
    examples_per_sec: float | None = None
    minibatches_per_sec: float | None = None
    learning_rates: list[float] = field(default_factory=list)
    params: dict[str, ParamStats] = field(default_factory=dict)
    activations: dict[str, ActivationStats] = field(default_factory=dict)
    histograms: dict[str, dict[str, Histogram]] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    collect_seconds: float | None = None

    def scalars(self) -> dict[str, float]:
        """Every numeric value of this update under its series name.

        Examples
        --------
        >>> u = Update("s", "0", 10, 0.0, score=2.3, learning_rates=[0.1])
        >>> u.scalars()
        {'score': 2.3, 'lr/0': 0.1}
        """
        out: dict[str, float] = {}
        for name in ("score", "epoch", "examples_per_sec", "minibatches_per_sec"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.collect_seconds is not None:
            out["collect_seconds"] = self.collect_seconds
        for i, lr in enumerate(self.learning_rates):
            out[f"lr/{i}"] = lr
        for pname, ps in self.params.items():
            for key, value in vars(ps).items():
                if value is not None:
                    out[f"params/{pname}/{key}"] = value
        for lname, act in self.activations.items():
            for key, value in vars(act).items():
                if value is not None:
                    out[f"activations/{lname}/{key}"] = value
        for key, value in self.memory.items():
            out[f"memory/{key}"] = value
        for key, value in self.extra.items():
            out[f"extra/{key}"] = value
        return out


@dataclass
class EvalRecord:
    """Metrics computed on a whole held-out set at one iteration (``accuracy``, ...)."""

    session_id: str
    worker_id: str
    iteration: int
    timestamp: float
    metrics: dict[str, float] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """The metrics as series names ``eval/<metric>``."""
        return {f"eval/{k}": v for k, v in self.metrics.items()}


@dataclass
class Snapshot:
    """Vectors of chosen items at one iteration.

    ``kind`` is ``"word_vectors"`` (rows of a word2vec model for ``labels``) or
    ``"embedding"`` (a t-SNE embedding; ``labels`` may be empty). ``vectors`` is a list
    of rows; :meth:`array` returns it as a float array.
    """

    session_id: str
    worker_id: str
    iteration: int
    timestamp: float
    kind: str
    labels: list[str] = field(default_factory=list)
    vectors: list[list[float]] = field(default_factory=list)

    def array(self) -> np.ndarray:
        """The vectors as a ``(n, dim)`` float64 array."""
        return np.asarray(self.vectors, dtype=np.float64)


Record = StaticInfo | Update | EvalRecord | Snapshot

_TYPE_NAMES = {StaticInfo: "static", Update: "update", EvalRecord: "eval", Snapshot: "snapshot"}
_TYPES = {v: k for k, v in _TYPE_NAMES.items()}


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made Python (JSON) values, recursively."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value  # json.dumps says what it is


def _json_dict(d: dict) -> dict:
    """``d`` itself when its values are all plain scalars (the usual case, checked at C
    speed), else a converted copy."""
    if _SCALARS.issuperset(map(type, d.values())):
        return d
    return {k: _json(v) for k, v in d.items()}


def _json_list(values: Any) -> Any:
    if type(values) is list and _SCALARS.issuperset(map(type, values)):
        return values
    return _json(values)


def to_dict(record: Record) -> dict[str, Any]:
    """A record as a plain dict of JSON types, with its ``"type"``.

    numpy scalars and arrays in the record (an ``np.int64`` iteration, an ``np.float32``
    score, counts as an array) come out as Python numbers and lists, so
    :func:`json.dumps` takes the result. To encode records, :func:`to_json` is faster
    (it converts only what JSON cannot take, while it writes).

    Examples
    --------
    >>> to_dict(EvalRecord("s", "0", 5, 1.0, {"accuracy": 0.9}))["type"]
    'eval'
    >>> to_dict(EvalRecord("s", "0", np.int64(5), 1.0))["iteration"]
    5
    """
    out = _fields(record)
    for key, value in out.items():
        if isinstance(value, np.generic):
            out[key] = value.item()
    if out["type"] == "update":
        out["learning_rates"] = _json_list(record.learning_rates)
        out["params"] = {k: _json_dict(v) for k, v in out["params"].items()}
        out["activations"] = {k: _json_dict(v) for k, v in out["activations"].items()}
        out["histograms"] = {
            kind: {k: _histogram(h) for k, h in hists.items()}
            for kind, hists in record.histograms.items()
        }
        out["memory"] = _json_dict(record.memory)
        out["extra"] = _json_dict(record.extra)
    elif out["type"] == "static":
        for key in ("layers", "optimizer", "hardware", "software", "config"):
            out[key] = _json(out[key])
    elif out["type"] == "eval":
        out["metrics"] = _json_dict(record.metrics)
    else:
        out["labels"] = _json_list(record.labels)
        out["vectors"] = [_json_list(row) for row in out["vectors"]]
    return out


def to_json(record: Record) -> str:
    """A record as one line of JSON: ``json.dumps(to_dict(record))``, written without
    copying a record of plain values first (numpy values are converted as they come).

    Examples
    --------
    >>> to_json(EvalRecord("s", "0", np.int64(5), 1.0, {"acc": np.float32(0.5)}))[:35]
    '{"type": "eval", "session_id": "s",'
    """
    return json.dumps(_fields(record), default=_json_default)


def _json_default(value: Any) -> Any:
    """What :func:`json.dumps` cannot take itself: numpy scalars and arrays."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()  # a Python scalar for a numpy scalar
    raise TypeError(f"{type(value).__name__} {value!r:.60} is not JSON data")


def _fields(record: Record) -> dict[str, Any]:
    """The record's fields as dicts (nested records too), values as they are."""
    kind = _TYPE_NAMES.get(type(record))
    if kind is None:
        raise InputError(
            f"record: expected StaticInfo, Update, EvalRecord or Snapshot, got "
            f"{type(record).__name__}"
        )
    out: dict[str, Any] = {"type": kind}
    out.update(vars(record))
    if kind == "update":
        out["params"] = {k: vars(v) for k, v in record.params.items()}
        out["activations"] = {k: vars(v) for k, v in record.activations.items()}
        out["histograms"] = {
            kind_: {k: vars(h) for k, h in hists.items()}
            for kind_, hists in record.histograms.items()
        }
    elif kind == "static":
        out["layers"] = [vars(layer) for layer in record.layers]
    elif kind == "snapshot" and isinstance(record.vectors, np.ndarray):
        out["vectors"] = record.vectors.tolist()
    return out


def _histogram(h: Histogram) -> dict[str, Any]:
    counts = h.counts
    if type(counts) is list and type(h.lo) is float and type(h.hi) is float:
        if _INTS.issuperset(map(type, counts)):
            return vars(h)
    return {"lo": _json(h.lo), "hi": _json(h.hi), "counts": _json(counts)}


_INTS = frozenset({int})
