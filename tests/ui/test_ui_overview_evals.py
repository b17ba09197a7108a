"""The overview of a worker without evaluation records (issue 5, left alone in session 7):
no empty band where the evaluation chart would be (the score chart takes its room), a
note when another worker of the session has evaluations, and the chart drawn live when
the worker's first evaluations arrive."""

from __future__ import annotations

import pytest
from bokeh.models import HoverTool, LinearAxis
from ui_records import fill, make_update, static_info

from embedviz.stats.records import EvalRecord
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.pages.charts import CHART_HEIGHT
from embedviz.ui.pages.compare_live import LEGEND_CSS
from embedviz.ui.pages.overview import EVAL_POLL, build_overview


@pytest.fixture
def two_ranks():
    """Session "mlp": worker 0 with evaluations (fill), worker 1 with 60 updates and none."""
    st = InMemoryStatsStorage()
    fill(st, workers=("0",), n=60)
    st.put(static_info("mlp", "1"))
    st.put_many([make_update("mlp", "1", i, hist=False) for i in range(60)])
    return st


def _get(page, name):
    return page.layout.select_one({"name": name})


def _score_panel(page):
    """The column beside the tables: score box, evaluation chart or note, ..."""
    return page.layout.children[0].children[0]


@pytest.mark.parametrize("defer", [False, True])
def test_a_worker_with_evaluations_has_the_chart_under_a_normal_score(two_ranks, defer):
    page = build_overview(two_ranks, "mlp", "0", findings=False, defer_reads=defer)
    assert _get(page, "eval_chart") is not None
    assert _get(page, "score_linear").height == CHART_HEIGHT
    assert _get(page, "eval_waiting") is None
    want = [e.metrics["accuracy"] for e in two_ranks.get_evals("mlp", "0")]
    assert page.sources["eval/accuracy"].data["y"].tolist() == want


@pytest.mark.parametrize("defer", [False, True])
def test_a_worker_without_evaluations_leaves_no_band_and_draws_them_when_they_come(
    two_ranks, defer
):
    page = build_overview(two_ranks, "mlp", "1", findings=False, defer_reads=defer)
    for read, fill_in in page.deferred:
        fill_in(read())
    assert _get(page, "eval_chart") is None and "eval/accuracy" not in page.sources
    # the score takes the evaluation chart's room beside the tables
    assert _get(page, "score_linear").height == 2 * CHART_HEIGHT
    waiting = _get(page, "eval_waiting")
    assert waiting.visible and "worker 1 has no evaluation" in waiting.text
    assert "(worker 0 has)" in waiting.text

    page.refresh()  # nothing new: still waiting
    assert _get(page, "eval_chart") is None
    two_ranks.put(make_update("mlp", "1", 60, hist=False))
    two_ranks.put(EvalRecord("mlp", "1", 60, 1.7e9 + 6.0, {"accuracy": 0.9, "val_loss": 0.3}))
    assert page.refresh() >= 3  # the score point and both metrics
    chart = _get(page, "eval_chart")
    assert chart is not None and _get(page, "eval_waiting") is None
    panel = _score_panel(page).children
    assert panel[1] is chart  # right under the score, where worker 0 has it
    assert page.sources["eval/accuracy"].data["y"].tolist() == [0.9]
    assert page.sources["eval/val_loss"].data["y"].tolist() == [0.3]
    assert _get(page, "score_linear").height == CHART_HEIGHT  # its room given back
    # later evaluations stream into the chart (no second chart)
    two_ranks.put(EvalRecord("mlp", "1", 61, 1.7e9 + 6.1, {"accuracy": 0.95, "val_loss": 0.2}))
    page.refresh()
    assert page.sources["eval/accuracy"].data["y"].tolist() == [0.9, 0.95]
    assert len(list(page.layout.select({"name": "eval_chart"}))) == 1
    # the log-scale chart, made later, takes the normal height too
    toggle = _get(page, "score_scale")
    toggle.active = 1
    assert _get(page, "score_log").height == CHART_HEIGHT


def test_an_evaluation_without_an_update_shows_within_the_poll(two_ranks):
    page = build_overview(two_ranks, "mlp", "1", findings=False)
    two_ranks.put(EvalRecord("mlp", "1", 59, 1.7e9 + 5.9, {"accuracy": 0.8}))
    for _ in range(EVAL_POLL - 1):
        page.refresh()
    assert _get(page, "eval_chart") is None  # quiet ticks do not read the evaluations
    page.refresh()
    assert page.sources["eval/accuracy"].data["y"].tolist() == [0.8]


def test_no_note_when_no_worker_of_the_session_has_evaluations():
    st = InMemoryStatsStorage()
    st.put(static_info("solo", "0"))
    st.put_many([make_update("solo", "0", i, hist=False) for i in range(20)])
    page = build_overview(st, "solo", findings=False)
    assert not _get(page, "eval_waiting").visible
    assert _get(page, "score_linear").height == 2 * CHART_HEIGHT


def test_a_t_sne_run_keeps_its_score_height_beside_its_own_charts():
    from ui_records import fill_tsne

    st = InMemoryStatsStorage()
    fill_tsne(st)
    page = build_overview(st, "tsne-run", findings=False)
    assert _get(page, "score_linear").height == CHART_HEIGHT


def _metric_renderers(chart, metric):
    """The line and dots drawing ``metric`` (the legend entry named after it)."""
    (item,) = [i for i in chart.legend[0].items if i.label.value == metric]
    return item.renderers


def test_a_metric_first_recorded_later_joins_the_chart():
    """A worker that has evaluations and starts recording another metric: the metric
    is drawn live (line, dots, legend entry; a loss beside a score on the right axis)."""
    st = InMemoryStatsStorage()
    st.put(static_info("run", "0"))
    st.put_many([make_update("run", "0", i, hist=False) for i in range(30)])
    st.put(EvalRecord("run", "0", 10, 1.7e9 + 1.0, {"accuracy": 0.5}))
    page = build_overview(st, "run", "0", findings=False)
    chart = _get(page, "eval_chart")
    assert [i.label.value for i in chart.legend[0].items] == ["accuracy"]
    assert "eval/val_loss" not in page.sources
    (loss_axis,) = [a for a in chart.right if isinstance(a, LinearAxis)]
    assert loss_axis.y_range_name == "loss"
    assert not loss_axis.visible  # made with the chart (BokehJS), hidden while unused

    st.put(make_update("run", "0", 30, hist=False))
    st.put(EvalRecord("run", "0", 30, 1.7e9 + 3.0, {"accuracy": 0.7, "val_loss": 0.4}))
    assert page.refresh() >= 3  # the score point, accuracy's and val_loss's
    assert page.sources["eval/accuracy"].data["y"].tolist() == [0.5, 0.7]
    assert page.sources["eval/val_loss"].data["y"].tolist() == [0.4]
    assert [i.label.value for i in chart.legend[0].items] == ["accuracy", "val_loss"]
    line, dots = _metric_renderers(chart, "val_loss")
    assert line.data_source is page.sources["eval/val_loss"] is dots.data_source
    # a loss beside a score: on the right axis, whose range follows the losses only
    assert line.y_range_name == dots.y_range_name == "loss" and loss_axis.visible
    assert set(chart.extra_y_ranges["loss"].renderers) == {line, dots}
    assert line not in chart.y_range.renderers
    # its tooltip, and a colour of its own
    hover = [t for t in chart.tools if isinstance(t, HoverTool) and line in (t.renderers or [])]
    assert hover and ("", "$name") in hover[0].tooltips
    (acc_line, _) = _metric_renderers(chart, "accuracy")
    assert line.glyph.line_color != acc_line.glyph.line_color
    # later evaluations stream into both; a quiet tick adds nothing
    st.put(EvalRecord("run", "0", 40, 1.7e9 + 4.0, {"accuracy": 0.8, "val_loss": 0.3}))
    assert page.refresh() == 2
    assert page.sources["eval/val_loss"].data["y"].tolist() == [0.4, 0.3]
    assert page.refresh() == 0


def test_a_chart_of_losses_keeps_a_later_score_on_its_one_axis():
    st = InMemoryStatsStorage()
    st.put(static_info("run", "0"))
    st.put(make_update("run", "0", 0, hist=False))
    st.put(EvalRecord("run", "0", 0, 1.7e9, {"val_loss": 0.9}))
    page = build_overview(st, "run", "0", findings=False)
    chart = _get(page, "eval_chart")
    st.put(EvalRecord("run", "0", 5, 1.7e9 + 1.0, {"val_loss": 0.8, "accuracy": 0.6}))
    page.refresh()
    assert page.sources["eval/accuracy"].data["y"].tolist() == [0.6]
    for metric in ("val_loss", "accuracy"):
        assert {r.y_range_name for r in _metric_renderers(chart, metric)} == {"default"}
    assert not any(a.visible for a in chart.right if isinstance(a, LinearAxis))


def test_the_evaluation_legend_is_sized_to_its_entries():
    """Its entries can change live: sized as the compare page's (LEGEND_CSS)."""
    st = InMemoryStatsStorage()
    fill(st, workers=("0",), n=60)
    chart = _get(build_overview(st, "mlp", "0", findings=False), "eval_chart")
    (legend,) = chart.legend
    assert LEGEND_CSS in legend.stylesheets and legend in chart.right
    assert legend.click_policy == "hide"
    # an entry hides its metric's line and dots together
    assert all(len(item.renderers) == 2 for item in legend.items)
