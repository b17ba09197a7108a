"""The compare page's notes and evaluation chart follow the data live (issue 5, left
alone in session 7): evaluations, scores of 0 or below and a run's kind that arrive
while the page is open update them on the page's refresh, without a rebuild, and nothing
is worked out again while nothing changed (new sessions: test_ui_compare_new_runs.py)."""

from __future__ import annotations

import pytest
from bokeh.models import LinearAxis
from ui_records import fill, make_update

from embedviz.stats.records import EvalRecord, StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.pages import compare_live
from embedviz.ui.pages.compare import build_compare
from embedviz.ui.pages.compare_live import EVAL_POLL


def _storage_without_evals():
    """Two torch runs "a" and "b" with 30 scores each and no evaluation records."""
    st = InMemoryStatsStorage()
    for sid in ("a", "b"):
        st.put(StaticInfo(sid, "0", 1.7e9, kind="torch", config={"batch_size": 8}))
        st.put_many([make_update(sid, "0", i, hist=False) for i in range(30)])
    return st


def _get(page, name):
    return page.layout.select_one({"name": name})


def _toggle(page):
    return _get(page, "runs_select").js_property_callbacks["change:active"][0]


def test_evaluations_arriving_live_show_the_chart_and_update_the_notes():
    st = _storage_without_evals()
    page = build_compare([("a", st), ("b", st)])
    ev, none = _get(page, "compare_eval"), _get(page, "no_evals")
    assert _get(page, "runs_select").active == [0, 1]
    assert not ev.visible and none.visible and "eval:b:accuracy" not in page.sources
    assert _toggle(page).args["has_evals"] == [False, False]
    assert [a.visible for a in ev.right if isinstance(a, LinearAxis)] == [False]  # no loss yet

    st.put(make_update("b", "0", 30, hist=False))
    st.put(EvalRecord("b", "0", 30, 1.7e9 + 3.0, {"accuracy": 0.75, "val_loss": 0.5}))
    assert page.refresh() >= 3  # the score point and both metrics
    assert ev.visible and not none.visible
    assert page.sources["eval:b:accuracy"].data["y"].tolist() == [0.75]
    assert page.sources["eval:b:val_loss"].data["y"].tolist() == [0.5]
    # the browser's callbacks know the new lines: the checkbox hides them, the x axis
    # choice moves them
    toggle = _toggle(page)
    assert toggle.args["has_evals"] == [False, True]
    drawn = {r.data_source for r in toggle.args["groups"][1]}
    assert page.sources["eval:b:accuracy"] in drawn and page.sources["eval:b:val_loss"] in drawn
    x_switch = _get(page, "x_mode").js_property_callbacks["change:active"][0]
    assert page.sources["eval:b:val_loss"] in {r.data_source for r in x_switch.args["renderers"]}
    # the loss got its right axis and range; the legend names both metrics
    assert [a.visible for a in ev.right if isinstance(a, LinearAxis)] == [True]
    assert [i.label["value"] for i in ev.legend[0].items] == ["b accuracy", "b val_loss"]
    # the table's results follow
    table = page.sources["runs"].data
    assert table["final eval"][1] == "accuracy 0.75; val_loss 0.5"
    assert table["best eval"][1] == "accuracy 0.75 @ 30; val_loss 0.5 @ 30"

    # later evaluations stream into the same lines
    st.put(EvalRecord("b", "0", 31, 1.7e9 + 3.1, {"accuracy": 0.8, "val_loss": 0.4}))
    for _ in range(EVAL_POLL):  # no update comes with it: read within EVAL_POLL ticks
        page.refresh()
    assert page.sources["eval:b:accuracy"].data["y"].tolist() == [0.75, 0.8]
    assert page.sources["runs"].data["final eval"][1] == "accuracy 0.8; val_loss 0.4"


def test_the_chart_hides_again_when_only_runs_without_evaluations_are_ticked():
    st = _storage_without_evals()
    page = build_compare([("a", st), ("b", st)])
    st.put(EvalRecord("b", "0", 29, 1.7e9 + 2.9, {"accuracy": 0.7}))
    for _ in range(EVAL_POLL):
        page.refresh()
    ticks, ev = _get(page, "runs_select"), _get(page, "compare_eval")
    assert ev.visible
    ticks.active = [0]  # the browser unticks "b" (its callback hides it; the server agrees)
    page.refresh()
    assert not ev.visible and _get(page, "no_evals").visible


def test_a_score_of_zero_or_below_arriving_live_is_named_by_the_log_note():
    st = _storage_without_evals()
    page = build_compare([("a", st), ("b", st)])
    log_note = _get(page, "log_note")
    assert not log_note.visible
    st.put(Update("a", "0", 30, 1.7e9 + 3.0, score=-0.5))
    page.refresh()
    assert log_note.visible and "which a has" in log_note.text
    st.put(Update("b", "0", 30, 1.7e9 + 3.0, score=0.0))
    page.refresh()
    assert "which a, b have" in log_note.text


def test_a_run_s_kind_known_later_updates_why_the_others_are_not_ticked():
    st = InMemoryStatsStorage()
    fill(st, session="mlp", n=20)
    st.put_many([Update("w2v", "0", e, 1.8e9 + e, score=1e5 / e) for e in range(1, 4)])
    page = build_compare([("mlp", st), ("w2v", st)])
    why = _get(page, "ticked_why")
    assert "newest other runs" in why.text  # no static info yet: its kind is unknown
    st.put(StaticInfo("w2v", "0", 1.8e9, kind="word2vec"))
    for _ in range(EVAL_POLL):
        page.refresh()
    assert why.visible and "newest word2vec runs" in why.text and "(torch)" in why.text


class _CountingStorage:
    """A storage that counts its get_evals calls."""

    def __init__(self, storage) -> None:
        self._storage, self.evals_read = storage, 0

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def get_evals(self, *args, **kwargs):
        self.evals_read += 1
        return self._storage.get_evals(*args, **kwargs)


def test_nothing_is_worked_out_again_while_nothing_changed(monkeypatch):
    st = _CountingStorage(_storage_without_evals())
    page = build_compare([("a", st), ("b", st)])
    made = []
    real = compare_live.note_html
    monkeypatch.setattr(compare_live, "note_html", lambda text: made.append(text) or real(text))
    read = st.evals_read
    for _ in range(EVAL_POLL - 1):  # quiet ticks: no update, no poll
        assert page.refresh() == 0
    assert made == [] and st.evals_read == read
    page.refresh()  # the poll tick reads the evaluations of each run once
    assert made == [] and st.evals_read == read + 2
    st.put(Update("a", "0", 30, 1.7e9 + 3.0, score=1.0))
    page.refresh()  # a new positive score: read, but the notes state the same facts
    assert made == [] and page.sources["score:a"].data["x"][-1] == 30


@pytest.mark.parametrize("ticked", [["a"], ["b"]])
def test_the_ticked_runs_decide_whether_evaluations_show(ticked):
    st = _storage_without_evals()
    st.put(EvalRecord("a", "0", 10, 1.7e9 + 1.0, {"accuracy": 0.6}))
    page = build_compare([("a", st), ("b", st)], ticked)
    assert _get(page, "compare_eval").visible is (ticked == ["a"])
