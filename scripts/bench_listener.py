"""Benchmarks for the training statistics (issue 4, Targets).

1. Listener overhead in turns (``paired``, the steadiest on a shared machine): two copies
   of one training in one process, one with the listener, trained alternately 100
   iterations at a time (~0.1 s), each turn timed; the ratio of all CPU time (the
   storage's writer thread counted to the listener), and the median and quartiles of the
   turns' own ratios. Load that changes more slowly than a turn hits both alike.
2. Listener overhead in whole runs (``overhead``): training time with / without
   ``StatsListener`` in the same process, in ``--repeats`` rounds of one run per
   configuration (so drifting load hits every configuration alike). Both: an MLP and a
   small CNN on scikit-learn's digits, at the default frequency (10, histograms every
   100) and at frequency 1 with histograms every iteration, the listener writing into a
   real SQLite file.
3. SQLite write rate (``writes``): updates/s with 50 parameter tensors each.
4. Reading the newest 100 updates of a large file (``large``, default 1,000,000 updates).
5. Where the overhead goes (``phases``): every iteration of the default listener timed
   in four parts (forward, loss and backward, ``optimizer.step()``, ``listener.step()``)
   against the same training without it, by position in the reporting cycle
   (``iteration % 10``; 0 is the reported one): what a report costs, what it costs the
   iterations after it, and what the others pay.

Usage::

    python scripts/bench_listener.py            # everything (the large file takes minutes)
    python scripts/bench_listener.py --quick    # small sizes, a smoke test

torch runs on one thread (``--threads``). The whole runs' overheads are ratios of CPU
time of the whole process (the storage's writer thread included): best against best,
median against median, and the median of the rounds' own ratios; and the median of the
rounds' ratios of wall time, the time the user waits (work the listener does on another
thread shows in CPU time, not here). The turns of ``paired`` are of both kinds.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

_CLOSE_SECONDS: list[float] = []
_COLLECT_SECONDS: list[float] = []  # the listener's own collect_seconds of the last run


def _data():
    import torch
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


def _mlp():
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )  # fmt: skip


def _cnn():
    import torch

    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 8, 8)),
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )  # fmt: skip


class _Discard:
    """A storage that keeps only each update's ``collect_seconds`` (``--storage discard``:
    the listener's own cost, without any storage's)."""

    def __init__(self) -> None:
        self.collect: list[float] = []

    def put(self, record) -> None:
        seconds = getattr(record, "collect_seconds", None)
        if seconds is not None:
            self.collect.append(seconds)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _step(model, opt, X, y, i: int, batch: int):
    """Training iteration ``i``: the ``i``-th minibatch (in turn), its loss, its step."""
    import torch

    start = (i * batch) % (len(X) - batch)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(
        model(X[start : start + batch]), y[start : start + batch]
    )
    loss.backward()
    opt.step()
    return loss


def _train(make_model, data, iterations, listener_kwargs, db_dir, batch=64, storage="sqlite"):
    """(CPU seconds of this process, wall seconds) for ``iterations`` steps (setup
    outside the timing).

    CPU time counts the storage's writer thread too; wall time is what the user waits
    for, and on a shared machine it also measures the others. ``storage``: ``"sqlite"``
    (a new file per run) or ``"discard"`` (see :class:`_Discard`).
    """
    import torch

    from embedviz.stats.listener import StatsListener
    from embedviz.stats.storage import SQLiteStatsStorage

    X, y = data
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kind, storage, listener = storage, None, None
    if listener_kwargs is not None:
        if kind == "discard":
            storage = _Discard()
        else:
            storage = SQLiteStatsStorage(Path(db_dir) / f"bench-{time.time_ns()}.db")
        listener = StatsListener(storage, model, opt, **listener_kwargs)
    gc.collect()  # start every run with no garbage of the previous runs to collect
    t0, w0 = time.process_time(), time.perf_counter()
    for i in range(iterations):
        loss = _step(model, opt, X, y, i, batch)
        if listener is not None:
            listener.step(loss, batch_size=batch)
    seconds = time.process_time() - t0, time.perf_counter() - w0
    if listener is not None:  # a fixed cost per run, reported on its own
        t1 = time.process_time()
        listener.close()
        storage.close()
        _CLOSE_SECONDS.append(time.process_time() - t1)
        if isinstance(storage, _Discard):
            _COLLECT_SECONDS[:] = storage.collect
        else:
            reader = SQLiteStatsStorage(storage.path, read_only=True)
            _COLLECT_SECONDS[:] = [
                u.collect_seconds for u in reader.get_updates(listener.session_id)
            ]
            reader.close()
    return seconds


def bench_overhead(iterations: int, repeats: int, db_dir: str, storage="sqlite") -> list[dict]:
    data = _data()
    configs = {
        "none": None,
        "default (freq 10, hist 100)": {},
        "freq 1 + all histograms": {"frequency": 1, "histogram_frequency": 1},
    }
    rows = []
    for model_name, make in (("MLP 64-256-256-10", _mlp), ("CNN 2 conv + 2 fc", _cnn)):
        _train(make, data, 50, None, db_dir)  # warm up
        _train(make, data, 50, {}, db_dir, storage=storage)
        times: dict[str, list[float]] = {k: [] for k in configs}
        walls: dict[str, list[float]] = {k: [] for k in configs}
        collect: dict[str, list[float]] = {k: [] for k in configs}
        for _ in range(repeats):  # interleaved, so drifting load hits every config alike
            for name, kwargs in configs.items():
                _COLLECT_SECONDS.clear()
                cpu, wall = _train(make, data, iterations, kwargs, db_dir, storage=storage)
                times[name].append(cpu)
                walls[name].append(wall)
                collect[name].append(sum(_COLLECT_SECONDS) / iterations)
        base = min(times["none"])
        for name in configs:
            best = min(times[name])
            rows.append({
                "model": model_name, "listener": name,
                "ms/iter (best)": 1000 * best / iterations,
                "ms/iter (median)": 1000 * statistics.median(times[name]) / iterations,
                "ratio (best/best)": best / base,
                "ratio (median/median)": statistics.median(times[name])
                / statistics.median(times["none"]),
                # each round's runs are back to back: its ratio sees one load level
                "ratio (median of rounds)": statistics.median(
                    t / b for t, b in zip(times[name], times["none"], strict=True)
                ),
                "wall ratio (median of rounds)": statistics.median(
                    t / b for t, b in zip(walls[name], walls["none"], strict=True)
                ),
                # the listener's own timing of its work (wall clock, median run): what the
                # ratio measures minus the storage's writer and garbage collection
                "collect ms/iter": 1000 * statistics.median(collect[name]),
            })  # fmt: skip
    if _CLOSE_SECONDS:
        rows.append({"close() of listener + SQLite storage, median ms":
                     1000 * statistics.median(_CLOSE_SECONDS)})  # fmt: skip
    return rows


def _paired_run(make_model, data, blocks, block, listener_kwargs, db_dir, batch=64):
    """Two copies of one training in one process, the first with the listener (into a
    new SQLite file), trained in turns of ``block`` iterations, ABBA order. Per turn the
    CPU seconds of this thread and the wall seconds: arrays (blocks, 2), column 0 with the
    listener; and the CPU seconds of the process's other threads (the storage's writer)
    over the whole run."""
    import numpy as np
    import torch

    from embedviz.stats.listener import StatsListener
    from embedviz.stats.storage import SQLiteStatsStorage

    X, y = data
    runs = []
    for listen in (True, False):
        torch.manual_seed(0)
        model = make_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        listener = None
        if listen:
            storage = SQLiteStatsStorage(Path(db_dir) / f"paired-{time.time_ns()}.db")
            listener = StatsListener(storage, model, opt, **listener_kwargs)
        runs.append((model, opt, listener, [0]))

    def turn(model, opt, listener, position, n=block):
        for _ in range(n):
            loss = _step(model, opt, X, y, position[0], batch)
            position[0] += 1
            if listener is not None:
                listener.step(loss, batch_size=batch)

    # Turns start half a reporting cycle in (iteration 5 at the default frequency 10), so
    # that a turn of the listener's copy never ends with a report armed: the listener's
    # trigger (a process-wide forward pre-hook that waits for its model's next forward
    # pass) would otherwise wait through the bare copy's whole turn and slow it too.
    from embedviz._defaults import STATS_DEFAULTS

    lead = listener_kwargs.get("frequency", STATS_DEFAULTS["frequency"]) // 2
    for run in runs:
        turn(*run, n=lead)
    cpu, wall = np.zeros((blocks, 2)), np.zeros((blocks, 2))
    gc.collect()
    process0, thread0 = time.process_time(), time.thread_time()
    for k in range(blocks):
        for which in (0, 1) if k % 2 == 0 else (1, 0):
            c, w = time.thread_time(), time.perf_counter()
            turn(*runs[which])
            cpu[k, which], wall[k, which] = time.thread_time() - c, time.perf_counter() - w
    others = (time.process_time() - process0) - (time.thread_time() - thread0)
    listener = runs[0][2]
    listener.close()
    listener.storage.close()
    return cpu, wall, others


def bench_paired(iterations: int, db_dir: str, block: int = 100) -> list[str]:
    """Lines of a table: the listener's overhead measured in turns (see :func:`_paired_run`).

    A turn of ``block`` iterations takes ~0.1 s, so load that changes more slowly than
    that hits both trainings alike; the median of the turns' ratios also ignores the turns
    an outside process interrupted. ``block`` is a whole number of histogram cycles, so
    every turn holds the same reports."""
    import numpy as np

    data = _data()
    configs = {
        "default (freq 10, hist 100)": {},
        "freq 1 + all histograms": {"frequency": 1, "histogram_frequency": 1},
    }
    blocks = max(2, iterations // block)
    lines = [
        "  model              listener                      CPU ratio  median turn (CPU)"
        "  median turn (wall)  quartiles (wall)"
    ]
    for model_name, make in (("MLP 64-256-256-10", _mlp), ("CNN 2 conv + 2 fc", _cnn)):
        _paired_run(make, data, 2, block, {}, db_dir)  # warm up (numba, torch, allocator)
        for name, kwargs in configs.items():
            cpu, wall, others = _paired_run(make, data, blocks, block, kwargs, db_dir)
            turn_cpu, turn_wall = cpu[:, 0] / cpu[:, 1], wall[:, 0] / wall[:, 1]
            q1, q3 = np.percentile(turn_wall, [25, 75])
            lines.append(
                f"  {model_name:18s} {name:28s} "
                f"{(cpu[:, 0].sum() + others) / cpu[:, 1].sum():9.3f}  "
                f"{np.median(turn_cpu):17.3f}  {np.median(turn_wall):18.3f}  "
                f"{q1:.3f}-{q3:.3f}"
            )
    lines.append(
        f"  ({blocks} turns of {block} iterations each; CPU ratio: all CPU time of the "
        "process, the storage's writer thread counted to the listener)"
    )
    return lines


def _train_parts(make_model, data, iterations, listen, batch=64):
    """Per iteration (rows) the wall seconds of forward, loss and backward, optimizer
    step, ``listener.step`` (columns); the default listener into :class:`_Discard`."""
    import numpy as np
    import torch

    from embedviz.stats.listener import StatsListener

    X, y = data
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    listener = StatsListener(_Discard(), model, opt) if listen else None
    n = len(X) - batch
    clock = time.perf_counter
    parts = np.zeros((iterations, 4))
    gc.collect()
    for i in range(iterations):
        start = (i * batch) % n
        t0 = clock()
        xb, yb = X[start : start + batch], y[start : start + batch]
        opt.zero_grad()
        out = model(xb)
        t1 = clock()
        loss = torch.nn.functional.cross_entropy(out, yb)
        loss.backward()
        t2 = clock()
        opt.step()
        t3 = clock()
        if listener is not None:
            listener.step(loss, batch_size=batch)
        parts[i] = t1 - t0, t2 - t1, t3 - t2, clock() - t3
    if listener is not None:
        listener.close()
    return parts


def bench_phases(iterations: int, repeats: int) -> list[str]:
    """Lines of a table: per position in the reporting cycle (10 iterations), the median
    microseconds of each part with the default listener minus without it."""
    import numpy as np

    data = _data()
    cycle = 10
    iterations -= iterations % cycle
    skip = 10 * cycle  # the first reports (and the allocator) settle
    lines = []
    for model_name, make in (("MLP 64-256-256-10", _mlp), ("CNN 2 conv + 2 fc", _cnn)):
        _train_parts(make, data, 2 * skip, True)  # warm up
        runs = {False: [], True: []}
        for _ in range(repeats):
            for listen in (False, True):
                runs[listen].append(_train_parts(make, data, iterations + skip, listen)[skip:])
        med = {}
        for listen, got in runs.items():
            a = np.array(got).reshape(repeats, -1, cycle, 4)  # rounds, cycles, phase, part
            med[listen] = np.median(np.median(a, axis=1), axis=0) * 1e6  # phase, part (us)
        base, extra = med[False], med[True] - med[False]
        per_cycle = extra.sum()
        lines.append(
            f"{model_name}: {base.sum(axis=1).mean():.0f} us/iteration without the listener; "
            f"the listener adds {per_cycle:.0f} us per cycle of {cycle} "
            f"({per_cycle / base.sum():+.1%})"
        )
        lines.append("  phase   forward  loss+backward  optimizer.step  listener.step   total")
        for k in range(cycle):
            e = extra[k]
            lines.append(
                f"  {k:5d}  {e[0]:+8.1f}  {e[1]:+13.1f}  {e[2]:+14.1f}  {e[3]:+13.1f}  "
                f"{e.sum():+7.1f}"
            )
    return lines


def _fake_update(i: int, n_tensors: int):
    from embedviz.stats.records import ParamStats, Update

    params = {
        f"layer{k}.weight": ParamStats(
            0.01 * k, 0.1, 0.08, 1e-4, 1e-3, 8e-4, 1e-5, 1e-4, 8e-5, 1e-3
        )
        for k in range(n_tensors)
    }
    return Update("bench", "0", i, 1.7e9 + i, score=1.0 / (1 + i), learning_rates=[1e-3],
                  params=params, memory={"rss_bytes": 1e8})  # fmt: skip


def bench_sqlite_writes(n: int, n_tensors: int, db_dir: str, kinds: int = 0) -> dict:
    """Updates/s put and flushed; with ``kinds`` > 0, each update also holds that many
    30-bin histograms per tensor (params, grads, updates, activations)."""
    from embedviz.stats.records import HISTOGRAM_KINDS, Histogram
    from embedviz.stats.storage import SQLiteStatsStorage

    updates = [_fake_update(i, n_tensors) for i in range(n)]
    for u in updates:
        u.histograms = {
            kind: {name: Histogram(-1.0, 1.0, list(range(30))) for name in u.params}
            for kind in HISTOGRAM_KINDS[:kinds]
        }
    storage = SQLiteStatsStorage(Path(db_dir) / "writes.db")
    t0 = time.perf_counter()
    for u in updates:
        storage.put(u)
    storage.flush()
    seconds = time.perf_counter() - t0
    assert storage.count_updates("bench") == n
    storage.close()
    return {"updates": n, "tensors": n_tensors, "histograms": kinds * n_tensors,
            "updates/s": n / seconds}  # fmt: skip


def bench_newest(n: int, n_tensors: int, db_dir: str) -> dict:
    from embedviz.stats.storage import SQLiteStatsStorage

    path = Path(db_dir) / "large.db"
    storage = SQLiteStatsStorage(path, batch_size=5000)
    chunk = 20_000
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        storage.put_many(_fake_update(i, n_tensors) for i in range(start, min(n, start + chunk)))
    storage.close()
    build = time.perf_counter() - t0
    reader = SQLiteStatsStorage(path, read_only=True)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        got = reader.get_updates("bench", "0", last=100)
        times.append(time.perf_counter() - t)
    assert [u.iteration for u in got] == list(range(n - 100, n))
    t = time.perf_counter()
    series = reader.get_series("bench", "0", "score", max_points=2000)
    series_s = time.perf_counter() - t
    reader.close()
    return {
        "updates": n, "tensors": n_tensors, "file MB": path.stat().st_size / 1e6,
        "build s": build, "newest 100 first ms": 1000 * times[0],
        "newest 100 median ms": 1000 * statistics.median(times),
        "score series (all points, min/max to 2000) ms": 1000 * series_s,
        "series points": len(series),
    }  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument(
        "--write-histograms", type=int, default=0, choices=range(5), metavar="KINDS",
        help="histogram kinds per tensor in the SQLite write benchmark (0-4)",
    )  # fmt: skip
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--large-tensors", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--storage", choices=["sqlite", "discard"], default="sqlite",
        help="where the listener writes (discard: its own cost alone)",
    )  # fmt: skip
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["paired", "overhead", "phases", "writes", "large"],
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.repeats, args.writes, args.large = 100, 2, 2000, 20_000
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if "paired" not in args.skip:
            print("listener overhead, two trainings in turns in one process")
            for line in bench_paired(3 * args.iterations, tmp):
                print(line)
        if "overhead" not in args.skip:
            print("listener overhead (same process, interleaved runs)")
            for row in bench_overhead(args.iterations, args.repeats, tmp, args.storage):
                print("  " + "  ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                ))  # fmt: skip
        if "phases" not in args.skip:
            print("where the default listener's overhead goes (us added, median per position)")
            for line in bench_phases(2 * args.iterations, args.repeats):
                print("  " + line)
        if "writes" not in args.skip:
            r = bench_sqlite_writes(args.writes, 50, tmp, args.write_histograms)
            print(f"SQLite writes: {r['updates']} updates x {r['tensors']} tensors, "
                  f"{r['histograms']} histograms each: "
                  f"{r['updates/s']:.0f} updates/s"
                  + ("" if args.write_histograms else " (target >= 5000)"))  # fmt: skip
        if "large" not in args.skip:
            r = bench_newest(args.large, args.large_tensors, tmp)
            print("large file: " + ", ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
            ) + " (target newest 100 <= 50 ms)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
