"""Fixtures for the plot tests: small word maps and a headless Chromium driven by selenium."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from browser_needed import need_browser

from embedviz._browser import headless_chromium

# words that must stay text wherever they appear (a vocabulary can hold anything)
EVIL_WORDS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    'a"b</div>',
    "</script><script>window.__xss=3</script>",
    "😀emoji",
    "&amp;",
]


@pytest.fixture
def evil_words():
    return list(EVIL_WORDS)


@pytest.fixture
def small_map(rng):
    """40 words in 3 clusters with neighbour lists (neighbours are real nearest rows)."""
    n = 40
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 5.0], [0.0, 10.0, -5.0]])
    labels = np.arange(n) % 3
    coords = centres[labels] + rng.normal(size=(n, 3))
    words = [f"word{i}" for i in range(n - len(EVIL_WORDS))] + EVIL_WORDS
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)[:, :5]
    neighbors = [[(words[j], float(1.0 / (1.0 + d[i, j]))) for j in order[i]] for i in range(n)]
    rank = np.arange(n) + 1
    return {
        "coords": coords,
        "words": words,
        "clusters": labels,
        "neighbors": neighbors,
        "rank": rank,
    }


# ------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def browser():
    """A headless Chromium; skipped (with the reason) where it is not installed, a
    failure where it is required (CI)."""
    need_browser()
    driver = headless_chromium(window_size=(1280, 900))
    yield driver
    driver.quit()


FIND_DEEP = """
function find(root, sel) {
  const hit = root.querySelector(sel)
  if (hit) return hit
  for (const el of root.querySelectorAll("*")) {
    if (el.shadowRoot) { const f = find(el.shadowRoot, sel); if (f) return f }
  }
  return null
}
return find(document, arguments[0])
"""

PLOT_VIEW = """
const doc = Bokeh.documents[0]
const plot = doc.get_model_by_name("embedviz_plot")
const roots = Bokeh.index.values ? [...Bokeh.index.values()] : Object.values(Bokeh.index)
let view = null
for (const r of roots) { view = r.owner.get_one(plot); if (view) break }
"""


class Page:
    """An opened word map, with helpers that read its state through BokehJS."""

    def __init__(self, driver, path: Path, query: str = ""):
        self.driver = driver
        driver.get_log("browser")  # drop what earlier pages logged
        driver.get(path.resolve().as_uri() + query)
        self.wait_for("return window.Bokeh != null && Bokeh.documents.length > 0", timeout=30)
        self.wait_for(PLOT_VIEW + "return view != null && view.is_idle", timeout=30)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def model(self, name: str, expr: str):
        """Evaluate ``expr`` with ``m`` bound to the model called ``name``."""
        return self.js(f"const m = Bokeh.documents[0].get_model_by_name({name!r}); return {expr}")

    def wait_for(self, script: str, timeout: float = 10.0, *args):
        end = time.monotonic() + timeout
        while True:
            value = self.driver.execute_script(script, *args)
            if value:
                return value
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for: {script}")
            time.sleep(0.05)

    def element(self, css: str):
        return self.js(FIND_DEEP, css)

    def errors(self) -> list[dict]:
        """Console errors and warnings, less Chromium's notice about software WebGL."""
        return [
            e
            for e in self.driver.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING")
            and not (e.get("source") == "rendering" and "WebGL" in e["message"])
        ]

    def uses_webgl(self) -> bool:
        return self.js("return (() => {" + PLOT_VIEW + "return view.canvas_view.webgl != null})()")

    def point_on_screen(self, row: int, xf: str = "x", yf: str = "y") -> tuple[float, float]:
        """Viewport coordinates of a row of the drawn source."""
        return tuple(
            self.js(
                PLOT_VIEW
                + f"""
            const pts = doc.get_model_by_name("embedviz_points")
            const r = view.canvas_view.el.getBoundingClientRect()
            return [r.left + view.frame.x_scale.compute(pts.data.{xf}[arguments[0]]),
                    r.top + view.frame.y_scale.compute(pts.data.{yf}[arguments[0]])]""",
                row,
            )
        )

    def frame_box(self) -> tuple[float, float, float, float]:
        """The plot frame (left, top, width, height) in viewport coordinates."""
        return tuple(
            self.js(
                PLOT_VIEW
                + """
            const r = view.canvas_view.el.getBoundingClientRect(), b = view.frame.bbox
            return [r.left + b.left, r.top + b.top, b.width, b.height]"""
            )
        )


@pytest.fixture
def open_page(browser):
    def _open(path: Path, query: str = "") -> Page:
        return Page(browser, path, query)

    return _open
