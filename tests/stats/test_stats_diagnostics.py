"""Diagnostics on runs with planted faults (issue 4 §6, §7)."""

import json
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


# -- a learning-rate schedule (review 13, finding 4) -------------------------------------


def digits_with_schedule(storage, make_scheduler, epochs=4, per_epoch=None, frequency=5):
    """An MLP on digits, ``make_scheduler(optimizer)`` stepped as ``per_epoch(scheduler,
    epoch_loss)`` after each epoch (None: never stepped); the session id."""
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    from embedviz.stats.listener import StatsListener

    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X[:640] / 16.0, dtype=torch.float32), torch.tensor(y[:640])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = make_scheduler(opt)
    with StatsListener(storage, model, opt, frequency=frequency, scheduler=scheduler) as listener:
        for _ in range(epochs):
            total = 0.0
            for start in range(0, len(X), 32):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(
                    model(X[start : start + 32]), y[start : start + 32]
                )
                loss.backward()
                opt.step()
                listener.step(loss, batch_size=32)
                total += loss.item()
            if per_epoch is not None:
                per_epoch(scheduler, total)
    return listener.session_id


def lr_flat(storage, severity=None):
    return [f for f in diagnose(storage) if f.check == "lr_flat"
            and (severity is None or f.severity == severity)]  # fmt: skip


@pytest.mark.torch
def test_a_plateau_scheduler_keeping_the_rate_is_not_flagged():
    """ReduceLROnPlateau keeps the rate while the loss improves: flat by design."""
    torch = pytest.importorskip("torch")
    storage = InMemoryStatsStorage()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
    sid = digits_with_schedule(storage, lambda o: plateau(o, patience=5),
                               per_epoch=lambda s, loss: s.step(loss))  # fmt: skip
    lr = storage.get_series(sid, "0", "lr/0").values
    assert len(lr) >= 3 and (lr == lr[0]).all()  # the rate really stayed flat
    assert lr_flat(storage) == []


@pytest.mark.torch
def test_a_step_schedule_whose_first_step_lies_beyond_the_run_is_no_warning():
    torch = pytest.importorskip("torch")
    storage = InMemoryStatsStorage()
    step_lr = torch.optim.lr_scheduler.StepLR
    digits_with_schedule(storage, lambda o: step_lr(o, 1000, 0.1),
                         per_epoch=lambda s, loss: s.step())  # fmt: skip
    assert lr_flat(storage, "warning") == [] and lr_flat(storage, "error") == []
    for f in lr_flat(storage):  # at most a question, not "call scheduler.step()"
        assert f.severity == "info" and "fine while the schedule's first change" in f.advice


@pytest.mark.torch
def test_a_schedule_never_stepped_over_a_long_run_is_still_flagged():
    torch = pytest.importorskip("torch")
    storage = InMemoryStatsStorage()
    exponential = torch.optim.lr_scheduler.ExponentialLR
    digits_with_schedule(storage, lambda o: exponential(o, 0.5), epochs=3)  # never stepped
    (flat,) = lr_flat(storage)
    assert "ExponentialLR" in flat.evidence and flat.where == "learning rate (group 0)"
    assert "scheduler.step()" in flat.advice


def put_scheduled(storage, name, facts=None, steps=None, n=30, lr=lambda i: 0.1):
    """A healthy planted run (iterations 0, 5, ...) with a scheduler ``name``, its
    ``facts`` and, when given, its step count ``steps(i)`` at report ``i``."""
    config = {"lr_scheduler": name}
    if facts is not None:
        config["lr_scheduler_args"] = facts
    storage.put(StaticInfo("s", "0", 0.0, config=config))
    for i in range(n):
        extra = {"lr_scheduler_steps": float(steps(i))} if steps is not None else {}
        storage.put(Update("s", "0", 5 * i, float(i), score=2.0 / (1 + i),
                           learning_rates=[lr(i)], extra=extra))  # fmt: skip
    return storage


def test_a_flat_rate_is_judged_from_the_schedulers_facts_and_step_count():
    def flat(name, facts=None, steps=None):
        return lr_flat(put_scheduled(InMemoryStatsStorage(), name, facts, steps))

    # the last report is at iteration 145: a first change after 1000 steps is ahead
    assert flat("StepLR", {"step_size": 1000, "gamma": 0.1}) == []
    assert flat("MultiStepLR", {"milestones": [500, 800], "gamma": 0.1}) == []
    assert flat("StepLR", {"step_size": 10, "gamma": 1.0}) == []  # gamma 1 keeps it
    assert flat("ReduceLROnPlateau", {"factor": 0.1}, steps=lambda i: 0) == []
    # facts not recorded: a question (INFO), never "call scheduler.step()" as an order
    (f,) = flat("StepLR")
    assert f.severity == "info" and "although StepLR was configured" in f.evidence
    # the step count recorded: never advanced -> a warning that says so
    (f,) = flat("StepLR", {"step_size": 10, "gamma": 0.5}, steps=lambda i: 0)
    assert f.severity == "warning" and "was not stepped" in f.evidence
    assert "its step count stayed 0" in f.evidence and "after 10 steps" in f.evidence
    # stepped past its first change and still flat: the scheduler drives another optimizer
    (f,) = flat("StepLR", {"step_size": 10, "gamma": 0.5}, steps=lambda i: i)
    assert f.severity == "warning" and "stepped 29 times in that time, from step 0 to 29" in (
        f.evidence
    )
    assert "another optimizer" in f.advice
    # resumed from a checkpoint past its milestones: no change is due within the run
    assert flat("MultiStepLR", {"milestones": [30, 80], "gamma": 0.1},
                steps=lambda i: 100 + i) == []  # fmt: skip
    # stepped, its first change still ahead: nothing
    assert flat("StepLR", {"step_size": 100, "gamma": 0.5}, steps=lambda i: i) == []
    # a rate that changes is never flagged
    moving = put_scheduled(InMemoryStatsStorage(), "StepLR", steps=lambda i: 0,
                           lr=lambda i: 0.1 if i < 10 else 0.05)  # fmt: skip
    assert lr_flat(moving) == []


@pytest.mark.torch
@pytest.mark.parametrize(
    "name, kw",
    [("StepLR", {"step_size": 7, "gamma": 0.5}), ("MultiStepLR", {"milestones": [9, 4]}),
     ("ConstantLR", {"factor": 0.5, "total_iters": 6}), ("ExponentialLR", {"gamma": 0.9}),
     ("CosineAnnealingLR", {"T_max": 20}), ("LinearLR", {}), ("PolynomialLR", {}),
     ("ExponentialLR", {"gamma": 1.0})],
)  # fmt: skip
def test_the_first_change_read_from_the_facts_is_torchs(name, kw):
    """The step after which the check expects the rate to have changed is the one at
    which torch's own scheduler changes it (stepped here until it does)."""
    torch = pytest.importorskip("torch")
    from embedviz.stats.diagnostics_schedule import _first_change, scheduler_facts

    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    scheduler = getattr(torch.optim.lr_scheduler, name)(opt, **kw)
    start, changed = opt.param_groups[0]["lr"], math.inf
    for k in range(1, 50):
        opt.step()
        scheduler.step()
        if opt.param_groups[0]["lr"] != start:
            changed = k
            break
    facts = scheduler_facts(scheduler)
    assert facts == json.loads(json.dumps(facts))  # JSON types, as the static info holds
    assert _first_change(name, facts) == changed


# -- what the checks could not read (review 13, findings 3 and 7) -------------------------


@pytest.mark.torch
def test_a_run_without_update_statistics_is_a_warning_not_a_pass(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from embedviz.stats.listener import StatsListener

    path = tmp_path / "no-optimizer.db"
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with SQLiteStatsStorage(path) as storage:
        with StatsListener(storage, model, None, frequency=2, session_id="plain") as listener:
            for _ in range(12):
                loss = model(torch.randn(16, 4)).pow(2).mean()
                loss.backward()
                listener.step(loss)
        (f,) = [f for f in diagnose(storage) if f.check == "no_update_stats"]
    assert f.severity == "warning" and "no optimizer given" in f.evidence
    assert embedviz_main(["check", "-q", str(path)]) == 0
    assert "WARNING [no_update_stats]" in capsys.readouterr().out


def test_reports_without_any_update_ratio_are_named():
    """Gradient accumulation reported on micro-batches without a step: every record
    lacks the update statistics, although an optimizer was given."""
    storage = InMemoryStatsStorage()
    storage.put(StaticInfo("s", "0", 0.0, optimizer={"class": "SGD", "param_groups": []}))
    for i in range(12):
        storage.put(Update("s", "0", 10 * i, float(i), score=2.0 / (1 + i), learning_rates=[0.1],
                           params={"fc.weight": ParamStats(0.0, 0.1, 0.1)}))  # fmt: skip
    (f,) = [f for f in diagnose(storage) if f.check == "no_update_stats"]
    assert f.severity == "warning" and "none of the 12 reports" in f.evidence
    assert "once per optimizer.step()" in f.advice
    healthy = InMemoryStatsStorage()
    put_run(healthy)
    assert "no_update_stats" not in checks(diagnose(healthy))
    other = InMemoryStatsStorage()  # a t-SNE run has no parameters to update
    other.put(StaticInfo("t", "0", 0.0, kind="tsne"))
    other.put_many([Update("t", "0", i, 0.0, score=1.0 / (1 + i)) for i in range(5)])
    assert "no_update_stats" not in checks(diagnose(other))


@pytest.mark.parametrize("n_classes", ["ten", 0, 1, -3.5, True, 2.5, [10]])
def test_an_n_classes_that_is_not_a_class_count_is_reported(n_classes):
    storage = InMemoryStatsStorage()
    put_run(storage, n=5, score=lambda i: 40.0, config={"n_classes": n_classes})
    found = diagnose(storage)
    (f,) = [f for f in found if f.check == "bad_config"]
    assert f.severity == "warning" and f"config n_classes is {n_classes!r}" in f.evidence
    assert "initial-loss check" in f.evidence and "initial_loss" not in checks(found)


@pytest.mark.parametrize("n_classes", [10, 10.0])
def test_a_class_count_is_used(n_classes):
    storage = InMemoryStatsStorage()
    put_run(storage, n=5, score=lambda i: 40.0, config={"n_classes": n_classes})
    found = diagnose(storage)
    assert "bad_config" not in checks(found) and "initial_loss" in checks(found, "warning")
    (f,) = [f for f in found if f.check == "initial_loss"]
    assert "10-class" in f.evidence and "ln(10)" in f.evidence


def test_check_says_a_run_without_updates_could_not_be_checked(tmp_path, capsys):
    """``demo_train.py --epochs 0``: a session with its static info and no update is a
    warning, not "no problems found"; a file with no update at all fails the gate."""
    path = tmp_path / "empty-run.db"
    with SQLiteStatsStorage(path) as s:
        s.put(StaticInfo("empty", "0", 0.0, model_class="Net"))
    assert embedviz_main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "session empty worker 0 (torch, Net; 0 updates)" in out
    assert "WARNING [no_updates] run: no updates recorded" in out
    assert "no problems found" not in out and "summary: 0 error(s), 1 warning(s)" in out
    assert err.startswith("embedviz: error: no updates recorded in") and err.count("\n") == 1
    with SQLiteStatsStorage(path) as s:  # beside a run with one update: a warning only
        s.put(StaticInfo("one", "0", 0.0, model_class="Net"))
        s.put(Update("one", "0", 0, 0.0, score=2.3))
    assert embedviz_main(["check", "-q", str(path)]) == 0
    out = capsys.readouterr().out
    assert "session empty worker 0" in out and "[no_updates]" in out
    assert embedviz_main(["check", str(path), "--session", "one"]) == 0
    assert "(torch, Net; 1 update)" in capsys.readouterr().out
