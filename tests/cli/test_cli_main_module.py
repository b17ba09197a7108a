"""``python -m embedviz`` runs the same command line as the ``embedviz`` script (review 8)."""

import subprocess
import sys

import embedviz


def _run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "embedviz", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_python_m_embedviz_answers_version():
    out = _run("--version")
    assert out.returncode == 0, out.stderr
    assert embedviz.__version__ in out.stdout
    assert "embedviz" in out.stdout


def test_python_m_embedviz_gives_the_commands_exit_status_and_name(tmp_path):
    out = _run("tsne", "no-such-file.bin", "-o", "never-written.html", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("embedviz: error: ")
    assert "no-such-file.bin" in out.stderr
    assert not (tmp_path / "never-written.html").exists()
