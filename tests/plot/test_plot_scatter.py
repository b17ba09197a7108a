"""The word maps' data sources, tools, escaping and input checks (issue 3)."""

from __future__ import annotations

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.plot import _common as C
from embedviz.plot import scatter_2d, scatter_3d
from embedviz.plot.scatter3d import project


def model(layout, name):
    found = list(layout.select({"name": name}))
    assert len(found) == 1, name
    return found[0]


def hover_formatter(layout):
    plot = model(layout, "embedviz_plot")
    hover = next(t for t in plot.tools if type(t).__name__ == "HoverTool")
    return next(iter(hover.formatters.values()))


def decode_neighbors(layout):
    """Neighbour lists back from the page's sources, as (word, similarity) pairs."""
    meta = model(layout, "embedviz_meta")
    nbrs = model(layout, "embedviz_neighbors")
    formatter = hover_formatter(layout)
    extra = list(model(layout, "embedviz_extra_words").data["word"])
    vocab = list(meta.data["word"]) + extra
    k = formatter.args["k"]
    idx, sim = np.asarray(nbrs.data["idx"]), np.asarray(nbrs.data["sim"])
    return [
        [(vocab[idx[i * k + j]], sim[i * k + j] / 100) for j in range(k) if idx[i * k + j] >= 0]
        for i in range(len(vocab) - len(extra))
    ]


def test_2d_sources_hold_the_inputs(small_map):
    m = small_map
    rank = np.arange(len(m["words"]))[::-1] + 1  # reversed frequency order
    layout = scatter_2d(
        m["coords"][:, :2],
        m["words"],
        rank=rank,
        clusters=m["clusters"],
        neighbors=m["neighbors"],
        n_labels=5,
    )
    points = model(layout, "embedviz_points")
    meta = model(layout, "embedviz_meta")
    assert points.data["x"].dtype == np.float32
    np.testing.assert_allclose(points.data["x"], m["coords"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(points.data["y"], m["coords"][:, 1], rtol=1e-6)
    assert list(meta.data["word"]) == m["words"]
    np.testing.assert_array_equal(meta.data["rank"], rank)
    # cluster codes point at names that spell the labels given
    names = model(layout, "embedviz_clusters").data["name"]
    assert [names[c] for c in meta.data["cluster"]] == [str(c) for c in m["clusters"]]
    np.testing.assert_array_equal(points.data["c"], meta.data["cluster"])
    # neighbours survive the compact encoding (similarities to 0.01)
    for got, want in zip(decode_neighbors(layout), m["neighbors"], strict=True):
        assert [w for w, _ in got] == [w for w, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=0.0051)
    # permanent labels: frequent words (low rank) only, at their points
    labels = model(layout, "embedviz_labels").data
    assert 0 < len(labels["text"]) <= 5
    assert set(labels["kind"]) == {"base"}
    chosen = labels["i"]
    assert rank[chosen[0]] == 1 and list(rank[chosen]) == sorted(rank[chosen])
    assert [m["words"][i] for i in chosen] == labels["text"]
    np.testing.assert_allclose(labels["x"], m["coords"][chosen, 0], rtol=1e-6)


def test_2d_default_rank_is_not_stored_and_neighbours_outside_the_map_are_kept():
    words = ["a", "b", "c"]
    neighbors = [[("b", 0.9), ("zz", 0.5)], [("a", 0.9)], []]
    layout = scatter_2d(np.eye(3)[:, :2], words, rank=[1, 2, 3], neighbors=neighbors)
    meta = model(layout, "embedviz_meta")
    assert "rank" not in meta.data and "cluster" not in meta.data
    got = decode_neighbors(layout)
    assert got[0] == [("b", 0.9), ("zz", 0.5)]
    assert got[1] == [("a", 0.9)] and got[2] == []


def test_2d_tools_and_backend():
    small = scatter_2d(np.random.default_rng(0).normal(size=(10, 2)), list("abcdefghij"))
    plot = model(small, "embedviz_plot")
    kinds = {type(t).__name__ for t in plot.tools}
    assert {"HoverTool", "TapTool", "PanTool", "WheelZoomTool", "ResetTool"} <= kinds
    assert plot.output_backend == "canvas"
    tap = next(t for t in plot.tools if type(t).__name__ == "TapTool")
    assert tap.callback is not None and "info.text" in tap.callback.code
    search = model(small, "embedviz_search")
    assert set(search.js_property_callbacks) == {"change:value", "change:value_input"}
    n = C.WEBGL_THRESHOLD
    big = scatter_2d(np.random.default_rng(0).normal(size=(n, 2)), [f"w{i}" for i in range(n)])
    assert model(big, "embedviz_plot").output_backend == "webgl"


def test_no_template_turns_escaping_off(small_map):
    """Tooltips show words through Bokeh's templating, which escapes unless a field says
    {safe}; the panel and messages escape in JS (checked in a browser by
    test_plot_browser.py::test_2d_evil_words_stay_text)."""
    m = small_map
    layout = scatter_2d(m["coords"][:, :2], m["words"], clusters=["<b>x</b>"] * len(m["words"]))
    plot = model(layout, "embedviz_plot")
    hover = next(t for t in plot.tools if type(t).__name__ == "HoverTool")
    assert "{safe}" not in hover.tooltips


@pytest.mark.parametrize("scatter, dims", [(scatter_2d, 2), (scatter_3d, 3)])
def test_a_long_legend_scrolls_in_the_side_bar_with_escaped_natural_order(scatter, dims, rng):
    n = 900
    labels = [f"L{i % 300}" for i in range(n)]
    labels[0] = labels[300] = labels[600] = "<img src=x onerror=alert(1)>"
    layout = scatter(rng.normal(size=(n, dims)), [f"w{i}" for i in range(n)], clusters=labels,
                     legend_title="label")  # fmt: skip
    plot = model(layout, "embedviz_plot")
    assert not [r for r in plot.right if type(r).__name__ == "Legend"]  # not beside the plot
    div = model(layout, "embedviz_legend")
    assert type(div).__name__ == "Div" and "<img" not in div.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in div.text and "label" in div.text
    order = [int(t) for t in __import__("re").findall(r">L(\d+)</div>", div.text)]
    assert order == sorted(order) and len(order) == 299
    side = layout.children[1]
    assert side.children[-1] is div  # under the search box and reset button


def test_a_short_legend_stays_beside_the_plot():
    names = [f"c{j}" for j in (10, 2, 1)] * 4
    layout = scatter_2d(np.random.default_rng(0).normal(size=(12, 2)), list("abcdefghijkl"),
                        clusters=names, legend_title="label")  # fmt: skip
    legend = model(layout, "embedviz_legend")
    assert type(legend).__name__ == "Legend" and legend.title == "label"
    assert [item.label.value for item in legend.items] == ["c1", "c2", "c10"]


def test_cluster_names_sort_naturally_numbers_first():
    from embedviz.plot._inputs import _encode_clusters

    labels = ["L10", "L2", "(no label)", "l1", "L1", "L01", "x2y10", "x2y9", "b", "A"]
    codes, names = _encode_clusters(labels)
    assert names == ["(no label)", "A", "b", "L01", "L1", "l1", "L2", "L10", "x2y9", "x2y10"]
    assert [names[c] for c in codes] == labels
    assert _encode_clusters([10, 2, 1])[1] == ["1", "2", "10"]


def test_map_labels_are_cut_but_the_words_are_whole():
    words = ["a" * 100, "b" * 40, "😀" * 45, "short"]
    coords = np.column_stack([np.zeros(4), np.arange(4) * 10.0])  # one label a row
    layout = scatter_2d(coords, words, n_labels=4)
    labels = model(layout, "embedviz_labels").data
    assert sorted(labels["text"]) == sorted(["a" * 39 + "…", "b" * 40, "😀" * 39 + "…", "short"])
    assert model(layout, "embedviz_meta").data["word"] == words  # hover and tap use these


def test_3d_sources_projection_and_order(small_map):
    m = small_map
    layout = scatter_3d(m["coords"], m["words"], clusters=m["clusters"], neighbors=m["neighbors"])
    d = model(layout, "embedviz_points").data
    orig = np.asarray(d["orig"])
    assert sorted(orig) == list(range(len(m["words"])))
    xyz = np.column_stack([d["x"], d["y"], d["z"]])
    # rows are the centred, scaled input in depth order
    centred = m["coords"] - m["coords"].mean(axis=0)
    scale = np.linalg.norm(centred[orig[0]]) / np.linalg.norm(xyz[0])
    np.testing.assert_allclose(xyz * scale, centred[orig], rtol=1e-5, atol=1e-5)
    yaw, pitch = model(layout, "embedviz_yaw").value, model(layout, "embedviz_pitch").value
    px, py, depth = project(xyz.astype(np.float64), yaw, pitch)
    np.testing.assert_allclose(d["px"], px, atol=1e-5)
    np.testing.assert_allclose(d["py"], py, atol=1e-5)
    assert np.all(np.diff(np.floor(np.asarray(d["d"]) * 512)) >= 0)  # far first
    np.testing.assert_array_equal(d["c"], np.asarray(m["clusters"])[orig])
    assert list(model(layout, "embedviz_meta").data["word"]) == m["words"]


def test_project_is_a_rotation_with_perspective():
    rng = np.random.default_rng(3)
    xyz = rng.normal(size=(50, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True).max()
    px, py, _ = project(xyz, 0.0, 0.0, camera=1e9)  # camera far away: orthographic
    np.testing.assert_allclose(np.column_stack([px, py]), xyz[:, :2], atol=1e-6)
    # yaw 90: x goes to depth, z comes to the screen's x
    px, _, depth = project(xyz, 90.0, 0.0, camera=1e9)
    np.testing.assert_allclose(px, xyz[:, 2], atol=1e-6)
    np.testing.assert_allclose(depth, np.clip((1 - xyz[:, 0]) / 2, 0, 1), atol=1e-6)
    # perspective: nearer points spread further from the centre
    near = project(np.array([[0.5, 0.0, 0.5]]), 0.0, 0.0)[0][0]
    far = project(np.array([[0.5, 0.0, -0.5]]), 0.0, 0.0)[0][0]
    assert near > 0.5 > far


@pytest.mark.parametrize("plot, dims", [(scatter_2d, 2), (scatter_3d, 3)])
def test_bad_inputs_raise_input_error(plot, dims):
    xy = np.zeros((3, dims))
    words = ["a", "b", "c"]
    with pytest.raises(
        InputError, match=rf"coords: expected shape \(N, {dims}\), got shape \(3, {dims + 1}\)"
    ):
        plot(np.zeros((3, dims + 1)), words)
    with pytest.raises(
        InputError, match=r"words: expected 3 entries \(one per row of coords\), got 2"
    ):
        plot(xy, words[:2])
    bad = xy.copy()
    bad[1, 0] = np.nan
    with pytest.raises(
        InputError,
        match="coords: expected finite numbers, got 1 row.* NaN or inf, the first at row 1",
    ):
        plot(bad, words)
    with pytest.raises(InputError, match=r"words\[2\]: expected a str, got int 3"):
        plot(xy, ["a", "b", 3])
    with pytest.raises(InputError, match=r"clusters: expected 3 labels \(one per word\), got 2"):
        plot(xy, words, clusters=[0, 1])
    with pytest.raises(InputError, match=r"neighbors: expected 3 lists \(one per word\), got 1"):
        plot(xy, words, neighbors=[[("a", 1.0)]])
    with pytest.raises(
        InputError,
        match=r"neighbors\[0\]\[0\]: expected a \(word, cosine_similarity\) pair, got \('a',\)",
    ):
        plot(xy, words, neighbors=[[("a",)], [], []])
    with pytest.raises(
        InputError, match=r"rank: expected 3 integers .* got shape \(3,\) and dtype float64"
    ):
        plot(xy, words, rank=[1.5, 2, 3])
    with pytest.raises(InputError, match="n_labels: expected an integer >= 0, got -1"):
        plot(xy, words, n_labels=-1)
    with pytest.raises(InputError, match=r"coords: expected at least one row, got shape \(0, "):
        plot(np.zeros((0, dims)), [])


@pytest.mark.parametrize("k", [1, 3, 12, 20, 41, 300])
def test_palette_has_distinct_colours(k):
    colours = C.palette(k)
    assert len(colours) == k and len(set(colours)) == k


def test_home_view_keeps_equal_scale_and_room_for_labels_on_the_right():
    xy = np.array([[0.0, 0.0], [10.0, 5.0], [3.0, 1.0]])
    x0, x1, y0, y1 = C.home_view(xy, 700, 600)
    assert (x1 - x0) / 700 == pytest.approx((y1 - y0) / 600)  # equal scale
    px = 700 / (x1 - x0)
    right, left = (x1 - 10.0) * px, (0.0 - x0) * px
    assert right >= left + 0.09 * 10.0 * px  # about 70 px more room for a label
    assert y0 < 0.0 and y1 > 5.0


def test_labels_do_not_overlap_and_follow_frequency():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(500, 2))
    words = [f"w{i:03d}" for i in range(500)]
    home = C.home_view(xy, 700, 600)
    chosen = C.base_label_indices(xy, words, None, 40, home, (700, 600))
    assert chosen[0] == 0 and chosen == sorted(chosen)  # frequency order, the top word first
    sx = (xy[chosen, 0] - home[0]) / (home[1] - home[0]) * 700
    sy = (xy[chosen, 1] - home[2]) / (home[3] - home[2]) * 600
    for a in range(len(chosen)):
        for b in range(a):
            overlap_x = abs(sx[a] - sx[b]) < 6 + 6.5 * 4
            overlap_y = abs(sy[a] - sy[b]) < 13
            assert not (overlap_x and overlap_y)


def test_legend_names_numbered_clusters_by_their_frequent_words():
    names = ["0", "1"]
    codes = np.array([1, 0, 0, 1])
    got = C.legend_labels(names, codes, ["the", "of", "and", "to"], None)
    assert got == ["0  of, and", "1  the, to"]
    assert C.legend_labels(["noun", "verb"], codes, ["a", "b", "c", "d"], None) == ["noun", "verb"]


def test_legend_examples_are_words_before_punctuation():
    # review 9: at 50k GloVe words the legend read "the, ," and "/, shares"
    codes = np.array([0, 0, 1, 1, 0, 1, 1])
    words = [",", "the", "/", "--", "city", "shares", "."]
    assert C.legend_labels(["0", "1"], codes, words, None) == ["0  the, city", "1  shares, /"]


def test_importing_embedviz_plot_imports_no_bokeh():
    import subprocess
    import sys

    code = "import sys, embedviz.plot; print('bokeh' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
