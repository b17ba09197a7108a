"""Real-browser tests: headless Chromium opens saved 2D and 3D maps from disk (issue 3).

Skipped with a reason where /usr/bin/chromium or chromedriver is missing; CI installs
both (Debian ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from embedviz.plot import save_html, scatter_2d, scatter_3d
from embedviz.plot.scatter3d import project

pytestmark = pytest.mark.browser


@pytest.fixture
def page_2d(small_map, tmp_path, open_page):
    m = small_map
    layout = scatter_2d(
        m["coords"][:, :2],
        m["words"],
        rank=m["rank"],
        clusters=m["clusters"],
        neighbors=m["neighbors"],
        title="<script>window.__xss=4</script>",
        n_labels=10,
    )
    path = save_html(layout, tmp_path / "map2d.html", title="<script>window.__xss=5</script>")
    return open_page(path)


@pytest.fixture
def page_3d(small_map, tmp_path, open_page):
    m = small_map
    layout = scatter_3d(
        m["coords"], m["words"], clusters=m["clusters"], neighbors=m["neighbors"], n_labels=10
    )
    return open_page(save_html(layout, tmp_path / "map3d.html"))


def coloured_pixels(page) -> int:
    """Pixels inside the plot frame that are clearly not white or grey."""
    from PIL import Image

    image = Image.open(io.BytesIO(page.driver.get_screenshot_as_png())).convert("RGB")
    scale = page.js("return window.devicePixelRatio") or 1
    left, top, width, height = (int(v * scale) for v in page.frame_box())
    a = np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.int16)
    saturation = a.max(axis=2) - a.min(axis=2)
    return int((saturation > 40).sum())


def type_search(page, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    box = page.element("input[type=text]")
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


N_SELECTED = (
    "return Bokeh.documents[0].get_model_by_name('embedviz_points').selected.indices.length"
)


def selected(page) -> list[int]:
    return sorted(page.model("embedviz_points", "Array.from(m.selected.indices)"))


def test_2d_page_opens_draws_and_logs_no_errors(page_2d):
    assert page_2d.errors() == []
    assert coloured_pixels(page_2d) > 200
    assert page_2d.driver.title == "<script>window.__xss=5</script>"  # shown as text
    assert page_2d.js("return window.__xss") is None


def test_the_console_check_sees_errors(page_2d):
    """A positive control for every ``errors() == []`` (review 10): an error and a
    warning the page logs are read back."""
    page_2d.errors()  # what the page logged so far
    page_2d.js("console.error('control: an error'); console.warn('control: a warning')")
    messages = " ".join(e["message"] for e in page_2d.errors())
    assert "control: an error" in messages and "control: a warning" in messages


def test_2d_search_selects_the_word(page_2d, small_map):
    words = small_map["words"]
    type_search(page_2d, "word7")
    page_2d.wait_for(N_SELECTED + " == 1")
    assert selected(page_2d) == [words.index("word7")]
    assert page_2d.model("embedviz_message", "m.text").startswith("1 match")
    # the view zoomed in around the word
    x = small_map["coords"][words.index("word7"), 0]
    start, end = page_2d.model("embedviz_x_range", "[m.start, m.end]")
    assert start < x < end
    assert page_2d.errors() == []


def test_2d_search_names_the_words_that_matched_nothing(page_2d, small_map):
    words = small_map["words"]
    type_search(page_2d, "word7 Zzzz <b>x</b>")
    page_2d.wait_for(N_SELECTED + " == 1")
    assert selected(page_2d) == [words.index("word7")]
    message = page_2d.model("embedviz_message", "m.text")
    assert message.startswith("1 match for")
    assert message.endswith("; no match: Zzzz &lt;b&gt;x&lt;/b&gt;")  # as typed, escaped
    type_search(page_2d, "word7 WORD8")  # every word found (any case): nothing to name
    page_2d.wait_for(N_SELECTED + " == 2")
    assert "no match" not in page_2d.model("embedviz_message", "m.text")
    assert page_2d.errors() == []


def test_2d_regex_search_and_invalid_regex(page_2d, small_map):
    words = small_map["words"]
    page_2d.model("embedviz_regex", "(m.active = true)")
    type_search(page_2d, r"^word1\d$")
    expected = [i for i, w in enumerate(words) if w.startswith("word1") and len(w) == 6]
    page_2d.wait_for(N_SELECTED + f" == {len(expected)}")
    assert selected(page_2d) == expected
    type_search(page_2d, "word(")
    page_2d.wait_for(
        "return Bokeh.documents[0].get_model_by_name('embedviz_message').text.includes('nvalid')"
    )
    assert page_2d.errors() == []


def test_2d_evil_words_stay_text(page_2d, small_map):
    """Search, tap and hover the hostile words: no script runs, the panel shows text."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    words = small_map["words"]
    evil = words.index("<script>window.__xss=1</script>")
    type_search(page_2d, words[evil])  # exact search: the message quotes the query
    page_2d.wait_for(N_SELECTED + " == 1")
    message = page_2d.model("embedviz_message", "m.text")
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in message and "<script" not in message
    page_2d.model("embedviz_regex", "(m.active = true)")
    type_search(page_2d, "script|img|div")
    page_2d.wait_for(N_SELECTED + " > 0")
    page_2d.element("button").click()  # reset: whole map again
    page_2d.wait_for(N_SELECTED + " == 0")
    x, y = page_2d.point_on_screen(evil)
    actions = ActionBuilder(page_2d.driver)
    actions.pointer_action.move_to_location(int(x), int(y))
    actions.perform()
    tooltip = page_2d.wait_for(
        """const el = (%s)
        return el && el.textContent.includes('window.__xss=1') ? el.innerHTML : null"""
        % ("(function(){" + FIND_TOOLTIP + "})()")
    )
    assert "<script>" not in tooltip and "&lt;script&gt;" in tooltip
    ActionChains(page_2d.driver).click().perform()
    info = page_2d.wait_for(
        "const t = Bokeh.documents[0].get_model_by_name('embedviz_info').text;"
        "return t.includes('xss') ? t : null"
    )
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in info
    assert "<script>" not in info
    assert page_2d.js("return window.__xss") is None
    assert page_2d.errors() == []


FIND_TOOLTIP = """
function find(root) {
  for (const el of root.querySelectorAll("*")) {
    if (el.classList && el.classList.contains("bk-tooltip-content")) return el
    if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f }
  }
  return null
}
return find(document)
"""


def test_3d_page_rotates_with_the_slider(page_3d, small_map):
    assert page_3d.errors() == []
    assert coloured_pixels(page_3d) > 200
    before = page_3d.model("embedviz_points", "[Array.from(m.data.px), Array.from(m.data.orig)]")
    page_3d.model("embedviz_yaw", "(m.value = 100)")
    page_3d.wait_for(
        "return Bokeh.documents[0].get_model_by_name('embedviz_points').data.px[0] != arguments[0]",
        10,
        before[0][0],
    )
    px, py, orig, x, y, z = page_3d.model(
        "embedviz_points",
        "['px', 'py', 'orig', 'x', 'y', 'z'].map((c) => Array.from(m.data[c]))",
    )
    xyz = np.column_stack([x, y, z])
    ex, ey, depth = project(xyz, 100.0, 20.0)
    np.testing.assert_allclose(px, ex, atol=1e-4)
    np.testing.assert_allclose(py, ey, atol=1e-4)
    assert np.all(np.diff(np.floor(depth * 512)) >= 0)  # far points drawn first
    assert sorted(orig) == list(range(len(small_map["words"])))
    assert not np.allclose(sorted(px), sorted(before[0]))
    assert page_3d.errors() == []


def test_3d_search_survives_rotation(page_3d, small_map):
    words = small_map["words"]
    type_search(page_3d, "word5")
    page_3d.wait_for(N_SELECTED + " == 1")
    row = selected(page_3d)[0]
    assert page_3d.model("embedviz_points", f"m.data.orig[{row}]") == words.index("word5")
    page_3d.model("embedviz_pitch", "(m.value = -45)")
    page_3d.wait_for(
        "const m = Bokeh.documents[0].get_model_by_name('embedviz_points');"
        f"return m.selected.indices.length == 1 && m.data.orig[m.selected.indices[0]] == "
        f"{words.index('word5')}"
    )
    assert page_3d.errors() == []


def test_3d_drag_turns_the_cloud(page_3d):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    left, top, width, height = page_3d.frame_box()
    actions = ActionBuilder(page_3d.driver)
    cx, cy = int(left + width / 2), int(top + height / 2)
    actions.pointer_action.move_to_location(cx, cy).pointer_down()
    for step in range(1, 6):
        actions.pointer_action.move_to_location(cx + 20 * step, cy + 5 * step)
    actions.pointer_action.pointer_up()
    actions.perform()
    yaw = page_3d.wait_for(
        "const v = Bokeh.documents[0].get_model_by_name('embedviz_yaw').value;"
        "return v != 30 ? v : null"
    )
    assert yaw > 30  # dragged right: turned by 0.4 degrees a pixel
    page_3d.element("button").click()  # reset: back to the home angles
    page_3d.wait_for("return Bokeh.documents[0].get_model_by_name('embedviz_yaw').value == 30")
    assert page_3d.errors() == []


@pytest.mark.parametrize("query", ["", "?webgl=force"])
def test_large_map_draws_with_webgl_or_its_canvas_fallback(tmp_path, open_page, rng, query):
    """From 5,000 points the plot asks for WebGL; software WebGL falls back to canvas."""
    n = 6000
    words = [f"w{i}" for i in range(n)]
    layout = scatter_2d(rng.normal(size=(n, 2)), words, clusters=rng.integers(0, 30, n))
    page = open_page(save_html(layout, tmp_path / "big.html"), query)
    software = page.js("return window.embedviz_software_gl ?? null")
    webgl = page.uses_webgl()
    if query:
        assert software is None and webgl  # forced: WebGL (SwiftShader in headless Chromium)
    else:
        assert webgl == (software is None)
    assert coloured_pixels(page) > 2000
    type_search(page, "w4321")
    page.wait_for(N_SELECTED + " == 1")
    assert selected(page) == [4321]
    assert page.errors() == []


def test_3d_hover_names_the_point_on_top(page_3d, small_map):
    """Hover through @orig: the tooltip names the word drawn at the cursor (the nearest)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    n = len(small_map["words"])
    row = n - 1  # the nearest point: drawn last, nothing covers it
    word = small_map["words"][page_3d.model("embedviz_points", f"m.data.orig[{row}]")]
    x, y = page_3d.point_on_screen(row, "px", "py")
    actions = ActionBuilder(page_3d.driver)
    actions.pointer_action.move_to_location(int(x), int(y))
    actions.perform()
    text = page_3d.wait_for(
        "const el = (function(){" + FIND_TOOLTIP + "})(); return el ? el.textContent : null"
    )
    assert text.strip().startswith(word)
    assert "rank" in text and "cluster" in text
    assert page_3d.errors() == []


def test_search_as_you_type_goes_home_when_the_query_stops_matching(page_2d, small_map):
    """Typing "word7zzz" first matches "word7" (zoom in), then nothing: the whole map."""
    home = page_2d.model("embedviz_x_range", "[m.start, m.end]")
    box = page_2d.element("input[type=text]")
    box.clear()
    box.send_keys("word7")  # no Enter: search as you type
    page_2d.wait_for(N_SELECTED + " == 1")
    zoomed = page_2d.model("embedviz_x_range", "[m.start, m.end]")
    assert zoomed[1] - zoomed[0] < 0.5 * (home[1] - home[0])
    box.send_keys("zzz")
    page_2d.wait_for(N_SELECTED + " == 0")
    page_2d.wait_for(
        "const m = Bokeh.documents[0].get_model_by_name('embedviz_x_range');"
        "return Math.abs(m.start - arguments[0]) < 1e-9 && Math.abs(m.end - arguments[1]) < 1e-9",
        10,
        *home,
    )
    assert page_2d.model("embedviz_message", "m.text").startswith("0 matches")
    assert page_2d.errors() == []


@pytest.mark.parametrize(
    "label, n_labels, beside",
    [
        ("L{}", 300, False),  # many: a list that scrolls in the side bar
        ("W" * 28 + "{:02d}", 30, False),  # wide: the same
        ("W" * 18 + "{:02d}", 30, True),  # the widest legend kept beside the plot
    ],
)
def test_many_or_wide_labels_keep_the_controls_on_screen(
    tmp_path, open_page, rng, label, n_labels, beside
):
    """Search and reset stay in a 1280-px window and the page does not scroll sideways."""
    n = 1500
    words = [f"w{i}" for i in range(n)]
    labels = [label.format(i % n_labels) for i in range(n)]
    layout = scatter_2d(rng.normal(size=(n, 2)), words, clusters=labels, legend_title="label")
    page = open_page(save_html(layout, tmp_path / "labels.html"))
    width = page.js("return window.innerWidth")
    assert width == 1280
    assert page.js("return document.documentElement.scrollWidth") <= width
    for css in ("input[type=text]", "button"):
        rect = page.js("return arguments[0].getBoundingClientRect().toJSON()", page.element(css))
        assert 0 <= rect["left"] and rect["right"] <= width and rect["bottom"] <= 900
    last = page.element(f"div[title='{label.format(n_labels - 1)}']")
    if beside:
        assert last is None  # a Bokeh legend beside the plot, drawn on its canvas
        assert page.model("embedviz_legend", "m.type") == "Legend"
        return
    legend = last.find_element("xpath", "..")
    entries = page.js("return Array.from(arguments[0].children).map((e) => e.textContent)", legend)
    assert entries == sorted(set(labels), key=lambda t: int(t[-2:] if n_labels == 30 else t[1:]))
    if n_labels == 300:  # natural order (L2 before L10), in a list that scrolls
        scroll = page.js("return [arguments[0].scrollHeight, arguments[0].clientHeight]", legend)
        assert scroll[0] > 2 * scroll[1]
    assert page.errors() == []


def test_long_words_get_short_labels_and_whole_words_on_tap(tmp_path, open_page, rng):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    long_word = "<b>" + "x" * 300 + "END"
    words = [long_word] + [f"w{i}" for i in range(1, 30)]
    coords = rng.normal(size=(30, 2))
    coords[0] = coords[1:].min(axis=0) - 1.0  # alone in a corner: its label is drawn
    layout = scatter_2d(coords, words, n_labels=5)
    page = open_page(save_html(layout, tmp_path / "long.html"))
    texts = page.model("embedviz_labels", "Array.from(m.data.text)")
    assert texts[0] == long_word[:39] + "…" and max(map(len, texts)) <= 40
    page.model("embedviz_regex", "(m.active = true)")
    type_search(page, "END$")
    page.wait_for(N_SELECTED + " == 1")
    searched = page.model("embedviz_labels", "Array.from(m.data.text)")
    assert max(map(len, searched)) <= 40
    page.element("button").click()  # reset
    page.wait_for(N_SELECTED + " == 0")
    x, y = page.point_on_screen(0)
    actions = ActionBuilder(page.driver)
    actions.pointer_action.move_to_location(int(x), int(y))
    actions.perform()
    ActionChains(page.driver).click().perform()
    info = page.wait_for(
        "const t = Bokeh.documents[0].get_model_by_name('embedviz_info').text;"
        "return t.includes('END') ? t : null"
    )
    assert "&lt;b&gt;" + "x" * 300 + "END" in info  # the whole word, escaped
    assert page.errors() == []
