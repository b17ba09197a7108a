"""What :class:`~embedviz.stats.listener.StatsListener` records once per session about a
PyTorch model: the model behind its wrappers, the process's place in a distributed run,
and the static info (layers, parameter counts, optimizer settings, hardware, software,
configuration).

These are plain functions of the model and optimizer: no hooks, nothing kept. torch is
imported inside them, so importing this module does not import torch.
"""

from __future__ import annotations

import time
from typing import Any

from embedviz.stats.records import LayerInfo, StaticInfo
from embedviz.stats.system import hardware_info, software_info


def unwrap_model(model) -> tuple[Any, bool]:
    """The module that ``model`` wraps, and whether a ``torch.compile`` wrapper was
    among the wrappers.

    ``DistributedDataParallel``, ``DataParallel`` and ``torch.compile``'s module (any
    object with a module in ``_orig_mod``) are taken off, in any nesting; the names of
    parameters and layers are then those of the model as written (``0.weight``, not
    ``module.0.weight``).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    (torch.nn.Module, bool)

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> unwrap_model(torch.nn.DataParallel(net)) == (net, False)
    True
    """
    import torch

    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    inner, compiled = model, False
    while True:
        if isinstance(inner, wrappers):
            inner = inner.module
        elif isinstance(getattr(inner, "_orig_mod", None), torch.nn.Module):  # compile()
            inner, compiled = inner._orig_mod, True
        else:
            return inner, compiled


def distributed() -> tuple[int, int] | None:
    """``(rank, world size)`` when torch.distributed is initialised, else None.

    Examples
    --------
    >>> distributed() is None  # a plain process
    True
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def jsonable(value: Any) -> Any:
    """``value`` in JSON types: tuples become lists, dict keys strings, numbers and
    one-element tensors floats, anything else its ``repr``.

    Examples
    --------
    >>> jsonable({"betas": (0.9, 0.999), 1: None, "fn": len})
    {'betas': [0.9, 0.999], '1': None, 'fn': '<built-in function len>'}
    """
    if value is None or isinstance(value, bool | int | str | float):
        return value
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


def layer_infos(model) -> list[LayerInfo]:
    """One :class:`~embedviz.stats.records.LayerInfo` per named module that holds
    parameters of its own or has no children (``ReLU``), in ``named_modules`` order.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    >>> [(x.name, x.type, x.n_params) for x in layer_infos(net)]
    [('0', 'Linear', 8), ('1', 'ReLU', 0)]
    """
    layers = []
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not name or not own and any(True for _ in module.children()):
            continue
        layers.append(
            LayerInfo(
                name=name,
                type=type(module).__name__,
                n_params=sum(p.numel() for _, p in own),
                param_shapes={n: list(p.shape) for n, p in own},
            )
        )
    return layers


def optimizer_info(optimizer) -> dict[str, Any]:
    """``{"class": ..., "param_groups": [...]}``: the optimizer's class and the settings
    of each parameter group (``lr``, ``momentum``, ``betas``, ...; not the parameters),
    in JSON types; ``{}`` for None.

    Examples
    --------
    >>> import torch
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    >>> info = optimizer_info(opt)
    >>> info["class"], info["param_groups"][0]["lr"]
    ('SGD', 0.1)
    """
    if optimizer is None:
        return {}
    groups = [
        {k: jsonable(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups
    ]
    return {"class": type(optimizer).__name__, "param_groups": groups}


def static_info(
    model,
    optimizer=None,
    *,
    session_id: str,
    worker_id: str,
    config: dict | None = None,
    scheduler=None,
) -> StaticInfo:
    """The :class:`~embedviz.stats.records.StaticInfo` of a PyTorch run: the model's
    class, parameter count and layers (:func:`layer_infos`), the optimizer
    (:func:`optimizer_info`), hardware, software, and ``config`` (with
    ``lr_scheduler``, the scheduler's class, unless ``config`` has one), in JSON types.

    Parameters
    ----------
    model : torch.nn.Module
        The model as written (see :func:`unwrap_model`).
    optimizer : torch.optim.Optimizer or None
    session_id, worker_id : str
    config : dict or None
        Free-form facts (batch size, ``n_classes``, the listener's ``frequency``).
    scheduler : object or None
        A learning-rate scheduler.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> info = static_info(net, session_id="s", worker_id="0", config={"batch": 8})
    >>> info.n_params, info.config
    (8, {'batch': 8})
    """
    config = dict(config or {})
    if scheduler is not None:
        from embedviz.stats.diagnostics_schedule import scheduler_facts

        if "lr_scheduler" not in config:  # (a name the user gave stands for itself)
            config["lr_scheduler"] = type(scheduler).__name__
            config.setdefault("lr_scheduler_args", scheduler_facts(scheduler))
    return StaticInfo(
        session_id=session_id,
        worker_id=worker_id,
        timestamp=time.time(),
        kind="torch",
        model_class=type(model).__name__,
        n_params=sum(p.numel() for p in model.parameters()),
        layers=layer_infos(model),
        optimizer=jsonable(optimizer_info(optimizer)),
        hardware=hardware_info(),
        software=software_info(),
        config=jsonable(config),
    )
