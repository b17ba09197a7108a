"""The hooks of :class:`~embedviz.stats.listener.StatsListener`: when they are put on
and taken off (:class:`Hooks`, :class:`HookSet`), and what each one records
(:class:`ListenerHooks`, a
mixin over the listener's attributes, set in its ``__init__``). The listener's module
docstring says how they keep a report cheap.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from typing import Any


def learning_rates(optimizer) -> list[float]:
    """The learning rate of each of the optimizer's parameter groups, as floats (a
    tensor ``lr`` too)."""
    return [float(g["lr"]) for g in optimizer.param_groups]


class LeafHook:
    """The forward hook on each of the model's leaf modules (it calls the listener's
    ``_forward``).

    A copy of the model made while it is on (``copy.deepcopy(model)`` for a best-so-far
    snapshot or an EMA model, ``torch.save(model)``) holds an :class:`InertHook` in its
    place rather than a copy of the listener, which cannot be copied (it holds a
    storage, a writer thread, torch itself): a bound method would drag the listener in.
    """

    __slots__ = ("record",)

    def __init__(self, record) -> None:
        self.record = record

    def __call__(self, module, inputs, output) -> None:
        self.record(module, inputs, output)

    def __reduce__(self):
        return InertHook, ()


class Trigger:
    """The process-wide forward pre-hook that waits for the model's training forward
    pass (see :class:`Hooks`). It holds the listener weakly: a listener dropped without
    :meth:`~embedviz.stats.listener.StatsListener.close` takes it out of torch's
    process-wide hooks at the next module call, instead of being kept alive there with
    its model, optimizer and storage."""

    __slots__ = ("listener", "__weakref__")

    def __init__(self, listener) -> None:
        self.listener = weakref.ref(listener)

    def __call__(self, module, args) -> None:
        listener = self.listener()
        if listener is not None:
            listener._trigger(module, args)
            return
        import torch

        hooks = torch.nn.modules.module._global_forward_pre_hooks
        for key in [k for k, hook in hooks.items() if hook is self]:
            del hooks[key]


class InertHook:
    """What a copy of a hooked model holds instead of the listener's hook: it records
    nothing and takes itself out of the module's forward hooks on its first call. (A
    model saved whole, ``torch.save(model)``, while hooked needs embedviz to be loaded
    again; its ``state_dict()`` never holds a hook.)"""

    __slots__ = ()

    def __call__(self, module, inputs, output) -> None:
        hooks = module._forward_hooks
        for key in [k for k, hook in hooks.items() if hook is self]:
            del hooks[key]


class HookSet:
    """Hooks put on together and taken off together.

    Each goes into the dict that torch's registration method (``register_forward_hook``,
    the optimizer's ``register_step_pre_hook``, ...) writes to, under one id that torch
    hands out for a hook, and comes out of it again, which is what those methods and
    ``handle.remove()`` do, without a handle per hook and report: registering and
    removing the seven hooks of a small MLP, cold every 10 iterations, cost ~0.7 % of
    its training (measured). A torch that keeps its hooks elsewhere gets the
    registration methods.
    """

    DIRECT = True  # False: always the registration methods (tests)

    def __init__(self, key: int, table: list[tuple[Any, str, str, Any]]) -> None:
        self.table = table  # (owner, its hooks dict, its register function, hook)
        self.id = key
        self.direct = self.DIRECT and all(
            isinstance(getattr(o, d, None), dict) for o, d, _, _ in table
        )
        self.handles: list = []
        self.on = False

    def put(self) -> None:
        if self.on:
            return
        if self.direct:
            for owner, hooks, _, hook in self.table:
                getattr(owner, hooks)[self.id] = hook
        else:
            self.handles = [getattr(o, register)(hook) for o, _, register, hook in self.table]
        self.on = True

    def take(self) -> None:
        if not self.on:
            return
        if self.direct:
            for owner, hooks, _, _ in self.table:
                getattr(owner, hooks).pop(self.id, None)
        else:
            for handle in self.handles:
                handle.remove()
            self.handles = []
        self.on = False


class Hooks:
    """The listener's hooks, on for a reported iteration only, and on the model only
    while it runs that iteration's training forward pass and backward (at frequency 1,
    from the first training forward pass to :meth:`close`).

    Arming a reported iteration puts on the optimizer's step pre- and post-hooks
    (``steps``) and one process-wide forward pre-hook, the ``trigger``. The model's
    first training-mode forward pass takes the trigger off and puts a forward hook on
    each leaf module (``leaves``); the step's pre-hook takes those off again. So what
    the user's code does between iterations -- ``copy.deepcopy(model)``,
    ``torch.save(model)``, ``torch.jit.script``, ``torch.jit.trace``,
    ``torch.export`` -- finds no hook of ours on the model, and none on another model
    either (the trigger only waits, and costs another model a call per module until
    this model's next training forward pass). At frequency 1 the leaves' hooks stay on
    (no trigger, which would wait between all iterations, and no registering per
    iteration); then ``torch.jit.script`` needs :meth:`close` first.
    """

    def __init__(self, torch, leaves: list, leaf_hook, trigger, optimizer, pre, post) -> None:
        key = torch.utils.hooks.RemovableHandle(OrderedDict()).id
        self.leaves = HookSet(
            key, [(m, "_forward_hooks", "register_forward_hook", leaf_hook) for m in leaves]
        )
        self.trigger = HookSet(
            key,
            [(torch.nn.modules.module, "_global_forward_pre_hooks",
              "register_module_forward_pre_hook", trigger)] if leaves else [],
        )  # fmt: skip
        self.steps = HookSet(
            key,
            [(optimizer, "_optimizer_step_pre_hooks", "register_step_pre_hook", pre),
             (optimizer, "_optimizer_step_post_hooks", "register_step_post_hook", post)]
            if optimizer is not None else [],
        )  # fmt: skip
        self.direct = self.leaves.direct and self.trigger.direct and self.steps.direct
        self.id = key

    def arm(self) -> None:
        """Before a reported iteration: the steps' hooks, and the trigger unless the
        leaves' hooks are on (a report waiting for its step)."""
        self.steps.put()
        if not self.leaves.on:
            self.trigger.put()

    def fire(self) -> None:
        """The model's training forward pass begins: the leaves' hooks instead of the
        trigger."""
        self.trigger.take()
        self.leaves.put()

    def disarm(self, keep: bool = False) -> None:
        """After a report; ``keep`` when the next iteration is reported too (frequency
        1): then the leaves' and the steps' hooks stay on, and no trigger is needed."""
        self.trigger.take()
        if not keep:
            self.leaves.take()
            self.steps.take()


class ListenerHooks:
    """Arming a reported iteration and the hooks that record it (see
    :mod:`embedviz.stats.listener`)."""

    def _make_hooks(self) -> Hooks:
        """The listener's hooks: a forward hook on each leaf module and the trigger
        that puts them on (with activations), the optimizer's step pre- and post-hooks
        (with an optimizer)."""
        leaves = [m for _, m in self._leaves] if self.collect_activations else []
        return Hooks(
            self._torch, leaves, LeafHook(self._forward), Trigger(self),
            self.optimizer, self._pre_step, self._post_step,
        )  # fmt: skip

    def _arm(self) -> None:
        """Prepare iteration ``self.iteration`` if it is reported."""
        self._armed = self.iteration % self.frequency == 0
        if not self._armed:
            return
        self._due = self.iteration
        hist_now = self.histogram_frequency > 0 and self.iteration % self.histogram_frequency == 0
        self._bins = self.histogram_bins if hist_now else 0
        self._hooks.arm()

    def _disarm(self, keep_hook: bool = False) -> None:
        """End a reported iteration; ``keep_hook`` when the next one is reported too."""
        self._hooks.disarm(keep=keep_hook)
        self._armed = False
        self._before = self._rates = None
        self._untrained = False
        self._acts, self._grads, self._stepped = {}, None, None  # this report's numbers

    def _trigger(self, module, args) -> None:
        """The process-wide forward pre-hook of an armed iteration: on the model's
        first training-mode forward pass (its root or a leaf called), puts the leaves'
        hooks on. Not while torch traces or compiles (``torch.jit.trace``,
        ``torch.export``), which would run the hooks on values without memory."""
        if module is not self.model and id(module) not in self._leaf_names:
            return
        torch = self._torch
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        if not (module.training and torch.is_grad_enabled()):
            self._untrained = True  # evaluation between reports, or training in eval mode
            return
        self._hooks.fire()

    def _forward(self, module, inputs, output) -> None:
        """The forward hook of the model's leaves (armed iterations only): records a
        leaf's output, in training mode, once per iteration."""
        name = self._leaf_names[id(module)]
        torch = self._torch
        if name in self._acts or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return  # called again in this iteration (a shared layer), or traced
        if not (module.training and torch.is_grad_enabled()):
            self._untrained = True
            return
        t0 = time.perf_counter()
        if isinstance(output, tuple | list):
            output = next((o for o in output if isinstance(o, self._torch.Tensor)), None)
        if isinstance(output, self._torch.Tensor) and output.numel():
            # now, before a later in-place op (ReLU) can overwrite the output; on the
            # CPU into row k of the kept arrays (None), else a TensorStats of its own
            k = len(self._acts)
            stats = self._ts.layer_stats(output, self._bins, self._out_acts, k)
            self._acts[name] = (output.numel(), stats)
        self._collect += time.perf_counter() - t0

    def _pre_step(self, optimizer, args, kwargs) -> None:
        if not self._armed:
            return
        t0 = time.perf_counter()
        if self.frequency > 1:  # the forward pass and backward are done
            self._hooks.leaves.take()
        self._params_changed()  # a new parameter group
        params = self._tensors  # read only through data pointers, detach or no_grad
        if not params:  # nothing of the model is trained by this optimizer
            return
        self._rates = learning_rates(optimizer)  # the rates this step uses
        closure = args[1] if len(args) > 1 else kwargs.get("closure")  # args[0]: optimizer
        if closure is not None:
            # step(closure) (LBFGS): the gradients it computes, read after the step
            self._before = self._ts.ParamCopy(params)
            self._collect += time.perf_counter() - t0
            return
        lay = self._layout
        if lay is None or not lay.fits(params):
            lay = self._layout = self._ts.ParamLayout.of(params)
        if lay is None:
            self._record_grads()
            self._before = self._ts.ParamCopy(params)
        else:  # gradients and copy in one compiled call
            grads = [p.grad for p in params]
            stats, self._before = lay.before_step(
                grads, self._bins, self._out_grads, spare=self._spare
            )
            self._spare = None
            if stats is None:
                self._record_grads()
            else:
                self._grad_names, self._grads = self._names_list, stats
        self._collect += time.perf_counter() - t0

    def _record_grads(self) -> None:
        grads = [(n, p.grad) for n, p in self._params if p.grad is not None]
        self._grad_names = [n for n, _ in grads]
        self._grads = self._ts.tensor_stats([g for _, g in grads], self._bins, out=self._out_grads)

    def _post_step(self, optimizer, args, kwargs) -> None:
        if not self._armed or self._before is None:
            return
        t0 = time.perf_counter()
        if self._grads is None:  # step(closure): its gradients, now
            self._record_grads()
        self._stepped = self._ts.step_stats(  # the update from the copy
            self._tensors, self._before, self._bins, out=(self._out_params, self._out_updates)
        )
        if self.frequency == 1:  # every iteration is reported: reuse the memory
            self._spare = self._before
        self._before = None
        self._collect += time.perf_counter() - t0
