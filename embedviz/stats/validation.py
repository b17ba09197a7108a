"""Parsing untrusted input: :func:`record_from_dict` turns a plain dict (JSON from the
network, a row a storage reads back) into a record, checking every field with one
:class:`~embedviz.errors.InputError` that names it; it never instantiates anything named
in its input (the record type comes from a fixed table), which the remote receiver relies on.

The field checks it shares with :func:`check_record` live in
:mod:`embedviz.stats.record_checks`; :func:`check_name`, :func:`check_record`,
:func:`check_read_window` and :data:`TIMESTAMP_RANGE` are re-exported here.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from embedviz.errors import InputError
from embedviz.stats.limits import MAX_HISTOGRAM_BINS, MAX_JSON_DEPTH
from embedviz.stats.record_checks import (
    TIMESTAMP_RANGE,
    _common,
    _fail,
    _histogram_shape,
    _int64,
    _integer,
    _mapping,
    _no_surrogates,
    _number,
    _number_map,
    _snapshot_shape,
    _string,
    check_name,
    check_read_window,
    check_record,
)
from embedviz.stats.records import (
    HISTOGRAM_KINDS,
    ActivationStats,
    EvalRecord,
    Histogram,
    LayerInfo,
    ParamStats,
    Record,
    Snapshot,
    StaticInfo,
    Update,
)

__all__ = [
    "TIMESTAMP_RANGE",
    "check_name",
    "check_read_window",
    "check_record",
    "record_from_dict",
]


def _plain(where: str, value: Any, depth: int = 0) -> Any:
    """Free-form JSON data (config, hardware): only JSON types, bounded depth."""
    if depth > MAX_JSON_DEPTH:
        _fail(where, f"JSON nested at most {MAX_JSON_DEPTH} levels", "deeper")
    if isinstance(value, str):
        _no_surrogates(where, value)
    elif isinstance(value, int) and not isinstance(value, bool):
        _int64(where, value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_plain(f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {
            _string(f"{where} key", k): _plain(f"{where}.{k}", v, depth + 1)
            for k, v in value.items()
        }
    _fail(where, "JSON data", value)


def _check_keys(where: str, data: dict, cls: type, skip: tuple[str, ...] = ()) -> None:
    names = {f.name for f in fields(cls)}
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    unknown = set(data) - names - set(skip)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(names)}")
    missing = {n for n in required if n not in data}
    if missing:
        raise InputError(f"{where}: missing field(s) {sorted(missing)}")


def _stats(where: str, data: Any, cls: type) -> Any:
    _mapping(where, data)
    _check_keys(where, data, cls)
    for f in fields(cls):
        if f.name in data:
            _number(f"{where}.{f.name}", data[f.name], optional=True)
    return cls(**data)


def _histogram(where: str, data: Any) -> Histogram:
    _mapping(where, data)
    _check_keys(where, data, Histogram)
    _number(f"{where}.lo", data["lo"])
    _number(f"{where}.hi", data["hi"])
    counts = data["counts"]
    if not isinstance(counts, list) or not 1 <= len(counts) <= MAX_HISTOGRAM_BINS:
        _fail(f"{where}.counts", f"a list of 1 to {MAX_HISTOGRAM_BINS} integers", counts)
    for i, c in enumerate(counts):
        _integer(f"{where}.counts[{i}]", c)
    h = Histogram(data["lo"], data["hi"], list(counts))
    _histogram_shape(where, h)
    return h


def _update_from_dict(where: str, d: dict) -> Update:
    _common(where, d)
    for name in ("score", "examples_per_sec", "minibatches_per_sec", "collect_seconds"):
        _number(f"{where}.{name}", d.get(name), optional=True)
    _integer(f"{where}.epoch", d.get("epoch"), optional=True)
    lrs = d.get("learning_rates", [])
    if not isinstance(lrs, list):
        _fail(f"{where}.learning_rates", "a list of numbers", lrs)
    for i, lr in enumerate(lrs):
        _number(f"{where}.learning_rates[{i}]", lr)
    params = {
        k: _stats(f"{where}.params.{k}", v, ParamStats)
        for k, v in _mapping(f"{where}.params", d.get("params", {})).items()
    }
    acts = {
        k: _stats(f"{where}.activations.{k}", v, ActivationStats)
        for k, v in _mapping(f"{where}.activations", d.get("activations", {})).items()
    }
    hists: dict[str, dict[str, Histogram]] = {}
    for kind, group in _mapping(f"{where}.histograms", d.get("histograms", {})).items():
        if kind not in HISTOGRAM_KINDS:
            _fail(f"{where}.histograms", f"keys among {HISTOGRAM_KINDS}", kind)
        hists[kind] = {
            k: _histogram(f"{where}.histograms.{kind}.{k}", v)
            for k, v in _mapping(f"{where}.histograms.{kind}", group).items()
        }
    tags = _mapping(f"{where}.tags", d.get("tags", {}))
    for k, v in tags.items():
        _string(f"{where}.tags.{k}", v)
    return Update(
        session_id=d["session_id"],
        worker_id=d["worker_id"],
        iteration=d["iteration"],
        timestamp=d["timestamp"],
        score=d.get("score"),
        epoch=d.get("epoch"),
        examples_per_sec=d.get("examples_per_sec"),
        minibatches_per_sec=d.get("minibatches_per_sec"),
        learning_rates=list(lrs),
        params=params,
        activations=acts,
        histograms=hists,
        memory=_number_map(f"{where}.memory", d.get("memory", {})),
        extra=_number_map(f"{where}.extra", d.get("extra", {})),
        tags=dict(tags),
        collect_seconds=d.get("collect_seconds"),
    )


def _static_from_dict(where: str, d: dict) -> StaticInfo:
    _common(where, d, per_iteration=False)
    _string(f"{where}.kind", d.get("kind", "torch"))
    if d.get("model_class") is not None:
        _string(f"{where}.model_class", d["model_class"])
    _integer(f"{where}.n_params", d.get("n_params"), optional=True)
    layers_in = d.get("layers", [])
    if not isinstance(layers_in, list):
        _fail(f"{where}.layers", "a list", layers_in)
    layers = []
    for i, layer in enumerate(layers_in):
        w = f"{where}.layers[{i}]"
        _mapping(w, layer)
        _check_keys(w, layer, LayerInfo)
        _string(f"{w}.name", layer["name"])
        _string(f"{w}.type", layer["type"])
        _integer(f"{w}.n_params", layer["n_params"])
        shapes = _mapping(f"{w}.param_shapes", layer.get("param_shapes", {}))
        for k, shape in shapes.items():
            if not isinstance(shape, list):
                _fail(f"{w}.param_shapes.{k}", "a list of integers", shape)
            for s in shape:
                _integer(f"{w}.param_shapes.{k}", s)
        layers.append(LayerInfo(layer["name"], layer["type"], layer["n_params"], dict(shapes)))
    plain = {
        key: _plain(f"{where}.{key}", _mapping(f"{where}.{key}", d.get(key, {})))
        for key in ("optimizer", "hardware", "software", "config")
    }
    return StaticInfo(
        session_id=d["session_id"],
        worker_id=d["worker_id"],
        timestamp=d["timestamp"],
        kind=d.get("kind", "torch"),
        model_class=d.get("model_class"),
        n_params=d.get("n_params"),
        layers=layers,
        **plain,
    )


def _eval_from_dict(where: str, d: dict) -> EvalRecord:
    _common(where, d)
    metrics = _number_map(f"{where}.metrics", d.get("metrics", {}))
    return EvalRecord(d["session_id"], d["worker_id"], d["iteration"], d["timestamp"], metrics)


def _snapshot_from_dict(where: str, d: dict) -> Snapshot:
    _common(where, d)
    _string(f"{where}.kind", d.get("kind"))
    labels = d.get("labels", [])
    vectors = d.get("vectors", [])
    if not isinstance(labels, list):
        _fail(f"{where}.labels", "a list of strings", labels)
    for i, label in enumerate(labels):
        _string(f"{where}.labels[{i}]", label)
    if not isinstance(vectors, list):
        _fail(f"{where}.vectors", "a list of rows of numbers", vectors)
    for i, row in enumerate(vectors):
        if not isinstance(row, list):
            _fail(f"{where}.vectors[{i}]", "a list of numbers", row)
        for x in row:
            _number(f"{where}.vectors[{i}]", x)
    _snapshot_shape(where, labels, vectors)
    return Snapshot(
        d["session_id"], d["worker_id"], d["iteration"], d["timestamp"], d["kind"], labels, vectors
    )


_READERS = {
    "static": (StaticInfo, _static_from_dict),
    "update": (Update, _update_from_dict),
    "eval": (EvalRecord, _eval_from_dict),
    "snapshot": (Snapshot, _snapshot_from_dict),
}


def record_from_dict(data: Any, where: str = "record") -> Record:
    """Validate a plain dict and build the record it describes.

    Parameters
    ----------
    data : dict
        As written by :func:`to_dict`; ``data["type"]`` is one of ``"static"``,
        ``"update"``, ``"eval"``, ``"snapshot"``.
    where : str, default="record"
        Names the position in error messages (``"records[3]"``).

    Raises
    ------
    InputError
        Naming the field, what is allowed and the value given.

    Examples
    --------
    >>> r = record_from_dict({"type": "eval", "session_id": "s", "worker_id": "0",
    ...                       "iteration": 3, "timestamp": 1.0, "metrics": {"acc": 0.5}})
    >>> r.metrics["acc"]
    0.5
    """
    _mapping(where, data)
    kind = data.get("type")
    if kind not in _READERS:
        _fail(f"{where}.type", f"one of {sorted(_READERS)}", kind)
    cls, reader = _READERS[kind]
    body = {k: v for k, v in data.items() if k != "type"}
    _check_keys(where, body, cls)
    return reader(where, body)
