"""The command line's own manners for every command (review 5 #15): a reader that goes
away, unknown options, option names in messages, short tokens, Bokeh's log lines."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from embedviz.cli import main
from embedviz.stats.records import Update
from embedviz.stats.storage import SQLiteStatsStorage


@pytest.fixture
def runs_db(tmp_path):
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as st:
        for sid in ("a", "b"):
            st.put_many([Update(sid, "0", i, float(i), score=float("nan")) for i in range(5)])
    return path


def test_a_reader_that_goes_away_ends_the_command_quietly(runs_db):
    # `embedviz check runs.db | head -1`: the reader closes before the findings are written
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedviz.cli", "check", str(runs_db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # nobody reads: every write to stdout fails with EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err  # 128 + SIGPIPE, as a shell tool ends
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert "Exception ignored" not in err, err


def test_an_unknown_option_names_the_help_of_its_command(runs_db, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["ui", "--bogus", str(runs_db)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "embedviz: error: unrecognized arguments: --bogus (embedviz ui --help lists the options)\n"
    )


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("embedviz: error: "), err
    return lines[0]


def test_messages_name_the_options_not_the_parameters(runs_db, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(runs_db), "-o", str(out), "--session", "nope"]) == 2
    line = _error_line(capsys)
    assert line.startswith("embedviz: error: --session: no session 'nope'"), line
    assert "session_id" not in line
    args = ["report", str(runs_db), "-o", str(out), "--session", "a", "--worker", "9"]
    assert main(args) == 2
    line = _error_line(capsys)
    assert line.startswith("embedviz: error: --worker: session 'a' has no worker '9'"), line
    assert "worker_id" not in line and "(--worker)" not in line
    assert main(["ui", str(runs_db), "--token", ""]) == 2
    line = _error_line(capsys)
    assert line.startswith("embedviz: error: --token: expected a token, got an empty one")
    assert main(["ui", str(runs_db), "--port", "99999"]) == 2
    assert _error_line(capsys).startswith("embedviz: error: --port: expected an integer")


def _serve_and_stop(*argv) -> str:
    """Start ``embedviz ui ...`` in a child process, stop it once it serves; its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedviz.cli", "ui", "--port", "0", *map(str, argv)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if re.search(r"serving the UI at http://", line):
                break
        proc.send_signal(signal.SIGTERM)
        lines.append(proc.stderr.read())
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return "".join(lines)


def test_a_short_token_is_taken_with_a_warning(runs_db):
    err = _serve_and_stop(runs_db, "--token", "ab")
    assert "embedviz: warning: the token has 2 characters" in err, err
    assert "token=ab" in err  # still accepted: the URL to open carries it
    err = _serve_and_stop(runs_db, "--token", "0123456789abcdef")
    assert "the token has" not in err, err


def test_every_interface_gives_our_warning_and_no_raw_bokeh_line(runs_db):
    err = _serve_and_stop(runs_db, "--host", "0.0.0.0")
    assert "WARNING:bokeh" not in err and "bokeh.server" not in err, err
    warnings = [line for line in err.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("embedviz: warning: the UI listens on every interface")
