"""Storages (issue 4 §5): round trips, bounds, downsampling, SQLite files and processes."""

import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from embedviz.errors import FileFormatError, InputError
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
)
from embedviz.stats.sqlite_storage import StatsWriteError
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.stats.validation import record_from_dict


def make_update(i, worker="0", session="run", n_params=3, score=None, hist=False):
    params = {
        f"layer{k}.weight": ParamStats(
            param_mean=0.1 * k,
            param_std=1.0 + k,
            param_mean_magnitude=0.5 + i,
            grad_mean=-0.01,
            grad_std=0.2,
            grad_mean_magnitude=0.1,
            update_mean=1e-4,
            update_std=1e-3,
            update_mean_magnitude=1e-3 * (i + 1),
            update_param_ratio=1e-3 * (i + 1) / (0.5 + i),
        )
        for k in range(n_params)
    }
    return Update(
        session,
        worker,
        i,
        1000.0 + i,
        score=float(100 - i) if score is None else score,
        epoch=i // 10,
        examples_per_sec=500.0,
        learning_rates=[0.1, 0.01],
        params=params,
        activations={"layer0": ActivationStats(0.1, 0.9, 0.25)},
        histograms={"params": {"layer0.weight": Histogram(-1.0, 1.0, [1, 5, 2])}} if hist else {},
        memory={"rss_bytes": 123456789.0},
        extra={"kl": 1.5},
        tags={"phase": "main"},
        collect_seconds=0.001,
    )


def test_round_trip_every_record_type(storage):
    static = StaticInfo(
        "run", "0", 1.0, model_class="MLP", n_params=30,
        layers=[LayerInfo("0", "Linear", 30, {"weight": [5, 5], "bias": [5]})],
        optimizer={"class": "SGD", "param_groups": [{"lr": 0.1}]}, config={"n_classes": 10},
    )  # fmt: skip
    updates = [make_update(i, hist=i % 5 == 0) for i in range(20)]
    storage.put(static)
    storage.put_many(updates)
    storage.put(EvalRecord("run", "0", 10, 5.0, {"accuracy": 0.75, "loss": 0.3}))
    storage.put(Snapshot("run", "0", 10, 5.0, "word_vectors", ["a", "b"], [[1.0, 2.0], [3, 4]]))
    assert storage.list_sessions() == ["run"]
    assert storage.list_workers("run") == ["0"]
    assert storage.list_workers("nope") == []
    assert storage.get_static_info("run", "0") == static
    assert storage.get_static_info("run", "9") is None
    assert storage.get_updates("run") == updates
    assert storage.get_updates("run", "0", after_iteration=15) == updates[16:]
    assert storage.get_updates("run", last=3) == updates[-3:]
    assert storage.get_latest_update("run", "0") == updates[-1]
    assert storage.count_updates("run") == 20
    evals = storage.get_evals("run")
    assert evals[0].metrics == {"accuracy": 0.75, "loss": 0.3}
    snap = storage.get_snapshots("run", kind="word_vectors")[0]
    np.testing.assert_array_equal(snap.array(), [[1, 2], [3, 4]])
    hists = storage.get_histograms("run", "0", "params", "layer0.weight")
    assert [it for it, _ in hists] == [0, 5, 10, 15]
    assert hists[0][1].counts == [1, 5, 2]
    names = storage.list_series("run", "0")
    assert {"score", "lr/1", "params/layer2.weight/update_param_ratio", "eval/accuracy"} <= set(
        names
    )
    s = storage.get_series("run", "0", "params/layer1.weight/update_param_ratio")
    np.testing.assert_array_equal(s.iterations, np.arange(20))
    expected = [u.params["layer1.weight"].update_param_ratio for u in updates]
    np.testing.assert_allclose(s.values, expected)
    assert storage.get_series("run", "0", "eval/loss").values.tolist() == [0.3]
    with pytest.raises(InputError, match="series name"):
        storage.get_series("run", "0", "bogus/x")


def test_nan_and_inf_survive(storage):
    scores = [1.0, math.nan, math.inf, -math.inf, 2.0]
    storage.put_many([make_update(i, score=v) for i, v in enumerate(scores)])
    got = storage.get_series("run", "0", "score").values
    np.testing.assert_array_equal(got, scores)


def test_workers_interleave_sorted_by_iteration(storage):
    for i in range(5):
        storage.put(make_update(i, worker="b"))
        storage.put(make_update(i, worker="a"))
    got = [(u.iteration, u.worker_id) for u in storage.get_updates("run")]
    assert got == [(i, w) for i in range(5) for w in ("b", "a")]
    assert storage.list_workers("run") == ["b", "a"]


def test_listener_told_after_record_is_readable(storage):
    seen = []

    def on_event(event):
        seen.append((event, storage.count_updates(event.session_id, event.worker_id)))

    storage.register_listener(on_event)
    storage.put(make_update(7))
    storage.flush()
    assert seen and seen[0][0].kind == "update" and seen[0][0].iteration == 7
    assert seen[0][1] == 1


def test_in_memory_is_bounded_and_keeps_spikes():
    storage = InMemoryStatsStorage(max_updates=100)
    spike_at = 37
    for i in range(5000):
        storage.put(Update("run", "0", i, float(i), score=50.0 if i == spike_at else 1.0))
    kept = storage.get_updates("run")
    assert len(kept) <= 100
    assert spike_at in [u.iteration for u in kept]
    assert kept[-1].iteration == 4999
    assert [u.iteration for u in kept] == sorted(u.iteration for u in kept)


def _held_while(storage, records) -> int:
    """Bytes tracemalloc sees held after putting ``records`` (made inside the trace)."""
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for record in records:
            storage.put(record)
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def test_in_memory_memory_is_bounded_in_bytes_across_workers():
    """Histograms make updates large: the byte budget, not the count, binds. Measured
    with tracemalloc, the storage's memory stays within its budget however many updates
    of however many workers arrive, and its estimate is not below the truth; every
    worker keeps its newest updates."""
    budget = 2**20

    def hists(i):  # 30 histograms of 30 counts, the counts int objects of their own
        return {
            "params": {
                f"t{k}": Histogram(-1.0, 1.0, [i + 1000 + j for j in range(30)]) for k in range(20)
            },
            "grads": {f"t{k}": Histogram(-1.0, 1.0, [i + 2000] * 30) for k in range(10)},
        }

    storage = InMemoryStatsStorage(max_bytes=budget)
    held = _held_while(
        storage,
        (
            Update("run", worker, i, float(i), score=1.0, histograms=hists(i))
            for i in range(300)
            for worker in ("0", "1", "2")
        ),
    )
    assert held <= storage._total_bytes <= budget  # the estimate is not below the truth
    size = storage._bytes[("updates", "run", "0")] / len(storage.get_updates("run", "0"))
    for worker in ("0", "1", "2"):
        kept = [u.iteration for u in storage.get_updates("run", worker)]
        assert kept[-1] == 299 and budget / 3 / size / 2 < len(kept) < 300


def test_in_memory_estimate_is_not_below_the_truth_without_histograms():
    """Updates of many ParamStats and ActivationStats (long names, no histograms) and
    snapshots with labels: what tracemalloc sees held stays within the estimate, so
    within max_bytes (the old estimate of 40 bytes a number was 1.3 to 2.2 times low)."""
    rng = np.random.default_rng(0)
    budget = 2**20

    def update(i, worker):
        values = rng.random((50, 10)).tolist()
        params = {f"encoder.layer{k}.attention.weight": ParamStats(*values[k]) for k in range(50)}
        acts = {f"encoder.layer{k}.output": ActivationStats(*values[k][:3]) for k in range(15)}
        return Update("run", worker, i, float(i), score=1.0, params=params, activations=acts)

    storage = InMemoryStatsStorage(max_bytes=budget)
    held = _held_while(storage, (update(i, w) for i in range(40) for w in ("0", "1")))
    assert held <= storage._total_bytes <= budget
    assert 5 <= len(storage.get_updates("run", "0")) < 40  # the bytes bound, not the count

    def snapshot(i, worker):
        labels = [f"wörd-{k}-{i}" for k in range(500)]
        return Snapshot("run", worker, i, float(i), "emb", labels, rng.random((500, 2)).tolist())

    storage = InMemoryStatsStorage(max_bytes=2 * budget)
    held = _held_while(storage, (snapshot(i, w) for i in range(25) for w in ("0", "1")))
    assert held <= storage._total_bytes <= 2 * budget
    kept = len(storage.get_snapshots("run", "0"))
    fits = budget / (storage._bytes[("snapshots", "run", "0")] / kept)  # a worker's half
    # the bytes bound binds (~8 fit a worker); a thinning halves a worker's snapshots
    assert fits / 3 <= kept < min(fits, 25)


def test_in_memory_refuses_a_record_beyond_an_eighth_of_max_bytes():
    """The storage keeps ~7 records of each kind per worker whatever their size, so a
    record larger than max_bytes / 8 would make the bound meaningless: it is refused."""
    storage = InMemoryStatsStorage(max_bytes=4 * 2**20)
    labels = [f"w{k}" for k in range(2000)]
    big = Snapshot("run", "0", 1, 1.0, "emb", labels, np.zeros((2000, 50)).tolist())
    with pytest.raises(
        InputError,
        match=r"record \(session 'run', worker '0', iteration 1\): a Snapshot estimated at "
        r"[\d,]+ bytes, more than max_bytes / 8 \(524,288\)",
    ):
        storage.put_many([Update("run", "0", 1, 1.0), big])
    assert storage.list_sessions() == []  # nothing of the batch
    small = Snapshot("run", "0", 1, 1.0, "emb", labels[:100], np.zeros((100, 50)).tolist())
    for i in range(20):
        storage.put(Snapshot(**{**vars(small), "iteration": i}))
    assert storage._total_bytes <= storage.max_bytes


def test_in_memory_refuses_a_worker_beyond_max_workers():
    storage = InMemoryStatsStorage(max_workers=8)
    for k in range(8):
        storage.put(Update(f"run-{k}", "0", 1, 1.0))
    storage.put(Update("run-3", "0", 2, 2.0))  # a known worker is fine
    with pytest.raises(InputError, match=r"holds 8 session workers \(max_workers=8\)"):
        storage.put_many([Update("run-3", "0", 3, 3.0), Update("run-9", "0", 1, 1.0)])
    assert len(storage.list_sessions()) == 8
    assert [u.iteration for u in storage.get_updates("run-3")] == [1, 2]  # nothing of it


def test_series_downsampled_keeps_spike_and_newest(storage):
    storage.put_many([Update("run", "0", i, float(i), score=1.0) for i in range(2000)])
    storage.put(Update("run", "0", 2000, 2000.0, score=1.0))
    storage.put(Update("run", "0", 2001, 2001.0, score=1.0))
    # a spike placed between others
    storage.put(Update("run", "0", 999, 999.5, score=1e6))
    s = storage.get_series("run", "0", "score", max_points=50)
    assert len(s) <= 3 * 25 + 1
    assert 1e6 in s.values
    assert s.iterations[-1] == 2001


def test_record_validation_names_the_field():
    good = to_dict(make_update(3, hist=True))
    assert record_from_dict(good) == make_update(3, hist=True)
    bad = dict(good, score="high")
    with pytest.raises(InputError, match=r"records\[2\]\.score: expected a number"):
        record_from_dict(bad, where="records[2]")
    with pytest.raises(InputError, match="type: expected one of"):
        record_from_dict(dict(good, type="os.system"))
    with pytest.raises(InputError, match="unknown field"):
        record_from_dict(dict(good, __class__="x"))
    hist_bad = to_dict(make_update(3, hist=True))
    hist_bad["histograms"]["params"]["layer0.weight"]["counts"] = [1, "2"]
    with pytest.raises(InputError, match="counts"):
        record_from_dict(hist_bad)


def _with(d, path, value):
    """A deep copy of ``d`` with ``value`` at ``path`` (a list of keys)."""
    d = json.loads(json.dumps(d))
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (["iteration"], r"records\[1\]\.iteration"),
        (["score"], r"records\[1\]\.score"),
        (["epoch"], r"records\[1\]\.epoch"),
        (["memory", "rss_bytes"], r"records\[1\]\.memory\.rss_bytes"),
        (["histograms", "params", "layer0.weight", "counts", 1], r"counts\[1\]"),
        (["params", "layer0.weight", "grad_std"], r"params\.layer0\.weight\.grad_std"),
    ],
)
@pytest.mark.parametrize("big", [2**63, -(2**63) - 1, 10**400])
def test_record_validation_refuses_integers_beyond_64_bits(path, field, big):
    good = to_dict(make_update(3, hist=True))
    assert record_from_dict(_with(good, path, 2**63 - 1), where="records[1]") is not None
    if path[0] not in ("iteration", "histograms"):  # those two are >= 0 (tested below)
        assert record_from_dict(_with(good, path, -(2**63)), where="records[1]") is not None
    with pytest.raises(InputError, match=field + r": expected an integer within signed 64 bits"):
        record_from_dict(_with(good, path, big), where="records[1]")


def test_record_validation_refuses_big_integers_in_free_form_data():
    static = to_dict(StaticInfo("run", "0", 1.0, config={"seed": 1}))
    assert record_from_dict(static).config == {"seed": 1}
    with pytest.raises(InputError, match=r"record\.config\.seed: expected an integer within"):
        record_from_dict(_with(static, ["config", "seed"], 2**64))


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (["session_id"], r"record\.session_id"),
        (["worker_id"], r"record\.worker_id"),
        (["tags", "phase"], r"record\.tags\.phase"),
    ],
)
def test_record_validation_refuses_lone_surrogates(path, field):
    good = to_dict(make_update(3))
    bad = _with(good, path, "ok\ud800")
    with pytest.raises(InputError, match=field + r": expected valid Unicode text.*'\\ud800'"):
        record_from_dict(bad)
    # a surrogate pair written as two escapes is one valid character
    assert record_from_dict(json.loads(json.dumps(good).replace('"main"', '"\\ud83d\\ude00"')))


def test_record_validation_refuses_lone_surrogates_in_keys_and_free_form_data():
    good = to_dict(make_update(3))
    good["params"]["bad\udc00"] = good["params"].pop("layer0.weight")
    with pytest.raises(InputError, match=r"record\.params key: expected valid Unicode text"):
        record_from_dict(good)
    static = to_dict(StaticInfo("run", "0", 1.0, hardware={"cpu": "x"}))
    with pytest.raises(InputError, match=r"record\.hardware\.cpu: expected valid Unicode"):
        record_from_dict(_with(static, ["hardware", "cpu"], "\udfff"))


# -- SQLite specifics ---------------------------------------------------------------


def test_sqlite_reopen_shows_everything(tmp_path):
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        s.put_many([make_update(i) for i in range(50)])
    reopened = SQLiteStatsStorage(path, read_only=True)
    assert reopened.get_updates("run") == [make_update(i) for i in range(50)]
    with pytest.raises(InputError, match="read_only"):
        reopened.put(make_update(51))
    reopened.close()


def test_sqlite_reader_sees_writes_from_another_connection(tmp_path):
    path = tmp_path / "runs.db"
    writer = SQLiteStatsStorage(path, flush_interval=0.05)
    reader = SQLiteStatsStorage(path, read_only=True)
    writer.put(make_update(0))
    writer.flush()
    assert [e.iteration for e in reader.poll()] == [0]
    writer.put(make_update(1))
    deadline = time.time() + 2
    while reader.count_updates("run") < 2 and time.time() < deadline:  # the timer flushes
        time.sleep(0.02)
    assert reader.count_updates("run") == 2
    assert [e.iteration for e in reader.poll()] == [1]
    writer.close()
    reader.close()


def test_sqlite_put_never_writes_in_the_callers_thread(tmp_path, monkeypatch):
    """Full batches and waiting records are written by the storage's writer thread, so a
    training loop never waits for the disk; a failed write loses nothing."""
    writers = []
    original = SQLiteStatsStorage._write

    def spy(self, records):
        writers.append(threading.get_ident())
        if len(writers) == 1:
            raise sqlite3.OperationalError("disk I/O error (planted)")
        return original(self, records)

    monkeypatch.setattr(SQLiteStatsStorage, "_write", spy)
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, batch_size=4, flush_interval=0.05)
    reader = SQLiteStatsStorage(path, read_only=True)
    storage.put_many([make_update(i) for i in range(10)])  # more than two batches
    storage.put(make_update(10))
    deadline = time.time() + 5
    while reader.count_updates("run") < 11 and time.time() < deadline:
        time.sleep(0.02)
    assert reader.count_updates("run") == 11  # the failed batch was written on a retry
    assert len(writers) >= 2 and threading.get_ident() not in writers
    storage.close()
    assert not storage._thread.is_alive()
    assert [u.iteration for u in reader.get_updates("run")] == list(range(11))
    reader.close()


def test_sqlite_records_buffered_at_exit_are_written(tmp_path):
    """A script that never closes its storage still leaves every record in the file."""
    path = tmp_path / "runs.db"
    code = (
        "from embedviz.stats.storage import SQLiteStatsStorage\n"
        "from embedviz.stats.records import Update\n"
        f"s = SQLiteStatsStorage({str(path)!r}, flush_interval=60)\n"
        "s.put_many([Update('run', '0', i, 0.0, score=1.0) for i in range(7)])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    reader = SQLiteStatsStorage(path, read_only=True)
    assert reader.count_updates("run") == 7
    reader.close()


def test_sqlite_rejects_foreign_corrupt_and_newer_files(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("hello, not a database")
    with pytest.raises(FileFormatError, match="not SQLite"):
        SQLiteStatsStorage(text)
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE customers(id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(FileFormatError, match="another program"):
        SQLiteStatsStorage(foreign)
    newer = tmp_path / "newer.db"
    SQLiteStatsStorage(newer).close()
    con = sqlite3.connect(newer)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(FileFormatError, match="schema version 99.*upgrade"):
        SQLiteStatsStorage(newer)
    damaged = tmp_path / "damaged.db"
    with SQLiteStatsStorage(damaged) as s:
        s.put_many([make_update(i) for i in range(200)])
    raw = bytearray(damaged.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # wreck the schema page
    damaged.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="damaged"):
        SQLiteStatsStorage(damaged)
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(FileFormatError, match="empty SQLite file"):
        SQLiteStatsStorage(empty, read_only=True)
    SQLiteStatsStorage(empty).close()  # writable: becomes a statistics file
    SQLiteStatsStorage(empty, read_only=True).close()
    with pytest.raises(FileFormatError, match="no such statistics file"):
        SQLiteStatsStorage(tmp_path / "missing.db", read_only=True)


def _write_worker(path, worker, n):
    storage = SQLiteStatsStorage(path, batch_size=64)
    for i in range(n):
        storage.put(make_update(i, worker=str(worker), n_params=5))
    storage.close()


def test_sqlite_four_processes_lose_no_row(tmp_path):
    path = str(tmp_path / "runs.db")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_worker, args=(path, w, 1000)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = SQLiteStatsStorage(path, read_only=True)
    assert sorted(s.list_workers("run")) == ["0", "1", "2", "3"]
    assert s.count_updates("run") == 4000
    for w in range(4):
        its = [u.iteration for u in s.get_updates("run", str(w))]
        assert its == list(range(1000))
    s.close()


def test_series_many_equals_one_by_one_across_layouts(storage):
    for i in range(30):
        u = make_update(i, n_params=2)
        if i % 3 == 0:  # a different layout: no update statistics on these
            for stats in u.params.values():
                stats.update_mean = stats.update_std = stats.update_mean_magnitude = None
                stats.update_param_ratio = None
        storage.put(u)
        if i % 10 == 0:
            storage.put(EvalRecord("run", "0", i, float(i), {"accuracy": i / 30}))
    names = ["score", "params/layer1.weight/update_param_ratio", "params/layer0.weight/param_std",
             "eval/accuracy", "extra/kl", "extra/missing"]  # fmt: skip
    many = storage.get_series_many("run", "0", names, max_points=10)
    for name in names:
        one = storage.get_series("run", "0", name, max_points=10)
        for a, b in zip(many[name], one, strict=True):
            np.testing.assert_array_equal(a, b)
    full = storage.get_series_many("run", "0", names)
    ratio = full["params/layer1.weight/update_param_ratio"]
    assert ratio.iterations.tolist() == [i for i in range(30) if i % 3]
    assert full["score"].iterations.tolist() == list(range(30))
    assert len(full["extra/missing"]) == 0
    every = storage.list_series("run", "0")  # more than 8 names: the whole-row path
    assert len(every) > 8
    many = storage.get_series_many("run", "0", every, max_points=12)
    for name in every:
        one = storage.get_series("run", "0", name, max_points=12)
        for a, b in zip(many[name], one, strict=True):
            np.testing.assert_array_equal(a, b)
    # a limit per name, in one pass: the few-columns path and the whole-row path
    for chosen in (names, every):
        limits = {n: (None if k % 3 == 0 else 4 + k % 5) for k, n in enumerate(chosen)}
        many = storage.get_series_many("run", "0", chosen, max_points=limits)
        for name in chosen:
            one = storage.get_series("run", "0", name, max_points=limits[name])
            for a, b in zip(many[name], one, strict=True):
                np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="max_points"):
        storage.get_series_many("run", "0", ["score"], max_points={"score": 1})


@pytest.mark.parametrize("two_layouts", [False, True])
def test_sqlite_series_in_chunks_equal_in_memory_series(tmp_path, monkeypatch, two_layouts):
    """The chunked, streaming SQLite read against the in-memory storage, which keeps
    whole series and downsamples them with downsample_minmax: one or two layouts, NaN
    and inf, ties, chunks much smaller than a bucket and much larger."""
    rng = np.random.default_rng(3)
    memory, sqlite = InMemoryStatsStorage(), SQLiteStatsStorage(tmp_path / "runs.db")
    for i in range(700):
        u = make_update(i, n_params=3, score=float(rng.integers(0, 3)))
        ratio = [rng.normal(), np.nan, np.inf, -np.inf][rng.choice(4, p=[0.85, 0.07, 0.04, 0.04])]
        u.params["layer2.weight"].update_param_ratio = float(ratio)
        if two_layouts and i % 7 == 0:  # another layout: these updates hold no update statistics
            for stats in u.params.values():
                stats.update_mean = stats.update_std = stats.update_mean_magnitude = None
                stats.update_param_ratio = None
        memory.put(u)
        sqlite.put(u)
    names = sqlite.list_series("run", "0")
    assert names == memory.list_series("run", "0")  # the same names, in the same order
    assert len(names) > 8 and "params/layer2.weight/update_param_ratio" in names
    few = ["score", "params/layer2.weight/update_param_ratio"]
    for chunk in (5, 64, 4096):
        monkeypatch.setattr(SQLiteStatsStorage, "_READ_CHUNK", chunk)
        for max_points in (None, 10, 101, 650):
            for wanted in (names, few):
                got = sqlite.get_series_many("run", "0", wanted, max_points=max_points)
                for name in wanted:
                    expected = memory.get_series("run", "0", name, max_points=max_points)
                    for a, b in zip(got[name], expected, strict=True):
                        np.testing.assert_array_equal(a, b)
    memory.close()
    sqlite.close()


def test_sqlite_series_of_every_worker_equal_in_memory_series(tmp_path, monkeypatch):
    """worker_id=None merges the workers by iteration, then downsamples once."""
    monkeypatch.setattr(SQLiteStatsStorage, "_READ_CHUNK", 16)
    rng = np.random.default_rng(5)
    memory, sqlite = InMemoryStatsStorage(), SQLiteStatsStorage(tmp_path / "runs.db")
    for i in range(300):
        for w in ("0", "1"):
            u = make_update(i if w == "0" else 2 * i + 1, worker=w, score=float(rng.normal()))
            memory.put(u)
            sqlite.put(u)
    names = ["score", "params/layer1.weight/update_param_ratio"]
    for max_points in (None, 40):
        got = sqlite.get_series_many("run", None, names, max_points=max_points)
        for name in names:
            expected = memory.get_series("run", None, name, max_points=max_points)
            assert len(expected) == 600 if max_points is None else len(expected) <= 3 * 20 + 1
            for a, b in zip(got[name], expected, strict=True):
                np.testing.assert_array_equal(a, b)
    memory.close()
    sqlite.close()


def test_sqlite_limit_per_series_with_one_layout(tmp_path):
    """One layout and a few names: SQLite cuts the columns out; limits still per name."""
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        s.put_many([make_update(i, n_params=2) for i in range(200)])
    reader = SQLiteStatsStorage(path, read_only=True)
    names = ["score", "params/layer0.weight/param_std", "params/layer1.weight/param_std"]
    limits = {"score": None, "params/layer0.weight/param_std": 10}  # the third: every point
    many = reader.get_series_many("run", "0", names, max_points=limits)
    assert len(many["score"]) == 200 and len(many["params/layer1.weight/param_std"]) == 200
    for name in names:
        one = reader.get_series("run", "0", name, max_points=limits.get(name))
        for a, b in zip(many[name], one, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(many["params/layer0.weight/param_std"]) <= 10
    reader.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sqlite_forked_child_does_not_write_its_parents_buffer_at_exit(tmp_path):
    """A child forked while records wait (a DataLoader worker, say) must not write the
    copy of them it inherited: the parent writes them, once."""
    path = tmp_path / "runs.db"
    code = "\n".join([
        "import os, sys",
        "from embedviz.stats.storage import SQLiteStatsStorage",
        "from embedviz.stats.records import Update",
        f"s = SQLiteStatsStorage({str(path)!r}, flush_interval=60)",
        "s.put_many([Update('run', '0', i, 0.0, score=1.0) for i in range(5)])",
        "pid = os.fork()",
        "if pid == 0:",
        "    sys.exit(0)  # a normal exit: atexit handlers run in the child",
        "os.waitpid(pid, 0)",
        "s.close()",
    ])  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    reader = SQLiteStatsStorage(path, read_only=True)
    assert reader.count_updates("run") == 5
    reader.close()


def _histograms(i):
    """Several kinds, names and bin counts, different at every iteration."""
    return {
        "params": {
            "a.weight": Histogram(-1.0 - i, 1.0, [i, 2, 3]),
            "a.bias": Histogram(0.0, 0.5, [4, i, 6, 7, 8]),
        },
        "grads": {"a.weight": Histogram(-i - 0.5, 2.0, [9, 10 + i])},
        "activations": {"a": Histogram(0.0, 3.0 + i, [1] * 4 + [i])},
    }


def test_histograms_of_many_kinds_and_names_round_trip(storage):
    updates = [
        Update("h", "0", i, float(i), score=1.0, histograms=_histograms(i)) for i in range(6)
    ]
    storage.put_many(updates)
    assert [u.histograms for u in storage.get_updates("h")] == [_histograms(i) for i in range(6)]
    assert storage.get_updates("h", last=2)[0].histograms == _histograms(4)
    for kind, group in _histograms(0).items():
        for name in group:
            got = storage.get_histograms("h", "0", kind, name)
            assert got == [(i, _histograms(i)[kind][name]) for i in range(6)], (kind, name)
    assert storage.get_histograms("h", "0", "updates", "a.weight") == []
    _assert_arrays_match(storage, "h", [*_items(), ("updates", "a.weight")])
    with pytest.raises(InputError, match="kind: expected one of .*'weights'"):
        storage.get_histogram_arrays("h", "0", [("params", "a.bias"), ("weights", "a")])


def _items():
    return [(kind, name) for kind, group in _histograms(0).items() for name in group]


def _assert_arrays_match(storage, session, items):
    """get_histogram_arrays holds what get_histograms returns, for every item at once."""
    arrays = storage.get_histogram_arrays(session, "0", items)
    assert list(arrays) == items
    for item in items:
        pairs = storage.get_histograms(session, "0", *item)
        got = arrays[item]
        assert got.iterations.tolist() == [it for it, _ in pairs], item
        assert got.lo.tolist() == [h.lo for _, h in pairs]
        assert got.hi.tolist() == [h.hi for _, h in pairs]
        assert got.counts.tolist() == [h.counts for _, h in pairs]
        assert got.counts.shape == (len(pairs), len(pairs[0][1].counts) if pairs else 0)


def _downgrade_to_version_1(path):
    """Rewrite a file in the version 1 layout: one `histograms` row per histogram."""
    with SQLiteStatsStorage(path, read_only=True) as reader:
        rows = [
            (u.iteration, kind, name, h.lo, h.hi, np.asarray(h.counts, "<i8").tobytes())
            for session in reader.list_sessions()
            for u in reader.get_updates(session)
            for kind, group in u.histograms.items()
            for name, h in group.items()
        ]
    con = sqlite3.connect(path)
    con.executemany(
        "INSERT INTO histograms(wid, iteration, kind, name, lo, hi, counts) "
        "VALUES (1, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    con.executescript(
        "DROP TABLE histogram_sets; DROP TABLE histogram_layouts;"
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    con.commit()
    con.close()


def test_version_1_file_is_read_and_upgraded_when_written_to(tmp_path):
    path = tmp_path / "v1.db"
    with SQLiteStatsStorage(path) as s:
        s.put_many(
            Update("h", "0", i, float(i), score=1.0, histograms=_histograms(i)) for i in range(3)
        )
    _downgrade_to_version_1(path)
    with SQLiteStatsStorage(path, read_only=True) as reader:  # read as it is
        assert [u.histograms for u in reader.get_updates("h")] == [_histograms(i) for i in range(3)]
        assert reader.get_histograms("h", "0", "grads", "a.weight") == [
            (i, _histograms(i)["grads"]["a.weight"]) for i in range(3)
        ]
    with SQLiteStatsStorage(path) as s:  # written to: gains version 2's tables
        s.put_many(
            Update("h", "0", i, float(i), score=1.0, histograms=_histograms(i)) for i in range(3, 5)
        )
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    assert con.execute("SELECT count(*) FROM histograms").fetchone() == (12,)  # kept
    con.close()
    with SQLiteStatsStorage(path, read_only=True) as reader:
        assert [u.histograms for u in reader.get_updates("h")] == [_histograms(i) for i in range(5)]
        assert reader.get_histograms("h", "0", "params", "a.bias") == [
            (i, _histograms(i)["params"]["a.bias"]) for i in range(5)
        ]
        _assert_arrays_match(reader, "h", _items())  # version 1 and 2 rows together


def test_version_1_and_2_histograms_keep_the_newest_number_of_bins(tmp_path):
    """Version 1 rows and version 2 sets of one tensor, with two numbers of bins: the
    arrays hold the histograms with the newest one's number (a version 2 row), in order,
    and count the others; get_histograms returns every one."""
    path = tmp_path / "runs.db"

    def update(i, bins):
        counts = [(i + 3 * j) % 7 for j in range(bins)]
        hists = {"params": {"w": Histogram(-1.0 - i, 1.0 + i, counts)}}
        return Update("run", "0", i, float(i), score=1.0, histograms=hists)

    with SQLiteStatsStorage(path) as s:
        s.put_many([update(0, 30), update(10, 50), update(20, 30)])
    _downgrade_to_version_1(path)
    with SQLiteStatsStorage(path) as s:
        s.put_many([update(30, 50), update(40, 30), update(50, 50)])
    with SQLiteStatsStorage(path, read_only=True) as reader:
        pairs = reader.get_histograms("run", "0", "params", "w")
        got = reader.get_histogram_arrays("run", "0", [("params", "w")])[("params", "w")]
    assert [it for it, _ in pairs] == [0, 10, 20, 30, 40, 50]
    want = [(it, h) for it, h in pairs if len(h.counts) == 50]
    assert got.iterations.tolist() == [10, 30, 50] == [it for it, _ in want]
    assert got.counts.tolist() == [h.counts for _, h in want]
    assert got.lo.tolist() == [h.lo for _, h in want] and got.left_out == 3


def test_reading_leaves_no_wal_files_and_never_writes(tmp_path):
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        s.put_many(make_update(i) for i in range(5))
    before = path.read_bytes()
    read = (  # in a process of its own, as `embedviz check` reads
        "import sqlite3, sys\n"
        "from embedviz.stats.storage import SQLiteStatsStorage\n"
        "with SQLiteStatsStorage(sys.argv[1], read_only=True) as reader:\n"
        "    assert reader.count_updates('run') == 5\n"
        "    try:\n"
        "        reader._reader().execute('DELETE FROM updates')\n"
        "    except sqlite3.OperationalError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", read, str(path)], capture_output=True, text=True, check=True
    )
    assert "readonly" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]  # no -wal, -shm
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------
# robustness: records no storage can keep, files that must not change, damaged files

_GOOD = {"type": "update", "session_id": "p", "worker_id": "0", "iteration": 1, "timestamp": 5.0}
_SNAP = {**_GOOD, "type": "snapshot", "kind": "embedding", "vectors": [[1.0, 2.0], [3.0, 4.0]]}
_HIST = {"lo": 0.0, "hi": 1.0, "counts": [1, 2]}


def _hist(**change):
    return {**_GOOD, "histograms": {"params": {"w": {**_HIST, **change}}}}


def _unchecked_record(data: dict):
    """The record ``data`` describes, built without any validation."""
    from embedviz.stats.records import (
        ActivationStats,
        EvalRecord,
        Histogram,
        ParamStats,
        Snapshot,
        Update,
    )

    body = {k: v for k, v in data.items() if k != "type"}
    if data["type"] == "update":
        body["params"] = {k: ParamStats(**v) for k, v in body.get("params", {}).items()}
        body["activations"] = {
            k: ActivationStats(**v) for k, v in body.get("activations", {}).items()
        }
        body["histograms"] = {
            kind: {k: Histogram(**h) for k, h in group.items()}
            for kind, group in body.get("histograms", {}).items()
        }
        return Update(**body)
    return {"eval": EvalRecord, "snapshot": Snapshot}[data["type"]](**body)


@pytest.mark.parametrize(
    ("good", "change", "message"),
    [
        (_GOOD, {"timestamp": math.nan}, r"records\[0\]\.timestamp: expected Unix seconds"),
        (_GOOD, {"timestamp": math.inf}, r"\.timestamp: .*finite.*got inf"),
        (_GOOD, {"timestamp": 1e300}, r"\.timestamp: .*got 1e\+300"),
        (_GOOD, {"timestamp": -5.0}, r"\.timestamp: expected Unix seconds"),
        (_GOOD, {"iteration": -1}, r"\.iteration: expected an integer >= 0, got -1"),
        (_SNAP, {"vectors": [[1, 2], [3]]}, r"\.vectors: expected rows of one length"),
        (_SNAP, {"labels": ["a"]}, r"\.labels: expected one label per row .*\(2\), got 1"),
        (_hist(), _hist(counts=[]), r"params\.w\.counts: expected .*1 to 10000|at least one"),
        (_hist(), _hist(lo=1.0, hi=0.0), r"params\.w: expected finite limits lo <= hi"),
        (_hist(), _hist(hi=math.inf), r"params\.w: expected finite limits"),
        (_hist(), _hist(lo=math.nan), r"params\.w: expected finite limits"),
        (_hist(), _hist(counts=[3, -1]), r"params\.w\.counts: expected counts >= 0, got -1"),
    ],
)
def test_records_no_storage_can_keep_are_refused_alike(good, change, message, tmp_path):
    """The receiver's validation and every storage's put refuse the same records: a
    NaN timestamp (SQLite would store NULL and fail the file's every later write), a
    timestamp no date can show, a ragged snapshot, an empty or upside-down histogram."""
    bad = {**good, **change}
    with pytest.raises(InputError, match=message):
        record_from_dict(bad, where="records[0]")
    record = record_from_dict(good)
    bad_record = _unchecked_record(bad)  # as a Python producer could make it
    with SQLiteStatsStorage(tmp_path / "runs.db") as sqlite:
        for storage in (InMemoryStatsStorage(), sqlite):
            named = r"record \(session 'p', worker '0', iteration 1\)"
            with pytest.raises(InputError, match=message.replace(r"records\[0\]", named)):
                storage.put(bad_record)
            storage.put(record)
            assert storage.list_sessions() == ["p"]


def test_record_names_with_control_characters_are_refused(tmp_path):
    evil = "evil\nsummary: 0 error(s)\n\x1b[8m"
    with pytest.raises(InputError, match=r"records\[0\]\.session_id: .*control .*at character 4"):
        record_from_dict({**_GOOD, "session_id": evil}, where="records[0]")
    with pytest.raises(InputError, match=r"\.worker_id: .*'\\x1b' at character 1"):
        record_from_dict({**_GOOD, "worker_id": "w\x1b[2J"})
    with pytest.raises(InputError, match=r"\.labels\[1\]: .*'\\x85' at character 1"):
        record_from_dict({**_SNAP, "labels": ["ok", "a\x85"]})  # C1 (next line) too
    with pytest.raises(InputError, match=r"\.params key: .*'\\r' at character 6"):
        stats = {"param_mean": 0.0, "param_std": 1.0, "param_mean_magnitude": 1.0}
        record_from_dict({**_GOOD, "params": {"layer0\r.weight": stats}})
    assert record_from_dict({**_GOOD, "session_id": "été 🙂 run #1"}).session_id == "été 🙂 run #1"
    with SQLiteStatsStorage(tmp_path / "runs.db") as sqlite:
        for storage in (InMemoryStatsStorage(), sqlite):
            with pytest.raises(InputError, match=r"session_id: .*control"):
                storage.put(Update(evil, "0", 1, 5.0))
            with pytest.raises(InputError, match=r"params name: .*'\\n' at character 1"):
                storage.put(Update("p", "0", 1, 5.0, params={"a\nb": ParamStats(0.0, 1.0, 1.0)}))
            assert storage.list_sessions() == []


def _hist_update(h):
    return Update("p", "0", 1, 5.0, histograms={"params": {"w": h}})


@pytest.mark.parametrize(
    "record, message",
    [
        (Update(["a"], "0", 1, 5.0), r"\.session_id: expected a string .*, got \['a'\]"),
        (Update("p", ("0",), 1, 5.0), r"\.worker_id: expected a string .*, got \('0',\)"),
        (_hist_update(Histogram("x", 1.0, [1])), r"\.histograms\.params\.w\.lo: expected a number"),
        (_hist_update(Histogram(0.0, None, [1])), r"\.histograms\.params\.w\.hi: .*got None"),
        (
            _hist_update(Histogram(0.0, 1.0, ["1"])),
            r"\.histograms\.params\.w\.counts\[0\]: expected an integer",
        ),
        (
            _hist_update(Histogram(0.0, 1.0, None)),
            r"\.histograms\.params\.w\.counts: expected a list of 1 to",
        ),
        (_hist_update([0.0, 1.0, [1]]), r"\.histograms\.params\.w: expected a Histogram"),
        (Update("p", "0", 1, 5.0, histograms={"params": [1]}), r"\.histograms\.params: .*object"),
        (Update("p", "0", 1, 5.0, tags=[("k", "v")]), r"\.tags: expected an object, got \[\("),
        (Update("p", "0", 1, 5.0, params=["w"]), r"\.params: expected an object, got \['w'\]"),
        (Snapshot("p", "0", 1, 5.0, "emb", [], None), r"\.vectors: expected a list of rows"),
        (Snapshot("p", "0", 1, 5.0, "emb", None, [[1.0]]), r"\.labels: expected a list of str"),
    ],
)
def test_python_records_of_wrong_types_are_refused_alike(record, message, tmp_path):
    """A Python producer's record of wrong types gets the InputError check_record
    promises, naming the record and the field (not a TypeError from inside it), and
    every storage goes on working."""
    named = r"record \(session .*, worker .*, iteration 1\)"
    with SQLiteStatsStorage(tmp_path / "runs.db") as sqlite:
        for storage in (InMemoryStatsStorage(), sqlite):
            with pytest.raises(InputError, match=named + message):
                storage.put(record)
            storage.put(Update("p", "0", 1, 5.0))
            assert storage.list_sessions() == ["p"]


@pytest.mark.parametrize("char", ["\u202e", "\u202a", "\u200e", "\u200f", "\u2066", "\u2069"])
def test_names_with_bidirectional_formatting_characters_are_refused(char, tmp_path):
    """``evil\u202efdp.exe`` shows as ``evilexe.pdf``: refused like a control character;
    the joiners that emoji and Persian words need are not."""
    from embedviz.stats.validation import check_name

    shown = repr(char)[1:-1].replace("\\", "\\\\")
    with pytest.raises(InputError, match=rf"session_id: .*bidirectional.*'{shown}' at character 4"):
        check_name(f"evil{char}fdp.exe", "session_id")
    with pytest.raises(InputError, match=rf"\.labels\[0\]: .*'{shown}' at character 1"):
        record_from_dict({**_SNAP, "labels": [f"a{char}", "b"]})
    assert check_name("👩\u200d💻 run\u200c1") == "👩\u200d💻 run\u200c1"
    with SQLiteStatsStorage(tmp_path / "runs.db") as sqlite:
        for storage in (InMemoryStatsStorage(), sqlite):
            with pytest.raises(InputError, match=rf"worker_id: .*'{shown}' at character 1"):
                storage.put(Update("p", f"w{char}", 1, 5.0))
            with pytest.raises(InputError, match=rf"tags\.phase: .*'{shown}'"):
                storage.put(Update("p", "0", 1, 5.0, tags={"phase": f"x{char}"}))
            assert storage.list_sessions() == []


def test_sqlite_sets_aside_a_record_it_cannot_write(tmp_path, caplog):
    """A record SQLite refuses (here one that skipped validation) must not stay in the
    buffer for ever: every later write and read would fail with it."""
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path, flush_interval=60)
    storage.put(make_update(0))
    bad = [
        Update("new", "0", 2, math.nan),
        Snapshot("new", "0", 3, 5.0, "embedding", [], [[1, 2], [3]]),
    ]
    storage._store([make_update(1, session="new"), *bad, make_update(4, session="new")])
    with caplog.at_level("ERROR", logger="embedviz.stats.sqlite_storage"):
        storage.flush()
    assert storage.rejected == 2 and storage._buffer == []
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2
    assert "session 'new', worker '0', iteration 2" in errors[0] and "NOT NULL" in errors[0]
    assert "iteration 3" in errors[1] and "snapshot" in errors[1]
    storage.put(make_update(5, session="new"))  # the storage goes on working
    assert storage.list_sessions() == ["run", "new"]
    assert [u.iteration for u in storage.get_updates("new")] == [1, 4, 5]
    storage.close()
    with SQLiteStatsStorage(path, read_only=True) as reader:  # ids were not reused wrongly
        assert [u.iteration for u in reader.get_updates("new")] == [1, 4, 5]
        assert [u.iteration for u in reader.get_updates("run")] == [0]
        assert reader.list_workers("new") == ["0"]


def test_sqlite_keeps_records_when_the_file_fails(tmp_path, monkeypatch):
    """A failure of the file (locked, full) is not a record's fault: nothing is set
    aside, everything is written on the next try."""
    storage = SQLiteStatsStorage(tmp_path / "runs.db", flush_interval=60)
    real = storage._write
    calls = []

    def failing(records):
        calls.append(len(records))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        real(records)

    monkeypatch.setattr(storage, "_write", failing)
    storage.put_many(make_update(i) for i in range(3))
    with pytest.raises(StatsWriteError, match="database is locked"):
        storage.flush()
    assert len(storage._buffer) == 3 and storage.rejected == 0
    storage.flush()
    assert storage.count_updates("run") == 3 and calls == [3, 3]
    storage.close()


def _open_fds(path):
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(path)):
                fds.append(fd)
        except OSError:
            pass
    return fds


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_refused_foreign_file_is_left_unchanged_and_closed(tmp_path, foreign_sqlite):
    foreign, before = foreign_sqlite
    for read_only in (False, True):
        with pytest.raises(FileFormatError, match="another program"):
            SQLiteStatsStorage(foreign, read_only=read_only)
        assert _open_fds(foreign) == []
    assert foreign.read_bytes() == before  # not switched to WAL, no schema added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]
    con = sqlite3.connect(foreign)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    con.close()


def _zero_second_half(src, dst):
    data = bytearray(src.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    dst.write_bytes(bytes(data))


def test_file_damaged_in_its_data_pages_is_a_file_format_error(tmp_path):
    good = tmp_path / "good.db"
    with SQLiteStatsStorage(good) as s:
        s.put(StaticInfo("run", "0", 1.0, model_class="MLP"))
        s.put_many(make_update(i, hist=True) for i in range(400))
    damaged = tmp_path / "damaged.db"
    _zero_second_half(good, damaged)
    for read_only in (True, False):
        with pytest.raises(
            FileFormatError, match=r"damaged\.db: damaged statistics file .*\.recover"
        ):
            storage = SQLiteStatsStorage(damaged, read_only=read_only)
            storage.get_updates("run")  # where opening alone does not meet the damage
            storage.close()
    with SQLiteStatsStorage(good, read_only=True) as reader:
        assert reader.quick_check() == [] and reader.count_updates("run") == 400


def test_damage_opening_does_not_meet_is_raised_by_reads_and_found_by_quick_check(tmp_path):
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        s.put_many(make_update(i, hist=True) for i in range(400))
    con = sqlite3.connect(path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'updates'").fetchone()
    n_pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    data = bytearray(path.read_bytes())
    for page in range(root + 1, n_pages - 5, 7):  # some leaves of the tables, not the root
        data[(page - 1) * page_size : page * page_size] = bytes(page_size)
    path.write_bytes(bytes(data))
    with SQLiteStatsStorage(path, read_only=True) as reader:
        assert reader.list_sessions() == ["run"]  # the small tables are intact
        assert reader.quick_check() != []
        with pytest.raises(FileFormatError, match="damaged statistics file"):
            reader.get_updates("run")


def test_bad_argument_types_are_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"path: expected a file path .*got NoneType None"):
        SQLiteStatsStorage(None)
    with pytest.raises(InputError, match=r"path: .*got bytes"):
        SQLiteStatsStorage(b"runs.db")
    for interval in ("x", 0, -1.0, math.nan, math.inf, True):
        with pytest.raises(InputError, match=r"flush_interval: expected a number > 0, got"):
            SQLiteStatsStorage(tmp_path / "runs.db", flush_interval=interval)
    for size in (0, 1.5, "8", True):
        with pytest.raises(InputError, match=r"batch_size: expected an integer >= 1, got"):
            SQLiteStatsStorage(tmp_path / "runs.db", batch_size=size)
    assert not (tmp_path / "runs.db").exists()
    with SQLiteStatsStorage(tmp_path / "runs.db", batch_size=np.int64(8)) as storage:
        assert storage.batch_size == 8 and type(storage.batch_size) is int  # numpy integers
        with pytest.raises(InputError, match=r"limit: expected an integer >= 1, got 0"):
            storage.quick_check(0)
    with pytest.raises(FileFormatError, match="folder .*missing.* does not exist"):
        SQLiteStatsStorage(tmp_path / "missing" / "runs.db")
    with pytest.raises(TypeError, match="positional"):  # SQLiteStatsStorage(path, True)
        SQLiteStatsStorage(tmp_path / "runs.db", True)  # every parameter after path by name


_CAN_DROP_ROOT = os.geteuid() == 0 and shutil.which("setpriv") is not None


@pytest.mark.skipif(
    os.geteuid() == 0 and not _CAN_DROP_ROOT, reason="root ignores chmod; setpriv missing"
)
def test_file_in_a_read_only_folder_can_be_read(tmp_path):
    """A finished WAL file in a folder one cannot write: SQLite cannot create its -shm
    file, so ``mode=ro`` fails; the file is read as it is (immutable)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "runs.db"
    with SQLiteStatsStorage(path) as s:
        s.put_many(make_update(i) for i in range(5))
    before = path.read_bytes()
    folder.chmod(0o555)
    read = (
        "import sys\n"
        "from embedviz.stats.storage import SQLiteStatsStorage\n"
        "with SQLiteStatsStorage(sys.argv[1], read_only=True) as reader:\n"
        "    print(reader.count_updates('run'), reader.quick_check())\n"
        "try:\n"
        "    SQLiteStatsStorage(sys.argv[1])\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    caps = "-dac_override,-dac_read_search,-fowner"  # root then obeys the folder's mode
    drop = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"] if _CAN_DROP_ROOT else []
    try:
        out = subprocess.run(
            [*drop, sys.executable, "-c", read, str(path)], capture_output=True, text=True
        )
    finally:
        folder.chmod(0o755)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "5 []"
    assert "cannot write here" in lines[1] and "read_only=True" in lines[1]
    assert path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["runs.db"]


@pytest.mark.parametrize("where", ["value", "counts"])
def test_put_of_an_update_with_a_value_that_is_no_number_is_an_input_error(tmp_path, where):
    good, bad = make_update(1), make_update(2, hist=True)
    if where == "value":
        bad.params["layer1.weight"].grad_std = "0.2"
    else:
        bad.histograms["params"]["layer0.weight"].counts = [1, 2.5, 3]
    with SQLiteStatsStorage(tmp_path / "runs.db") as sqlite:
        for storage in (InMemoryStatsStorage(), sqlite):
            named = r"record \(session 'run', worker '0', iteration 2\): expected numbers"
            with pytest.raises(InputError, match=named):
                storage.put_many([good, bad])
            assert storage.count_updates("run") == 0  # nothing of the call is stored
            storage.put(good)
            assert storage.count_updates("run") == 1


def test_histograms_without_bins_written_before_they_were_refused_are_read(tmp_path):
    with SQLiteStatsStorage(tmp_path / "runs.db") as storage:
        empty = {"params": {"w": Histogram(0.0, 1.0, [])}}
        storage._store([Update("run", "0", i, 5.0, histograms=empty) for i in range(2)])
        got = storage.get_histogram_arrays("run", "0", [("params", "w")])[("params", "w")]
        assert got.counts.shape == (2, 0) and got.iterations.tolist() == [0, 1]
        assert storage.get_histograms("run", "0", "params", "w")[0][1].counts == []


def test_check_name_and_static_info_refused_alike(tmp_path):
    from embedviz.stats.validation import check_name

    assert check_name("encoder.fc.weight") == "encoder.fc.weight"
    with pytest.raises(InputError, match=r"session_id: .*'\\t' at character 3"):
        check_name("run\t1", "session_id")
    with pytest.raises(InputError, match="session_id: expected a string of at most 1000"):
        check_name("x" * 1001, "session_id")
    not_json = StaticInfo("run", "0", 5.0, config={"device": object()})
    with SQLiteStatsStorage(tmp_path / "runs.db") as sqlite:
        for storage in (InMemoryStatsStorage(), sqlite):
            with pytest.raises(InputError, match=r"record \(session 'run', worker '0'\): .*JSON"):
                storage.put(not_json)
            storage.put(StaticInfo("run", "0", 5.0, config={"betas": (0.9, 0.99)}))
            assert storage.get_static_info("run", "0").config["betas"] in ((0.9, 0.99), [0.9, 0.99])
