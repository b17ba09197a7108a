"""``write_report``: one static, self-contained HTML file of a recorded run (issue 5 §9)."""

from __future__ import annotations

import re

import pytest
from ui_records import EVIL

from embedviz.errors import FileFormatError, InputError
from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.report import report_layout, write_report


def test_report_is_self_contained_and_escaped(sqlite_path, tmp_path):
    out = write_report(sqlite_path, tmp_path / "report.html", session_id="mlp")
    html = out.read_text(encoding="utf-8")
    assert re.search(r"<script[^>]+src=", html) is None  # BokehJS inlined, nothing fetched
    assert re.search(r"<link[^>]+href=", html) is None
    assert "Bokeh" in html and "Overview" in html and "System" in html
    assert EVIL not in html  # layer names and hostnames are data, never markup
    assert "embedviz report: mlp" in html
    assert not list(tmp_path.glob(".report.html.*"))  # the temporary file was renamed


def test_report_defaults_to_the_newest_session(tmp_path):
    st = InMemoryStatsStorage()
    from ui_records import fill

    fill(st, "older", n=5)
    fill(st, "newer", n=5)
    html = write_report(st, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "embedviz report: newer" in html


def test_report_shows_the_chosen_worker(tmp_path):
    from ui_records import fill

    def header(worker_id=None):
        layout, _ = report_layout(st, worker_id=worker_id)
        return layout.children[0].text

    st = InMemoryStatsStorage()
    fill(st, "ddp", workers=("0", "1"), n=5)
    assert "worker <b>0</b> of 2" in header() and "--worker NAME" in header()
    assert "worker <b>1</b> of 2" in header("1")
    assert write_report(st, tmp_path / "b.html", worker_id="1").exists()
    with pytest.raises(InputError, match=r"no worker '7'; it has '0', '1' \(--worker\)"):
        write_report(st, tmp_path / "c.html", worker_id="7")
    assert not (tmp_path / "c.html").exists()


def test_report_errors_are_one_clear_message(sqlite_path, tmp_path):
    with pytest.raises(FileFormatError, match="no such statistics file"):
        write_report(tmp_path / "missing.db", tmp_path / "r.html")
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database")
    with pytest.raises(FileFormatError, match="not an embedviz statistics file"):
        write_report(foreign, tmp_path / "r.html")
    with pytest.raises(InputError, match="no session 'nope'.*'mlp'"):
        write_report(sqlite_path, tmp_path / "r.html", session_id="nope")
    with pytest.raises(InputError, match="holds no session"):
        write_report(InMemoryStatsStorage(), tmp_path / "r.html")
    with pytest.raises(InputError, match="does not exist"):
        write_report(sqlite_path, tmp_path / "no" / "dir" / "r.html")
