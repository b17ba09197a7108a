"""Records built with numpy numbers (review 7, should-fix 6): every storage takes them,
as the rest of the package takes numpy integers, and they encode to the same JSON as
the record built with Python numbers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.records import (
    ActivationStats,
    EvalRecord,
    Histogram,
    LayerInfo,
    ParamStats,
    Snapshot,
    StaticInfo,
    Update,
    to_dict,
    to_json,
)
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.stats.validation import check_record, record_from_dict


def _records(num):
    """The same four records, their numbers made by ``num`` (numpy's or Python's)."""
    i, f = num["int"], num["float"]
    counts = num["counts"]([3, 0, 5])
    update = Update(
        "run",
        "0",
        i(3),
        f(1000.5),
        score=f(0.25),
        epoch=i(1),
        examples_per_sec=f(12.5),
        learning_rates=[f(0.125)],
        params={"fc.weight": ParamStats(f(0.5), f(0.25), f(0.75), grad_mean=f(-0.5))},
        activations={"fc": ActivationStats(f(0.5), f(2.0), f(0.0))},
        histograms={"params": {"fc.weight": Histogram(f(-1.0), f(1.0), counts)}},
        memory={"rss_bytes": i(2**30)},
        extra={"kl": f(1.5)},
        tags={"phase": "lying"},
    )
    evaluation = EvalRecord("run", "0", i(4), f(1001.0), {"accuracy": f(0.875)})
    snapshot = Snapshot(
        "run", "0", i(5), f(1002.0), "embedding", ["a", "b"], num["rows"]([[0.5, 1.0], [2.0, -1.0]])
    )
    static = StaticInfo(
        "run",
        "0",
        f(999.0),
        n_params=i(10),
        layers=[LayerInfo("fc", "Linear", i(10), {"weight": [i(2), i(5)]})],
        config={"batch_size": i(32), "lr": f(0.125), "sizes": num["rows"]([1.0, 2.0])},
    )
    return [static, update, evaluation, snapshot]


PYTHON = {"int": int, "float": float, "counts": list, "rows": lambda rows: rows}
NUMPY = {
    "int": np.int64,
    "float": np.float32,  # not a float subclass, unlike np.float64
    "counts": lambda c: np.asarray(c, dtype=np.int64),
    "rows": lambda rows: np.asarray(rows, dtype=np.float32),
}
MIXED = {"int": np.int32, "float": np.float64, "counts": lambda c: [np.uint8(x) for x in c]}
MIXED["rows"] = lambda rows: np.asarray(rows, dtype=np.float64)


@pytest.mark.parametrize("num", [NUMPY, MIXED], ids=["numpy", "mixed"])
def test_to_dict_and_to_json_give_the_json_of_python_numbers(num):
    # the values are exact in float32, so both spell the same JSON
    for record, reference in zip(_records(num), _records(PYTHON), strict=True):
        expected = json.loads(json.dumps(to_dict(reference)))
        assert json.loads(json.dumps(to_dict(record))) == expected
        assert json.loads(to_json(record)) == expected
        assert json.loads(to_json(reference)) == expected
        # and the receiver's reading of that JSON gives the Python-number record back
        assert record_from_dict(json.loads(to_json(record))) == reference


def test_to_dict_of_plain_records_is_unchanged():
    for record in _records(PYTHON):
        assert to_json(record) == json.dumps(to_dict(record))


def _storages(tmp_path):
    return [InMemoryStatsStorage(), SQLiteStatsStorage(tmp_path / "runs.db")]


@pytest.mark.parametrize("num", [NUMPY, MIXED], ids=["numpy", "mixed"])
def test_every_storage_takes_numpy_numbers_and_stores_python_ints(tmp_path, num):
    reference = _records(PYTHON)
    for storage in _storages(tmp_path):
        with storage:
            storage.put_many(_records(num))
            storage.flush()
            static = storage.get_static_info("run", "0")
            (update,) = storage.get_updates("run")
            (evaluation,) = storage.get_evals("run")
            (snapshot,) = storage.get_snapshots("run")
            for got in (update, evaluation, snapshot):
                assert type(got.iteration) is int and type(got.timestamp) is float
            assert [update.iteration, evaluation.iteration, snapshot.iteration] == [3, 4, 5]
            assert json.loads(to_json(update)) == json.loads(to_json(reference[1]))
            assert evaluation == reference[2]
            assert type(evaluation.metrics["accuracy"]) is float
            assert np.array_equal(snapshot.array(), reference[3].array())
            assert json.loads(to_json(static)) == json.loads(to_json(reference[0]))
        tmp_path = tmp_path / "x"
        tmp_path.mkdir()


def test_check_record_sets_python_numbers_in_place():
    record = EvalRecord("run", "0", np.uint16(7), np.float32(5.5), {"acc": np.float32(0.5)})
    check_record(record)
    assert (record.iteration, record.timestamp, record.metrics) == (7, 5.5, {"acc": 0.5})
    assert type(record.iteration) is int and type(record.timestamp) is float
    assert type(record.metrics["acc"]) is float


@pytest.mark.parametrize(
    "iteration, got",
    [
        (True, "True"),
        (np.bool_(True), "np.True_"),
        (3.0, "3.0"),
        (np.float64(3.0), "np.float64(3.0)"),
        ("3", "'3'"),
    ],
)
def test_what_is_no_integer_is_still_refused(iteration, got):
    with pytest.raises(
        InputError, match=rf"\.iteration: expected an integer, got {re.escape(got)}$"
    ):
        check_record(Update("run", "0", iteration, 1.0))


def test_numpy_integers_keep_the_range_rules():
    with pytest.raises(
        InputError, match=r"iteration: expected an integer >= 0, got np.int64\(-1\)"
    ):
        check_record(Update("run", "0", np.int64(-1), 1.0))
    with pytest.raises(InputError, match=r"iteration: expected an integer within signed 64 bits"):
        check_record(Update("run", "0", np.uint64(2**64 - 1), 1.0))
    with pytest.raises(InputError, match="timestamp: expected Unix seconds"):
        check_record(Update("run", "0", 1, np.float32("nan")))
