"""StatsListener under the training idioms of review 14: a frozen model with an optimizer
on another part, two optimizers, unfreezing with a new parameter group, closures
(LBFGS), a step skipped on inf gradients, layers that are not leaves (weight_norm,
MultiheadAttention)."""

import gc
import logging
import weakref

import pytest

torch = pytest.importorskip("torch")

from embedviz.errors import InputError  # noqa: E402
from embedviz.stats.diagnostics_checks import _is_bias, _weight_of  # noqa: E402
from embedviz.stats.listener import StatsListener  # noqa: E402
from embedviz.stats.storage import InMemoryStatsStorage  # noqa: E402

pytestmark = pytest.mark.torch


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _loss(model, data, i, size=32):
    X, y = data
    start = (i * size) % (len(X) - size)
    return torch.nn.functional.cross_entropy(
        model(X[start : start + size]), y[start : start + size]
    )


def _mean_abs(t):
    return float(t.detach().abs().double().mean())


def test_a_frozen_model_whose_optimizer_trains_another_part(digits):
    """A frozen feature extractor listened to, its optimizer on a separate head: the
    step used to crash inside the listener ("Tensor list must have at least one
    tensor"); the activations are recorded, no parameter."""
    body, head = _mlp(), torch.nn.Linear(10, 10)
    body.requires_grad_(False)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, body, opt, frequency=2, session_id="f") as lis:
        for _ in range(5):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(body(digits[0][:16])), digits[1][:16])
            loss.backward()
            opt.step()
            lis.step(loss)
    updates = storage.get_updates("f")
    assert [u.iteration for u in updates] == [0, 2, 4]
    assert all(not u.params and set(u.activations) == {"0", "1", "2"} for u in updates)


def test_parameters_another_optimizer_steps_are_left_out_with_a_warning(digits, caplog):
    """SGD on the first layer, Adam on the last, the listener given SGD: the last
    layer's update used to read 0 (the listener never saw Adam's step)."""
    model = _mlp()
    sgd = torch.optim.SGD(model[0].parameters(), lr=0.1)
    adam = torch.optim.Adam(model[2].parameters(), lr=1e-3)
    storage = InMemoryStatsStorage()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        with StatsListener(storage, model, sgd, frequency=1, session_id="p") as lis:
            for i in range(3):
                sgd.zero_grad()
                adam.zero_grad()
                loss = _loss(model, digits, i)
                loss.backward()
                before = model[0].weight.detach().clone()
                sgd.step()
                adam.step()
                lis.step(loss)
                update = _mean_abs(model[0].weight - before)
                got = storage.get_updates("p")[-1].params
                assert set(got) == {"0.weight", "0.bias"}
                assert got["0.weight"].update_mean_magnitude == pytest.approx(update, rel=1e-6)
    assert caplog.text.count("2 trainable parameters of the model are not in the optimizer") == 1
    assert "2.weight, 2.bias" in caplog.text


def test_a_parameter_group_added_later_is_reported_from_then_on(digits):
    """Gradual unfreezing: the first layer unfrozen and given to the optimizer as a
    new group at iteration 4."""
    model = _mlp()
    model[0].requires_grad_(False)
    opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=2, session_id="u") as lis:
        for i in range(8):
            if i == 4:
                model[0].requires_grad_(True)
                opt.add_param_group({"params": model[0].parameters(), "lr": 0.01})
            opt.zero_grad()
            loss = _loss(model, digits, i)
            loss.backward()
            opt.step()
            lis.step(loss)
    got = {u.iteration: (sorted(u.params), u.learning_rates) for u in storage.get_updates("u")}
    assert got[2] == (["2.bias", "2.weight"], [0.1])
    assert got[4] == (["0.bias", "0.weight", "2.bias", "2.weight"], [0.1, 0.01])
    assert storage.get_updates("u")[-1].params["0.weight"].update_param_ratio > 0


def test_a_closure_optimizer_records_the_gradients_of_its_own_evaluations(digits):
    """LBFGS evaluates the closure inside ``step``: the gradients recorded are those
    on ``.grad`` after the step (they used to be the previous step's, none at first)."""
    model = _mlp()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=1, session_id="l") as lis:
        for i in range(3):

            def closure(i=i):
                opt.zero_grad()
                loss = _loss(model, digits, i)
                loss.backward()
                return loss

            before = model[0].weight.detach().clone()
            loss = opt.step(closure)
            lis.step(loss)
            got = storage.get_updates("l")[-1]
            stats = got.params["0.weight"]
            assert stats.grad_mean_magnitude == pytest.approx(_mean_abs(model[0].weight.grad))
            assert stats.update_mean_magnitude == pytest.approx(
                _mean_abs(model[0].weight - before), rel=1e-6
            )
            assert set(got.activations) == {"0", "1", "2"}
    assert lis._layout is None  # read after the step, from a copy of its own


def test_a_skipped_step_still_records_the_gradients_that_caused_it(digits, caplog):
    """As GradScaler does on inf gradients: no ``optimizer.step()`` on iteration 1 (at
    frequency 1). Its record has the inf score and the gradients' statistics, and the
    warning names the skip."""
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        with StatsListener(storage, model, opt, frequency=1, session_id="g") as lis:
            for i in range(3):
                opt.zero_grad()
                loss = _loss(model, digits, i) * (float("inf") if i == 1 else 1.0)
                loss.backward()
                if i != 1:
                    opt.step()
                lis.step(loss)
    skipped = storage.get_updates("g")[1]
    assert skipped.iteration == 1 and skipped.score == float("inf")
    stats = skipped.params["0.weight"]
    assert stats.update_mean_magnitude is None and stats.grad_mean_magnitude is not None
    assert "GradScaler skips a step" in caplog.text


@pytest.mark.parametrize(
    "make, layers",
    [
        (
            lambda: torch.nn.Sequential(
                torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(64, 16)),
                torch.nn.ReLU(),
                torch.nn.Linear(16, 10),
            ),
            {"0", "1", "2"},
        ),
        (lambda: _Attention(), {"proj", "att", "out"}),
    ],
    ids=["weight_norm", "attention"],
)
def test_layers_that_are_not_leaves_are_recorded_by_their_output(digits, make, layers):
    """A parametrized Linear (its child computes the weight: that used to be recorded
    as an activation) and MultiheadAttention (its ``out_proj`` is never called: no
    attention output was recorded)."""
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    storage = InMemoryStatsStorage()
    outputs = {}

    def keep(name):
        def hook(module, inputs, output):
            outputs.setdefault(name, output[0] if isinstance(output, tuple) else output)

        return hook

    for name in layers:
        model.get_submodule(name).register_forward_hook(keep(name))
    with StatsListener(storage, model, opt, frequency=1, session_id="n") as lis:
        loss = _loss(model, digits, 0)
        loss.backward()
        opt.step()
        lis.step(loss)
    (update,) = storage.get_updates("n")
    assert set(update.activations) == layers
    for name, out in outputs.items():
        assert update.activations[name].mean == pytest.approx(float(out.double().mean()), abs=1e-6)


class _Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 16)
        self.att = torch.nn.MultiheadAttention(16, 2, batch_first=True)
        self.out = torch.nn.Linear(16 * 8, 10)

    def forward(self, x):
        h = self.proj(x.reshape(len(x), 8, 8))
        a, _ = self.att(h, h, h)
        return self.out(a.flatten(1))


def test_record_eval_after_close_is_refused():
    model = _mlp()
    lis = StatsListener(InMemoryStatsStorage(), model, torch.optim.SGD(model.parameters(), 0.1))
    lis.close()
    with pytest.raises(InputError, match="record_eval: the listener is closed"):
        lis.record_eval({"accuracy": 0.5})


@pytest.mark.parametrize(
    "name, weight",
    [
        ("fc.bias", "fc.weight"),
        ("att.in_proj_bias", "att.in_proj_weight"),
        ("lstm.bias_ih_l0", "lstm.weight_ih_l0"),
        ("bias", "weight"),
    ],
)
def test_the_ratio_checks_know_pytorchs_biases(name, weight):
    assert _is_bias(None, name) and _weight_of(name) == weight
    assert not _is_bias(None, weight)


def test_a_run_resumed_from_a_checkpoint_continues_its_session(digits, tmp_path, caplog):
    """``start_iteration`` with the earlier run's session id: the records go on in that
    session (they used to start again at 0 in "run-2"), ``check`` judges the initial
    loss at iteration 0 only, and resuming from an older checkpoint is announced."""
    from embedviz.stats.diagnostics import diagnose
    from embedviz.stats.storage import SQLiteStatsStorage

    path = tmp_path / "runs.db"
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def train(storage, start, n, score=None, **kwargs):
        with StatsListener(
            storage, model, opt, frequency=5, session_id="run", config={"n_classes": 10},
            start_iteration=start, **kwargs,
        ) as lis:  # fmt: skip
            for i in range(start, start + n):
                opt.zero_grad()
                loss = _loss(model, digits, i)
                loss.backward()
                opt.step()
                lis.step(loss if score is None else score)

    with SQLiteStatsStorage(path) as storage:
        train(storage, 0, 20)
    with SQLiteStatsStorage(path) as storage, caplog.at_level(logging.WARNING):
        train(storage, 20, 10)
        assert storage.list_sessions() == ["run"]
        assert [u.iteration for u in storage.get_updates("run")] == [0, 5, 10, 15, 20, 25]
        assert storage.get_static_info("run", "0").config["start_iteration"] == 20
        assert "repeat" not in caplog.text
        train(storage, 10, 5)  # an older checkpoint
        assert "up to iteration 25, at or after start_iteration=10" in caplog.text
    with SQLiteStatsStorage(tmp_path / "fresh.db") as storage:
        train(storage, 200, 10, score=0.05)  # far below ln(10), as a trained model's
        assert [u.iteration for u in storage.get_updates("run")] == [200, 205]
        assert not [f for f in diagnose(storage) if f.check == "initial_loss"]
    with SQLiteStatsStorage(tmp_path / "new.db") as storage:  # the same, not resumed
        train(storage, 0, 10, score=0.05)
        assert [f.check for f in diagnose(storage) if f.check == "initial_loss"]
    with pytest.raises(InputError, match="start_iteration: expected an integer >= 0"):
        StatsListener(InMemoryStatsStorage(), model, start_iteration=-1)


class _Unhashable(torch.nn.Module):
    """A module as some libraries write them: ``__eq__`` without ``__hash__``."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x)

    def __eq__(self, other):
        return self is other

    __hash__ = None


def test_other_models_and_steps_while_a_report_is_armed(digits):
    """Another model called while the trigger waits, even an unhashable one (it used to
    raise TypeError in its own forward), is untouched; ``optimizer.step(None)`` (a
    closure argument of None) takes the compiled path."""
    model, other = _mlp(), _Unhashable()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=1, session_id="o") as lis:
        assert lis._hooks.trigger.on
        other(digits[0][:4]).sum().backward()
        loss = _loss(model, digits, 0)
        loss.backward()
        opt.step(None)
        lis.step(loss)
        assert lis._layout is not None  # the compiled path: no closure, one copy
    (update,) = storage.get_updates("o")
    assert set(update.activations) == {"0", "1", "2"} and update.params["0.weight"].grad_mean


def test_a_listener_dropped_without_close_does_not_stay_in_torchs_global_hooks(digits):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lis = StatsListener(InMemoryStatsStorage(), model, opt)
    hooks = torch.nn.modules.module._global_forward_pre_hooks
    assert len(hooks) == 1
    gone = weakref.ref(lis)
    del lis, opt
    gc.collect()
    assert gone() is None
    model(digits[0][:4])  # the next module call takes the waiting hook out
    assert len(hooks) == 0


def test_a_model_whose_forward_pass_never_begins_gets_one_warning(digits, caplog):
    """As a model compiled behind the listener's back (``model.compile()``): the
    trigger never sees its forward pass begin, so no activation is recorded; one
    warning says why."""
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        with StatsListener(storage, model, opt, frequency=1, session_id="c") as lis:
            for i in range(3):
                lis._hooks.trigger.take()  # what a compiled forward pass amounts to
                loss = _loss(model, digits, i)
                loss.backward()
                opt.step()
                lis._hooks.trigger.put()
                lis.step(loss)
    assert all(not u.activations for u in storage.get_updates("c"))
    assert caplog.text.count("forward pass did not begin in this iteration, or it was") == 1


def test_a_model_compiled_in_place_is_known_as_compiled(caplog):
    """``model.compile()`` (torch compiles its calls lazily, so this costs nothing
    here): activations are off with the compiled model's warning, as for
    ``torch.compile(model)``."""
    model = _mlp()
    model.compile()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        lis = StatsListener(InMemoryStatsStorage(), model, torch.optim.SGD(model.parameters(), 0.1))
    lis.close()
    assert not lis.collect_activations and "torch.compile'd model" in caplog.text
