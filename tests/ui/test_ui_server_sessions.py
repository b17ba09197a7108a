"""Sessions of the same name in two attached files are both shown (review 5 #6): the
later one as ``NAME (file.db)``, read through a :class:`SessionView`; a file given twice
is shown once."""

from __future__ import annotations

import json
import logging
import shutil
import urllib.request

import numpy as np
import pytest
from ui_records import fill, make_update

from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.commands import unique_paths
from embedviz.ui.server import UIServer
from embedviz.ui.session_view import SessionView


@pytest.fixture
def two_files(tmp_path):
    """runs.db and dup.db (a copy, then with NaN scores added to its "mlp")."""
    runs = tmp_path / "runs.db"
    with SQLiteStatsStorage(runs) as st:
        fill(st, n=40)
        fill(st, session="second", n=20)
    dup = tmp_path / "dup.db"
    shutil.copy(runs, dup)
    with SQLiteStatsStorage(dup) as st:
        bad = [make_update("mlp", "0", i, hist=False) for i in range(40, 50)]
        for u in bad:
            u.score = float("nan")
        st.put_many(bad)
    return runs, dup


def _server(*paths) -> tuple[UIServer, list]:
    ui = UIServer(port=0)
    opened = [SQLiteStatsStorage(p, read_only=True) for p in paths]
    for st in opened:
        ui.attach(st)  # named by its path
    return ui, opened


def test_the_second_file_s_sessions_are_shown_under_labels(two_files, caplog):
    runs, dup = two_files
    ui, (first, second) = _server(runs, dup)
    try:
        with caplog.at_level(logging.WARNING, logger="embedviz.ui.server"):
            shown = ui.sessions()
            assert ui.sessions() == shown  # the same names and storages every time
        labels = [label for label, _ in shown]
        assert labels == ["mlp", "second", "mlp (dup.db)", "second (dup.db)"]
        assert shown[0][1] is first and shown[1][1] is first
        view = dict(shown)["mlp (dup.db)"]
        assert isinstance(view, SessionView) and view.storage is second
        # the view reads dup.db's own records: 50 updates, 10 of them NaN
        assert len(view.get_updates("mlp (dup.db)", "0")) == 50
        assert len(first.get_updates("mlp", "0")) == 40
        assert view.list_workers("mlp (dup.db)") == ["0"]
        assert view.get_series("mlp (dup.db)", "0", "score").values.size == 50
        warned = [r.getMessage() for r in caplog.records if "showing" in r.getMessage()]
        assert len(warned) == 1  # once, naming both
        assert "'mlp' of" in warned[0] and "as 'mlp (dup.db)'" in warned[0]
        assert "as 'second (dup.db)'" in warned[0]
    finally:
        for st in (first, second):
            st.close()


def test_pages_and_diagnostics_reach_the_labelled_session(two_files):
    from embedviz.ui.pages._common import Page
    from embedviz.ui.shell import build_page

    runs, dup = two_files
    ui, opened = _server(runs, dup)
    try:
        page = build_page(ui, "/train/overview", "mlp (dup.db)", None)
        text = getattr(page.layout, "text", "") or ""
        assert "No session recorded" not in text and isinstance(page, Page)
        for read, fill_in in page.deferred:
            fill_in(read())
        view = dict(ui.sessions())["mlp (dup.db)"]
        found = ui.findings.submit(view, "mlp (dup.db)").result(timeout=120)
        assert any(f["check"] == "score_not_finite" for f in found)  # dup.db's NaNs
        plain = ui.findings.submit(opened[0], "mlp").result(timeout=120)
        assert not any(f.get("check") == "score_not_finite" for f in plain)
        compare = build_page(ui, "/train/compare", None, None, ["mlp", "mlp (dup.db)"])
        assert compare.sources["runs"].data["run"][:4] == [
            "mlp", "second", "mlp (dup.db)", "second (dup.db)"
        ]  # fmt: skip
        # each label's curve holds its own file's scores: dup.db's has 10 NaNs more
        for label, st in (("mlp", opened[0]), ("mlp (dup.db)", opened[1])):
            want = st.get_series("mlp", "0", "score")
            got = compare.sources[f"score:{label}"].data
            assert list(got["x"]) == want.iterations.tolist(), label
            np.testing.assert_array_equal(got["y"], want.values)
        dup_scores = compare.sources["score:mlp (dup.db)"].data["y"]
        assert len(dup_scores) == 50 and np.isnan(dup_scores[40:]).all()
        assert np.isfinite(compare.sources["score:mlp"].data["y"]).all()
        marks = compare.sources["score:mlp (dup.db):marks"].data
        assert list(marks["x"]) == list(range(40, 50)) and set(marks["value"]) == {"NaN"}
        assert list(compare.sources["score:mlp:marks"].data["x"]) == []
    finally:
        ui.findings.shutdown()
        for st in opened:
            st.close()


def test_labels_do_not_move_when_a_name_appears_later_in_an_earlier_storage():
    a, b = InMemoryStatsStorage(), InMemoryStatsStorage()
    ui = UIServer(port=0)
    ui.attach(a, "a")
    ui.attach(b, "b")
    b.put(make_update("x", "0", 0, hist=False))
    assert ui.sessions() == [("x", b)]
    a.put(make_update("x", "0", 0, hist=False))  # now the first storage has "x" too
    shown = ui.sessions()
    assert [label for label, _ in shown] == ["x (a)", "x"]  # b's "x" keeps its name
    assert shown[1][1] is b and shown[0][1].storage is a
    ui.detach(a)
    assert ui.sessions() == [("x", b)]


def test_three_files_of_one_name_get_three_labels(tmp_path, two_files):
    runs, _ = two_files
    paths = []
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        paths.append(shutil.copy(runs, tmp_path / folder / "runs.db"))
    ui, opened = _server(*paths)
    try:
        labels = [label for label, _ in ui.sessions() if label.startswith("mlp")]
        assert labels == ["mlp", "mlp (runs.db)", f"mlp ({paths[2]})"]
    finally:
        for st in opened:
            st.close()


def test_a_file_given_twice_is_shown_once(two_files, caplog, monkeypatch, tmp_path):
    runs, dup = two_files
    with caplog.at_level(logging.WARNING):
        ui, opened = _server(runs, dup, runs)
        assert [name for name, _ in ui.named_storages()] == [str(runs), str(dup)]
        assert "already shown" in caplog.text
        monkeypatch.chdir(tmp_path)
        assert unique_paths([str(runs), "runs.db", "./dup.db", str(dup)]) == [str(runs), "./dup.db"]
        assert caplog.text.count("is the same file as") == 2
    for st in opened:
        st.close()


def test_api_sessions_gives_the_label_beside_the_session_id(two_files):
    runs, dup = two_files
    ui, opened = _server(runs, dup)
    ui.start()
    try:
        with urllib.request.urlopen(ui.url + "/api/sessions", timeout=30) as r:
            entries = json.loads(r.read())["sessions"]
    finally:
        ui.stop()
        for st in opened:
            st.close()
    got = [(e["session_id"], e.get("label"), e["storage"]) for e in entries]
    assert got == [
        ("mlp", None, str(runs)),
        ("second", None, str(runs)),
        ("mlp", "mlp (dup.db)", str(dup)),
        ("second", "second (dup.db)", str(dup)),
    ]
