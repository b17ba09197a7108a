"""embedviz.stats.torch_static: what the listener records once, as plain functions of the
model and optimizer, tested without hooks (review 6, findings 12 and 13)."""

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

from embedviz.stats.listener import StatsListener  # noqa: E402
from embedviz.stats.storage import InMemoryStatsStorage  # noqa: E402
from embedviz.stats.torch_static import (  # noqa: E402
    distributed,
    jsonable,
    layer_infos,
    optimizer_info,
    static_info,
    unwrap_model,
)

pytestmark = pytest.mark.torch


class Block(torch.nn.Module):
    """A module with a parameter of its own and children: listed as a layer."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))
        self.fc = torch.nn.Linear(3, 3)
        self.act = torch.nn.Tanh()


def make_model():
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())  # a plain container
    return torch.nn.Sequential(body, Block(), torch.nn.Linear(3, 2, bias=False))


def test_layers_are_modules_with_own_parameters_or_no_children():
    model = make_model()
    got = {x.name: (x.type, x.n_params, x.param_shapes) for x in layer_infos(model)}
    expected = {}
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        leaf = not list(module.children())
        if name and (own or leaf):
            shapes = {n: list(p.shape) for n, p in own.items()}
            expected[name] = (type(module).__name__, sum(p.numel() for p in own.values()), shapes)
    assert got == expected
    assert "0" not in got and got["1"] == ("Block", 3, {"scale": [3]})
    assert got["0.1"] == ("ReLU", 0, {})


def test_static_info_describes_model_optimizer_and_config_in_json_types():
    model = make_model()
    opt = torch.optim.Adam(
        [{"params": model[0].parameters()}, {"params": model[1:].parameters(), "lr": 1e-4}],
        lr=torch.tensor(3e-3),
        betas=(0.8, 0.9),
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5)
    info = static_info(
        model, opt, session_id="s", worker_id="1", config={"batch": 8, "dims": (2, 3)},
        scheduler=sched,
    )  # fmt: skip
    assert (info.session_id, info.worker_id, info.kind) == ("s", "1", "torch")
    assert info.model_class == "Sequential"
    assert info.n_params == sum(p.numel() for p in model.parameters()) == 4 * 3 + 3 + 3 + 12 + 6
    assert info.optimizer["class"] == "Adam"
    groups = info.optimizer["param_groups"]
    assert [g["lr"] for g in groups] == [pytest.approx(3e-3), 1e-4]  # a tensor lr as a float
    assert groups[0]["betas"] == [0.8, 0.9] and "params" not in groups[0]
    assert info.config == {
        "batch": 8, "dims": [2, 3], "lr_scheduler": "StepLR",
        "lr_scheduler_args": {"step_size": 5, "gamma": 0.1},
    }  # fmt: skip
    json.dumps(dataclasses.asdict(info), allow_nan=False)  # plain JSON all through
    assert not opt._optimizer_step_pre_hooks and not torch.nn.modules.module._global_forward_hooks
    # a scheduler named in the config by the user is left as given
    info = static_info(model, None, session_id="s", worker_id="0",
                       config={"lr_scheduler": "mine"}, scheduler=sched)  # fmt: skip
    assert info.config == {"lr_scheduler": "mine"} and info.optimizer == {}
    assert optimizer_info(None) == {}


def test_jsonable():
    class Odd:
        def __repr__(self):
            return "Odd()"

    value = {1: (1, 2.5, None), "t": torch.tensor(0.5), "n": [True, "x"], "o": Odd()}
    assert jsonable(value) == {"1": [1, 2.5, None], "t": 0.5, "n": [True, "x"], "o": "Odd()"}


def test_unwrap_model_takes_off_parallel_and_compile_wrappers_in_any_nesting():
    net = make_model()
    assert unwrap_model(net) == (net, False)
    assert unwrap_model(torch.nn.DataParallel(net)) == (net, False)
    compiled = torch.compile(torch.nn.DataParallel(net), backend="eager")  # lazily
    assert unwrap_model(torch.nn.DataParallel(compiled)) == (net, True)
    assert distributed() is None


def test_the_listener_stores_what_static_info_gives():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    storage = InMemoryStatsStorage()
    with StatsListener(
        storage, torch.nn.DataParallel(model), opt, frequency=3, session_id="l",
        config={"n_classes": 2},
    ) as listener:  # fmt: skip
        pass
    stored = storage.get_static_info(listener.session_id, "0")
    config = {"n_classes": 2, "frequency": 3, "histogram_frequency": 100, "world_size": 1}
    direct = static_info(model, opt, session_id="l", worker_id="0", config=config)
    assert dataclasses.replace(stored, timestamp=0) == dataclasses.replace(
        direct, timestamp=0, hardware=stored.hardware, software=stored.software
    )
    assert stored.hardware.keys() == direct.hardware.keys()
