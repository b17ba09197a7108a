"""StatsListener on a real MLP on scikit-learn's digits (issue 4 §2, §3, §7)."""

import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")


from embedviz.errors import InputError  # noqa: E402
from embedviz.stats.listener import StatsListener  # noqa: E402
from embedviz.stats.storage import InMemoryStatsStorage  # noqa: E402

pytestmark = pytest.mark.torch


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def batches(X, y, n, size=64):
    for i in range(n):
        start = (i * size) % (len(X) - size)
        yield X[start : start + size], y[start : start + size]


def train(model, opt, data, n, listener=None, on_step=None):
    X, y = data
    for xb, yb in batches(X, y, n):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        if on_step is not None:
            on_step(model, loss)
        opt.step()
        if listener is not None:
            listener.step(loss, batch_size=len(xb))


def test_plain_sgd_numbers_match_independent_computation(digits):
    model = make_model()
    lr = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    storage = InMemoryStatsStorage()
    expected = {}
    acts = {}

    def capture(name):
        def hook(module, inp, out):
            acts[name] = out.detach().clone()

        return hook

    handles = [m.register_forward_hook(capture(n)) for n, m in model.named_modules() if n]

    def on_step(model, loss):  # before the step: the gradients, and what SGD will do
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        after = {n: p.detach() - lr * grads[n] for n, p in model.named_parameters()}
        expected[len(expected)] = (float(loss.detach()), grads, after, dict(acts))

    with StatsListener(storage, model, opt, frequency=5, session_id="s") as listener:
        train(model, opt, digits, 12, listener, on_step)
    for h in handles:
        h.remove()

    updates = storage.get_updates("s")
    assert [u.iteration for u in updates] == [0, 5, 10]
    for u in updates:
        loss, grads, after, a = expected[u.iteration]
        assert u.score == pytest.approx(loss, rel=1e-6)
        assert u.learning_rates == [lr]
        assert set(u.params) == {"0.weight", "0.bias", "2.weight", "2.bias"}
        for name, stats in u.params.items():
            g, p = grads[name].double(), after[name].double()
            assert stats.grad_mean_magnitude == pytest.approx(float(g.abs().mean()), rel=1e-5)
            assert stats.param_mean == pytest.approx(float(p.mean()), rel=1e-4, abs=1e-7)
            assert stats.param_std == pytest.approx(float(p.std()), rel=1e-4)
            ratio = lr * float(g.abs().mean()) / float(p.abs().mean())
            assert stats.update_param_ratio == pytest.approx(ratio, rel=1e-3)
            assert stats.update_mean == pytest.approx(-lr * float(g.mean()), rel=1e-3, abs=1e-9)
        relu = a["1"].double()
        assert u.activations["1"].zero_fraction == pytest.approx(float((relu == 0).double().mean()))
        assert u.activations["0"].std == pytest.approx(float(a["0"].double().std()), rel=1e-5)
        assert u.collect_seconds > 0
    assert updates[0].memory["rss_bytes"] > 0
    assert updates[1].examples_per_sec > 0


@pytest.mark.parametrize("frequency", [3, 1])  # 1: the copy's memory is reused
def test_adam_update_is_the_applied_change(digits, frequency):
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    storage = InMemoryStatsStorage()
    seen = {}
    snapshots = []

    def on_step(model, loss):
        snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})

    with StatsListener(storage, model, opt, frequency=frequency, session_id="a") as listener:
        X, y = digits
        for i, (xb, yb) in enumerate(batches(X, y, 7)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            on_step(model, None)
            opt.step()
            seen[i] = {
                n: (p.detach() - snapshots[-1][n]).double() for n, p in model.named_parameters()
            }
            listener.step(None)
    updates = storage.get_updates("a")
    assert len(updates) == len(range(0, len(seen), frequency))
    for u in updates:
        for name, stats in u.params.items():
            d = seen[u.iteration][name]
            assert stats.update_mean_magnitude == pytest.approx(float(d.abs().mean()), rel=1e-4)
            assert stats.update_std == pytest.approx(float(d.std()), rel=1e-3)


def _global_forward_hooks():
    return torch.nn.modules.module._global_forward_hooks


def _trigger_on():
    """The listener's process-wide forward pre-hook (it waits for the model's next
    training forward pass) is on."""
    return bool(torch.nn.modules.module._global_forward_pre_hooks)


def _forward_hooks(model):
    """The forward hooks on the model's modules, by module name."""
    return {n: dict(m._forward_hooks) for n, m in model.named_modules() if m._forward_hooks}


def _watch_forward(model):
    """A list that gets, at the end of each forward pass of ``model``, the names of its
    leaves that hold a forward hook then (the hook that watches is on the root)."""
    seen = []
    model.register_forward_hook(
        lambda m, i, o: seen.append(sorted(n for n in _forward_hooks(m) if n))
    )
    return seen


def test_close_removes_every_hook_and_training_is_identical(digits):
    ref_model = make_model(1)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9)
    train(ref_model, ref_opt, digits, 25)

    model = make_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    storage = InMemoryStatsStorage()
    listener = StatsListener(storage, model, opt, frequency=2, histogram_frequency=4)
    assert opt._optimizer_step_pre_hooks and opt._optimizer_step_post_hooks
    assert _trigger_on() and not _forward_hooks(model)  # armed for iteration 0
    train(model, opt, digits, 25, listener)
    listener.close()
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    assert not _global_forward_hooks() and not _trigger_on()
    assert all(not m._forward_hooks for m in model.modules())
    for (n, p), (_, q) in zip(model.named_parameters(), ref_model.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    with pytest.raises(InputError, match="closed"):
        listener.step(1.0)


def test_hooks_only_on_reported_iterations_and_on_the_model_only_in_its_forward(digits):
    """A reported iteration: the trigger and the optimizer's hooks before it, the
    leaves' hooks during its forward pass and backward only; any other: no hook."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    seen = _watch_forward(model)
    before, after_step = [], []
    with StatsListener(storage, model, opt, frequency=4, session_id="h") as listener:
        for _ in range(9):
            before.append(
                (
                    bool(_forward_hooks(model)[""]) and len(_forward_hooks(model)) == 1,
                    _trigger_on(),
                    len(opt._optimizer_step_pre_hooks),
                    len(opt._optimizer_step_post_hooks),
                )
            )
            train(model, opt, digits, 1, on_step=lambda m, loss: None)
            after_step.append(len(_forward_hooks(model)))
            listener.step()
    leaves = ["0", "1", "2"]
    assert before == [(True, i % 4 == 0, *(2 * [int(i % 4 == 0)])) for i in range(9)]
    assert seen == [leaves if i % 4 == 0 else [] for i in range(9)]
    assert after_step == [1] * 9  # the root's watching hook only: ours are off after the step
    assert [u.iteration for u in storage.get_updates("h")] == [0, 4, 8]
    assert all(u.params["0.weight"].update_param_ratio > 0 for u in storage.get_updates("h"))
    assert all(len(u.activations) == 3 for u in storage.get_updates("h"))


def test_frequency_one_keeps_its_hooks_from_the_first_forward_pass_until_close(digits):
    """Every iteration reported: no trigger waiting between iterations (it would cost
    another model a call per module all the time), no registering per iteration."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    seen = _watch_forward(model)
    hooks = []
    with StatsListener(storage, model, opt, frequency=1, session_id="f1") as listener:
        assert _trigger_on() and list(_forward_hooks(model)) == [""]
        for _ in range(4):
            train(model, opt, digits, 1, listener)
            assert not _trigger_on()
            hooks.append((_forward_hooks(model), dict(opt._optimizer_step_pre_hooks)))
    assert len(hooks[0][0]) == 4 and len(hooks[0][1]) == 1  # the root's watcher, 3 leaves
    assert all(h == hooks[0] for h in hooks)  # registered once
    assert seen == [["0", "1", "2"]] * 4
    assert list(_forward_hooks(model)) == [""] and not _trigger_on()
    updates = storage.get_updates("f1")
    assert [u.iteration for u in updates] == [0, 1, 2, 3]
    assert all(len(u.activations) == len(updates[0].activations) > 0 for u in updates)


@pytest.mark.parametrize("direct", [True, False])
def test_the_listeners_hooks_live_beside_the_users_own(digits, monkeypatch, direct):
    """Its hooks go into torch's hook dicts under an id no other hook gets (or, for a
    torch that keeps them elsewhere, through the registration methods): the user's
    own hooks, registered before and during training, run on every iteration and
    stay; the recorded numbers are the same either way."""
    from embedviz.stats import listener_hooks

    monkeypatch.setattr(listener_hooks.HookSet, "DIRECT", direct)
    model = make_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    calls = []
    mine = [model[0].register_forward_hook(lambda *a: calls.append("before"))]
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=3, session_id="s") as listener:
        assert listener._hooks.direct is direct
        train(model, opt, digits, 2, listener)
        mine.append(model[0].register_forward_hook(lambda *a: calls.append("during")))
        mine.append(opt.register_step_post_hook(lambda *a: calls.append("step")))
        assert listener._hooks.id not in {h.id for h in mine}
        train(model, opt, digits, 5, listener)
    assert calls.count("before") == 7 and calls.count("during") == calls.count("step") == 5
    assert list(model[0]._forward_hooks) == [h.id for h in mine[:2]]
    assert list(opt._optimizer_step_post_hooks) == [mine[2].id]
    assert not opt._optimizer_step_pre_hooks and not _trigger_on()
    updates = storage.get_updates("s")
    assert [u.iteration for u in updates] == [0, 3, 6]
    reference = InMemoryStatsStorage()  # the other path, the same numbers
    monkeypatch.setattr(listener_hooks.HookSet, "DIRECT", not direct)
    model = make_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with StatsListener(reference, model, opt, frequency=3, session_id="s") as listener:
        train(model, opt, digits, 2, listener)
        train(model, opt, digits, 5, listener)
    assert [(u.params, u.activations) for u in reference.get_updates("s")] == [
        (u.params, u.activations) for u in updates
    ]


@pytest.mark.parametrize("frequency", [1, 3])
def test_another_model_in_the_process_gets_no_hook_and_is_not_recorded(digits, frequency):
    """The listener hooks its model's leaves only: a second model (a teacher, an EMA
    copy, an evaluation model), called before the model's forward pass on a reported
    iteration, carries no hook and adds nothing to the report."""
    model, other = make_model(), make_model(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    seen = _watch_forward(other)
    with StatsListener(storage, model, opt, frequency=frequency, session_id="o") as listener:
        for _ in range(4):
            other(digits[0][:8]).sum().backward()  # in training mode, with gradients
            assert not _global_forward_hooks() and list(_forward_hooks(other)) == [""]
            train(model, opt, digits, 1, listener)
    assert seen == [[]] * 4
    updates = storage.get_updates("o")
    assert [u.iteration for u in updates] == [i for i in range(4) if i % frequency == 0]
    assert all(set(u.activations) == {"0", "1", "2"} for u in updates)


def test_histograms_on_their_cadence(digits):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(
        storage, model, opt, frequency=2, histogram_frequency=4, histogram_bins=7, session_id="g"
    ) as listener:
        train(model, opt, digits, 9, listener)
    with_hist = [u.iteration for u in storage.get_updates("g") if u.histograms]
    assert with_hist == [0, 4, 8]
    u = storage.get_updates("g")[-1]
    assert set(u.histograms) == {"params", "grads", "updates", "activations"}
    h = u.histograms["params"]["0.weight"]
    assert len(h.counts) == 7 and sum(h.counts) == 64 * 32
    w = model[0].weight.detach()
    assert h.lo == pytest.approx(float(w.min())) and h.hi == pytest.approx(float(w.max()))
    assert sum(u.histograms["activations"]["1"].counts) == 64 * 32


def test_record_eval_and_static_info(digits):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(
        storage, model, opt, session_id="e", config={"n_classes": 10, "batch_size": 64}
    ) as listener:
        train(model, opt, digits, 3, listener)
        listener.record_eval({"accuracy": torch.tensor(0.5), "val_loss": 1.25})
        with pytest.raises(InputError, match="metrics"):
            listener.record_eval({"accuracy": "high"})
    (ev,) = storage.get_evals("e")
    assert ev.iteration == 2 and ev.metrics == {"accuracy": 0.5, "val_loss": 1.25}
    info = storage.get_static_info("e", "0")
    assert info.model_class == "Sequential" and info.n_params == 64 * 32 + 32 + 32 * 10 + 10
    layers = [(layer.name, layer.type, layer.n_params) for layer in info.layers]
    assert layers == [("0", "Linear", 64 * 32 + 32), ("1", "ReLU", 0), ("2", "Linear", 330)]
    assert info.layers[0].param_shapes == {"weight": [32, 64], "bias": [32]}
    assert info.optimizer["class"] == "SGD" and info.optimizer["param_groups"][0]["lr"] == 0.1
    assert info.config["n_classes"] == 10 and info.software["torch"] == torch.__version__


def test_bad_arguments():
    model = make_model()
    with pytest.raises(InputError, match="frequency"):
        StatsListener(InMemoryStatsStorage(), model, frequency=0)
    with pytest.raises(InputError, match="report_ranks"):
        StatsListener(InMemoryStatsStorage(), model, report_ranks="some")
    with pytest.raises(InputError, match="model"):
        StatsListener(InMemoryStatsStorage(), object())
    with pytest.raises(InputError, match=r"storage: expected a statistics storage.*'runs.db'"):
        StatsListener("runs.db", model)
    with pytest.raises(InputError, match="optimizer: expected a torch.optim.Optimizer"):
        StatsListener(InMemoryStatsStorage(), model, "sgd")
    with pytest.raises(InputError, match="config: expected a dict"):
        StatsListener(InMemoryStatsStorage(), model, config=[1])
    with pytest.raises(InputError, match="histogram_bins: expected at most 10000"):
        StatsListener(InMemoryStatsStorage(), model, histogram_bins=20_000)
    with pytest.raises(InputError, match="worker_id: expected a string of at most 1000 char"):
        StatsListener(InMemoryStatsStorage(), model, worker_id="w" * 1001)
    with pytest.raises(InputError, match="session_id: expected a name without control"):
        StatsListener(InMemoryStatsStorage(), model, session_id="a\nb")
    assert not torch.nn.modules.module._global_forward_hooks  # nothing left behind


def test_numpy_integers_are_accepted_and_bad_numbers_get_one_message_form(digits):
    """Finding 11 of review 6: ``frequency=np.int64(10)`` (from a config array) was refused."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(
        storage,
        model,
        opt,
        frequency=np.int64(2),
        histogram_frequency=np.int32(4),
        histogram_bins=np.int16(7),
        session_id="np",
    ) as listener:
        train(model, opt, digits, 5, listener)
    assert type(listener.frequency) is int and listener.histogram_bins == 7
    updates = storage.get_updates("np")
    assert [u.iteration for u in updates] == [0, 2, 4]
    assert [bool(u.histograms) for u in updates] == [True, False, True]
    assert len(updates[0].histograms["params"]["0.weight"].counts) == 7
    for kwargs, message in [
        ({"frequency": 0}, "frequency: expected an integer >= 1, got 0"),
        ({"frequency": 2.0}, "frequency: expected an integer >= 1, got 2.0"),
        ({"frequency": True}, "frequency: expected an integer >= 1, got True"),
        ({"histogram_frequency": np.int64(-1)}, "histogram_frequency: expected an integer >= 0"),
        ({"histogram_bins": "30"}, "histogram_bins: expected an integer >= 1, got '30'"),
        ({"report_ranks": "one"}, "report_ranks: expected one of 'all', 'zero', got 'one'"),
    ]:
        with pytest.raises(InputError, match=f"^{message}"):
            StatsListener(InMemoryStatsStorage(), model, opt, **kwargs)


def test_parameters_after_model_and_optimizer_are_keyword_only():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError):
        StatsListener(InMemoryStatsStorage(), model, opt, 5)  # frequency by position
    StatsListener(InMemoryStatsStorage(), model, opt).close()  # the optimizer may be


def test_updates_stored_unchecked_are_what_the_check_accepts(digits):
    """The listener's updates skip the storages' check_record (valid by construction):
    hold it to that, with histograms of every kind, NaN loss included."""
    from embedviz.stats.validation import check_record

    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=1, histogram_frequency=1) as listener:
        train(model, opt, digits, 3, listener)
        listener.step(float("nan"))
    updates = storage.get_updates(listener.session_id)
    assert len(updates) == 4 and all(len(u.histograms) == 4 for u in updates[:3])
    for u in updates:
        check_record(u)


class _Unused(torch.nn.Module):
    """make_model with a parameter that never gets a gradient."""

    def __init__(self):
        super().__init__()
        self.net = make_model()
        self.spare = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("make", [make_model, _Unused])
def test_sqlite_gets_the_same_numbers_as_memory(digits, tmp_path, make):
    """Into SQLite the listener hands its histograms over as arrays and its statistics
    as floats in a list (no Histogram, ParamStats or ActivationStats objects); read back,
    every number equals what the object path stores in memory."""
    from embedviz.stats.storage import SQLiteStatsStorage

    stored = []
    for storage in (InMemoryStatsStorage(), SQLiteStatsStorage(tmp_path / "runs.db")):
        model = make()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with StatsListener(storage, model, opt, frequency=1, histogram_frequency=2) as lis:
            train(model, opt, digits, 5, lis)
        stored.append(
            [
                (u.iteration, u.params, u.activations, u.histograms)
                for u in storage.get_updates(lis.session_id)
            ]
        )
        storage.close()
    memory, sqlite = stored
    assert [len(h) for *_, h in memory] == [4, 0, 4, 0, 4]
    assert [len(a) for _, _, a, _ in memory] == [3] * 5
    assert sqlite == memory


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lis: lis.step("abc"), "loss: expected a number"),
        (lambda lis: lis.step(torch.ones(2)), "loss: expected a number or a one-element"),
        (lambda lis: lis.step(1.0, batch_size="x"), "batch_size: expected an integer >= 0"),
        (lambda lis: lis.step(1.0, batch_size=-5), "batch_size: expected an integer >= 0"),
        (lambda lis: lis.record_eval({"a": 1.0}, iteration="abc"), "iteration: expected"),
        (lambda lis: lis.record_eval({"a": 1.0}, iteration=-3), "iteration: expected"),
        (lambda lis: lis.record_eval({"a": torch.ones(3)}), r"metrics\['a'\]: expected"),
    ],
)
def test_bad_values_in_the_loop_are_input_errors(call, message):
    model = make_model()
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, frequency=1, session_id="v") as listener:
        with pytest.raises(InputError, match=message):
            call(listener)
        listener.step(torch.tensor(2.0), batch_size=np.int64(4))  # still usable; numpy int
    assert [u.score for u in storage.get_updates("v")][-1] == 2.0


def test_a_bad_loss_is_refused_on_iterations_not_reported_too():
    model = make_model()
    with StatsListener(InMemoryStatsStorage(), model, frequency=5) as listener:
        listener.step(1.0)  # iteration 0, reported
        for bad in ("abc", torch.ones(2), [1.0], True):
            with pytest.raises(InputError, match="loss: expected a number"):
                listener.step(bad)  # iteration 1, not reported
        for good in (2.0, 3, np.float32(1.5), torch.tensor(0.5), np.array([0.25])):
            listener.step(good)


def test_a_session_name_used_before_becomes_a_session_of_its_own(digits, tmp_path, caplog):
    from embedviz.stats.storage import SQLiteStatsStorage

    path = tmp_path / "runs.db"
    for run in range(3):
        storage = SQLiteStatsStorage(path)
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with StatsListener(storage, model, opt, frequency=2, session_id="name") as listener:
            train(model, opt, digits, 4, listener)
        storage.close()
        assert listener.session_id == ["name", "name-2", "name-3"][run]
    assert "session 'name' already holds worker 0's records" in caplog.text
    storage = SQLiteStatsStorage(path, read_only=True)
    try:
        assert sorted(storage.list_sessions()) == ["name", "name-2", "name-3"]
        for session in storage.list_sessions():  # no run's iterations mixed into another's
            assert [u.iteration for u in storage.get_updates(session)] == [0, 2]
    finally:
        storage.close()


def test_a_compiled_model_is_recorded_under_its_own_names(digits, caplog):
    model = make_model()
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, compiled, opt, frequency=1, session_id="c") as listener:
        X, y = digits
        for _ in range(2):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(compiled(X[:32]), y[:32])
            loss.backward()
            opt.step()
            listener.step(loss)
    assert "activation statistics are off for a torch.compile'd model" in caplog.text
    (info,) = [storage.get_static_info("c", "0")]
    assert info.model_class == type(model).__name__
    u = storage.get_updates("c")[-1]
    assert set(u.params) == {n for n, _ in model.named_parameters()}  # no "_orig_mod."
    assert u.params["0.weight"].update_param_ratio > 0 and not u.activations


def test_without_optimizer_records_params_and_grads(digits):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, None, frequency=1, session_id="n") as listener:
        train(model, opt, digits, 2, listener)
    u = storage.get_updates("n")[-1]
    stats = u.params["2.bias"]
    assert stats.update_param_ratio is None
    g = model[2].bias.grad.double()
    assert stats.grad_mean_magnitude == pytest.approx(float(g.abs().mean()), rel=1e-5)
    assert np.isfinite(stats.param_std)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_other_dtypes(digits, dtype):
    X, y = digits
    model = make_model().to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=1, histogram_frequency=1) as listener:
        for _ in range(2):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X[:32].to(dtype)).float(), y[:32])
            loss.backward()
            before = model[0].weight.detach().clone()
            opt.step()
            listener.step(loss)
    u = storage.get_updates(listener.session_id)[-1]
    w = model[0].weight.detach().double()
    assert u.params["0.weight"].param_mean_magnitude == pytest.approx(
        float(w.abs().mean()), rel=1e-2
    )
    update = (model[0].weight.detach() - before).double()  # in the parameters' precision
    assert u.params["0.weight"].update_mean_magnitude == pytest.approx(
        float(update.abs().mean()), rel=1e-6 if dtype == torch.float64 else 1e-2
    )
    assert sum(u.histograms["params"]["0.weight"].counts) == w.numel()
    assert np.isfinite(u.params["0.weight"].update_param_ratio)


def _reference_histogram(values, bins):
    """Equal-width bins of the finite values between their min and max (numpy): bin
    floor((x - lo) * (bins / (hi - lo))), in float32 arithmetic for float32 values whose
    range and scale float32 holds (the rule the listener documents), else in float64."""
    x = np.asarray(values).ravel()
    x = x[np.isfinite(x)]
    if not x.size:
        return 0.0, 0.0, [0] * bins
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return lo, hi, [x.size] + [0] * (bins - 1)
    scale = bins / (hi - lo)
    with np.errstate(over="ignore"):
        lo32, scale32 = np.float32(lo), np.float32(scale)
        single = (
            x.dtype == np.float32 and np.isfinite(np.float32(hi) - lo32) and 0 < scale32 < np.inf
        )
    if single:
        position = (x - lo32) * scale32
        assert position.dtype == np.float32
    else:
        position = (x.astype(np.float64) - lo) * scale
    idx = np.clip(np.floor(position).astype(np.int64), 0, bins - 1)
    return lo, hi, np.bincount(idx, minlength=bins).tolist()


def _awkward_tensors():
    g = torch.Generator().manual_seed(3)
    relu = torch.randn(4099, generator=g).relu()  # runs of zeros, length not a multiple of 4
    spiky = torch.randn(301, generator=g)
    spiky[[3, 50, 77]] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    big_spiky = torch.randn(5000, generator=g)
    big_spiky[[9, 4000]] = torch.tensor([float("inf"), float("nan")])
    neg_nan = torch.randn(50, generator=g)
    neg_nan[7] = -float("nan")  # sorts below -inf in the compiled min/max
    only_inf = torch.randn(60, generator=g, dtype=torch.float64)
    only_inf[[0, 59]] = torch.tensor([-float("inf"), float("inf")], dtype=torch.float64)
    return {
        "big_spiky": big_spiky,
        "big_constant": torch.full((5000,), 1.5),
        "relu": relu,
        "matrix_t": torch.randn(40, 30, generator=g).t(),  # not contiguous
        "double": torch.randn(257, generator=g, dtype=torch.float64) * 1e-3 + 1.0,
        "half": torch.randn(99, generator=g).half(),
        "spiky": spiky,
        "neg_nan": neg_nan,
        "only_inf": only_inf,
        "zeros": torch.tensor([0.0, -0.0, 0.0]),
        "tiny": torch.tensor([-1e-45, 1e-45, 3e18, -2e18]),  # subnormals, large
        "constant": torch.full((13,), -2.5),
        "all_nan": torch.full((5,), float("nan")),
        "one": torch.tensor([0.7]),
        "empty": torch.zeros(0),
    }


@pytest.mark.parametrize("compiled", [None, False])
@pytest.mark.parametrize("bins", [11, 300])  # a byte per bin number, or four
def test_histograms_match_an_independent_computation(compiled, bins):
    from embedviz.stats import torch_stats

    tensors = _awkward_tensors()
    # values on and near the edges of 300 bins, where float32 and float64 bin numbers
    # differ (106 of them); a range beyond float32's (binned in float64)
    tensors["edges"] = torch.linspace(-1, 1, 3001)
    tensors["wide"] = torch.tensor([-3e38, 3e38, 1e38, 0.0])
    names = list(tensors)
    stats = torch_stats.tensor_stats(list(tensors.values()), bins, compiled=compiled)
    got = stats.histograms(names)
    assert "empty" not in got
    for name, t in tensors.items():
        if not t.numel():
            continue
        lo, hi, counts = _reference_histogram(
            t.float().numpy() if t.dtype == torch.half else t, bins
        )
        h = got[name]
        assert (h.lo, h.hi) == (lo, hi), name
        assert h.counts == counts, name
        # and against plain float64 binning, independently of that rule: counts differ
        # only by values within a float32 rounding of a bin edge, moved one bin
        x = t.double().numpy().ravel()
        x = x[np.isfinite(x)]
        if hi > lo:
            position = (x - lo) * (bins / (hi - lo))
            exact = np.bincount(np.clip(np.floor(position).astype(int), 0, bins - 1), None, bins)
            near_edge = np.abs(position - np.round(position)) < 1e-4 * max(1.0, bins / 100)
            assert np.abs(np.asarray(h.counts) - exact).sum() <= 2 * near_edge.sum(), name
    assert sum(got["spiky"].counts) == 298 and got["all_nan"].counts == [0] * bins


@pytest.mark.parametrize("compiled", [None, False])
def test_moments_and_activation_rows_match_numpy(compiled):
    from embedviz.stats import torch_stats

    tensors = [t for t in _awkward_tensors().values() if t.numel()]
    tensors.append(torch.tensor([0.0, -0.0, 2.0, float("nan")]))
    values = torch_stats.tensor_stats(tensors, compiled=compiled).moments()
    one_by_one = [torch_stats.tensor_stats([t], 3, compiled) for t in tensors]
    joined = torch_stats.TensorStats.join(one_by_one).activation_values()
    for t, (mean, std, mag), row in zip(tensors, values, joined, strict=True):
        x = t.double().numpy().ravel()
        rel = 1e-3 if t.dtype == torch.half else 1e-5  # the torch path sums in half's float32
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, NaN: no warnings
            ref = (x.mean(), x.std(ddof=1) if x.size > 1 else 0.0, np.abs(x).mean())
            np.testing.assert_allclose([mean, std, mag], ref, rtol=rel, atol=1e-9)
        act_mean, act_std, zeros = row
        np.testing.assert_allclose([act_mean, act_std], ref[:2], rtol=rel, atol=1e-9)
        assert zeros == pytest.approx(np.mean(x == 0))  # NaN is not a zero


@pytest.mark.parametrize("compiled", [None, False])
def test_flat_values_are_the_numbers_of_the_objects(compiled):
    """SQLite's path (one compiled call writes the numbers in the packer's order) gives
    what the objects of the in-memory path hold, the ratio's edge cases included: a
    zero parameter moved (inf), a zero parameter not moved (0), NaN."""
    from embedviz.stats import torch_stats
    from embedviz.stats.listener import _ratio

    nan = float("nan")
    params = [torch.zeros(3), torch.zeros(2), torch.tensor([1.0, -2.0]), torch.ones(4)]
    updates = [torch.tensor([0.0, 1e-3, 0.0]), torch.zeros(2), torch.tensor([nan, 0.1]),
               torch.full((4,), 1e-3)]  # fmt: skip
    grads = [torch.randn(t.shape, generator=torch.Generator().manual_seed(3)) for t in params]
    layers = [torch.tensor([0.0, 1.0, 2.0]), torch.tensor([-1.0, nan])]
    p, g, u, a = (torch_stats.tensor_stats(ts, compiled=compiled)
                  for ts in (params, grads, updates, layers))  # fmt: skip
    got = torch_stats.flat_values(p, g, u, a, np.full(64, -1.0))
    expected = []
    for pm, gm, um in zip(p.moments(), g.moments(), u.moments(), strict=True):
        expected += [*pm, *gm, *um, _ratio(um, pm)]
    for row in a.activation_values():
        expected += row
    assert len(got) == 10 * 4 + 3 * 2
    np.testing.assert_array_equal(got, expected)  # NaN where NaN
    assert got[9::10][:2].tolist() == [math.inf, 0.0]


def test_activation_histogram_is_taken_before_an_in_place_relu(digits):
    X, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(inplace=True), torch.nn.Linear(32, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, histogram_frequency=1, histogram_bins=5) as listener:
        with torch.no_grad():
            expected = model[0](X[:64]).numpy()  # the Linear output before ReLU overwrites it
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[:64]), y[:64]).backward()
        opt.step()
        listener.step()
    (u,) = storage.get_updates(listener.session_id)
    h = u.histograms["activations"]["0"]
    assert (h.lo, h.hi, h.counts) == _reference_histogram(expected, 5)
    assert h.lo < 0  # not the ReLU's output
    assert u.activations["0"].mean == pytest.approx(float(expected.mean()), rel=1e-5)


def _strided_model():
    model = make_model()
    with torch.no_grad():  # a weight stored transposed: not contiguous, so cloned and torch
        model[0].weight = torch.nn.Parameter(model[0].weight.detach().t().contiguous().t())
    assert not model[0].weight.is_contiguous()
    return model


@pytest.mark.parametrize("case", ["moved", "strided"])
def test_update_and_histograms_when_parameters_move_or_are_strided(digits, case):
    """The compiled path keeps the parameters' addresses between reports; a parameter
    that moves (``p.data = ...``) or is strided must still give the applied update."""
    model = _strided_model() if case == "strided" else make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    storage = InMemoryStatsStorage()
    seen = {}
    X, y = digits
    with StatsListener(
        storage, model, opt, frequency=2, histogram_frequency=2, histogram_bins=9, session_id="m"
    ) as listener:
        for i, (xb, yb) in enumerate(batches(X, y, 9)):
            if case == "moved" and i in (4, 6):
                old = model[0].weight.data
                model[0].weight.data = old.clone()  # new memory; the old one gets nonsense
                old.fill_(123.0)
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            seen[i] = {n: p.detach() - before[n] for n, p in model.named_parameters()}
            listener.step(None)
    updates = storage.get_updates("m")
    assert [u.iteration for u in updates] == [0, 2, 4, 6, 8]
    for u in updates:
        for name, stats in u.params.items():
            d = seen[u.iteration][name].double().numpy()
            assert stats.update_mean_magnitude == pytest.approx(np.abs(d).mean(), rel=1e-6)
            assert stats.update_mean == pytest.approx(d.mean(), rel=1e-6, abs=1e-12)
            h = u.histograms["updates"][name]
            assert (h.lo, h.hi, h.counts) == _reference_histogram(d.astype(np.float32), 9)


def test_sparse_gradients_of_an_embedding():
    """``Embedding(sparse=True)`` has sparse gradients: counted with their implicit zeros."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Embedding(50, 8, sparse=True), torch.nn.Flatten(), torch.nn.Linear(32, 2)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=1, histogram_frequency=1) as listener:
        for _ in range(2):
            opt.zero_grad()
            loss = model(torch.randint(0, 50, (16, 4))).pow(2).mean()
            loss.backward()
            assert model[0].weight.grad.is_sparse
            opt.step()
            listener.step(loss)
    u = storage.get_updates(listener.session_id)[-1]
    g = model[0].weight.grad.to_dense().double().numpy()
    stats = u.params["0.weight"]
    assert stats.grad_mean_magnitude == pytest.approx(np.abs(g).mean(), rel=1e-6)
    assert stats.grad_std == pytest.approx(g.std(ddof=1), rel=1e-6)
    assert u.histograms["grads"]["0.weight"].counts == _reference_histogram(g, 30)[2]


def test_parameter_moved_during_the_optimizer_step():
    """Another pre-hook moves a parameter after the listener copied it: the update is
    still the change applied (the copy is read back through torch)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=1, session_id="mv") as listener:

        def move(optimizer, args, kwargs):
            model.weight.data = model.weight.data.clone()

        opt.register_step_pre_hook(move)  # runs after the listener's pre-hook
        before = model.weight.detach().clone()
        model(torch.ones(2, 4)).sum().backward()
        opt.step()
        listener.step(1.0)
    (u,) = storage.get_updates("mv")
    change = (model.weight.detach() - before).double().numpy()
    assert u.params["weight"].update_mean_magnitude == pytest.approx(np.abs(change).mean())


class _Transpose(torch.nn.Module):
    def forward(self, x):
        return x.t()  # a strided output: read through a copy, joined with the others


class _Back(torch.nn.Module):
    def forward(self, x):
        return x.t().contiguous()


def test_activation_statistics_of_strided_and_contiguous_outputs_together(digits):
    X, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 16), _Transpose(), torch.nn.Tanh(), _Back(), torch.nn.Linear(16, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    outputs = {}

    def keep(name):
        def hook(module, inputs, output):
            outputs[name] = output.detach().clone()

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in model.named_children()]
    with StatsListener(storage, model, opt, frequency=1, histogram_frequency=1) as listener:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[:32]), y[:32]).backward()
        opt.step()
        listener.step(None)
    for h in handles:
        h.remove()
    (u,) = storage.get_updates(listener.session_id)
    assert list(u.activations) == ["0", "1", "2", "3", "4"]
    for name, out in outputs.items():
        x = out.double().numpy()
        assert u.activations[name].mean == pytest.approx(x.mean(), rel=1e-6, abs=1e-12)
        assert u.activations[name].std == pytest.approx(x.std(ddof=1), rel=1e-6)
        h = u.histograms["activations"][name]
        assert (h.lo, h.hi, h.counts) == _reference_histogram(out.numpy(), 30)


def test_without_torch_the_listener_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError, match=r"needs torch.*pip install torch==2\.13\.0"):
        StatsListener(InMemoryStatsStorage(), object())
