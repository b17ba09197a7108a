"""Pages of t-SNE and word2vec sessions show what those runs record (issue 5 §2, §6).

A t-SNE session has no layers: its overview draws the KL divergence with the early
exaggeration phase shaded and the gradient norm; a word2vec session draws the loss per
epoch, alpha and words/s. No neural-network panel (update:parameter ratio, standard
deviations) is shown for them.
"""

from __future__ import annotations

import pytest
from bokeh.models import BoxAnnotation
from bokeh.plotting import figure as Figure
from ui_records import fill, fill_tsne, fill_word2vec, w2v_alpha

from embedviz.stats.records import Update
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.pages.kinds import exaggeration_span
from embedviz.ui.pages.overview import build_overview
from embedviz.ui.report import write_report


@pytest.fixture
def kinds_storage():
    st = InMemoryStatsStorage()
    fill(st, n=30)
    fill_tsne(st)
    fill_word2vec(st)
    return st


def figures(layout) -> list:
    return [m for m in layout.references() if isinstance(m, Figure)]


def titles(layout) -> list[str]:
    return [f.title.text for f in figures(layout)]


def test_tsne_overview_draws_kl_and_gradient_norm_without_network_panels(kinds_storage):
    page = build_overview(kinds_storage, "tsne-run")
    ups = kinds_storage.get_updates("tsne-run", "0")
    kl = {u.iteration: u.extra["kl"] for u in ups}
    score = page.sources["score"].data
    assert {int(x): y for x, y in zip(score["x"], score["y"], strict=True)} == kl
    grad = page.sources["extra/grad_norm"].data
    assert list(grad["y"]) == [u.extra["grad_norm"] for u in ups]
    assert not any(k.startswith(("ratio", "std_")) for k in page.sources)
    shown = titles(page.layout)
    assert any(t.startswith("KL divergence") for t in shown)
    assert not any("nothing recorded" in t or "update:parameter" in t for t in shown)
    # the shaded phase spans the updates tagged "exaggeration" (iterations 0..200)
    tagged = [u.iteration for u in ups if u.tags.get("phase") == "exaggeration"]
    boxes = [m for m in page.layout.references() if isinstance(m, BoxAnnotation)]
    phase = [b for b in boxes if b.name == "exaggeration_phase"]
    assert phase and all(b.visible for b in phase)
    assert {(b.left, b.right) for b in phase} == {(min(tagged), max(tagged))}


def test_word2vec_overview_draws_loss_alpha_and_speed_per_epoch(kinds_storage):
    page = build_overview(kinds_storage, "w2v-run")
    ups = kinds_storage.get_updates("w2v-run", "0")
    assert list(page.sources["score"].data["y"]) == [u.extra["loss"] for u in ups]
    alpha = page.sources["extra/alpha"].data
    assert list(alpha["y"]) == pytest.approx([w2v_alpha(int(e)) for e in alpha["x"]])
    speed = page.sources["extra/words_per_sec"].data
    assert list(speed["y"]) == [u.extra["words_per_sec"] for u in ups]
    assert not any(k.startswith(("ratio", "std_")) for k in page.sources)
    figs = figures(page.layout)
    assert all(f.xaxis[0].axis_label == "epoch" for f in figs)
    assert not any("nothing recorded" in f.title.text for f in figs)


def test_torch_overview_keeps_its_network_panels(kinds_storage):
    page = build_overview(kinds_storage, "mlp")
    assert "0.weight" in page.sources["ratio"].data["label"]
    assert "0 (Linear)" in page.sources["std_act"].data["label"]
    assert "extra/grad_norm" not in page.sources
    assert any("update:parameter" in t for t in titles(page.layout))


def test_tsne_phase_grows_while_the_run_goes_on():
    st = InMemoryStatsStorage()
    st.put(Update("t", "0", 50, 1.0, score=4.0, extra={"kl": 4.0, "exaggeration": 12.0}))
    page = build_overview(st, "t", findings=False)
    phase = [m for m in page.layout.references() if getattr(m, "name", "") == "exaggeration_phase"]
    assert {(b.left, b.right) for b in phase} == {(50, 50)}
    st.put(Update("t", "0", 100, 2.0, score=3.0, extra={"kl": 3.0, "exaggeration": 12.0}))
    st.put(Update("t", "0", 150, 3.0, score=2.0, extra={"kl": 2.0, "exaggeration": 1.0}))
    assert page.refresh() >= 2
    assert {(b.left, b.right) for b in phase} == {(50, 100)}


def test_exaggeration_span_reads_tags_or_the_factor():
    ups = [
        Update("t", "0", 10, 0.0, tags={"phase": "exaggeration"}),
        Update("t", "0", 20, 0.0, extra={"exaggeration": 4.0}),
        Update("t", "0", 30, 0.0, extra={"exaggeration": 1.0}),
        Update("t", "0", 40, 0.0, tags={"phase": "main"}, extra={"exaggeration": 4.0}),
    ]
    assert exaggeration_span(ups) == (10, 20)
    assert exaggeration_span(ups[2:]) is None


def test_report_of_a_tsne_session_has_no_network_panels(kinds_storage, tmp_path):
    html = write_report(kinds_storage, tmp_path / "r.html", session_id="tsne-run").read_text()
    assert "KL divergence" in html and "Gradient norm" in html
    assert "update:parameter ratio" not in html and "nothing recorded" not in html
    # the header names every session of the file
    assert all(s in html for s in ("mlp", "tsne-run", "w2v-run"))


def table_rows(page, key: str) -> dict[str, str]:
    data = page.sources[key].data
    return dict(zip(data["property"], data["value"], strict=True))


def test_tables_list_only_rows_that_apply_and_no_empty_cell(kinds_storage):
    tsne = build_overview(kinds_storage, "tsne-run", findings=False)
    model = table_rows(tsne, "model")
    assert model["kind"] == "tsne" and model["perplexity"] == "5"
    assert "parameters" not in model and "layers with parameters" not in model
    perf = table_rows(tsne, "performance")
    assert "examples/s (last report)" not in perf
    # 250 iterations in 250 s of recorded time (fill_tsne: one second per iteration)
    assert float(perf["iterations/s (run average)"]) == pytest.approx(1.0)

    w2v = build_overview(kinds_storage, "w2v-run", findings=False)
    info = kinds_storage.get_static_info("w2v-run", "0")
    model = table_rows(w2v, "model")
    assert model["parameters"] == f"{info.n_params:,}"
    assert model["vocabulary"] == "300" and model["vector size"] == "50"
    assert model["architecture"] == "CBOW"  # sg=0
    assert "layers with parameters" not in model
    perf = table_rows(w2v, "performance")
    latest = kinds_storage.get_latest_update("w2v-run", "0")
    assert perf["epochs"] == "10" and "examples/s (last report)" not in perf
    words = float(perf["words/s (last report)"].replace(",", ""))
    assert words == pytest.approx(latest.extra["words_per_sec"], rel=5e-3)  # 3 digits

    torch = build_overview(kinds_storage, "mlp", findings=False)
    assert table_rows(torch, "model")["layers with parameters"] == "3"
    for page in (tsne, w2v, torch):
        for key in ("model", "performance"):
            assert all(v.strip() for v in table_rows(page, key).values()), key


def test_unrecorded_values_read_as_a_dash():
    from embedviz.stats.records import StaticInfo

    st = InMemoryStatsStorage()
    st.put(StaticInfo("n", "0", 1.0, kind="torch", model_class="Net"))
    st.put(Update("n", "0", 1, 1.0, score=1.0))
    st.put(Update("n", "0", 2, 2.0, score=0.5))
    page = build_overview(st, "n", findings=False)
    assert table_rows(page, "model")["parameters"] == "—"
    assert table_rows(page, "performance")["examples/s (last report)"] == "—"


def test_compare_table_marks_what_a_run_does_not_have(kinds_storage):
    from embedviz.ui.pages.compare import run_row

    assert run_row(kinds_storage, "tsne-run", "0") == ("tsne-run", "tsne") + ("—",) * 5
    w2v = run_row(kinds_storage, "w2v-run", "0")
    assert w2v[2:4] == ("SGD", "0.025") and w2v[4:] == ("—",) * 3


def test_speeds_read_without_exponents_and_optimizer_without_zero_settings(kinds_storage):
    from embedviz.stats.records import StaticInfo

    perf = table_rows(build_overview(kinds_storage, "mlp", findings=False), "performance")
    latest = kinds_storage.get_latest_update("mlp", "0")
    # 3,200 (not 3.2e+03)
    assert perf["examples/s (last report)"] == f"{latest.examples_per_sec:,.0f}"
    st = InMemoryStatsStorage()
    groups = [{"lr": 0.05, "momentum": 0.9, "dampening": 0, "weight_decay": 0.0, "nesterov": False}]
    st.put(
        StaticInfo("o", "0", 1.0, kind="torch", optimizer={"class": "SGD", "param_groups": groups})
    )
    st.put(Update("o", "0", 1, 1.0, score=1.0))
    model = table_rows(build_overview(st, "o", findings=False), "model")
    assert model["optimizer"] == "SGD (lr=0.05, momentum=0.9)"


def test_model_page_of_a_run_without_layers_says_where_its_numbers_are(kinds_storage):
    from bokeh.models import Div

    from embedviz.ui.pages.model import build_model

    for session, words in (("tsne-run", "t-SNE run has no layers"), ("w2v-run", "word2vec")):
        layout = build_model(kinds_storage, session).layout
        texts = [d.text for d in layout.references() if isinstance(d, Div)]
        assert any(words in t for t in texts) and any("Overview page" in t for t in texts)


def test_embeddings_page_names_epochs_and_shades_the_exaggeration_phase(kinds_storage):
    from embedviz.ui.pages.embeddings import build_embeddings

    w2v = build_embeddings(kinds_storage, "w2v-run")
    chart = w2v.layout.select_one({"name": "objective_chart"})
    assert chart.xaxis[0].axis_label == "epoch"
    ups = kinds_storage.get_updates("w2v-run", "0")
    assert w2v.sources["objective"].data["y"].tolist() == [u.extra["loss"] for u in ups]
    tsne = build_embeddings(kinds_storage, "tsne-run")
    phase = [m for m in tsne.layout.references() if getattr(m, "name", "") == "exaggeration_phase"]
    assert {(b.left, b.right) for b in phase} == {(0, 200)}  # fill_tsne tags 0..200


def test_report_header_tells_how_to_report_another_session(kinds_storage, tmp_path):
    html = write_report(kinds_storage, tmp_path / "r.html").read_text()
    assert "--session NAME" in html
    one = InMemoryStatsStorage()
    fill_tsne(one)
    assert "--session NAME" not in write_report(one, tmp_path / "one.html").read_text()


def test_system_page_of_word2vec_counts_epochs():
    from embedviz.ui.pages.system import build_system

    st = InMemoryStatsStorage()
    fill_word2vec(st)
    st.put(Update("w2v-run", "0", 11, 1.7e9 + 6, memory={"rss_bytes": 2.0**20}))
    page = build_system(st, "w2v-run")
    chart = page.layout.select_one({"name": "memory/rss_bytes"})
    assert chart.xaxis[0].axis_label == "epoch"
    assert page.sources["memory/rss_bytes:0"].data["y"].tolist() == [1.0]  # MiB
