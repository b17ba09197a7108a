"""Producers of training statistics: PyTorch (:class:`StatsListener`), gensim word2vec
(:class:`~embedviz.stats.word2vec.Word2VecStats`) and our t-SNE
(:class:`~embedviz.stats.tsne_stats.TSNEStats`).

How :class:`StatsListener` stays cheap
--------------------------------------
Iteration ``i`` (counted by :meth:`StatsListener.step`, starting at 0) is *reported*
when ``i % frequency == 0``. Only then:

* a forward hook on each of the model's leaf modules records the activation mean, std
  and share of zeros of each leaf's output from its first training-mode forward pass.
  These hooks are put on by a process-wide forward pre-hook, the *trigger*, when that
  pass begins, and taken off again by the step's pre-hook: between iterations the
  model holds no hook of ours (``copy.deepcopy``, ``torch.save(model)``,
  ``torch.jit.script``/``trace`` and ``torch.export`` see the model as it is), and an
  iteration not reported runs with no hook at all. The trigger waits from the end of
  the iteration before; another model called meanwhile pays a call per module (a
  ``torch.compile``'d one may recompile once, and torch warns about a global hook). A
  training-mode forward pass with gradients between iterations (a metric computed
  without ``torch.no_grad()``) counts as the next iteration's. At frequency 1 the
  leaves' hooks stay on from the first forward pass to :meth:`StatsListener.close`;
* the optimizer's step pre-hook (registered, like the post-hook, for the reported
  iteration only) records the gradients and copies the parameters (the
  only copy the listener ever holds, freed again after the step unless every iteration
  is reported) in one compiled call;
  the post-hook computes from that copy the update the optimizer really applied
  (after momentum, Adam, weight decay) and sums parameters and updates in the same pass;
* ``step`` turns the numbers into one :class:`~embedviz.stats.records.Update` (for a
  SQLite storage, the head of one: the statistics go to its packer as one array
  and the histograms as arrays, without an object per tensor).

Histograms are taken on iterations that are multiples of ``histogram_frequency`` (and
reported); a layer's output is read in its forward hook, before a later in-place op
(``ReLU(inplace=True)``) can overwrite it. Between reported iterations no hook is
registered: an iteration not reported costs ``step``'s counter checks alone.

The numbers of CPU tensors come from compiled loops over the tensors' memory, one call
per group of tensors (:mod:`embedviz.stats.torch_stats`). On one thread, a report of a
0.1M-parameter MLP every 10 iterations costs ~0.25 ms (most of it touching Python, torch
and numpy again, cold, after the training steps in between); every iteration with every
parameter, gradient, update and activation binned, ~0.35 ms. ``scripts/bench_listener.py``
measures it.

How often each producer records
-------------------------------
Each producer has one knob, named for what it counts:

* ``StatsListener(frequency=10)``: an update every 10th call of ``step`` (training
  iterations); histograms every ``histogram_frequency`` iterations.
* ``Word2VecStats(snapshot_every=1)``: an update every epoch; the vectors of ``words``
  every ``snapshot_every`` epochs and after the last one.
* ``TSNEStats(snapshot_every=None)``: an update on every call, and the estimator calls
  every ``TSNE(callback_every=50)`` iterations; the embedding every ``snapshot_every``
  calls (None: only the last one).

In all three, ``worker_id=None`` means this process's worker: the torch.distributed rank
for :class:`StatsListener` (``"0"`` without it), ``"0"`` for the other two, which run in
one process. Every parameter after ``storage`` (after ``storage, model, optimizer`` for
:class:`StatsListener`) is keyword-only.

:meth:`StatsListener.close` removes every hook; the model and optimizer are then exactly
as before, and training with or without the listener gives the same weights bit for bit
(it never touches RNG state, gradients or parameters). A copy of the model taken while
its hooks are on (inside the forward pass or backward) gets an inert hook that takes
itself out on the copy's first forward pass, not the listener.
"""

from __future__ import annotations

import logging
import math
import numbers
import operator
import time
import weakref
from typing import Any

import numpy as np

from embedviz._check import check_choice, check_int
from embedviz._defaults import STATS_DEFAULTS
from embedviz._lazy import lazy_exports
from embedviz.errors import InputError
from embedviz.stats.base import check_storage
from embedviz.stats.limits import MAX_HISTOGRAM_BINS
from embedviz.stats.listener_hooks import ListenerHooks, learning_rates
from embedviz.stats.records import ActivationStats, EvalRecord, ParamStats, Update
from embedviz.stats.system import (
    memory_sample,
    new_session_id,
    start_cpu_measurement,
    unused_session_id,
)
from embedviz.stats.torch_static import distributed, static_info, unwrap_model
from embedviz.stats.validation import check_name

log = logging.getLogger(__name__)

_OPEN: weakref.WeakSet = weakref.WeakSet()  # listeners not closed (for a warning)

__all__ = ["StatsListener", "Word2VecStats", "TSNEStats"]  # noqa: F822 (lazy)


__getattr__, __dir__ = lazy_exports(
    __name__,
    {"Word2VecStats": "embedviz.stats.word2vec", "TSNEStats": "embedviz.stats.tsne_stats"},
    globals(),
)


def _count(name: str, value: Any) -> int:
    """An integer >= 0, else InputError: :func:`embedviz._check.check_int`'s rule and
    message, but also a 0-d integer tensor (``operator.index``), and cheap enough for
    every ``step``."""
    try:
        n = operator.index(value)
    except TypeError:
        n = -1
    if isinstance(value, bool) or n < 0:
        raise InputError(f"{name}: expected an integer >= 0, got {value!r:.60}")
    return n


def _number(name: str, value: Any) -> float:
    """A float from a number or a one-element tensor/array, else InputError."""
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(
            f"{name}: expected a number or a one-element tensor, got {value!r:.60}"
        ) from None


def _ratio(update: list[float], param: list[float]) -> float:
    """update:parameter ratio from [mean, std, mean |x|] rows."""
    if param[2] > 0:
        return update[2] / param[2]
    return math.inf if update[2] > 0 else 0.0


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            "StatsListener records PyTorch training and needs torch, an optional "
            "extra: pip install torch==2.13.0 (the CPU build) or any torch >= 2.0"
        ) from None
    return torch


def _layers(model) -> list[tuple[str, Any]]:
    """The modules whose outputs are recorded, by name: every leaf (no child module);
    below the root, a module with parameters of its own besides children
    (``MultiheadAttention``, whose ``out_proj`` is never called); a parametrized module
    (``weight_norm``, ``orthogonal``: its children compute its weight, not an output),
    but nothing inside a parametrization."""
    from torch.nn.utils import parametrize

    inside: set[int] = set()
    for m in model.modules():
        if parametrize.is_parametrized(m):
            inside.update(id(x) for x in m.parametrizations.modules())
    return [
        (n or type(m).__name__, m)
        for n, m in model.named_modules()
        if id(m) not in inside
        and (
            not any(True for _ in m.children())
            or (m is not model and any(p is not None for p in m._parameters.values()))
            or parametrize.is_parametrized(m)
        )
    ]


def _frequencies(frequency, histogram_frequency, histogram_bins) -> tuple[int, int, int]:
    """``(frequency, histogram_frequency, histogram_bins)`` checked, None -> the default."""
    default = STATS_DEFAULTS
    frequency = check_int(
        "frequency", default["frequency"] if frequency is None else frequency, low=1
    )
    hf = default["histogram_frequency"] if histogram_frequency is None else histogram_frequency
    hf = check_int("histogram_frequency", hf, low=0)
    bins = default["histogram_bins"] if histogram_bins is None else histogram_bins
    bins = check_int("histogram_bins", bins, low=1)
    if bins > MAX_HISTOGRAM_BINS:
        raise InputError(
            f"histogram_bins: expected at most {MAX_HISTOGRAM_BINS} (what storages and "
            f"the remote UI accept), got {bins}"
        )
    return frequency, hf, bins


class StatsListener(ListenerHooks):
    """Record training statistics of a PyTorch model into a storage.

    Parameters
    ----------
    storage : StatsStorage
        :class:`InMemoryStatsStorage`, :class:`SQLiteStatsStorage` or
        :class:`RemoteStatsRouter`.
    model : torch.nn.Module
        May be wrapped in ``DistributedDataParallel``/``DataParallel``; parameter and
        layer names are those of the wrapped module (``0.weight``, ``encoder.fc``).
    optimizer : torch.optim.Optimizer or None
        Hooked to record the real update; without it no update statistics.
    frequency : int, default=10
        Report every ``frequency`` iterations (iteration 0 included). A reported
        iteration without an ``optimizer.step()`` (gradient accumulation) waits for the
        next step, at most until the next report is due, so that its record has the
        gradient and update statistics. This and every later parameter are
        keyword-only.
    histogram_frequency : int, default=100
        Histograms of parameters, gradients, updates and activations every this many
        iterations (only on reported ones, so in effect every least common multiple of
        the two frequencies; a warning says so when that differs); 0 turns histograms
        off.
    histogram_bins : int, default=30
    session_id : str or None, default=None
        Default: a new id (shared by all ranks under torch.distributed).
    worker_id : str or None, default=None
        The worker this process records as. Default: the rank under torch.distributed,
        else ``"0"``.
    report_ranks : {"all", "zero"}, default="all"
        Under torch.distributed, whether every rank reports or only rank 0.
    activations : bool, default=True
        Record activation statistics with forward hooks: the mean, std and share of
        zeros of each leaf module's output, from its first call in a reported
        iteration, in training mode with gradients enabled (a model run under
        ``model.eval()`` or ``torch.no_grad()`` records none; a warning says so once).
    scheduler : torch learning-rate scheduler or None
        Its class and settings (``step_size``, ``milestones``, ...) are recorded, and
        its step count with each report, so that diagnostics can flag a learning rate
        that stays flat although the schedule should have changed it.
    config : dict or None
        Free-form facts stored with the static info (batch size, ``n_classes`` of a
        classifier, ...).
    start_iteration : int, default=0
        The number of the first iteration, to resume a run from a checkpoint: with the
        earlier run's ``session_id`` its records continue that session (not a new
        ``session_id-2``); the initial-loss check judges only iteration 0.

    Notes
    -----
    The parameters reported on are those that require a gradient and, with an
    optimizer, that it steps (a frozen part of the model, or a part another optimizer
    steps, is left out; the static info's counts include it); they are chosen again
    when the optimizer gets a new parameter group (not when ``requires_grad`` alone
    is turned on: create a new listener then). With several ``optimizer.step()``
    calls per ``listener.step()``, the last one's update is recorded. Parameter statistics are
    those after the optimizer step; the learning rates those the step used.

    A listener hooks the optimizer and, during a reported iteration's training forward
    pass and backward, the model's leaf modules, until :meth:`close` (or the end of its
    ``with`` block): close one before making another for the same model. The
    gradients recorded are those the step sees (after ``clip_grad_norm_``, say).

    Creating a listener for a model on the CPU compiles its statistics loops the first
    time on a machine (~6 s) and loads them from numba's cache after that (~0.6 s).

    Examples
    --------
    >>> import torch
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> storage = InMemoryStatsStorage()
    >>> with StatsListener(storage, model, opt, frequency=1, session_id="doc") as listener:
    ...     loss = model(torch.ones(2, 4)).sum(); loss.backward(); opt.step()
    ...     listener.step(loss.item(), batch_size=2)
    >>> round(storage.get_updates("doc")[0].params["0.weight"].update_param_ratio, 6) > 0
    True
    """

    def __init__(
        self,
        storage,
        model,
        optimizer=None,
        *,
        frequency: int | None = None,
        histogram_frequency: int | None = None,
        histogram_bins: int | None = None,
        session_id: str | None = None,
        worker_id: str | None = None,
        report_ranks: str = "all",
        activations: bool = True,
        scheduler=None,
        config: dict | None = None,
        start_iteration: int = 0,
    ) -> None:
        torch = _import_torch()
        from embedviz.stats import torch_stats

        self._torch = torch
        self._Tensor = torch.Tensor
        self._ts = torch_stats
        self.frequency, self.histogram_frequency, self.histogram_bins = _frequencies(
            frequency, histogram_frequency, histogram_bins
        )
        hf = self.histogram_frequency
        if hf and hf % self.frequency:
            log.warning(
                "histogram_frequency=%d is not a multiple of frequency=%d: histograms are "
                "taken on reported iterations only, so every %d iterations; pass a "
                "multiple of frequency to choose",
                hf, self.frequency, math.lcm(hf, self.frequency),
            )  # fmt: skip
        self._check_args(storage, model, optimizer, report_ranks, config)
        if not isinstance(activations, bool):
            raise InputError(f"activations: expected True or False, got {activations!r:.60}")
        if scheduler is not None and not callable(getattr(scheduler, "step", None)):
            raise InputError(
                f"scheduler: expected a learning-rate scheduler (an object with a step() "
                f"method, such as torch.optim.lr_scheduler.StepLR) or None, got "
                f"{type(scheduler).__name__} {scheduler!r:.60}"
            )
        for name, value in (("session_id", session_id), ("worker_id", worker_id)):
            if value is not None and not str(value):
                raise InputError(f"{name}: expected a non-empty name or None, got ''")
        self.storage = storage
        inner, compiled = unwrap_model(model)
        compiled = compiled or getattr(inner, "_compiled_call_impl", None) is not None
        if compiled and activations:  # torch.compile(model), or model.compile()
            log.warning(
                "activation statistics are off for a torch.compile'd model (forward hooks "
                "would make it recompile); pass activations=False to silence this"
            )
            activations = False
        self.model = inner
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.config = dict(config or {})
        self.collect_activations = activations
        self._warned: set[str] = set()
        self.start_iteration = check_int("start_iteration", start_iteration, low=0)
        self._place(session_id, worker_id, report_ranks)
        self._find_tensors()
        self._allocate()
        if self.enabled:
            self._start()

    # -- setup -------------------------------------------------------------------
    def _check_args(self, storage, model, optimizer, report_ranks, config) -> None:
        """InputError for an argument of the wrong kind (numbers: :func:`_frequencies`)."""
        torch = self._torch
        check_choice("report_ranks", report_ranks, ("all", "zero"))
        check_storage(storage)
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise InputError(
                f"optimizer: expected a torch.optim.Optimizer or None, got "
                f"{type(optimizer).__name__} {optimizer!r:.60}"
            )
        if config is not None and not isinstance(config, dict):
            raise InputError(f"config: expected a dict or None, got {type(config).__name__}")

    def _place(self, session_id: str | None, worker_id: str | None, report_ranks: str) -> None:
        """This process's rank, worker and session, and whether it reports."""
        dist = distributed()
        self.rank = dist[0] if dist else 0
        self.world_size = dist[1] if dist else 1
        self.worker_id = str(self.rank) if worker_id is None else str(worker_id)
        self.session_id = self._agree_session_id(session_id, dist is not None)
        self.enabled = report_ranks == "all" or self.rank == 0

    def _find_tensors(self) -> None:
        """The parameters reported on and the leaf modules whose outputs are recorded;
        InputError for a name that a storage or the remote UI would refuse later."""
        self._select_params()
        self._leaves = _layers(self.model)
        self._leaf_names = {id(m): name for name, m in self._leaves}  # by id: any module
        for what, names in (
            ("worker_id", [self.worker_id]),
            ("session_id", [self.session_id]),
            ("layer name", [name for name, _ in self._leaves]),
            ("config key", [str(k) for k in self.config]),
        ):
            for name in names:  # length, Unicode, control characters
                check_name(name, what)

    def _allocate_outputs(self) -> None:
        """The parameters' result arrays kept between reports (see
        torch_stats.Outputs), and a report's numbers for SQLite, in its packer's order
        (see ts.flat_values)."""
        n, bins = len(self._params), self.histogram_bins
        Outputs = self._ts.Outputs
        self._out_grads, self._out_params, self._out_updates = (
            Outputs(n, bins), Outputs(n, bins), Outputs(n, bins),
        )  # fmt: skip
        self._values = np.empty(10 * n + 3 * len(self._leaves))
        self._spare = None

    def _params_changed(self) -> None:
        """When the optimizer got a new parameter group, choose the parameters again."""
        if self.optimizer is not None and len(self.optimizer.param_groups) != self._groups:
            self._select_params()
            self._allocate_outputs()

    def _select_params(self) -> None:
        """The parameters reported on: those that require a gradient and, with an
        optimizer, that it steps (the update of a parameter another optimizer steps is
        not seen here: one listener per optimizer, on the part it trains). Chosen again
        when the optimizer gets a new parameter group (unfreezing)."""
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if self.optimizer is not None:
            groups = self.optimizer.param_groups
            stepped = {id(p) for g in groups for p in g["params"]}
            left = [n for n, p in params if id(p) not in stepped]
            params = [(n, p) for n, p in params if id(p) in stepped]
            if left:
                self._warn_once(
                    "not stepped",
                    "StatsListener: %d trainable parameters of the model are not in the "
                    "optimizer (%s) and are not reported: the listener sees only its "
                    "optimizer's step; give each optimizer a listener on the part it trains",
                    len(left),
                    ", ".join(left[:3]) + (", ..." if len(left) > 3 else ""),
                )
            self._groups = len(groups)
        for name, _ in params:  # length, Unicode, control characters
            check_name(name, "parameter name")
        self._params = params
        self._names_list = [n for n, _ in params]
        self._names_tuple = tuple(self._names_list)
        self._tensors = [p for _, p in params]
        self._layout = None

    def _allocate(self) -> None:
        """The writers into the storage, the result buffers kept between reports and
        the state of the per-iteration path."""
        storage = self.storage
        # its updates are valid by construction (names checked here, numbers from its
        # own loops): our storages take them without checking each one again
        self._put = getattr(storage, "_put_made_valid", storage.put)
        # and SQLite packs their histograms from the arrays, with no Histogram objects,
        # and their statistics from lists of floats, with no ParamStats objects
        self._put_arrays = getattr(storage, "_put_update_arrays", None)
        self._put_flat = getattr(storage, "_put_update_flat", None)
        self._allocate_outputs()
        self._out_acts = self._ts.Outputs(len(self._leaves), self.histogram_bins)
        self.iteration = self.start_iteration
        self._hooks = self._make_hooks()
        self._armed = False
        self._bins = 0  # histogram bins on this reported iteration, 0 for none
        self._before = None  # the one copy of the parameters, between the step hooks
        self._spare = None  # at frequency 1, that copy's memory, kept for the next step
        self._layout = None  # where that copy puts each parameter (CPU)
        self._grads = None  # TensorStats of this iteration's gradients
        self._grad_names: list[str] = []
        self._stepped = None  # (params, updates) TensorStats after the step
        self._acts: dict[str, Any] = {}  # layer name -> TensorStats of its output
        self._collect = 0.0
        self._examples = 0
        self._batches = 0
        self._last_report_time = time.perf_counter()
        self._closed = False
        self._last_memory = -math.inf
        self._rates: list[float] | None = None  # the learning rates the step used
        self._due = 0  # the iteration whose report is being recorded (it may wait)
        self._untrained = False  # a hooked forward pass ran in eval mode or no_grad

    def _start(self) -> None:
        """Store the static info and arm iteration 0 (its hooks)."""
        start_cpu_measurement()  # the first report's cpu_percent is then a real one
        for other in list(_OPEN):
            if other.model is self.model or (
                self.optimizer is not None and other.optimizer is self.optimizer
            ):
                log.warning(
                    "another StatsListener (session %r) on this model or optimizer is "
                    "still open: it keeps its hooks, and copies the parameters at every "
                    "optimizer step while it waits for a report; close() it first, or use "
                    "'with StatsListener(...)'",
                    other.session_id,
                )
                break
        _OPEN.add(self)
        if any(p.is_cpu for p in self._tensors):
            self._ts.load_kernels()  # now rather than in the first report
        config = dict(self.config)
        config.setdefault("frequency", self.frequency)
        config.setdefault("histogram_frequency", self.histogram_frequency)
        config.setdefault("world_size", self.world_size)
        if self.start_iteration:
            config.setdefault("start_iteration", self.start_iteration)
        self.storage.put(
            static_info(
                self.model,
                self.optimizer,
                session_id=self.session_id,
                worker_id=self.worker_id,
                config=config,
                scheduler=self.scheduler,
            )
        )
        self._arm()

    def _agree_session_id(self, session_id: str | None, distributed: bool) -> str:
        """A new id, or ``session_id`` unless the storage already holds this worker's
        records under it (then ``session_id-2``, ...); under torch.distributed rank 0
        decides for all ranks."""
        if session_id is None:
            sid = new_session_id(type(self.model).__name__.lower())
        elif self.start_iteration:  # resumed: the session goes on
            sid = str(session_id)
            self._check_resume(sid)
        elif not distributed or self.rank == 0:
            sid = unused_session_id(self.storage, str(session_id), self.worker_id)
        else:
            sid = str(session_id)
        if distributed:
            import torch.distributed as dist

            box = [sid]
            dist.broadcast_object_list(box, src=0)
            sid = box[0]
        return sid

    def _check_resume(self, sid: str) -> None:
        """A warning when the session already holds this worker's records at or after
        ``start_iteration`` (resumed from an older checkpoint: iterations repeat)."""
        latest = getattr(self.storage, "get_latest_update", None)
        try:
            last = latest(sid, self.worker_id) if latest is not None else None
        except Exception:  # a storage that cannot say: nothing to warn about
            return
        if last is not None and last.iteration >= self.start_iteration:
            log.warning(
                "session %r holds worker %s's records up to iteration %d, at or after "
                "start_iteration=%d: the resumed run's records repeat those iterations "
                "(resume from the newest checkpoint, or give a new session_id)",
                sid, self.worker_id, last.iteration, self.start_iteration,
            )  # fmt: skip

    # -- the public loop API -------------------------------------------------------------
    def step(self, loss: Any = None, batch_size: int | None = None) -> None:
        """Call once per training iteration, after ``optimizer.step()``.

        Parameters
        ----------
        loss : float, 0-d tensor or None
            The minibatch loss (the score). Converted only on reported iterations.
        batch_size : int or None
            Examples in this minibatch, for examples per second.

        Examples
        --------
        >>> # listener.step(loss.item(), batch_size=len(x))
        """
        if self._closed:
            raise InputError("StatsListener.step: the listener is closed; create a new one")
        if batch_size is None:
            examples = 0
        elif type(batch_size) is int and batch_size >= 0:
            examples = batch_size
        else:
            examples = _count("batch_size", batch_size)
        if not (loss is None or type(loss) is float or self._loss_fits(loss)):
            raise InputError(
                f"loss: expected a number or a one-element tensor, got {loss!r:.60}"
            )  # on every call (converted only on reported ones: a tensor's .item() syncs)
        self._batches += 1
        self._examples += examples
        if not self._armed:  # not reported (never on a rank that does not report)
            self.iteration = it = self.iteration + 1
            if self.enabled and it % self.frequency == 0:
                self._arm()
            return
        waits = self._stepped is None and self.optimizer is not None and self._tensors
        if waits and self._wait_for_step():
            return
        t0 = time.perf_counter()
        try:  # a bad loss is an error of this call; the next iteration is counted as usual
            update, arrays, flat = self._build_update(loss)
        finally:
            self.iteration += 1
            self._disarm(keep_hook=self.iteration % self.frequency == 0)
            self._arm()
        update.collect_seconds = self._collect + time.perf_counter() - t0
        self._collect = 0.0
        if flat is not None:
            self._put_flat(update, *flat, arrays)
        elif arrays:
            self._put_arrays(update, arrays)
        else:
            self._put(update)

    def _wait_for_step(self) -> bool:
        """True when the reported iteration saw no optimizer step (gradient
        accumulation) and its report waits for the next one, which records it; at the
        latest the iteration before the next report is due reports without one (a
        warning, once, says so)."""
        it = self.iteration + 1
        if it % self.frequency:
            self.iteration = it
            self._acts = {}  # the report's activations: those of the iteration stepped
            return True
        self._warn_once(
            "no step",
            "StatsListener: iteration %d (due at %d) is reported without an "
            "optimizer.step(), so its record has no update statistics: the step was "
            "skipped (GradScaler skips a step whose gradients are inf or NaN) or is not "
            "called once per listener.step() (with gradient accumulation, call "
            "listener.step() after the step)",
            self.iteration,
            self._due,
        )
        return False

    def _warn_once(self, key: str, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _loss_fits(self, loss: Any) -> bool:
        """A loss that :func:`_number` takes, judged without reading a tensor's value."""
        if isinstance(loss, self._Tensor):
            return loss.numel() == 1
        if isinstance(loss, numbers.Real):
            return not isinstance(loss, bool)
        return getattr(loss, "size", None) == 1 and hasattr(loss, "item")  # numpy

    def _build_update(self, loss: Any) -> tuple[Update, list | None, tuple | None]:
        """The update of this iteration; its histograms as arrays when they go to a
        SQLite storage as such (else they are in ``update.histograms``); and for SQLite,
        when every parameter was stepped with a gradient, its statistics as
        ``(parameter names, layer names, values)`` (see
        :meth:`~embedviz.stats.sqlite_layout.UpdatePacker.pack_flat`) instead of
        ``update.params`` and ``update.activations``."""
        torch = self._torch
        now = time.perf_counter()
        elapsed = now - self._last_report_time
        it = self.iteration
        update = Update(self.session_id, self.worker_id, it, time.time())
        if loss is not None:
            update.score = _number("loss", loss)
        if it > 0 and elapsed > 0:
            update.minibatches_per_sec = self._batches / elapsed
            if self._examples:
                update.examples_per_sec = self._examples / elapsed
        self._last_report_time, self._batches, self._examples = now, 0, 0
        if self._rates is not None:  # read in the step's pre-hook: the rates it used
            update.learning_rates = self._rates
        elif self.optimizer is not None:
            update.learning_rates = learning_rates(self.optimizer)

        names = self._names_list
        ts = self._ts
        if self._stepped is not None:
            params, updates = self._stepped
        else:  # no optimizer step seen: parameters as they are now, no updates
            with torch.no_grad():
                params = ts.tensor_stats(self._tensors, self._bins)
            updates = None
        if self._grads is None:  # no step seen: the gradients as they are (inf, NaN too)
            self._record_grads()
        acts = self._activation_stats() if self._acts else None
        if acts is None and self._hooks.trigger.on and not self._untrained:
            self._warn_once(
                "no forward",
                "StatsListener: no activation statistics at iteration %d: the model's "
                "forward pass did not begin in this iteration, or it was compiled "
                "(model.compile() or torch.compile(model) called on the model given to the "
                "listener: give the listener the compiled model, or pass activations=False)",
                it,
            )
        if acts is None and self._untrained:
            self._warn_once(
                "eval",
                "StatsListener: no activation statistics at iteration %d: the model ran "
                "in eval mode (model.eval()) or under torch.no_grad(); they are recorded "
                "from training-mode forward passes only",
                it,
            )
        flat = None
        if self._put_flat is not None and updates is not None and self._grad_names is names:
            # every parameter has all ten numbers: one compiled call, no object each
            values = ts.flat_values(params, self._grads, updates, acts, self._values)
            flat = (self._names_tuple, tuple(self._acts), values)
        else:
            um = [None] * len(names) if updates is None else updates.moments()
            if self._grads is None:
                gm = [None] * len(names)
            elif self._grad_names is names:  # every parameter had a gradient
                gm = self._grads.moments()
            else:
                by_name = dict(zip(self._grad_names, self._grads.moments(), strict=True))
                gm = [by_name.get(n) for n in names]
            none = (None, None, None)
            update.params = {
                n: ParamStats(*p, *(g or none), *(u or none), None if u is None else _ratio(u, p))
                for n, p, g, u in zip(names, params.moments(), gm, um, strict=True)
            }
            if acts is not None:
                update.activations = {
                    n: ActivationStats(*v)
                    for n, v in zip(self._acts, acts.activation_values(), strict=True)
                }
        arrays = None
        if self._bins:
            groups = [("params", params, names)]
            if self._grads is not None and self._grad_names:
                groups.append(("grads", self._grads, self._grad_names))
            if updates is not None:
                groups.append(("updates", updates, names))
            if acts is not None:
                groups.append(("activations", acts, list(self._acts)))
            if self._put_arrays is not None:  # SQLite packs them as they are
                arrays = [(kind, *g.histogram_arrays(n)) for kind, g, n in groups]
                arrays = [a for a in arrays if a[1]]
            else:
                hists = {kind: g.histograms(n) for kind, g, n in groups}
                update.histograms = {k: h for k, h in hists.items() if h}
        if self.scheduler is not None:  # its step count, for the schedule's diagnosis
            steps = getattr(self.scheduler, "last_epoch", None)
            if type(steps) is int:
                update.extra["lr_scheduler_steps"] = float(steps)
        if time.monotonic() - self._last_memory >= 1.0:  # psutil costs ~0.1 ms
            update.memory = memory_sample()
            self._last_memory = time.monotonic()
        return update, arrays, flat

    def _activation_stats(self):
        """One TensorStats of every layer output recorded this iteration, in order."""
        ts, bins = self._ts, self._bins
        numels = [n for n, _ in self._acts.values()]
        groups = [g for _, g in self._acts.values()]
        kept = self._out_acts.arrays(len(groups), bins)
        if all(g is None for g in groups):
            return ts.TensorStats(numels, *kept, bins=bins)
        rows = [  # rows of the kept arrays, and the layers done by torch
            g or ts.TensorStats([n], *(a[k : k + 1] for a in kept), bins=bins)
            for k, (n, g) in enumerate(zip(numels, groups, strict=True))
        ]
        return ts.TensorStats.join(rows)

    def record_eval(self, metrics: dict[str, Any], iteration: int | None = None) -> None:
        """Store metrics computed on a whole held-out set (never smoothed).

        Parameters
        ----------
        metrics : dict of str to float
            ``{"accuracy": 0.93, "val_loss": 0.21}``; tensors are converted.
        iteration : int or None
            Default: the last completed iteration.

        Examples
        --------
        >>> # listener.record_eval({"accuracy": acc, "val_loss": val_loss})
        """
        if self._closed:
            raise InputError("StatsListener.record_eval: the listener is closed; create a new one")
        if not isinstance(metrics, dict) or not metrics:
            raise InputError(
                f"metrics: expected a non-empty dict of name -> number, got {metrics!r}"
            )
        clean = {str(k): _number(f"metrics[{k!r}]", v) for k, v in metrics.items()}
        if not self.enabled:
            return
        it = max(self.iteration - 1, 0) if iteration is None else _count("iteration", iteration)
        self.storage.put(EvalRecord(self.session_id, self.worker_id, it, time.time(), clean))

    def close(self) -> None:
        """Remove every hook and flush the storage (the storage stays open).

        Called when a ``with StatsListener(...)`` block ends. Trouble with the storage
        never stops the script here: a SQLite file is waited for at most 5 s
        (:data:`~embedviz.stats.sqlite_close.CLOSE_WAIT`); when it cannot be written
        by then (locked by another process, disk full), one error says how many records
        are not written, and they stay buffered in the storage, which keeps trying to
        write them; the storage's ``close()`` says whether they were written (see
        :func:`~embedviz.stats.sqlite_close.flush_at_close`). A remote router waits
        at most 5 s as well.

        Examples
        --------
        >>> # listener.close()   # or leave the ``with`` block
        """
        if self._closed:
            return
        _OPEN.discard(self)
        self._disarm()
        self._spare = None
        self._closed = True
        if self.enabled:
            from embedviz.stats.sqlite_close import flush_at_close

            flush_at_close(self.storage, "StatsListener")

    def __enter__(self) -> StatsListener:
        return self

    def __exit__(self, *exc) -> None:
        """:meth:`close`, which never raises for a storage that cannot be written."""
        self.close()
