"""Helpers for the real-browser tests of the UI: waiting on a page, its readiness and its
drawn charts, the console's errors.

A module of its own rather than ``conftest``: ``from conftest import ...`` picks whichever
``conftest`` module was imported first when pytest runs several test folders together.
"""

from __future__ import annotations

import time


def wait_for(driver, script: str, timeout: float = 15.0, *args):
    """Run ``script`` in the page until it returns something truthy; that value."""
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for: {script}")
        time.sleep(0.1)


VIEWS = """
const roots = Bokeh.index.values ? [...Bokeh.index.values()] : Object.values(Bokeh.index)
function view_of(model) {
  for (const r of roots) { const v = r.owner.get_one(model); if (v) return v }
  return null
}
"""

# every visible plot: how many have a laid-out frame and at least one non-empty source
DRAWN = (
    VIEWS
    + """
const doc = Bokeh.documents[0]
let plots = 0, drawn = 0, empty_frames = 0
for (const m of doc.all_models) {
  if (!m.renderers || !m.x_range || !m.visible) continue
  const v = view_of(m)
  if (v == null) continue  // inside a hidden parent
  let hidden = false
  for (let p = v.parent; p != null; p = p.parent) { if (p.model.visible === false) hidden = true }
  if (hidden) continue
  plots += 1
  if (v.frame.bbox.width < 50 || v.frame.bbox.height < 50) { empty_frames += 1; continue }
  for (const r of m.renderers) {
    const ds = r.data_source
    if (ds && ds.data && Object.values(ds.data).some(c => c.length > 0)) { drawn += 1; break }
  }
}
return [plots, drawn, empty_frames]
"""
)

# the server builds a page in the background and marks the nav bar when it is shown
READY = (
    "return window.Bokeh != null && Bokeh.documents.length > 0 && "
    "Bokeh.documents[0].roots().length > 0 && "
    "(() => { const n = Bokeh.documents[0].get_model_by_name('nav');"
    "return n == null || n.tags.includes('ready') })() && "
    + "(() => {"
    + VIEWS
    + "return roots.length > 0 && roots.every(r => r.is_idle)})()"
)


def severe(driver) -> list[dict]:
    """The console's errors since the last read."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def open_page(driver, url: str) -> None:
    """Open ``url`` (console log emptied first) and wait until its document is drawn."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    wait_for(driver, READY, timeout=60)
