"""The compare page with runs of several kinds and files (review 8, finding 8): which runs
are ticked at first, and labels that keep what tells two runs apart."""

from __future__ import annotations

import pytest
from ui_records import fill, fill_tsne, fill_word2vec, static_info

from embedviz.stats.records import StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.pages.compare import build_compare, default_ticked
from embedviz.ui.pages.compare_runs import (
    CHECKBOX_CHARS,
    EVAL_LEGEND_CHARS,
    LEGEND_CHARS,
    short_label,
    short_labels,
)
from embedviz.ui.session_view import SessionView

LONG = [
    "sequential-20261123-013644-48e9c5",
    "tsne-20261123-013644-15a769",
    "word2vec-20261123-013650-4bbb50",
]


def _demo_pair():
    """Two files holding the same three runs (MLP, t-SNE, word2vec), as ``embedviz ui
    demo.db demo_copy.db`` shows them: the second file's under ``NAME (demo_copy.db)``."""
    first, second = InMemoryStatsStorage(), InMemoryStatsStorage()
    for st in (first, second):
        fill(st, session=LONG[0], n=60)
        fill_tsne(st, session=LONG[1])
        fill_word2vec(st, session=LONG[2])
    pairs = [(sid, first) for sid in LONG]
    pairs += [(f"{sid} (demo_copy.db)", SessionView(second, sid, f"{sid} (demo_copy.db)"))
              for sid in LONG]  # fmt: skip
    return pairs


def _visible_runs(page, names):
    """The runs whose score lines are drawn (a run's legend entry names it)."""
    chart = page.layout.select_one({"name": "compare_score"})
    items = {item.label["value"]: item for item in chart.legend[0].items}
    return [n for n, label in names.items() if all(r.visible for r in items[label].renderers)]


def test_newest_runs_kind_is_ticked_at_first_and_the_others_stay_offered():
    st = InMemoryStatsStorage()
    fill(st, session="mlp-old", n=30)
    fill_word2vec(st, session="w2v")
    fill_tsne(st, session="tsne")
    fill(st, session="mlp-new", n=30)
    # the newest run by start time is the t-SNE run, although listed before mlp-new
    st.put(StaticInfo("tsne", "0", 1.8e9, kind="tsne"))
    pairs = [(sid, st) for sid in ("mlp-old", "w2v", "tsne", "mlp-new")]
    page = build_compare(pairs)
    ticks = page.layout.select_one({"name": "runs_select"})
    assert ticks.labels == ["mlp-old", "w2v", "tsne", "mlp-new"]  # every run offered
    assert ticks.active == [2]  # only the t-SNE run: its KL is not flattened by a w2v loss
    assert _visible_runs(page, {s: s for s in ticks.labels}) == ["tsne"]
    why = [d.text for d in page.layout.select({"name": "ticked_why"})]
    assert len(why) == 1 and "tsne" in why[0] and "torch, word2vec" in why[0]
    assert "log y" in why[0]


def test_kind_rule_ticks_the_newest_three_of_that_kind():
    st = InMemoryStatsStorage()
    for k, sid in enumerate(["t1", "t2", "w", "t3", "t4"]):
        if sid == "w":
            fill_word2vec(st, session=sid)
            st.put(StaticInfo(sid, "0", 1.7e9 + k, kind="word2vec"))
        else:
            st.put(static_info(sid, t0=1.7e9 + k))
            st.put(Update(sid, "0", 1, 1.7e9 + k, score=1.0))
    page = build_compare([(sid, st) for sid in ["t1", "t2", "w", "t3", "t4"]])
    assert page.layout.select_one({"name": "runs_select"}).active == [1, 3, 4]


def test_runs_the_user_named_are_ticked_whatever_their_kind():
    pairs = _demo_pair()
    wanted = [LONG[0], f"{LONG[2]} (demo_copy.db)"]  # an MLP and a word2vec run
    page = build_compare(pairs, wanted)
    names = [n for n, _ in pairs]
    assert page.layout.select_one({"name": "runs_select"}).active == [0, 5]
    legend = dict(zip(names, short_labels(names, LEGEND_CHARS), strict=True))
    assert _visible_runs(page, legend) == wanted  # never hidden for being of another kind
    assert not page.layout.select_one({"name": "ticked_why"}).visible


@pytest.mark.parametrize(
    ("kinds", "starts", "expected"),
    [
        (["torch", "tsne", "word2vec"], [1.0, 2.0, 3.0], [2]),
        (["torch", "torch", "tsne", "torch"], [1.0, 2.0, 3.0, 4.0], [0, 1, 3]),
        (["torch", "torch", "tsne"], [5.0, 5.0, 5.0], [2]),  # a tie: the later one is newer
        (["word2vec", "torch", "word2vec"], [3.0, 9.0, 1.0], [1]),
        ([], [], []),
    ],
)
def test_default_ticked(kinds, starts, expected):
    assert default_ticked(kinds, starts) == expected


def test_two_files_runs_keep_their_file_in_the_legends_and_checkboxes():
    pairs = _demo_pair()
    names = [n for n, _ in pairs]
    page = build_compare(pairs)
    ticks = page.layout.select_one({"name": "runs_select"})
    # newest: the copy's word2vec run (a tie in start time, listed last); same kind: both
    assert ticks.active == [2, 5]
    score = page.layout.select_one({"name": "compare_score"})
    ev = page.layout.select_one({"name": "compare_eval"})
    score_labels = [item.label["value"] for item in score.legend[0].items]
    eval_labels = [item.label["value"] for item in ev.legend[0].items]
    for labels, limit, extra in (
        (ticks.labels, CHECKBOX_CHARS, 0),
        (score_labels, LEGEND_CHARS, 0),
        (eval_labels, EVAL_LEGEND_CHARS, len(" accuracy")),
    ):
        assert len(set(labels)) == len(labels)  # no two runs under one label
        assert all(len(x) <= limit + extra for x in labels)
        assert sum("(demo_copy.db)" in x for x in labels) == len(labels) // 2
    for name, label in zip(names, ticks.labels, strict=True):
        assert label.endswith("(demo_copy.db)") == name.endswith("(demo_copy.db)")
        assert label[:8] == name[:8] and label.split(" ")[0][-6:] == name.split(" ")[0][-6:]
    # the eval legend: each MLP's accuracy and val_loss, its file kept
    assert sorted(eval_labels) == sorted(
        f"{short_label(n, EVAL_LEGEND_CHARS)} {m}"
        for n in names[::3]
        for m in ("accuracy", "val_loss")
    )
    # the table keeps the full names
    assert list(page.sources["runs"].data["run"]) == names


@pytest.mark.parametrize("limit", [16, 28, 34, 44])
@pytest.mark.parametrize(
    "name",
    [
        "sequential-20261123-013644-48e9c5 (demo_copy.db)",
        "word2vec-20261123-013650-4bbb50 (/very/long/path/to/the/statistics/file/runs.db)",
        "a-very-long-session-name-without-any-file-suffix-at-all-0001",
        "short",
        "baseline (runs.db #2)",
    ],
)
def test_short_label_keeps_start_end_and_file(name, limit):
    label = short_label(name, limit)
    assert len(label) <= limit
    if len(name) <= limit:
        assert label == name
        return
    assert "…" in label and label[:3] == name[:3]
    if name.endswith(")"):  # the file: whole, or its end after an ellipsis
        file = name[name.rindex(" (") + 2 : -1]
        shown = label[label.rindex(" (") + 2 : -1]
        assert shown == file or (shown.startswith("…") and file.endswith(shown[1:]))
        assert len(shown) >= min(len(file), 5)
        base, shown_base = name[: name.rindex(" (")], label[: label.rindex(" (")]
    else:
        base, shown_base = name, label
    # the name's start and end (a session id's random tail) are kept
    head, cut, tail = shown_base.partition("…")
    assert base.startswith(head) and base.endswith(tail) and (len(tail) >= 3 or not cut)
    assert cut or shown_base == base


def test_short_labels_never_merge_two_runs():
    names = [
        "run-aaaaaaaaaaaaaaaaaaaaaaaaaa-1-uvwxyz",
        "run-aaaaaaaaaaaaaaaaaaaaaaaaaa-2-uvwxyz",
        "x",
    ]
    assert short_label(names[0], 16) == short_label(names[1], 16)
    assert short_labels(names, 16) == [names[0], names[1], "x"]


def test_evaluation_chart_shows_while_a_ticked_run_has_evaluations():
    pairs = _demo_pair()
    names = [n for n, _ in pairs]
    for ticked, shown in (
        (None, False),  # the word2vec runs: no evaluations
        ([names[1], names[2]], False),
        ([names[2], names[3]], True),  # the copy's MLP has them
    ):
        page = build_compare(pairs, ticked)
        ev = page.layout.select_one({"name": "compare_eval"})
        assert ev.visible is shown
        assert page.layout.select_one({"name": "no_evals"}).visible is not shown
    # the browser's toggle knows which runs have evaluations
    ticks = page.layout.select_one({"name": "runs_select"})
    toggle = ticks.js_property_callbacks["change:active"][0]
    assert toggle.args["has_evals"] == [bool(st.get_evals(n, "0")) for n, st in pairs]
    assert toggle.args["has_evals"] == [True, False, False] * 2


def test_score_ranges_follow_the_lines_not_the_marks():
    page = build_compare(_demo_pair())
    for name in ("compare_score", "compare_score_log"):
        chart = page.layout.select_one({"name": name})
        fitted = {r.data_source.name for r in chart.y_range.renderers}
        assert fitted == {"series:score"} and chart.y_range.only_visible
        assert len(chart.y_range.renderers) == 2 * 6  # raw and smoothed of each run


def test_runs_with_scores_a_log_axis_cannot_draw_are_named():
    st = InMemoryStatsStorage()
    st.put_many([Update("reward", "0", i, 1.7e9 + i, score=float(i - 3)) for i in range(6)])
    st.put_many([Update("loss", "0", i, 1.7e9 + i, score=1.0 / (i + 1)) for i in range(6)])
    page = build_compare([(sid, st) for sid in ("reward", "loss")])
    text = page.layout.select_one({"name": "log_note"}).text
    assert "reward" in text and "loss" not in text and "0 or below" in text
    assert not build_compare([("loss", st)]).layout.select_one({"name": "log_note"}).visible
