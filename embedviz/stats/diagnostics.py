"""Read stored statistics and say what looks wrong, with evidence and advice.

:func:`diagnose` returns :class:`Finding` objects for one storage; ``embedviz check DB``
(:mod:`embedviz.ui.check_command`) prints them for a file and exits 1 when an error was
found, so that it can gate a CI job. The checks, per session and worker (their
thresholds and why: :mod:`embedviz.stats.diagnostics_checks`, the schedule's
:mod:`embedviz.stats.diagnostics_schedule`):

* update:parameter ratio of a tensor (median over the latest third of the reports) above
  1e-2 (an error above 1e-1) or below 1e-4 -- a healthy ratio is near 1e-3 (Karpathy's
  rule of thumb); an early phase out of the band apart (info); biases judged against
  their layer's weights, one severity lower; ratios rising steadily with depth from
  below the band (vanishing gradients);
* ratio spikes: a value more than 10x the median of the 10 before it (and above 1e-2);
* activation std (median over the second half) outside [0.5, 2] (a warning when 10x
  outside), or falling below a tenth of its first value (collapsing); dead ReLUs: over
  90 % exact zeros (an error when every value is zero). Layers that only reshape, pool
  or drop out are not judged;
* score NaN or infinite (error), jumped 4x above its level before and stayed high
  (error), rising (error), or flat (warning);
* the first score far from ln(n_classes) when the static info's ``config`` names
  ``n_classes`` (a classifier's loss at initialisation should be near it); an
  ``n_classes`` that is not an int >= 2 is a warning (``bad_config``: that check was
  skipped);
* a PyTorch run none of whose reports has update statistics (``no_update_stats``: no
  optimizer given, or ``listener.step()`` called on micro-batches without a step);
* parameters: NaN/inf statistics (error), mean magnitude growing tenfold from a floor
  and still growing, or a thousandfold at once (warning);
* a learning rate that never changes although a scheduler was configured: a warning
  where the scheduler's recorded step count never advanced, or passed its first change
  (``step_size``, ``milestones``, ... of ``config["lr_scheduler_args"]``), else at most
  an INFO; never for ReduceLROnPlateau (flat by design while the score improves).

The same check over several tensors or layers is one finding naming them all (``layer``
holds the names joined by ``", "``, ``layers`` and ``details`` each one and its own
evidence). Runs of more than 10,000 reports are read min/max-downsampled to 10,000
points per series (extremes, NaN and the newest point survive; medians move little), so
a count of spikes is then a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedviz.stats.diagnostics_checks import CHECKS
from embedviz.stats.diagnostics_run import (  # noqa: F401  (re-exported)
    ACT_STD_HIGH,
    ACT_STD_LOW,
    RATIO_ERROR,
    RATIO_HIGH,
    RATIO_LOW,
    SCORE_EXPLODED,
    Raw,
    _Run,
)
from embedviz.stats.limits import escape_controls

SEVERITIES = ("error", "warning", "info")


@dataclass
class Finding:
    """One problem found in a run.

    ``check`` names the test (``score_not_finite``, ``score_exploded``,
    ``score_rising``, ``score_flat``, ``initial_loss``, ``ratio_high``, ``ratio_low``,
    ``ratio_early``, ``ratio_spike``, ``vanishing_gradients``,
    ``activations_collapsing``, ``activation_std``, ``dead_units``,
    ``params_not_finite``, ``params_diverging``, ``lr_flat``, ``no_update_stats``,
    ``bad_config``); ``iterations`` is
    ``(first, last)`` of the iterations that show it; ``layer`` is the parameter tensor,
    layer or ``lr/<group>`` series (None for run-wide findings such as the score), or
    several of them joined by ``", "`` when the check fired on each. ``layers`` holds
    them one by one and ``details`` the evidence of each (same order; empty for a
    finding about several at once, such as ``vanishing_gradients``); ``where`` says
    what the finding is about in words, with layer classes where the static info names
    them (``layers 1 (ReLU), 3 (ReLU)``, ``learning rate (group 0)``).
    """

    severity: str
    check: str
    session_id: str
    worker_id: str
    layer: str | None
    iterations: tuple[int, int] | None
    evidence: str
    advice: str
    layers: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    where: str = ""


def _grouped(run: _Run) -> list[Finding]:
    """The run's raw findings, the same check (same severity and advice) over several
    tensors or layers merged into one, in the order they were first found."""
    groups: dict[tuple, list[Raw]] = {}
    for raw in run.findings:
        key = (raw.check, raw.severity, raw.advice, raw.about, raw.layer is None)
        groups.setdefault(key if raw.layer is not None else (id(raw),), []).append(raw)
    out = []
    for items in groups.values():
        first = items[0]
        names = tuple(n for r in items if r.layer for n in r.layer.split(", "))
        spans = [r.iterations for r in items if r.iterations is not None]
        span = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
        if len(items) == 1:
            evidence = first.evidence
            details = (first.evidence,) if len(names) == 1 else ()  # one per name
        else:
            details = tuple(r.evidence for r in items)
            if first.about is not None and all(r.short is not None for r in items):
                evidence = f"{first.about}: " + ", ".join(
                    f"{r.layer} {r.short}" for r in items)  # fmt: skip
            else:
                evidence = "; ".join(f"{r.layer}: {r.evidence}" for r in items)
        where = where_of(first.check, ", ".join(names) if names else None, run.named)
        out.append(Finding(first.severity, first.check, run.session_id, run.worker_id,
                           ", ".join(names) if names else None, span, evidence, first.advice,
                           names, details, where))  # fmt: skip
    return out


def diagnose(storage, session_id: str | None = None, worker_id: str | None = None
             ) -> list[Finding]:  # fmt: skip
    """Findings for every (or one) session and worker of a storage, errors first.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> storage = InMemoryStatsStorage()
    >>> storage.put_many([Update("s", "0", i, 0.0, score=float("nan")) for i in range(3)])
    >>> [f.check for f in diagnose(storage)]
    ['score_not_finite']
    """
    sessions = [session_id] if session_id is not None else storage.list_sessions()
    findings: list[Finding] = []
    for sid in sessions:
        workers = [worker_id] if worker_id is not None else storage.list_workers(sid)
        for wid in workers:
            run = _Run(storage, sid, wid)
            for check in CHECKS:
                check(run)
            findings.extend(_grouped(run))
    findings.sort(key=lambda f: SEVERITIES.index(f.severity))
    return findings


_LAYER_CHECKS = {"activations_collapsing", "activation_std", "dead_units"}


def printable(text: str) -> str:
    """``text`` with control and bidirectional formatting characters escaped (``\\n``,
    ``\\x1b``, ``\\u202e``; :data:`~embedviz.stats.limits.CONTROL_CHARS`), so that a name
    recorded by someone else cannot rewrite, hide or disguise lines of a terminal.

    Examples
    --------
    >>> printable("evil\\nsummary: 0 error(s)")
    'evil\\\\nsummary: 0 error(s)'
    """
    return escape_controls(str(text))


def where_of(check: str, layer: str | None, named=None) -> str:
    """What a finding is about, as ``embedviz check`` and the UI name it: ``run``,
    ``layer NAME`` (activation checks), ``learning rate (group N)`` or ``tensor NAME``;
    plural for names joined by ``", "``. ``named`` (optional) turns one name into the
    text shown for it, such as ``1 (ReLU)``.

    Examples
    --------
    >>> where_of("ratio_high", "0.weight"), where_of("dead_units", "1, 3")
    ('tensor 0.weight', 'layers 1, 3')
    >>> where_of("lr_flat", "lr/0")
    'learning rate (group 0)'
    """
    if layer is None:
        return "run"
    names = layer.split(", ")
    if all(n.startswith("lr/") for n in names):
        groups = ", ".join(n[3:] for n in names)
        return f"learning rate (group{'s' if len(names) > 1 else ''} {groups})"
    noun = "layer" if check in _LAYER_CHECKS else "tensor"
    shown = ", ".join(named(n) if named is not None else n for n in names)
    return f"{noun}{'s' if len(names) > 1 else ''} {shown}"


def iterations_text(iterations: tuple[int, int] | None) -> str:
    """``iteration 5`` or ``iterations 0-170`` ("" for None).

    Examples
    --------
    >>> iterations_text((0, 0)), iterations_text((0, 170))
    ('iteration 0', 'iterations 0-170')
    """
    if not iterations:
        return ""
    first, last = iterations
    return f"iteration {first}" if first == last else f"iterations {first}-{last}"


def format_finding(f: Finding) -> str:
    """Two lines: severity, where, evidence; then the advice (control characters
    escaped, see :func:`printable`)."""
    where = f.where or where_of(f.check, f.layer)
    its = f", {iterations_text(f.iterations)}" if f.iterations else ""
    return printable(f"  {f.severity.upper():7} [{f.check}] {where}{its}: {f.evidence}") + (
        f"\n          advice: {printable(f.advice)}")  # fmt: skip
