"""Compare and embeddings page builders on fixture storages (issue 5 §3, §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ui_records import EVIL, fill, make_update

from embedviz.stats.records import EvalRecord, Snapshot, Update
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.pages.compare import build_compare, run_row
from embedviz.ui.pages.embeddings import build_embeddings, snapshot_coords
from embedviz.ui.pages.smoothing import ema


@pytest.fixture
def runs():
    st = InMemoryStatsStorage()
    for name, n in (("a", 30), ("b", 50), ("c", 20), ("d", 10)):
        fill(st, session=name, n=n)
    return st, [(sid, st) for sid in st.list_sessions()]


def test_compare_sources_hold_each_run_with_relative_time(runs):
    st, pairs = runs
    page = build_compare(pairs)
    for sid in ("a", "b", "c", "d"):
        src = page.sources[f"score:{sid}"].data
        recorded = st.get_series(sid, "0", "score")
        assert list(src["x"]) == list(recorded.iterations)
        np.testing.assert_allclose(src["rel"], recorded.timestamps - recorded.timestamps[0])
    ticks = page.layout.select_one({"name": "runs_select"})
    assert ticks.labels == ["a", "b", "c", "d"] and ticks.active == [1, 2, 3]  # newest three
    ticked = build_compare(pairs, ["a"]).layout.select_one({"name": "runs_select"})
    assert ticked.active == [0]


def test_compare_smoothing_slider_recomputes_and_keeps_raw(runs):
    _, pairs = runs
    page = build_compare(pairs)
    slider = page.layout.select_one({"name": "smoothing"})
    raw = np.array(page.sources["score:b"].data["y"], dtype=float)
    slider.value = 0.3  # what the server does when the browser moves it
    np.testing.assert_allclose(page.sources["score:b"].data["ys"], ema(raw, 0.3)[0], equal_nan=True)
    np.testing.assert_allclose(page.sources["score:b"].data["y"], raw, equal_nan=True)


def test_compare_table_has_configuration_and_final_and_best_eval():
    st = InMemoryStatsStorage()
    fill(st, session="r", n=10)
    for it, acc, loss in ((3, 0.5, 1.0), (6, 0.8, 0.4), (9, 0.7, 0.6)):
        st.put(EvalRecord("r", "0", it, 0.0, {"accuracy": acc, "val_loss": loss}))
    row = run_row(st, "r", "0")
    assert row[:5] == ("r", "torch", "SGD", "0.1", "32")
    assert "accuracy 0.7" in row[5] and "val_loss 0.6" in row[5]  # final: the last
    assert "accuracy 0.8 @ 6" in row[6] and "val_loss 0.4 @ 6" in row[6]  # best: max / min


def test_compare_streams_new_points(runs):
    st, pairs = runs
    page = build_compare(pairs)
    st.put(make_update("b", "0", 77))
    st.put(EvalRecord("b", "0", 77, 1.7e9 + 7.7, {"accuracy": 0.99}))
    assert page.refresh() >= 2
    assert page.sources["score:b"].data["x"][-1] == 77
    assert page.sources["eval:b:accuracy"].data["y"][-1] == 0.99


@pytest.fixture
def tsne_storage():
    st = InMemoryStatsStorage()
    rng = np.random.default_rng(1)
    for i in range(0, 200, 25):
        st.put(Update("t", "0", i, float(i), score=3 - i / 100, extra={"kl": 3 - i / 100}))
    for it in (50, 150):
        st.put(
            Snapshot(
                "t",
                "0",
                it,
                float(it),
                "embedding",
                [f"w{j}" for j in range(19)] + [EVIL],
                rng.normal(size=(20, 2)).tolist(),
            )
        )
    return st


def test_embeddings_page_draws_kl_and_the_newest_snapshot(tsne_storage):
    page = build_embeddings(tsne_storage, "t")
    kl = page.sources["objective"].data
    assert list(kl["y"]) == pytest.approx([3 - i / 100 for i in range(0, 200, 25)])
    select = page.layout.select_one({"name": "snapshot_select"})
    assert select.options == ["150", "50"] and select.value == "150"
    points = page.layout.select_one({"name": "embedviz_points"})
    newest = tsne_storage.get_snapshots("t", "0")[-1]
    np.testing.assert_allclose(np.c_[points.data["x"], points.data["y"]], newest.array())
    select.value = "50"
    points = page.layout.select_one({"name": "embedviz_points"})
    np.testing.assert_allclose(
        np.c_[points.data["x"], points.data["y"]], tsne_storage.get_snapshots("t", "0")[0].array()
    )


def test_embeddings_page_follows_new_snapshots(tsne_storage):
    page = build_embeddings(tsne_storage, "t")
    tsne_storage.put(Update("t", "0", 250, 250.0, extra={"kl": 0.5}))
    tsne_storage.put(
        Snapshot(
            "t", "0", 250, 250.0, "embedding", ["a", "b", "c"], [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
        )
    )
    assert page.refresh() >= 1
    select = page.layout.select_one({"name": "snapshot_select"})
    assert select.options[0] == "250" and select.value == "250"
    assert page.sources["objective"].data["y"][-1] == 0.5


def test_word_vector_snapshots_are_projected_on_principal_components():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(50, 6)) * np.array([5.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    snap = Snapshot("w", "0", 1, 0.0, "word_vectors", [f"w{i}" for i in range(50)], a.tolist())
    xy = snapshot_coords(snap)
    centred = a - a.mean(axis=0)
    # the reference: eigenvectors of the covariance matrix with the largest eigenvalues
    vals, vecs = np.linalg.eigh(np.cov(centred.T))
    ref = centred @ vecs[:, ::-1][:, :2]
    for k in range(2):
        assert abs(np.corrcoef(xy[:, k], ref[:, k])[0, 1]) == pytest.approx(1.0, abs=1e-9)


def test_embeddings_page_without_snapshots_or_kl():
    st = InMemoryStatsStorage()
    st.put(Update("w2v", "0", 1, 0.0, score=math.nan, extra={"loss": 12.0}))
    page = build_embeddings(st, "w2v")
    assert list(page.sources["objective"].data["y"]) == [12.0]
    select = page.layout.select_one({"name": "snapshot_select"})
    assert select.options == [""] and not select.visible  # no empty selector shown
    st.put(Snapshot("w2v", "0", 2, 1.0, "word_vectors", ["a", "b"], [[0.0, 1.0], [1.0, 0.0]]))
    st.put(Update("w2v", "0", 2, 1.0, extra={"loss": 11.0}))
    page.refresh()
    assert select.options == ["2"] and select.visible


def test_compare_batch_size_comes_from_the_updates_when_config_has_none():
    from embedviz.stats.records import StaticInfo

    st = InMemoryStatsStorage()
    st.put(StaticInfo("a", "0", 1.0, kind="torch", config={}))
    # the listener's windows: 32 examples per minibatch, measured with timing noise
    st.put_many(
        Update("a", "0", i, float(i), score=1.0, examples_per_sec=32.2 * r, minibatches_per_sec=r)
        for i, r in enumerate([50.0, 80.0, 100.0])
    )
    st.put(StaticInfo("b", "0", 1.0, kind="torch", config={}))
    st.put(Update("b", "0", 1, 1.0, score=1.0))  # no speeds recorded
    st.put(StaticInfo("c", "0", 1.0, kind="torch", config={"batch_size": 64}))
    st.put(Update("c", "0", 1, 1.0, score=1.0, examples_per_sec=3200.0, minibatches_per_sec=100.0))
    assert run_row(st, "a", "0")[4] == "32"
    assert run_row(st, "b", "0")[4] == "—"
    assert run_row(st, "c", "0")[4] == "64"  # the configured value wins


def test_compare_marks_nan_and_inf_scores_and_has_a_log_y_chart():
    from ui_records import NAN_AT

    st = InMemoryStatsStorage()
    fill(st, session="nanrun", n=NAN_AT + 10)
    fill(st, session="ok", n=20)
    page = build_compare([(sid, st) for sid in st.list_sessions()])
    marks = page.sources["score:nanrun:marks"].data
    scores = st.get_series("nanrun", "0", "score")
    bad = scores.iterations[~np.isfinite(scores.values)]
    assert list(marks["x"]) == list(bad) == [NAN_AT]
    assert list(marks["value"]) == ["NaN"] and list(marks["series"]) == ["nanrun"]
    t0 = scores.timestamps[0]
    np.testing.assert_allclose(marks["rel"], scores.timestamps[scores.iterations == NAN_AT] - t0)
    assert len(page.sources["score:ok:marks"].data["x"]) == 0
    # live: an infinite score arrives and is marked (with its time columns)
    up = make_update("ok", "0", 40)
    up.score = math.inf
    st.put(up)
    page.refresh()
    live = page.sources["score:ok:marks"].data
    assert list(live["x"]) == [40] and list(live["value"]) == ["+inf"]
    assert len(live["rel"]) == len(live["t"]) == 1
    # the linear/log toggle shows one of two charts drawing the same sources
    scale = page.layout.select_one({"name": "score_scale"})
    log_chart = page.layout.select_one({"name": "compare_score_log"})
    assert scale.labels == ["linear y", "log y"] and not log_chart.visible
    assert log_chart.y_scale.__class__.__name__ == "LogScale"
    drawn = {r.data_source.name for r in log_chart.renderers}
    assert {"series:score", "score:nanrun:marks", "score:ok:marks"} <= drawn
