"""The learning-rate schedule check of :mod:`embedviz.stats.diagnostics`.

A rate that stays flat although a scheduler was configured is judged from what the
static info and the reports hold about the scheduler:

* its class (``config["lr_scheduler"]``): ReduceLROnPlateau keeps the rate while the
  score improves, so it is never judged;
* its facts (``config["lr_scheduler_args"]``, :func:`scheduler_facts`: ``step_size``,
  ``milestones``, ``gamma``, ...): the number of steps after which the rate must have
  changed (:func:`_first_change`); a run whose last report comes before that many
  iterations cannot show a change yet, however the scheduler is stepped;
* its step count at each report (the series ``extra/lr_scheduler_steps``, the
  scheduler's ``last_epoch``): a count that never advanced, or that passed the first
  change during the run with the rate unchanged, is a warning (a scheduler resumed
  from a checkpoint may have passed its changes before). Without it nothing says whether the
  scheduler is stepped per epoch (a StepLR of 30 epochs keeps the rate over thousands
  of iterations), so the finding is an INFO worded as a question.
"""

from __future__ import annotations

import math

import numpy as np

from embedviz.stats.diagnostics_run import SCHEDULER_STEPS, _fmt, _Run, _span

#: schedulers that change the rate at every step (from the first one on)
_EVERY_STEP = {"ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
               "OneCycleLR", "CyclicLR", "PolynomialLR", "LinearLR"}  # fmt: skip
#: the facts of a scheduler that :func:`_first_change` reads, where it has them
_SCHEDULER_FACTS = ("step_size", "milestones", "gamma", "total_iters", "factor",
                    "start_factor", "end_factor", "power", "T_max", "T_0")  # fmt: skip


def scheduler_facts(scheduler) -> dict:
    """What :func:`check_schedule` reads of a learning-rate scheduler, in JSON types:
    its ``step_size``, ``milestones`` (sorted), ``gamma``, ``total_iters`` and the like,
    where it has them (``config["lr_scheduler_args"]`` of the static info).

    Examples
    --------
    >>> class StepLR:  # stands in for torch.optim.lr_scheduler.StepLR(opt, 30, 0.1)
    ...     step_size, gamma = 30, 0.1
    >>> scheduler_facts(StepLR())
    {'step_size': 30, 'gamma': 0.1}
    """
    out: dict = {}
    for key in _SCHEDULER_FACTS:
        value = getattr(scheduler, key, None)
        if key == "milestones" and value is not None:
            try:
                value = sorted(int(m) for m in value)
            except (TypeError, ValueError):
                continue
        elif type(value) not in (int, float):
            continue
        out[key] = value
    return out


def _first_change(name: str, facts: dict) -> float | None:
    """Scheduler steps after which a ``name`` scheduler with ``facts`` has changed the
    rate it started with: inf when it never does, None when unknown (a LambdaLR, a
    scheduler of its own, or facts not recorded)."""

    def fact(key):
        value = facts.get(key)
        return value if type(value) in (int, float) else None

    gamma = fact("gamma")
    if fact("step_size") is not None:
        return math.inf if gamma == 1 else max(1, math.ceil(fact("step_size")))
    milestones = facts.get("milestones")
    if isinstance(milestones, list) and all(type(m) is int for m in milestones):
        return math.inf if gamma == 1 or not milestones else max(1, min(milestones))
    if name == "ConstantLR" and fact("total_iters") is not None:
        return math.inf if fact("factor") == 1 else max(1, math.ceil(fact("total_iters")))
    if name == "LinearLR" and fact("start_factor") is not None:
        if fact("start_factor") == fact("end_factor") or fact("total_iters") == 0:
            return math.inf
    if name == "ExponentialLR" and gamma == 1:
        return math.inf
    return 1 if name in _EVERY_STEP else None


def check_schedule(run: _Run) -> None:
    """A learning rate that stays flat although a scheduler was configured: a warning
    where the listener recorded the scheduler's step count (it never advanced, or it
    passed the schedule's first change), else at most an INFO worded as a question
    (a scheduler stepped once per epoch may not have changed the rate yet). A plateau
    scheduler keeps the rate while the score improves, so it is never judged."""
    config = run.static.config if run.static is not None else {}
    scheduler = config.get("lr_scheduler") or config.get("lr_schedule")
    if not scheduler:
        return
    name = str(scheduler)
    if "plateau" in name.lower():  # ReduceLROnPlateau: flat by design while improving
        return
    facts = config.get("lr_scheduler_args")
    first = _first_change(name, facts if isinstance(facts, dict) else {})
    if first == math.inf:  # a schedule that keeps the rate (gamma 1, factor 1)
        return
    steps = run.series(SCHEDULER_STEPS) if SCHEDULER_STEPS in run.names else None
    for lr in [n for n in run.names if n.startswith("lr/")]:
        s = run.series(lr)
        if len(s) < 3 or not np.all(s.values == s.values[0]):
            continue
        if first is not None and s.iterations[-1] + 1 < first:
            continue  # even stepped once per iteration, its first change is still ahead
        flat = f"learning rate stayed {_fmt(float(s.values[0]))} over {len(s)} reports"
        span = _span(s.iterations)
        due = ""  # its first change is due after N steps
        if first is not None:
            due = f"its first change is due after {first} step{'s' if first > 1 else ''}"
        ok = steps.values[np.isfinite(steps.values)] if steps is not None else []
        if len(ok):
            low, count = int(ok.min()), int(ok.max())
            if count == low:
                run.add(
                    "warning", "lr_flat", lr, span,
                    f"{flat}: the {name} was not stepped in that time (its step count "
                    f"stayed {count}{'; ' + due if due else ''})",
                    "call scheduler.step() after optimizer.step(), once per epoch or per "
                    "iteration as the schedule expects (a scheduler stepped once per "
                    "epoch does not step within the first epoch: then ignore this)",
                )  # fmt: skip
            elif first is not None and low < first <= count:  # (a resumed one may
                # have passed its changes before the run: only a change within it counts)
                run.add(
                    "warning", "lr_flat", lr, span,
                    f"{flat} although the {name} stepped {count - low} times in that time, "
                    f"from step {low} to {count} ({due})",
                    "the scheduler changes another optimizer's rate: build it on the "
                    "optimizer given to the StatsListener (a re-created optimizer needs a "
                    "new scheduler)",
                )  # fmt: skip
            continue
        run.add(
            "info", "lr_flat", lr, span,
            f"{flat} although {name} was configured{f' ({due})' if due else ''}",
            "fine while the schedule's first change is still ahead (a scheduler stepped "
            "once per epoch changes the rate only after its first step_size or milestone "
            "epochs); otherwise check that scheduler.step() is called and that the "
            "scheduler was built on the optimizer given to the StatsListener",
        )  # fmt: skip
