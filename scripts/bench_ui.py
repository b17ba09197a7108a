"""Benchmarks of the training UI (issue 5 targets).

``python scripts/bench_ui.py big [--updates 100000 --tensors 50 --page overview]``
    Writes (once, then reuses) a SQLite file with that many updates of that many
    parameter tensors, then times a page (``--page overview`` or ``model``: the first
    layer of the newest run): the page builder alone (everything read, and as the
    server builds it: the page, then its deferred reads), and a real browser opening
    the page until every visible chart is drawn: once with a cold browser right after
    the UI started, ``--opens`` times as the first open of the run (the server's
    series cache emptied before), ``--opens`` times again (cached) and, for the model
    page, ``--opens`` times right after the overview (what a user does first); prints
    the load average and the server process's peak RSS. Target: open in <= 2 s,
    server <= 300 MB. ``--histogram-every K`` gives every K-th update histograms of
    every parameter, update and activation (30 bins; the listener's defaults record
    them every 10th report), in a file of its own (``-hK`` before the suffix).
    Each line of opens also gives the median CPU seconds of an open in the server
    process (the UI's threads and this script's polling) and in Chromium (all its
    processes), steadier than wall time on a shared machine; ``--browser-only`` skips
    the builder timings and the diagnostics run.

``python scripts/bench_ui.py load [--writers 10 --updates 1000 --pages 5]``
    A UI with the remote receiver on; ``writers`` processes each send ``updates``
    updates through :class:`~embedviz.stats.remote.RemoteStatsRouter` while ``pages``
    browser tabs show the overview of those sessions. Checks that every update arrived
    (nothing lost) and that every open page kept updating.

``python scripts/bench_ui.py overhead [--iterations 3000 --repeats 3 --frequency 10]``
    The listener's overhead on training with the UI attached and open (issue 5 target:
    unchanged). The training of ``scripts/bench_listener.py`` (its ``_train``, ``_mlp``,
    ``_cnn``, ``_data``; torch on one thread), each run a new session in a SQLite file:
    without a UI, and with ``embedviz ui FILE`` (a separate process) serving that file
    and a headless Chromium tab open on the run's overview (opened before the run starts,
    it shows the session as soon as it is recorded and then updates live). Runs
    interleaved; prints the ratios of training CPU time (``process_time`` of the
    training loop, the storage's writer thread included) and of wall time (the whole
    ``_train`` call) with / without the UI, the CPU the UI server (its diagnostics'
    child processes included) and Chromium used meanwhile (seconds, and the share of a
    core over the run's wall time), and how long after the run the page showed its
    last iteration.

All need headless Chromium (/usr/bin/chromium, chromedriver) for the browser part.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from embedviz.stats.records import (
    ActivationStats,
    Histogram,
    ParamStats,
    StaticInfo,
    Update,
)
from embedviz.stats.storage import SQLiteStatsStorage

READY = """
if (!(window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].roots().length > 0))
  return false
const nav = Bokeh.documents[0].get_model_by_name("nav")
if (nav != null && !nav.tags.includes("ready")) return false
const roots = Bokeh.index.values ? [...Bokeh.index.values()] : Object.values(Bokeh.index)
return roots.length > 0 && roots.every(r => r.is_idle)
"""


# how many Bokeh models the open document holds, and how many points its sources
MODELS = """
const doc = Bokeh.documents[0]
let models = 0, points = 0
for (const m of doc.all_models) {
  models += 1
  if (m.data != null && m.selected !== undefined) {
    for (const c of Object.values(m.data)) {
      if (c == null || c.length == null) continue
      for (const v of c) points += (v != null && v.length != null) ? v.length : 1
      break
    }
  }
}
return {models: models, points: points}
"""


def synthetic_update(session: str, worker: str, i: int, n_tensors: int, rng) -> Update:
    r = 10.0 ** (-3 + 0.3 * rng.standard_normal(n_tensors))
    params = {
        f"layer{k // 2}.{'weight' if k % 2 == 0 else 'bias'}": ParamStats(
            0.0, 0.1, 0.08, 0.0, 0.01, 0.005, 0.0, 0.001, float(0.08 * r[k]), float(r[k])
        )
        for k in range(n_tensors)
    }
    acts = {
        f"layer{j}": ActivationStats(0.1, 1.0 + 0.1 * np.sin(i / 100), 0.1)
        for j in range(n_tensors // 2)
    }
    return Update(
        session,
        worker,
        i,
        1.7e9 + i * 0.01,
        score=float(2.0 * np.exp(-i / 3e4)),
        examples_per_sec=3000.0,
        learning_rates=[0.01],
        params=params,
        activations=acts,
        memory={"rss_bytes": 3e8, "cpu_percent": 50.0},
    )


def synthetic_histograms(i: int, n_tensors: int, rng) -> dict:
    """30-bin histograms of every parameter, update and activation (a drifting normal)."""
    edges = np.linspace(-4, 4, 31)
    cdf = 0.5 * (1 + np.tanh(0.8 * (edges - 0.5 * np.sin(i / 5000))))
    base = np.diff(cdf) * 5000
    tensors = [f"layer{k // 2}.{'weight' if k % 2 == 0 else 'bias'}" for k in range(n_tensors)]
    out = {}
    for kind, names, scale in (
        ("params", tensors, 0.1),
        ("updates", tensors, 1e-4),
        ("activations", [f"layer{j}" for j in range(n_tensors // 2)], 1.0),
    ):
        counts = rng.poisson(base, size=(len(names), 30))
        out[kind] = {
            n: Histogram(-4 * scale, 4 * scale, c.tolist())
            for n, c in zip(names, counts, strict=True)
        }
    return out


def big_path(path: Path, histogram_every: int) -> Path:
    """The file of a big storage with histograms every ``histogram_every`` updates."""
    if not histogram_every:
        return path
    return path.with_name(f"{path.stem}-h{histogram_every}{path.suffix}")


def make_big(path: Path, n_updates: int, n_tensors: int, histogram_every: int = 0) -> None:
    if path.exists():
        with SQLiteStatsStorage(path, read_only=True) as st:
            if st.count_updates("big") >= n_updates:
                return
        path.unlink()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with SQLiteStatsStorage(path, batch_size=2000) as st:
        st.put(StaticInfo("big", "0", 1.7e9, model_class="Big", n_params=10**6))
        for start in range(0, n_updates, 2000):
            batch = []
            for i in range(start, min(start + 2000, n_updates)):
                u = synthetic_update("big", "0", i, n_tensors, rng)
                if histogram_every and i % histogram_every == 0:
                    u.histograms = synthetic_histograms(i, n_tensors, rng)
                batch.append(u)
            st.put_many(batch)
    print(
        f"wrote {n_updates} updates x {n_tensors} tensors in "
        f"{time.perf_counter() - t0:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)"
    )


def driver():
    from embedviz._browser import headless_chromium

    # selenium's default page-load timeout: the big overview may take long on a busy machine
    return headless_chromium(window_size=(1400, 1000), page_load_timeout=300)


def wait(d, script: str, timeout: float = 120.0) -> float:
    t0 = time.perf_counter()
    while not d.execute_script(script):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(script)
        time.sleep(0.05)
    return time.perf_counter() - t0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _builders(page: str):
    """(build everything now, build as the server does) for ``page``, on a storage."""
    if page == "overview":
        from embedviz.ui.pages.overview import build_overview

        return (
            lambda st: build_overview(st, "big", findings=False),
            lambda st: build_overview(st, "big", findings=False, defer_reads=True),
        )
    from embedviz.ui.pages.model import build_model

    return (
        lambda st: build_model(st, "big", defer_reads=False),
        lambda st: build_model(st, "big"),
    )


def bench_big(args) -> None:
    from embedviz.ui.server import UIServer

    path = big_path(Path(args.path), args.histogram_every)
    make_big(path, args.updates, args.tensors, args.histogram_every)
    print(f"RSS after writing: {rss_mib():.0f} MiB (peak)")
    st = SQLiteStatsStorage(path, read_only=True)
    at_once, as_server = _builders(args.page)
    for _ in range(0 if args.browser_only else 2):
        t0 = time.perf_counter()
        at_once(st)
        print(
            f"build {args.page} (everything read, as the report): {time.perf_counter() - t0:.2f} s"
        )
    for _ in range(0 if args.browser_only else 2):
        t0 = time.perf_counter()
        page = as_server(st)
        t1 = time.perf_counter()
        for read, fill in page.deferred:
            fill(read())
        print(
            f"as the server builds it: page {t1 - t0:.2f} s, then its deferred reads "
            f"{time.perf_counter() - t1:.2f} s"
        )
    if args.page == "overview" and not args.browser_only:
        # the diagnostics child process the server starts after a page is shown, alone
        t0 = time.perf_counter()
        ask = f'{{"path": "{path}", "session": "big", "worker": "0"}}'.encode()
        subprocess.run(
            [sys.executable, "-m", "embedviz.ui.diagnose"],
            input=ask,
            capture_output=True,
            check=True,
        )
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        print(
            f"diagnostics child process: {time.perf_counter() - t0:.2f} s, peak RSS {child:.0f} MiB"
        )
    ui = UIServer(port=0)
    ui.attach(st)
    ui.start()
    d = driver()
    url = ui.url + f"/train/{args.page}?session=big"
    # first: a cold browser (the server read the newest run's overview into its cache at
    # start, while the browser started); then, with the browser's JS cached, each open
    # with the server's series cache emptied before (the first open of a run), with
    # what the previous open read kept (reload, going back to the page) and, for the
    # model page, right after the overview was opened (how users get there)
    opens = {
        "cold browser, the run read at the UI's start": 1,
        "first open of the run": args.opens,
        "again": args.opens,
    }
    if args.page == "model":
        opens["right after the overview (the run's first open)"] = args.opens
    times = {kind: [] for kind in opens}
    cpu = {kind: [] for kind in opens}  # (server, Chromium) CPU seconds per open
    chromium = [d.service.process.pid]
    try:
        for kind, n in opens.items():
            for _ in range(n):
                if kind != "again":
                    ui.series_cache.clear()
                if kind.startswith("right after"):
                    d.get(ui.url + "/train/overview?session=big")
                    wait(d, READY)
                c0 = (time.process_time(), _cpu_seconds(chromium))
                t0 = time.perf_counter()
                d.get(url)
                wait(d, READY)
                times[kind].append(time.perf_counter() - t0)
                c1 = (time.process_time(), _cpu_seconds(chromium))
                cpu[kind].append((c1[0] - c0[0], c1[1] - c0[1]))
            print(
                f"browser open of /train/{args.page} until drawn, {kind}: "
                + " ".join(f"{v:.2f}" for v in times[kind])
                + f" s (median {statistics.median(times[kind]):.2f} s), "
                f"load average {os.getloadavg()[0]:.2f}; CPU median: server "
                f"{statistics.median(c[0] for c in cpu[kind]):.2f} s, Chromium "
                f"{statistics.median(c[1] for c in cpu[kind]):.2f} s"
            )
        if args.page == "model":
            print("models in the model page's document:", d.execute_script(MODELS))
    finally:
        d.quit()
        ui.stop()
        st.close()
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"peak RSS of the server process: {rss_mib():.0f} MiB")


def writer(url: str, session: str, n: int, spill: str, started: float) -> None:
    from embedviz.stats.remote import RemoteStatsRouter

    rng = np.random.default_rng(abs(hash(session)) % 2**32)
    router = RemoteStatsRouter(url, spill_path=spill, batch_size=100)
    # the StaticInfo the UI was seeded with: the same run (another one would be renamed)
    router.put(StaticInfo(session, "0", started, model_class="Bench"))
    for i in range(n):
        router.put(synthetic_update(session, "0", i, 10, rng))
        if i % 50 == 0:
            time.sleep(0.01)
    router.close()


def bench_load(args) -> None:
    from embedviz.stats.storage import InMemoryStatsStorage  # noqa: F401
    from embedviz.ui.server import UIServer

    tmp = Path(args.path).with_suffix(".load")
    tmp.mkdir(exist_ok=True)
    db = tmp / "load.db"
    for f in tmp.glob("*"):
        f.unlink()
    st = SQLiteStatsStorage(db)
    ui = UIServer(port=0, enable_remote=True)
    ui.attach(st)
    ui.start()
    sessions = [f"writer-{k}" for k in range(args.writers)]
    # seed the sessions so the pages can open on them before the writers start
    started = time.time()
    for s in sessions:
        st.put(StaticInfo(s, "0", started, model_class="Bench"))
    st.flush()
    d = driver()
    handles = []
    try:
        for k in range(args.pages):
            if k:
                d.switch_to.new_window("tab")
            d.get(ui.url + f"/train/overview?session={sessions[k % len(sessions)]}")
            wait(d, READY)
            handles.append(d.current_window_handle)
        ctx = mp.get_context("spawn")
        t0 = time.perf_counter()
        procs = [
            ctx.Process(
                target=writer, args=(ui.url, s, args.updates, str(tmp / f"{s}.spill"), started)
            )
            for s in sessions
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - t0
        st.flush()
        counts = {s: st.count_updates(s) for s in sessions}
        total = sum(counts.values())
        print(
            f"{args.writers} writers x {args.updates} updates: {total} stored in "
            f"{elapsed:.1f} s ({total / elapsed:.0f} updates/s); lost: "
            f"{args.writers * args.updates - total}"
        )
        shown = []
        for h in handles:
            d.switch_to.window(h)
            last = args.updates - 1
            wait(
                d,
                "const s = Bokeh.documents[0].get_model_by_name('series:score');"
                f"return s != null && s.data.x.length > 0 && s.data.x[s.data.x.length-1] == {last}",
                timeout=30,
            )
            n = d.execute_script(
                "return Bokeh.documents[0].get_model_by_name('series:score').data.x.length"
            )
            shown.append(n)
        print(f"{args.pages} open pages all reached the last iteration; points drawn: {shown}")
        if total != args.writers * args.updates:
            sys.exit(1)
    finally:
        d.quit()
        ui.stop()
        st.close()
    print(f"peak RSS of the UI process: {rss_mib():.0f} MiB")


def _cpu_seconds(pids) -> float:
    """CPU seconds (user + system) of processes and all their descendants, those that
    ended too (the CPU of children a process waited for, which Linux adds to its
    ``children_user`` and ``children_system``): the UI's diagnostics run in short-lived
    child processes, which a sum over the living ones counted or not depending on
    whether one was running at that moment."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
    return total


def _start_ui(path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedviz.cli", "ui", str(path), "--port", str(port), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    while True:
        try:
            urllib.request.urlopen(url + "/api/sessions", timeout=2).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t0 > 60:
                proc.kill()
                raise SystemExit(f"embedviz ui {path} did not start") from None
            time.sleep(0.2)


def bench_overhead(args) -> None:
    """See the module text: training with / without the UI attached and open."""
    import psutil
    import torch

    import embedviz.stats.storage as storage_module

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_listener import _cnn, _data, _mlp, _train

    torch.set_num_threads(1)
    work = Path(args.path).with_suffix(".overhead")
    work.mkdir(exist_ok=True)
    # "UI no tab": the UI serves the file, no page open (the browser on about:blank)
    files = {"no UI": work / "no-ui.db", "UI no tab": work / "ui.db", "UI open": work / "ui.db"}
    for f in work.glob("*"):
        f.unlink()
    real = storage_module.SQLiteStatsStorage
    real(files["UI open"]).close()  # `embedviz ui FILE` needs the file to exist
    into = {"path": None}

    def storage_into(path, *a, **kw):  # _train names a new file per run: use ours
        return real(into["path"], *a, **kw)

    listener_kwargs = {"frequency": args.frequency, "histogram_frequency": 10 * args.frequency}
    data = _data()
    ui, url = _start_ui(files["UI open"])
    try:
        d = driver()
    except BaseException:  # no browser: stop the UI started for it
        ui.kill()
        raise
    chrome = [d.service.process.pid]
    if args.pin:  # training on CPU 0; the UI server and the browser (all its processes) on 1
        os.sched_setaffinity(0, {0})
        for pid in [ui.pid, *chrome]:
            for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                proc.cpu_affinity([1])
    storage_module.SQLiteStatsStorage = storage_into
    try:
        for model_name, make in (("MLP 64-256-256-10", _mlp), ("CNN 2 conv + 2 fc", _cnn)):
            into["path"] = files["no UI"]
            _train(make, data, 50, None, str(work))  # warm up (numba, torch)
            warm = dict(listener_kwargs, session_id=f"warm-{model_name.split()[0]}")
            _train(make, data, 50, warm, str(work))
            cpu = {k: [] for k in files}
            wall = {k: [] for k in files}
            ui_cpu, chrome_cpu, lag = [], [], []
            for rep in range(args.repeats):
                order = list(files) if rep % 2 == 0 else list(files)[::-1]
                for cond in order:
                    session = f"{model_name.split()[0]}-{cond.replace(' ', '')}-{rep}"
                    into["path"] = files[cond]
                    if cond == "UI open":
                        d.get(f"{url}/train/overview?session={session}")
                        wait(d, READY)  # the page waits for the session
                    else:
                        d.get("about:blank")
                    c0 = (_cpu_seconds([ui.pid]), _cpu_seconds(chrome))
                    kwargs = dict(listener_kwargs, session_id=session)
                    cpu_s, wall_s = _train(make, data, args.iterations, kwargs, str(work))
                    cpu[cond].append(cpu_s)
                    wall[cond].append(wall_s)
                    if cond != "UI open":
                        continue
                    ui_cpu.append(_cpu_seconds([ui.pid]) - c0[0])
                    chrome_cpu.append(_cpu_seconds(chrome) - c0[1])
                    with real(files[cond], read_only=True) as st:
                        last = st.get_latest_update(session, st.list_workers(session)[0])
                    t1 = time.perf_counter()
                    wait(
                        d,
                        "const s = Bokeh.documents[0].get_model_by_name('series:score');"
                        f"return s != null && s.data.x[s.data.x.length - 1] == {last.iteration}",
                        timeout=30,
                    )
                    lag.append(time.perf_counter() - t1)
            med = {k: statistics.median(v) for k, v in cpu.items()}
            print(
                f"{model_name}, {args.iterations} iterations, listener frequency "
                f"{args.frequency} (histograms every {10 * args.frequency}), "
                f"{args.repeats} interleaved repeats:"
            )
            for cond in files:
                print(
                    f"  {cond:9s} training CPU s: "
                    + " ".join(f"{v:.2f}" for v in cpu[cond])
                    + "   wall s: "
                    + " ".join(f"{v:.2f}" for v in wall[cond])
                )
            for cond in ("UI no tab", "UI open"):
                print(
                    f"  {cond} / no UI: CPU median {med[cond] / med['no UI']:.3f}, "
                    f"best {min(cpu[cond]) / min(cpu['no UI']):.3f}; wall median "
                    f"{statistics.median(wall[cond]) / statistics.median(wall['no UI']):.3f}"
                )
            open_wall = wall["UI open"]
            share = [(u / w, c / w) for u, c, w in zip(ui_cpu, chrome_cpu, open_wall, strict=True)]
            print(
                f"  meanwhile per run (median): UI server CPU {statistics.median(ui_cpu):.2f} s, "
                f"Chromium CPU {statistics.median(chrome_cpu):.2f} s (of a core over the "
                f"run: {statistics.median(x[0] for x in share):.2f} and "
                f"{statistics.median(x[1] for x in share):.2f}); the page showed the "
                f"last iteration {statistics.median(lag):.2f} s (max {max(lag):.2f} s) "
                "after the run ended"
            )
        rss = psutil.Process(ui.pid).memory_info().rss / 2**20
        print(f"UI server RSS at the end: {rss:.0f} MiB; load average {os.getloadavg()}")
    finally:
        storage_module.SQLiteStatsStorage = real
        d.quit()
        ui.terminate()
        try:
            ui.wait(15)
        except subprocess.TimeoutExpired:
            ui.kill()
        for f in work.glob("*"):
            f.unlink()
        work.rmdir()
    print(
        "training CPU: process_time of the training loop (storage writer thread included); "
        "wall: the training loop; 'UI no tab': embedviz ui serves the file, no page open"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    tmp = tempfile.gettempdir()  # $TMPDIR, else /tmp
    big = sub.add_parser("big")
    big.add_argument("--updates", type=int, default=100_000)
    big.add_argument("--tensors", type=int, default=50)
    big.add_argument("--opens", type=int, default=5)
    big.add_argument("--page", choices=["overview", "model"], default="overview")
    big.add_argument("--histogram-every", type=int, default=0)
    big.add_argument(
        "--browser-only",
        action="store_true",
        help="only the browser opens (no builder timings, no diagnostics run)",
    )
    big.add_argument("--path", default=os.path.join(tmp, "embedviz-bench-ui.db"))
    load = sub.add_parser("load")
    load.add_argument("--writers", type=int, default=10)
    load.add_argument("--updates", type=int, default=1000)
    load.add_argument("--pages", type=int, default=5)
    load.add_argument("--path", default=os.path.join(tmp, "embedviz-bench-ui"))
    over = sub.add_parser("overhead")
    over.add_argument("--iterations", type=int, default=3000)
    over.add_argument("--repeats", type=int, default=3)
    over.add_argument("--frequency", type=int, default=10)
    over.add_argument(
        "--pin",
        action="store_true",
        help="training on CPU 0, the UI server and the browser on CPU 1 (2+ cores): does "
        "the UI change the training's work, apart from sharing its cores?",
    )
    over.add_argument("--path", default=os.path.join(tmp, "embedviz-bench-ui"))
    args = parser.parse_args()
    {"big": bench_big, "load": bench_load, "overhead": bench_overhead}[args.what](args)


if __name__ == "__main__":
    main()
