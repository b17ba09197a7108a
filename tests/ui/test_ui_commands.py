"""``embedviz ui`` / ``embedviz report`` as the command line runs them (issue 5 §1, §9)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

import embedviz.cli as cli
from embedviz.errors import FileFormatError, InputError
from embedviz.ui import commands


@pytest.fixture
def with_ui_commands(monkeypatch):
    """The CLI with ``ui`` and ``report`` registered (added here if not wired yet)."""
    mine = ["embedviz.ui.commands:add_ui_command", "embedviz.ui.commands:add_report_command"]
    monkeypatch.setattr(
        cli, "COMMANDS", [*cli.COMMANDS, *(m for m in mine if m not in cli.COMMANDS)]
    )


def test_report_command_writes_the_file(sqlite_path, tmp_path, with_ui_commands):
    out = tmp_path / "r.html"
    assert cli.main(["report", str(sqlite_path), "-o", str(out), "--session", "second"]) == 0
    assert "embedviz report: second" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("content", [None, b"hello, not a database"])
def test_report_command_on_missing_or_foreign_file_is_one_line(
    tmp_path, capsys, with_ui_commands, content
):
    db = tmp_path / "x.db"
    if content is not None:
        db.write_bytes(content)
    assert cli.main(["report", str(db), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedviz: error: ") and err.count("\n") == 1
    assert "Traceback" not in err and str(db) in err


def test_run_ui_user_errors():
    with pytest.raises(InputError, match="at least one statistics file"):
        commands.run_ui([])
    with pytest.raises(FileFormatError, match="no such statistics file.*--enable-remote"):
        commands.run_ui(["/nonexistent/runs.db"], port=0)


def test_run_ui_serves_until_interrupted(sqlite_path, monkeypatch):
    from embedviz.ui.server import UIServer

    seen = {}

    def run_briefly(self):
        seen["url"] = self.url
        with urllib.request.urlopen(self.url + "/api/sessions", timeout=30) as r:
            seen["body"] = r.read()
        raise KeyboardInterrupt

    monkeypatch.setattr(UIServer, "run_until_shutdown", run_briefly)
    with pytest.raises(KeyboardInterrupt):
        commands.run_ui([str(sqlite_path)], port=0)
    assert b'"mlp"' in seen["body"]
    time.sleep(0.1)
    assert not any(t.name == "embedviz-ui" for t in threading.enumerate())


def test_importing_embedviz_ui_does_not_import_bokeh():
    import subprocess
    import sys

    code = (
        "import sys, embedviz.ui, embedviz.ui.commands; "
        "assert 'bokeh' not in sys.modules, 'bokeh imported'; "
        "assert callable(embedviz.ui.write_report) and 'bokeh' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_ui_process_stops_cleanly_on_sigterm(sqlite_path):
    import re
    import signal
    import subprocess
    import sys

    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO);"
        "from embedviz.ui.commands import run_ui;"
        f"sys.exit(run_ui([{str(sqlite_path)!r}], port=0))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"(http://127\.0\.0\.1:\d+)/train/overview", line)
            if m:
                url = m.group(1)
                break
        assert url is not None
        with urllib.request.urlopen(url + "/api/sessions", timeout=30) as r:
            assert b'"mlp"' in r.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_token_file_gives_the_receiver_its_token(
    sqlite_path, tmp_path, monkeypatch, with_ui_commands
):
    """--token-file keeps the token out of ps; the server gets the file's first line."""
    from embedviz.ui.server import UIServer

    secret = tmp_path / "token"
    secret.write_text("  s3cret-token  \nignored second line\n")
    secret.chmod(0o600)
    seen = {}

    def run_briefly(self):
        req = urllib.request.Request(
            self.url + "/api/records",
            data=b'{"schema_version": 1, "records": []}',
            headers={"Content-Type": "application/json", "Authorization": "Bearer wrong"},
        )
        try:
            urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as e:
            seen["wrong"] = e.code
        seen["token"] = self.receiver.token
        raise KeyboardInterrupt

    monkeypatch.setattr(UIServer, "run_until_shutdown", run_briefly)
    argv = ["ui", str(sqlite_path), "--port", "0", "--enable-remote", "--token-file", str(secret)]
    assert cli.main(argv) == 130  # what Ctrl-C gives
    assert seen == {"wrong": 401, "token": "s3cret-token"}


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, r"--token-file: cannot read .*missing"), ("\n\n", r"--token-file: .* is empty")],
)
def test_unreadable_or_empty_token_file_is_one_line(
    sqlite_path, tmp_path, capsys, with_ui_commands, content, message
):
    import re

    path = tmp_path / "missing"
    if content is not None:
        path.write_text(content)
    argv = ["ui", str(sqlite_path), "--port", "0", "--token-file", str(path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedviz: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    with pytest.raises(InputError, match="not both"):
        commands.run_ui([str(sqlite_path)], port=0, token="t", token_file=path)


def _serve_once(monkeypatch, paths, **kw):
    """run_ui on ``paths`` until it has answered /api/sessions once; the answer."""
    from embedviz.ui.server import UIServer

    seen = {}

    def run_briefly(self):
        with urllib.request.urlopen(self.url + "/api/sessions", timeout=30) as r:
            seen["body"] = r.read()
        raise KeyboardInterrupt

    monkeypatch.setattr(UIServer, "run_until_shutdown", run_briefly)
    with pytest.raises(KeyboardInterrupt):
        commands.run_ui([str(p) for p in paths], port=0, **kw)
    return seen["body"]


def test_viewing_a_version_1_file_leaves_it_version_1(sqlite_path, monkeypatch):
    """Only the file that receives remote records is opened for writing: a version 1
    file viewed with `embedviz ui` is not upgraded (an older embedviz still reads it)."""
    import sqlite3

    con = sqlite3.connect(sqlite_path)
    con.executescript(  # the version 1 layout: no histogram_sets
        "DROP TABLE histogram_sets; DROP TABLE histogram_layouts;"
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    con.commit()
    con.close()
    before = sqlite_path.read_bytes()
    assert b'"mlp"' in _serve_once(monkeypatch, [sqlite_path])
    assert sqlite_path.read_bytes() == before
    assert sorted(p.name for p in sqlite_path.parent.iterdir()) == ["runs.db"]
    storage = commands.open_for_ui(str(sqlite_path))
    assert storage.read_only
    storage.close()
    # the receiving file (remote on, the first one) is the one opened for writing
    second = sqlite_path.parent / "recv.db"
    assert _serve_once(monkeypatch, [second, sqlite_path], enable_remote=True)
    assert second.exists() and sqlite_path.read_bytes() == before


def test_refused_foreign_file_is_left_unchanged(
    tmp_path, monkeypatch, with_ui_commands, capsys, foreign_sqlite
):
    foreign, before = foreign_sqlite
    for enable_remote in (False, True):
        with pytest.raises(FileFormatError, match="another program"):
            commands.run_ui([str(foreign)], port=0, enable_remote=enable_remote)
    assert cli.main(["report", str(foreign), "-o", str(tmp_path / "r.html")]) == 2
    assert "another program" in capsys.readouterr().err
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]


def test_receiver_refuses_records_no_storage_can_keep_and_goes_on(tmp_path, monkeypatch):
    """A NaN timestamp or a ragged snapshot is a 400 naming the field; the receiving
    file goes on taking good records and answering reads (it used to keep the bad record
    in its buffer, and every later POST and read failed with 500)."""
    import json

    from embedviz.ui.server import UIServer

    base = {"session_id": "p", "worker_id": "0", "iteration": 1, "timestamp": 5.0}
    bodies = [
        {**base, "type": "update", "timestamp": float("nan")},
        {**base, "type": "snapshot", "kind": "embedding", "vectors": [[1, 2], [3]]},
        {**base, "type": "update", "session_id": "evil\nsummary: 0 error(s)\n\x1b[8m"},
        {**base, "type": "update", "score": 1.5},
    ]
    seen = []

    def post_then_stop(self):
        for record in bodies:
            body = json.dumps({"schema_version": 1, "records": [record]}).encode()
            request = urllib.request.Request(
                self.url + "/api/records", body, {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as r:
                    seen.append((r.status, json.loads(r.read())))
            except urllib.error.HTTPError as e:
                seen.append((e.code, json.loads(e.read())))
        with urllib.request.urlopen(self.url + "/api/sessions", timeout=30) as r:
            seen.append((r.status, json.loads(r.read())))
        raise KeyboardInterrupt

    monkeypatch.setattr(UIServer, "run_until_shutdown", post_then_stop)
    with pytest.raises(KeyboardInterrupt):
        commands.run_ui([str(tmp_path / "recv.db")], port=0, enable_remote=True)
    assert [s for s, _ in seen] == [400, 400, 400, 200, 200]
    assert "records[0].timestamp: expected Unix seconds" in seen[0][1]["error"]
    assert "records[0].vectors: expected rows of one length" in seen[1][1]["error"]
    assert "records[0].session_id: expected a name without control" in seen[2][1]["error"]
    assert seen[3][1] == {"accepted": 1}
    assert [s["session_id"] for s in seen[4][1]["sessions"]] == ["p"]
