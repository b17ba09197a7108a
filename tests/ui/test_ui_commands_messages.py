"""``embedviz report`` / ``check`` / ``ui`` messages (review 8, findings 10 and 11): the
output checked first, one wording for an unknown session or worker, advice that fits
the command for a file that is not ours, and ``check``'s ``-q`` and ``--worker``."""

from __future__ import annotations

import sqlite3

import pytest

import embedviz.cli as cli
from embedviz.errors import FileFormatError
from embedviz.stats.records import Update
from embedviz.stats.storage import SQLiteStatsStorage
from embedviz.ui import commands
from embedviz.ui.stats_args import SHOWN_NAMES


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _one_error(capsys) -> tuple[str, str]:
    """(the one stderr line, stdout)."""
    out, err = capsys.readouterr()
    lines = _lines(err)
    assert len(lines) == 1 and lines[0].startswith("embedviz: error: "), err
    assert "Traceback" not in err
    return lines[0], out


@pytest.fixture
def nan_db(tmp_path):
    """Two sessions whose scores are NaN (an error finding each); worker 1 in 'b' only."""
    path = tmp_path / "nan.db"
    with SQLiteStatsStorage(path) as st:
        for sid, workers in (("a", ("0",)), ("b", ("0", "1"))):
            st.put_many(
                [Update(sid, w, i, float(i), score=float("nan")) for w in workers for i in range(5)]
            )
    return path


# -------------------------------------------------------------------- report's output
@pytest.mark.parametrize("where", ["adir", "missing/r.html"])
def test_report_checks_the_output_before_saying_anything(sqlite_path, tmp_path, capsys, where):
    (tmp_path / "adir").mkdir()
    out = tmp_path / where
    assert cli.main(["report", str(sqlite_path), "-o", str(out)]) == 2
    line, stdout = _one_error(capsys)  # no "report on session ..." line before it
    assert line.startswith(f"embedviz: error: -o: cannot write the report to '{out}'"), line
    assert stdout == ""
    assert not (tmp_path / "missing").exists()


def test_report_onto_its_own_statistics_file_is_refused_first(sqlite_path, capsys):
    before = sqlite_path.read_bytes()
    assert cli.main(["report", str(sqlite_path), "-o", str(sqlite_path)]) == 2
    line, _ = _one_error(capsys)
    assert "-o: the report would overwrite the statistics file" in line
    assert sqlite_path.read_bytes() == before


def test_report_names_the_session_it_chose_without_python_words(sqlite_path, tmp_path, capsys):
    with SQLiteStatsStorage(sqlite_path, read_only=True) as st:
        sessions = st.list_sessions()
    assert len(sessions) == 3
    assert cli.main(["report", str(sqlite_path), "-o", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert (
        f"embedviz: report on session '{sessions[-1]}', the newest of 3; choose another "
        "with --session NAME\n"
    ) in err
    assert "session_id" not in err
    assert f"embedviz report: {sessions[-1]}" in (tmp_path / "r.html").read_text("utf-8")


# ------------------------------------------------------- unknown session or worker
def test_unknown_session_is_worded_alike_by_check_and_report(sqlite_path, tmp_path, capsys):
    with SQLiteStatsStorage(sqlite_path, read_only=True) as st:
        sessions = st.list_sessions()
    out = str(tmp_path / "r.html")
    assert cli.main(["check", str(sqlite_path), "--session", "nope"]) == 2
    check_line, stdout = _one_error(capsys)
    assert stdout == ""  # nothing printed before the error
    assert cli.main(["report", str(sqlite_path), "-o", out, "--session", "nope"]) == 2
    report_line, _ = _one_error(capsys)
    listed = ", ".join(f"'{s}'" for s in sessions)
    common = (
        f"embedviz: error: --session: no session 'nope' in {sqlite_path}, which holds "
        f"3 sessions: {listed}; give one of these, or leave out --session to "
    )
    assert check_line == common + "check every one"
    assert report_line == common + "report the newest"
    assert "newest:" not in check_line


def test_unknown_session_lists_the_newest_few_of_many_and_a_close_name(tmp_path, capsys):
    path = tmp_path / "many.db"
    names = [f"run-{k:02d}" for k in range(12)]
    with SQLiteStatsStorage(path) as st:
        st.put_many([Update(s, "0", 1, float(k), score=1.0) for k, s in enumerate(names)])
    assert cli.main(["check", str(path), "--session", "run-4"]) == 2
    line, _ = _one_error(capsys)
    shown = ", ".join(f"'{s}'" for s in names[-SHOWN_NAMES:])
    assert f"which holds 12 sessions, the last 5 (newest): {shown}" in line
    assert "'run-00'" not in line and "(did you mean 'run-04'?)" in line


def test_unknown_worker_is_worded_alike_by_check_and_report(sqlite_path, tmp_path, capsys):
    out = str(tmp_path / "r.html")
    assert cli.main(["check", str(sqlite_path), "--session", "mlp", "--worker", "7"]) == 2
    check_line, stdout = _one_error(capsys)
    assert stdout == ""
    assert cli.main(["report", str(sqlite_path), "-o", out, "--session", "mlp", "--worker", "7"])
    report_line, _ = _one_error(capsys)
    common = (
        f"embedviz: error: --worker: session 'mlp' has no worker '7' in {sqlite_path}; it "
        "has 2 workers: '0', '1'; give one of these, or leave out --worker to "
    )
    assert check_line == common + "check every worker"
    assert report_line == common + "report the first"


# ------------------------------------------------------------ a file that is not ours
def _foreign(tmp_path, kind: str):
    if kind == "text":
        path = tmp_path / "w2v.txt"
        path.write_text("2 3\nthe 0.1 0.2 0.3\nof 0.4 0.5 0.6\n", encoding="utf-8")
    else:
        path = tmp_path / "other.db"
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE t (x)")
        con.close()
    return path


@pytest.mark.parametrize("kind", ["text", "sqlite"])
@pytest.mark.parametrize("command", ["check", "report", "ui"])
def test_foreign_file_advice_fits_the_command(tmp_path, capsys, kind, command):
    path = _foreign(tmp_path, kind)
    before = path.read_bytes()
    args = [command, str(path)]
    if command == "report":
        args += ["-o", str(tmp_path / "r.html")]
    assert cli.main(args) == 2
    line, _ = _one_error(capsys)
    assert line.startswith(f"embedviz: error: {path}: ")
    assert "new path" not in line  # none of these takes a new file
    assert "give the statistics file a training wrote (SQLiteStatsStorage, e.g. runs.db)" in line
    assert ("embedviz tsne" in line) == (kind == "text")  # word vectors: the right command
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", ["text", "sqlite"])
def test_only_the_remote_receivers_file_may_be_a_new_path(tmp_path, kind):
    path = _foreign(tmp_path, kind)
    with pytest.raises(FileFormatError, match=r"or a new path to receive remote records into"):
        commands.open_for_ui(str(path), create=True)
    with pytest.raises(FileFormatError, match=r"a training wrote") as refused:
        commands.open_for_ui(str(path), create=False)
    assert "new path" not in str(refused.value)


# ------------------------------------------------------------- check -q and --worker
def test_check_quiet_prints_only_warnings_and_errors_with_the_same_status(nan_db, capsys):
    assert cli.main(["check", str(nan_db)]) == 1
    full = _lines(capsys.readouterr().out)
    assert cli.main(["check", "-q", str(nan_db)]) == 1
    quiet = _lines(capsys.readouterr().out)
    assert quiet and set(quiet) < set(full)
    assert not any(x.startswith(("summary:", f"{nan_db}:")) for x in quiet)
    assert not any(x.lstrip().startswith(("INFO", "no problems")) for x in quiet)
    # each finding under its run's line: three runs, each with its error
    heads = [x for x in quiet if x.startswith("session ")]
    assert heads == [x for x in full if x.startswith("session ")] and len(heads) == 3
    assert sum(x.lstrip().startswith("ERROR") for x in quiet) == sum(
        x.lstrip().startswith("ERROR") for x in full
    )


def test_check_quiet_on_a_clean_file_prints_nothing(tmp_path, capsys):
    path = tmp_path / "clean.db"
    with SQLiteStatsStorage(path) as st:
        st.put_many([Update("s", "0", i, float(i), score=1.0 / (i + 1)) for i in range(20)])
    assert cli.main(["check", str(path)]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert cli.main(["check", "--quiet", str(path)]) == 0
    assert capsys.readouterr().out == ""


def test_check_worker_narrows_every_session_to_that_worker(nan_db, sqlite_path, capsys):
    assert cli.main(["check", str(nan_db), "--worker", "1"]) == 1
    heads = [x for x in _lines(capsys.readouterr().out) if x.startswith("session ")]
    assert heads == ["session b worker 1 (no static info; 5 updates)"]
    assert cli.main(["check", str(sqlite_path), "--worker", "0"]) == 1  # mlp's NaN score
    heads = [x.split(" (")[0] for x in _lines(capsys.readouterr().out) if x.startswith("session ")]
    with SQLiteStatsStorage(sqlite_path, read_only=True) as st:
        expected = [
            f"session {s} worker 0" for s in st.list_sessions() if "0" in st.list_workers(s)
        ]
    assert heads == expected and len(expected) == 3
    # a worker no session has: one line naming the workers there are
    assert cli.main(["check", str(nan_db), "--worker", "5"]) == 2
    line, stdout = _one_error(capsys)
    assert stdout == "" and "no session in" in line and "2 workers: '0', '1'" in line


def test_check_help_lists_quiet_and_worker(capsys):
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "-q, --quiet print only the warnings and errors" in text
    assert "--worker WORKER check only this worker (rank)" in text
    assert "(default: every worker)" in text
