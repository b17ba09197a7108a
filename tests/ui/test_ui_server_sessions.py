"""Sessions of the same name in two attached files are both shown (review 5 #6): the
later one as ``NAME (file.db)``, read through a :class:`SessionView`; a file given twice
is shown once."""

from __future__ import annotations

import html
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


# -- which session a page opens on, and which file holds it (issue 5, session 8) -----------
@pytest.fixture
def no_page_builds(monkeypatch):
    """Tabs whose pages are not built (the page builders are tested on their own)."""
    from embedviz.ui import shell
    from embedviz.ui.pages._common import Page

    monkeypatch.setattr(shell, "build_page", lambda *args: Page(layout=None))


def _tab(ui, path, session=None):
    """A browser tab's state (Tab) on a bare Bokeh document, ``?session=`` as given."""
    from bokeh.document import Document

    from embedviz.ui.shell import Tab

    doc = Document()
    if session is not None:

        class _Request:
            arguments = {"session": [session.encode()]}

        class _Context:
            request = _Request()

        doc._session_context = lambda: _Context()
    return Tab(ui, path, doc)


def test_pages_open_on_the_first_file_s_session_of_a_shared_name(two_files, no_page_builds):
    from embedviz.ui.shell import default_session

    runs, dup = two_files
    ui, opened = _server(runs, dup)
    try:
        # the last listed is dup.db's "second": the name alone means runs.db's
        assert [label for label, _ in ui.sessions()][-1] == "second (dup.db)"
        for path in ("/train/overview", "/train/compare", "/embeddings"):
            assert default_session(ui, path) == "second", path
        tab = _tab(ui, "/train/overview")
        assert tab.session_id == "second" and tab._storage() is opened[0]
        assert tab.session_select.options == ["mlp", "second", "mlp (dup.db)", "second (dup.db)"]
        assert tab.origin.visible
        text = html.unescape(tab.origin.text)
        assert f"'second' is {runs}'s, 'second (dup.db)' is {dup}'s" in text
        assert "'mlp'" not in html.unescape(tab.origin.text)  # only the session shown
        # the other file's copy is one choice away, and says whose it is
        tab.session_select.value = "mlp (dup.db)"
        view = tab._storage()
        assert isinstance(view, SessionView) and view.storage is opened[1]
        assert view.count_updates("mlp (dup.db)", "0") == 50  # dup.db's 40 + 10
        assert f"'mlp' is {runs}'s, 'mlp (dup.db)' is {dup}'s" in html.unescape(tab.origin.text)
        assert "second" not in html.unescape(tab.origin.text)
        # the compare page names every shared name
        compare = _tab(ui, "/train/compare")
        assert "'mlp (dup.db)' is" in html.unescape(compare.origin.text)
        assert "'second (dup.db)' is" in html.unescape(compare.origin.text)
        # a labelled session named in the URL opens as it is
        assert _tab(ui, "/train/model", "second (dup.db)").session_id == "second (dup.db)"
    finally:
        ui.builders.shutdown(wait=True)
        for st in opened:
            st.close()


def test_unique_names_open_on_the_last_listed_session_without_a_note(no_page_builds):
    from embedviz.ui.shell import default_session

    a, b = InMemoryStatsStorage(), InMemoryStatsStorage()
    a.put(make_update("x", "0", 0, hist=False))
    b.put(make_update("y", "0", 0, hist=False))
    b.put(make_update("z", "0", 0, hist=False))
    ui = UIServer(port=0)
    ui.attach(a, "a.db")
    ui.attach(b, "b.db")
    try:
        assert [label for label, _ in ui.sessions()] == ["x", "y", "z"]
        assert default_session(ui, "/train/overview") == "z"
        for path in ("/train/overview", "/train/compare"):
            tab = _tab(ui, path)
            assert tab.session_id == "z" and not tab.origin.visible and tab.origin.text == ""
    finally:
        ui.builders.shutdown(wait=True)


def test_a_name_shared_later_gets_its_note_on_the_next_session_look(no_page_builds):
    a, b = InMemoryStatsStorage(), InMemoryStatsStorage()
    a.put(make_update("x", "0", 0, hist=False))
    ui = UIServer(port=0)
    ui.attach(a, "a.db")
    ui.attach(b, "b.db")
    try:
        tab = _tab(ui, "/train/overview")
        assert tab.session_id == "x" and not tab.origin.visible
        b.put(make_update("x", "0", 0, hist=False))  # b.db gets a run of that name
        tab._refresh_sessions()
        assert tab.session_select.options == ["x", "x (b.db)"]
        assert tab.origin.visible and "'x (b.db)' is b.db's" in html.unescape(tab.origin.text)
    finally:
        ui.builders.shutdown(wait=True)
