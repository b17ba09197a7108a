"""StatsListener in the ways users really train (review 13): a scheduler stepped before
``listener.step``, gradient accumulation, a model in eval mode, a listener left open,
arguments that used to pass unchecked, a copy of the model taken while it trains."""

import copy
import io
import logging

import pytest

torch = pytest.importorskip("torch")


from embedviz.errors import InputError  # noqa: E402
from embedviz.stats.listener import StatsListener  # noqa: E402
from embedviz.stats.storage import InMemoryStatsStorage  # noqa: E402

pytestmark = pytest.mark.torch


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _batch(data, i, size=32):
    X, y = data
    start = (i * size) % (len(X) - size)
    return X[start : start + size], y[start : start + size]


def _backward(model, opt, data, i):
    """The loss of minibatch ``i`` after ``zero_grad`` and ``backward``."""
    xb, yb = _batch(data, i)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    return loss


def test_the_learning_rate_recorded_is_the_one_the_step_used(digits):
    """``opt.step(); scheduler.step(); listener.step()``: at a schedule boundary the
    record said the next rate (0.05) although the step used 0.1."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    storage = InMemoryStatsStorage()
    used = []
    with StatsListener(storage, model, opt, frequency=1, scheduler=sched, session_id="s") as lis:
        for i in range(12):
            loss = _backward(model, opt, digits, i)
            used.append(opt.param_groups[0]["lr"])
            grad = model[2].bias.grad.clone()
            before = model[2].bias.detach().clone()
            opt.step()
            applied = float(((before - model[2].bias.detach()) / grad).median())
            assert applied == pytest.approx(used[-1], rel=1e-4)  # plain SGD: the rate used
            sched.step()
            lis.step(loss)
    assert [u.learning_rates[0] for u in storage.get_updates("s")] == used
    assert used[4] == 0.1 and used[5] == 0.05  # a boundary was crossed


def _accumulate(digits, storage, frequency, every, n, caplog=None):
    """Train with ``optimizer.step()`` every ``every`` micro-batches (on the last of
    each group) and ``listener.step`` on every one; the update of each step by hand."""
    model = _model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    updates = {}
    with StatsListener(storage, model, opt, frequency=frequency, session_id="acc") as lis:
        for i in range(n):
            xb, yb = _batch(digits, i)
            loss = torch.nn.functional.cross_entropy(model(xb), yb) / every
            loss.backward()
            if i % every == every - 1:
                before = model[0].weight.detach().clone()
                opt.step()
                opt.zero_grad()
                updates[i] = (model[0].weight.detach() - before).abs().mean().item()
            lis.step(loss)
    return storage.get_updates("acc"), updates


def test_with_gradient_accumulation_a_report_waits_for_the_step(digits, caplog):
    """frequency 10, a step every 2nd micro-batch: every report used to fall on a
    micro-batch without a step and had no update or gradient statistics."""
    storage = InMemoryStatsStorage()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        got, steps = _accumulate(digits, storage, frequency=10, every=2, n=40)
    assert [u.iteration for u in got] == [1, 11, 21, 31]
    for u in got:
        stats = u.params["0.weight"]
        assert stats.update_mean_magnitude == pytest.approx(steps[u.iteration], rel=1e-5)
        assert stats.grad_mean_magnitude > 0 and stats.update_param_ratio > 0
        assert u.activations  # from the forward pass of the iteration stepped
    assert "without an optimizer.step()" not in caplog.text


def test_a_report_that_finds_no_step_in_time_says_so_once(digits, caplog):
    """A step every 4th micro-batch with frequency 3: the report of iteration 0 waits
    for iterations 1 and 2, then is recorded without update statistics (the next report
    is due), with one warning."""
    storage = InMemoryStatsStorage()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        got, steps = _accumulate(digits, storage, frequency=3, every=4, n=12)
    first = got[0]
    assert first.iteration == 2 and first.params["0.weight"].update_mean_magnitude is None
    assert [u.iteration for u in got][1:] == [3, 7, 11]  # 6 waits for 7; 9 for 11
    assert all(u.params["0.weight"].update_mean_magnitude is not None for u in got[1:])
    assert first.params["0.weight"].grad_mean_magnitude > 0  # the gradients as they were
    assert caplog.text.count("iteration 2 (due at 0) is reported without an optimizer") == 1
    assert "GradScaler" in caplog.text


def test_a_model_in_eval_mode_gets_one_warning_for_no_activations(digits, caplog):
    model = _model()
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        with StatsListener(storage, model, opt, frequency=1, session_id="e") as lis:
            for i in range(3):
                loss = _backward(model, opt, digits, i)
                opt.step()
                lis.step(loss)
    assert all(not u.activations for u in storage.get_updates("e"))
    assert caplog.text.count("ran in eval mode (model.eval()) or under torch.no_grad()") == 1


def test_evaluation_between_reports_costs_no_warning(digits, caplog):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        with StatsListener(InMemoryStatsStorage(), model, opt, frequency=2) as lis:
            for i in range(4):
                model.eval()
                with torch.no_grad():
                    model(_batch(digits, 50)[0])  # a validation pass, hooks armed
                model.train()
                loss = _backward(model, opt, digits, i)
                opt.step()
                lis.step(loss)
    assert "eval mode" not in caplog.text


def test_a_second_listener_on_a_model_warns_while_the_first_is_open(caplog):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        first = StatsListener(InMemoryStatsStorage(), model, opt, session_id="one")
        second = StatsListener(InMemoryStatsStorage(), model, opt, session_id="two")
    assert "another StatsListener (session 'one')" in caplog.text
    first.close()
    second.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        StatsListener(InMemoryStatsStorage(), model, opt).close()  # both closed: quiet
        other = _model(2)
        with StatsListener(InMemoryStatsStorage(), other, torch.optim.SGD(other.parameters())):
            StatsListener(InMemoryStatsStorage(), model, opt).close()  # another model
    assert "another StatsListener" not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activations": "no"}, r"activations: expected True or False, got 'no'"),
        ({"scheduler": "step"}, r"scheduler: expected a learning-rate scheduler .* got str"),
        ({"session_id": ""}, r"session_id: expected a non-empty name or None, got ''"),
        ({"worker_id": ""}, r"worker_id: expected a non-empty name or None, got ''"),
    ],
)
def test_arguments_that_used_to_pass_unchecked(kwargs, message):
    model = _model()
    with pytest.raises(InputError, match=message):
        StatsListener(InMemoryStatsStorage(), model, torch.optim.SGD(model.parameters()), **kwargs)
    assert not model[0]._forward_hooks


def test_histograms_on_a_frequency_that_reports_skip_are_announced(caplog):
    model = _model()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.listener"):
        StatsListener(InMemoryStatsStorage(), model, frequency=7, histogram_frequency=10).close()
        StatsListener(InMemoryStatsStorage(), model, frequency=5, histogram_frequency=10).close()
    assert caplog.text.count("so every 70 iterations") == 1
    assert caplog.text.count("histogram_frequency") == 1


@pytest.mark.parametrize(
    ("make", "stepped", "flagged"),
    [
        (lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5), True, False),
        (lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5), False, True),
        (lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=500), False, False),
        (lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt), False, False),
    ],
    ids=["stepped", "never-stepped", "first-change-beyond-the-run", "plateau"],
)
def test_the_schedule_check_reads_what_the_listener_records(digits, make, stepped, flagged):
    """The scheduler's settings (static info) and step count (each report) let the
    diagnosis tell a schedule never stepped from one whose change is still ahead."""
    from embedviz.stats.diagnostics import diagnose

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = make(opt)
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=2, scheduler=sched, session_id="s") as lis:
        for i in range(60):
            loss = _backward(model, opt, digits, i)
            opt.step()
            if stepped:
                sched.step()
            lis.step(loss)
    found = [f for f in diagnose(storage, "s") if f.check == "lr_flat"]
    assert [f.severity for f in found] == (["warning"] if flagged else [])
    steps = [u.extra.get("lr_scheduler_steps") for u in storage.get_updates("s")]
    assert steps[-1] == (59.0 if stepped else 0.0)  # last_epoch at the last report (58)


def _copies(model, x):
    """The model copied, saved and loaded, scripted, traced and exported, as users do
    at an epoch end."""
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return {
        "deepcopy": copy.deepcopy(model),
        "torch.save": torch.load(buffer, weights_only=False),
        "jit.script": torch.jit.script(model),
        "jit.trace": torch.jit.trace(model, x),
        "export": torch.export.export(model, (x,)).module(),
    }


def test_between_iterations_the_model_is_copied_scripted_and_exported_as_it_is(digits):
    """At an epoch end the next reported iteration is armed: ``copy.deepcopy(model)``
    and ``torch.save(model)`` used to drag the listener in ("cannot pickle 'module'
    object"), ``torch.jit.script``/``trace`` and ``torch.export`` to fail on its
    hooks. Now the model holds none of them between iterations."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    storage = InMemoryStatsStorage()
    x = _batch(digits, 0)[0]
    with StatsListener(storage, model, opt, frequency=2, session_id="s") as lis:
        for i in range(4):  # iteration 4 is reported: armed now
            _backward(model, opt, digits, i)
            opt.step()
            lis.step()
        copies = _copies(model, x)
        assert lis._acts == {}  # the tracing and exporting recorded nothing
        with torch.no_grad():
            for name, twin in copies.items():
                assert torch.allclose(twin(x), model(x)), name
                assert not any(lis._hooks.id in m._forward_hooks for m in twin.modules()), name
        assert lis._hooks.trigger.on  # still waiting for the training forward pass
        for i in range(4, 6):
            _backward(model, opt, digits, i)
            opt.step()
            lis.step()
    updates = storage.get_updates("s")
    assert [u.iteration for u in updates] == [0, 2, 4]
    assert set(updates[-1].activations) == {"0", "1", "2"}
    assert not any(len(m._forward_hooks) for m in model)


def test_a_copy_taken_inside_the_forward_pass_leaves_the_listener_behind(digits):
    """A copy made while the leaves' hooks are on (here by a hook of the user's at the
    end of the forward pass) holds inert hooks that take themselves out."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    taken = []
    model.register_forward_hook(lambda m, i, o: taken.append(copy.deepcopy(m)))
    storage = InMemoryStatsStorage()
    with StatsListener(storage, model, opt, frequency=1, session_id="s") as lis:
        _backward(model, opt, digits, 0)
        opt.step()
        lis.step()
    (twin,) = taken
    assert any(len(m._forward_hooks) for m in twin[:3])  # inert ones (and the user's)
    twin.train()
    twin(_batch(digits, 1)[0]).sum().backward()
    assert not any(len(m._forward_hooks) for m in twin[:3])
    (update,) = storage.get_updates("s")
    assert set(update.activations) == {"0", "1", "2"}
