"""Diagnostics on runs with planted faults (issue 4 §6, §7)."""

import math
import re
import sqlite3

import pytest

from embedviz.cli import main as embedviz_main
from embedviz.stats.diagnostics import Finding, diagnose, format_finding, printable
from embedviz.stats.records import ActivationStats, ParamStats, StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage

try:  # imported here so that the conftest fixture can pin torch to one thread
    import torch  # noqa: F401
except ImportError:
    torch = None


def checks(findings, severity=None):
    return {f.check for f in findings if severity is None or f.severity == severity}


# -- real training runs ------------------------------------------------------------------


def train_digits(
    storage, session, lr, optimizer="sgd", n=150, scale_last=1.0, zero_bias=False, **kw
):
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    from embedviz.stats.listener import StatsListener

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        model[2].weight.mul_(scale_last)
        if zero_bias:
            model[0].bias.zero_()
            model[2].bias.zero_()
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    with StatsListener(
        storage, model, opt, frequency=5, session_id=session, config={"n_classes": 10}, **kw
    ) as listener:
        for i in range(n):
            start = (i * 64) % (len(X) - 64)
            xb, yb = X[start : start + 64], y[start : start + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            listener.step(loss, batch_size=64)


@pytest.mark.torch
def test_healthy_run_has_no_error():
    storage = InMemoryStatsStorage()
    train_digits(storage, "healthy", lr=1e-3, optimizer="adam")
    found = diagnose(storage)
    assert checks(found, "error") == set(), found


@pytest.mark.torch
def test_healthy_run_with_biases_at_zero_gives_no_warning():
    """Review 5: zero-initialised biases grow from nothing; that is neither a diverging
    parameter nor a too-high update ratio (SGD with momentum, as in the review)."""
    storage = InMemoryStatsStorage()
    train_digits(storage, "zb", lr=0.1, n=300, zero_bias=True)
    found = diagnose(storage)
    assert [f for f in found if f.severity != "info"] == [], found
    assert storage.get_series("zb", "0", "score").values[-10:].mean() < 0.5  # it learned


@pytest.mark.torch
def test_learning_rate_far_too_high_is_an_error(tmp_path, capsys):
    path = tmp_path / "bad.db"
    with SQLiteStatsStorage(path) as storage:
        train_digits(storage, "too-high", lr=20.0)
    with SQLiteStatsStorage(path, read_only=True) as storage:
        found = diagnose(storage)
    errors = checks(found, "error")
    assert errors & {
        "ratio_high",
        "score_not_finite",
        "score_rising",
        "score_exploded",
        "params_not_finite",
    }
    assert embedviz_main(["check", str(path)]) == 1
    text = capsys.readouterr().out
    assert "ERROR" in text and "advice:" in text and "session too-high worker 0" in text
    # a healthy run beside it passes the gate when checked on its own (--session)
    with SQLiteStatsStorage(path) as storage:
        put_run(storage)  # session "s"
    assert embedviz_main(["check", str(path), "--session", "s"]) == 0
    assert "too-high" not in capsys.readouterr().out
    assert embedviz_main(["check", str(path), "--session", "too-high"]) == 1
    capsys.readouterr()
    assert embedviz_main(["check", str(path), "--session", "nope"]) == 2
    assert "--session: no session 'nope' in" in capsys.readouterr().err


@pytest.mark.torch
def test_large_initial_loss_flagged():
    storage = InMemoryStatsStorage()
    train_digits(storage, "init", lr=1e-3, optimizer="adam", n=10, scale_last=40.0)
    found = [f for f in diagnose(storage) if f.check == "initial_loss"]
    assert found and "ln(10)" in found[0].evidence


# -- planted records -----------------------------------------------------------------------


def put_run(storage, n=40, score=None, ratio=None, act_std=1.0, zeros=0.0, lr=0.1, config=None):
    storage.put(StaticInfo("s", "0", 0.0, config=config or {}))
    for i in range(n):
        r = ratio(i) if ratio else 1e-3
        storage.put(
            Update(
                "s", "0", i, float(i),
                score=score(i) if score else 2.0 / (1 + i),
                learning_rates=[lr],
                params={"fc.weight": ParamStats(0.0, 0.1, 0.1, update_mean_magnitude=r * 0.1,
                                                update_param_ratio=r)},
                activations={"relu": ActivationStats(0.1, act_std, zeros)},
            )
        )  # fmt: skip


def test_synthetic_healthy_run_is_clean():
    storage = InMemoryStatsStorage()
    put_run(storage)
    assert diagnose(storage) == []


def test_nan_score_rising_flat():
    s1 = InMemoryStatsStorage()
    put_run(s1, score=lambda i: math.nan if i > 30 else 1.0)
    (nan,) = [f for f in diagnose(s1) if f.check == "score_not_finite"]
    assert nan.severity == "error" and nan.iterations == (31, 39)
    s2 = InMemoryStatsStorage()
    put_run(s2, score=lambda i: 1.0 + 0.1 * i)
    assert "score_rising" in checks(diagnose(s2), "error")
    s3 = InMemoryStatsStorage()
    put_run(s3, score=lambda i: 2.3)
    assert "score_flat" in checks(diagnose(s3), "warning")
    # one NaN in a rising score: named at its own iteration, and the trend still read
    s4 = InMemoryStatsStorage()
    put_run(s4, score=lambda i: math.nan if i == 10 else 1.0 + 0.1 * i)
    found = diagnose(s4)
    (nan,) = [f for f in found if f.check == "score_not_finite"]
    assert nan.iterations == (10, 10) and "nan at iteration 10 (1 of 40 reports)" in nan.evidence
    assert "score_rising" in checks(found, "error")


def test_ratio_checks_and_spikes():
    s = InMemoryStatsStorage()
    put_run(s, ratio=lambda i: 0.5 if i == 25 else 1e-3)
    (spike,) = [f for f in diagnose(s) if f.check == "ratio_spike"]
    assert spike.layer == "fc.weight" and spike.iterations == (25, 25)
    high = InMemoryStatsStorage()
    put_run(high, ratio=lambda i: 0.3)
    assert "ratio_high" in checks(diagnose(high), "error")
    low = InMemoryStatsStorage()
    put_run(low, ratio=lambda i: 1e-6)
    assert "ratio_low" in checks(diagnose(low), "warning")


def test_activation_checks():
    dead = InMemoryStatsStorage()
    put_run(dead, zeros=1.0)
    assert "dead_units" in checks(diagnose(dead), "error")
    wide = InMemoryStatsStorage()
    put_run(wide, act_std=5.0)
    assert "activation_std" in checks(diagnose(wide), "warning")


def test_flat_learning_rate_with_a_schedule():
    s = InMemoryStatsStorage()
    put_run(s, config={"lr_scheduler": "StepLR"})
    (flat,) = [f for f in diagnose(s) if f.check == "lr_flat"]
    assert "StepLR" in flat.evidence
    plain = InMemoryStatsStorage()
    put_run(plain)
    assert "lr_flat" not in checks(diagnose(plain))


def test_check_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.db"
    with SQLiteStatsStorage(good) as s:
        put_run(s)
    assert embedviz_main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "0 error(s)" in out
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all")
    assert embedviz_main(["check", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not SQLite" in err
    assert embedviz_main(["check", str(tmp_path / "missing.db")]) == 2
    assert "no such statistics file" in capsys.readouterr().err


def test_check_fails_a_file_with_no_session(tmp_path, capsys):
    """A CI gate over a training that recorded nothing must not pass."""
    empty = tmp_path / "empty.db"
    SQLiteStatsStorage(empty).close()
    assert embedviz_main(["check", str(empty)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"embedviz: error: no session recorded in {empty}")


def test_check_reports_a_damaged_file(tmp_path, capsys):
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        put_run(s, n=400)
    con = sqlite3.connect(path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    (root,) = con.execute(  # an index that opening and listing sessions do not read
        "SELECT rootpage FROM sqlite_master WHERE name = 'updates_by_worker'"
    ).fetchone()
    con.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page_size : root * page_size] = bytes(page_size)
    path.write_bytes(bytes(data))
    assert embedviz_main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "damaged statistics file (SQLite quick_check" in err
    copy = tmp_path / "half.db"  # damaged where opening reads: no traceback either
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    copy.write_bytes(bytes(data))
    assert embedviz_main(["check", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedviz: error: ") and "damaged" in err


_EVIL = "evil\nsummary: 0 error(s)\n\x1b[8m\x9b"


def test_names_with_control_characters_are_printed_escaped(tmp_path, capsys):
    """A name that skipped validation (another writer, an older embedviz) still cannot
    rewrite the terminal: ``check`` prints control characters escaped."""
    f = Finding("error", "ratio_high", _EVIL, "0", "fc\n.weight\x1b[2J", (1, 5), "x\ry", "do\x07")
    text = format_finding(f)
    assert text.count("\n") == 1 and not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)
    assert "fc\\n.weight\\x1b[2J" in text and "x\\ry" in text and "do\\x07" in text
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        put_run(s, ratio=lambda i: 0.5)  # an error finding
    con = sqlite3.connect(path)
    con.execute("UPDATE workers SET session = ?", (_EVIL,))
    con.commit()
    con.close()
    assert embedviz_main(["check", str(path)]) == 1
    printed = capsys.readouterr().out
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", printed)
    assert "session evil\\nsummary: 0 error(s)\\n\\x1b[8m\\x9b worker 0" in printed
    assert printed.splitlines()[-1].startswith("summary: 1 error(s)")
    assert sum(line.startswith("summary:") for line in printed.splitlines()) == 1


@pytest.mark.parametrize("char", ["\u202e", "\u202a", "\u200e", "\u200f", "\u2066", "\u2069"])
def test_bidirectional_formatting_characters_are_printed_escaped(char, tmp_path, capsys):
    """A right-to-left override shows ``evil\\u202efdp.exe`` as ``evilexe.pdf``: ``check``
    escapes it like a control character, once (``--session`` too, not a repr of it)."""
    name = f"evil{char}fdp.exe"
    escaped = "evil" + repr(char)[1:-1] + "fdp.exe"
    assert printable(name) == escaped and repr(char)[1:-1].startswith("\\u")
    assert printable("été 🙂 run\u200d#1") == "été 🙂 run\u200d#1"  # joiners stay
    f = Finding("error", "ratio_high", name, "0", f"fc{char}.weight", (1, 5), "x", "do")
    text = format_finding(f)
    assert char not in text and "fc" + repr(char)[1:-1] + ".weight" in text
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        put_run(s)  # session "s"
    assert embedviz_main(["check", str(path), "--session", f"{name}\n"]) == 2
    out, err = capsys.readouterr()
    assert f"--session: no session '{escaped}\\n' in" in err
    assert char not in err + out
