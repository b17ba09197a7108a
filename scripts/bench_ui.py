"""Benchmarks of the training UI (issue 5 targets).

``python scripts/bench_ui.py big [--updates 100000 --tensors 50]``
    Writes (once, then reuses) a SQLite file with that many updates of that many
    parameter tensors, then times the overview: the page builder alone, and a real
    browser opening ``/train/overview`` until every chart is drawn; prints the server
    process's peak RSS. Target: open in <= 2 s, server <= 300 MB.

``python scripts/bench_ui.py load [--writers 10 --updates 1000 --pages 5]``
    A UI with the remote receiver on; ``writers`` processes each send ``updates``
    updates through :class:`~embedviz.stats.remote.RemoteStatsRouter` while ``pages``
    browser tabs show the overview of those sessions. Checks that every update arrived
    (nothing lost) and that every open page kept updating.

Both need headless Chromium (/usr/bin/chromium, chromedriver) for the browser part.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from embedviz.stats.records import ActivationStats, ParamStats, StaticInfo, Update
from embedviz.stats.storage import SQLiteStatsStorage

READY = """
if (!(window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].roots().length > 0))
  return false
const nav = Bokeh.documents[0].get_model_by_name("nav")
if (nav != null && !nav.tags.includes("ready")) return false
const roots = Bokeh.index.values ? [...Bokeh.index.values()] : Object.values(Bokeh.index)
return roots.length > 0 && roots.every(r => r.is_idle)
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


def make_big(path: Path, n_updates: int, n_tensors: int) -> None:
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
            st.put_many(
                synthetic_update("big", "0", i, n_tensors, rng)
                for i in range(start, min(start + 2000, n_updates))
            )
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


def bench_big(args) -> None:
    from embedviz.ui.pages.overview import build_overview
    from embedviz.ui.server import UIServer

    path = Path(args.path)
    make_big(path, args.updates, args.tensors)
    print(f"RSS after writing: {rss_mib():.0f} MiB (peak)")
    st = SQLiteStatsStorage(path, read_only=True)
    for _ in range(2):
        t0 = time.perf_counter()
        build_overview(st, "big", findings=False)
        print(f"build_overview (page builder, no diagnostics): {time.perf_counter() - t0:.2f} s")
    ui = UIServer(port=0)
    ui.attach(st)
    ui.start()
    d = driver()
    try:
        for k in range(2):
            t0 = time.perf_counter()
            d.get(ui.url + "/train/overview?session=big")
            wait(d, READY)
            print(
                f"browser open #{k + 1} of /train/overview until drawn: "
                f"{time.perf_counter() - t0:.2f} s"
            )
    finally:
        d.quit()
        ui.stop()
        st.close()
    print(f"peak RSS of the server process: {rss_mib():.0f} MiB")


def writer(url: str, session: str, n: int, spill: str) -> None:
    from embedviz.stats.remote import RemoteStatsRouter

    rng = np.random.default_rng(abs(hash(session)) % 2**32)
    router = RemoteStatsRouter(url, spill_path=spill, batch_size=100)
    router.put(StaticInfo(session, "0", time.time(), model_class="Bench"))
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
    for s in sessions:
        st.put(StaticInfo(s, "0", time.time(), model_class="Bench"))
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
            ctx.Process(target=writer, args=(ui.url, s, args.updates, str(tmp / f"{s}.spill")))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    big = sub.add_parser("big")
    big.add_argument("--updates", type=int, default=100_000)
    big.add_argument("--tensors", type=int, default=50)
    big.add_argument(
        "--path", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "embedviz-bench-ui.db")
    )
    load = sub.add_parser("load")
    load.add_argument("--writers", type=int, default=10)
    load.add_argument("--updates", type=int, default=1000)
    load.add_argument("--pages", type=int, default=5)
    load.add_argument(
        "--path", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "embedviz-bench-ui")
    )
    args = parser.parse_args()
    (bench_big if args.what == "big" else bench_load)(args)


if __name__ == "__main__":
    main()
