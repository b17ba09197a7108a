"""Read stored statistics and say what looks wrong, with evidence and advice.

:func:`diagnose` returns :class:`Finding` objects for one storage; :func:`run_check`
prints them for a file and returns an exit status (``embedviz check DB``: 1 when an
error was found, so it can gate a CI job). The checks, per session and worker:

* update:parameter ratio of a tensor (median over the run) above 1e-2 (an error above
  1e-1) or below 1e-4 -- a healthy ratio is near 1e-3 (Karpathy's rule of thumb);
* ratio spikes: a value more than 10x the median of the 10 before it (and above 1e-2);
* activation std (median over the second half) outside [0.5, 2], or falling below a
  tenth of its first value (collapsing); dead ReLUs: over 90 % exact zeros (an error
  when every value is zero);
* score NaN or infinite (error), rising (error), or flat (warning);
* the first score far from ln(n_classes) when the static info's ``config`` names
  ``n_classes`` (a classifier's loss at initialisation should be near it);
* parameters diverging: NaN/inf parameter statistics (error), mean magnitude growing
  tenfold (warning);
* a learning rate that never changes although a scheduler was configured.

Runs of more than 10,000 reports are read min/max-downsampled to 10,000 points per series
(extremes, NaN and the newest point survive; medians move little), so a count of spikes
is then a lower bound.
"""

from __future__ import annotations

import math
import sqlite3
import sys
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from embedviz.errors import EmbedvizError
from embedviz.stats.limits import CONTROL_CHARS

SEVERITIES = ("error", "warning", "info")

RATIO_LOW, RATIO_HIGH, RATIO_ERROR = 1e-4, 1e-2, 1e-1
ACT_STD_LOW, ACT_STD_HIGH = 0.5, 2.0

# Series are read min/max-downsampled to this many points (spikes and NaN survive), as
# many at once as fit in _POINT_BUDGET points: one pass over a SQLite file reads every
# stored number whatever the names asked for, so fewer passes is what makes it fast.
_POINTS = 10_000
_POINT_BUDGET = 1_000_000  # measured: 1.25 s and 202 MiB peak on 100k updates x 50 tensors


def _read_by_checks(name: str) -> bool:
    """Whether one of the checks reads this series (the others are never fetched)."""
    head = name.partition("/")[0]
    return (
        name == "score"
        or head == "lr"
        or head == "params"
        and name.endswith(("/update_param_ratio", "/param_mean_magnitude"))
        or head == "activations"
        and name.endswith(("/std", "/zero_fraction"))
    )


@dataclass
class Finding:
    """One problem found in a run.

    ``check`` names the test (``score_not_finite``, ``score_rising``, ``score_flat``,
    ``initial_loss``, ``ratio_high``, ``ratio_low``, ``ratio_spike``,
    ``activations_collapsing``, ``activation_std``, ``dead_units``,
    ``params_not_finite``, ``params_diverging``, ``lr_flat``); ``iterations`` is
    ``(first, last)`` of the iterations that show it; ``layer`` is the parameter tensor,
    layer or ``lr/<group>`` series (None for run-wide findings such as the score).
    """

    severity: str
    check: str
    session_id: str
    worker_id: str
    layer: str | None
    iterations: tuple[int, int] | None
    evidence: str
    advice: str


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _span(it: np.ndarray) -> tuple[int, int] | None:
    return (int(it[0]), int(it[-1])) if len(it) else None


class _Run:
    """Series access for one worker with the findings collected so far."""

    def __init__(self, storage, session_id: str, worker_id: str) -> None:
        self.storage = storage
        self.session_id = session_id
        self.worker_id = worker_id
        self.names = storage.list_series(session_id, worker_id)
        self.static = storage.get_static_info(session_id, worker_id)
        self.findings: list[Finding] = []
        self._ahead: dict = {}  # series read with an earlier one, not yet asked for
        self._asked: set[str] = set()
        count = getattr(storage, "count_updates", None)
        n = count(session_id, worker_id) if count is not None else _POINTS
        self.downsampled = n > _POINTS  # counts of events found are then lower bounds
        self._batch = max(16, _POINT_BUDGET // max(1, min(n, _POINTS)))

    def series(self, name: str):
        """The series, min/max-downsampled to at most ``_POINTS`` points; the series the
        checks ask for next (same kind and statistic: every tensor's update_param_ratio)
        and then the others are read in the same pass, as many as the budget allows."""
        got = self._ahead.pop(name, None)
        if got is None:
            head, stat = name.split("/", 1)[0], name.rpartition("/")[2]
            others = [n for n in self.names if n != name and n not in self._asked
                      and n not in self._ahead and _read_by_checks(n)]  # fmt: skip
            same = [n for n in others if n.startswith(head + "/") and n.endswith("/" + stat)]
            taken = set(same)
            batch = (same + [n for n in others if n not in taken])[: self._batch - 1]
            many = getattr(self.storage, "get_series_many", None)
            if many is None or not batch:
                got = self.storage.get_series(self.session_id, self.worker_id, name, _POINTS)
            else:
                read = many(self.session_id, self.worker_id, [name, *batch], max_points=_POINTS)
                got = read.pop(name)
                self._ahead.update(read)
        self._asked.add(name)
        return got

    def add(self, severity, check, layer, iterations, evidence, advice) -> None:
        self.findings.append(
            Finding(severity, check, self.session_id, self.worker_id, layer, iterations,
                    evidence, advice)
        )  # fmt: skip

    def with_suffix(self, prefix: str, suffix: str) -> list[str]:
        return [n[len(prefix) : -len(suffix)] for n in self.names
                if n.startswith(prefix) and n.endswith(suffix)]  # fmt: skip


def _check_score(run: _Run) -> None:
    s = run.series("score")
    if not len(s):
        return
    bad = ~np.isfinite(s.values)
    if bad.any():
        where = np.flatnonzero(bad)
        first, last = int(s.iterations[where[0]]), int(s.iterations[where[-1]])
        at = f"at iteration {first}" if first == last else f"at iterations {first}-{last}"
        run.add(
            "error", "score_not_finite", None, (first, last),
            f"score is {s.values[where[0]]} {at} ({len(where)} of {len(s)} reports)",
            "training diverged: lower the learning rate, clip gradients, check the inputs "
            "for NaN and the loss for log(0) or division by zero",
        )  # fmt: skip
    values = s.values[~bad]  # the trend of the finite scores
    n = len(values)
    if n < 8:
        return
    q = max(n // 4, 2)
    head, tail = float(np.mean(values[:q])), float(np.mean(values[-q:]))
    spread = float(np.std(values))
    if tail > head + 0.1 * abs(head) and tail > head + 1e-12:
        run.add(
            "error", "score_rising", None, _span(s.iterations),
            f"mean score rose from {_fmt(head)} (first quarter) to {_fmt(tail)} (last quarter)",
            "the loss should fall: the learning rate is probably too high, or the gradient "
            "sign or loss definition is wrong",
        )  # fmt: skip
    elif (
        n >= 20
        and abs(head - tail) <= 0.01 * max(abs(head), 1e-12)
        and spread <= 0.01 * max(abs(head), 1e-12)
    ):
        run.add(
            "warning", "score_flat", None, _span(s.iterations),
            f"score stayed near {_fmt(head)} over {n} reports",
            "nothing is being learned: the learning rate may be far too low, parameters "
            "frozen, or gradients not reaching the model",
        )  # fmt: skip


def _check_initial_loss(run: _Run) -> None:
    config = run.static.config if run.static is not None else {}
    n_classes = config.get("n_classes")
    if not isinstance(n_classes, int | float) or n_classes < 2:
        return
    s = run.series("score")
    if not len(s) or not np.isfinite(s.values[0]):
        return
    expected = math.log(n_classes)
    got = float(s.values[0])
    if not expected / 2 <= got <= 2 * expected:
        run.add(
            "warning", "initial_loss", None, (int(s.iterations[0]), int(s.iterations[0])),
            f"first score {_fmt(got)}; a {int(n_classes)}-class cross-entropy starts near "
            f"ln({int(n_classes)}) = {_fmt(expected)}",
            "verify the loss at initialisation: the last layer's initial weights may be too "
            "large, the loss may be summed instead of averaged, or labels may be wrong",
        )  # fmt: skip


def _check_ratios(run: _Run) -> None:
    for name in run.with_suffix("params/", "/update_param_ratio"):
        s = run.series(f"params/{name}/update_param_ratio")
        finite = np.isfinite(s.values) & (s.values > 0)
        if finite.sum() < 2:
            continue
        values, its = s.values[finite], s.iterations[finite]
        median = float(np.median(values))
        if median > RATIO_HIGH:
            run.add(
                "error" if median > RATIO_ERROR else "warning", "ratio_high", name,
                _span(its),
                f"median update:parameter ratio {_fmt(median)} (healthy near 1e-3, "
                f"expected within [{RATIO_LOW:g}, {RATIO_HIGH:g}])",
                "each step changes this tensor too much: lower the learning rate",
            )  # fmt: skip
        elif median < RATIO_LOW:
            run.add(
                "warning", "ratio_low", name, _span(its),
                f"median update:parameter ratio {_fmt(median)} (healthy near 1e-3)",
                "this tensor barely moves: raise the learning rate, or check for vanishing "
                "gradients upstream",
            )  # fmt: skip
        # spikes: far above the recent median
        spikes: list[int] = []
        if len(values) > 10:  # the median of the 10 values before each one
            recent = np.median(np.lib.stride_tricks.sliding_window_view(values, 10)[:-1], axis=1)
            later = values[10:]
            spikes = (np.flatnonzero((later > 10 * recent) & (later > RATIO_HIGH)) + 10).tolist()
        if spikes:
            run.add(
                "warning", "ratio_spike", name, (int(its[spikes[0]]), int(its[spikes[-1]])),
                f"{'at least ' if run.downsampled else ''}{len(spikes)} ratio spike(s), "
                f"largest {_fmt(float(values[spikes].max()))} "
                f"at iteration {int(its[spikes[int(np.argmax(values[spikes]))]])}",
                "exploding gradients: clip gradients (torch.nn.utils.clip_grad_norm_) or "
                "lower the learning rate",
            )  # fmt: skip


def _check_activations(run: _Run) -> None:
    layers = run.with_suffix("activations/", "/std")
    output_layer = layers[-1] if len(layers) > 1 else None  # logits may be wide
    for layer in layers:
        s = run.series(f"activations/{layer}/std")
        ok = np.isfinite(s.values)
        if ok.sum() < 1:
            continue
        values, its = s.values[ok], s.iterations[ok]
        late = values[len(values) // 2 :]
        median = float(np.median(late))
        if len(values) >= 4 and values[0] > 0 and median < 0.1 * values[0]:
            run.add(
                "warning", "activations_collapsing", layer, _span(its),
                f"activation std fell from {_fmt(values[0])} to {_fmt(median)}",
                "the layer's outputs are collapsing towards a constant: check the "
                "initialisation, normalisation and learning rate",
            )  # fmt: skip
        elif layer != output_layer and not ACT_STD_LOW <= median <= ACT_STD_HIGH:
            run.add(
                "info" if median < ACT_STD_LOW else "warning", "activation_std", layer,
                _span(its),
                f"median activation std {_fmt(median)} (healthy within "
                f"[{ACT_STD_LOW:g}, {ACT_STD_HIGH:g}])",
                "poorly scaled activations slow training: consider a normalisation layer or "
                "a scaled initialisation (Kaiming for ReLU, Xavier for tanh)",
            )  # fmt: skip
        z = run.series(f"activations/{layer}/zero_fraction")
        if len(z):
            zl = z.values[len(z) // 2 :]
            zmed = float(np.median(zl))
            if zmed > 0.9:
                run.add(
                    "error" if zmed >= 1.0 else "warning", "dead_units", layer,
                    _span(z.iterations),
                    f"{zmed:.0%} of the layer's outputs are exactly zero",
                    "dead ReLUs: lower the learning rate, use LeakyReLU/GELU, or check the "
                    "bias initialisation",
                )  # fmt: skip


def _check_params(run: _Run) -> None:
    for name in run.with_suffix("params/", "/param_mean_magnitude"):
        s = run.series(f"params/{name}/param_mean_magnitude")
        if not len(s):
            continue
        bad = ~np.isfinite(s.values)
        if bad.any():
            first = int(s.iterations[np.argmax(bad)])
            run.add(
                "error", "params_not_finite", name, (first, int(s.iterations[-1])),
                f"parameters became NaN/inf at iteration {first}",
                "training diverged: lower the learning rate and clip gradients",
            )  # fmt: skip
        elif len(s) >= 4 and s.values[0] > 0 and s.values[-1] > 10 * s.values[0]:
            run.add(
                "warning", "params_diverging", name, _span(s.iterations),
                f"mean parameter magnitude grew from {_fmt(s.values[0])} to "
                f"{_fmt(s.values[-1])}",
                "the weights keep growing: lower the learning rate or add weight decay",
            )  # fmt: skip


def _check_schedule(run: _Run) -> None:
    config = run.static.config if run.static is not None else {}
    scheduler = config.get("lr_scheduler") or config.get("lr_schedule")
    if not scheduler:
        return
    for name in run.names:
        if not name.startswith("lr/"):
            continue
        s = run.series(name)
        if len(s) >= 3 and np.all(s.values == s.values[0]):
            run.add(
                "warning", "lr_flat", name, _span(s.iterations),
                f"learning rate stayed {_fmt(float(s.values[0]))} over {len(s)} reports "
                f"although {scheduler} was configured",
                "call scheduler.step() (once per epoch or iteration, as the scheduler expects)",
            )  # fmt: skip


_CHECKS = (_check_score, _check_initial_loss, _check_ratios, _check_activations,
           _check_params, _check_schedule)  # fmt: skip


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
            for check in _CHECKS:
                check(run)
            findings.extend(run.findings)
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
    text = str(text)
    if CONTROL_CHARS.search(text) is None:
        return text
    return CONTROL_CHARS.sub(lambda m: repr(m.group())[1:-1], text)


def where_of(check: str, layer: str | None) -> str:
    """What a finding is about, as ``embedviz check`` and the UI name it: ``run``,
    ``layer NAME`` (activation checks), ``series lr/0`` or ``tensor NAME``.

    Examples
    --------
    >>> where_of("ratio_high", "0.weight"), where_of("dead_units", "1")
    ('tensor 0.weight', 'layer 1')
    """
    if layer is None:
        return "run"
    if check in _LAYER_CHECKS:
        return f"layer {layer}"
    return f"{'series' if layer.startswith('lr/') else 'tensor'} {layer}"


def format_finding(f: Finding) -> str:
    """Two lines: severity, where, evidence; then the advice (control characters
    escaped, see :func:`printable`)."""
    where = where_of(f.check, f.layer)
    its = f", iterations {f.iterations[0]}-{f.iterations[1]}" if f.iterations else ""
    return printable(f"  {f.severity.upper():7} [{f.check}] {where}{its}: {f.evidence}") + (
        f"\n          advice: {printable(f.advice)}")  # fmt: skip


def run_check(
    path: str,
    stream: TextIO | None = None,
    err: TextIO | None = None,
    session: str | None = None,
) -> int:
    """Print the findings for a statistics file; the exit status for ``embedviz check``.

    Returns 1 when a finding has severity ``error`` or the file holds no session (a CI
    gate over a training that recorded nothing must fail), 0 otherwise, and 2 (after one
    line saying why, on ``err``) when the file cannot be read as statistics or SQLite's
    ``quick_check`` finds it damaged. Names are printed with control characters
    escaped. ``stream`` and ``err`` default to the standard output and error as they are
    at the call; ``err`` defaults to ``stream`` when only that is given.

    Examples
    --------
    >>> run_check("runs.db")  # doctest: +SKIP
    0
    """
    from embedviz.stats.storage import SQLiteStatsStorage

    if err is None:
        err = sys.stderr if stream is None else stream
    if stream is None:
        stream = sys.stdout
    try:
        storage = SQLiteStatsStorage(path, read_only=True)
    except EmbedvizError as exc:
        print(f"embedviz: error: {printable(exc)}", file=err)
        return 2
    errors = warnings = 0
    try:
        problems = storage.quick_check()
        if problems:
            print(
                f"embedviz: error: {printable(path)}: damaged statistics file (SQLite "
                f"quick_check: {printable('; '.join(problems))[:300]}); restore it from a "
                "copy, or recover what is readable with: sqlite3 FILE .recover | sqlite3 NEW.db",
                file=err,
            )
            return 2
        sessions = storage.list_sessions()
        print(f"{printable(path)}: {len(sessions)} session(s)", file=stream)
        if session is not None:  # one run of a shared file
            if session not in sessions:
                shown = ", ".join(printable(s) for s in sessions[-5:]) or "none"
                print(
                    f"embedviz: error: --session '{printable(session)}': no such session in "
                    f"{printable(path)} (newest: {shown})",
                    file=err,
                )
                return 2
            sessions = [session]
        if not sessions:
            print(
                f"embedviz: error: no session recorded in {printable(path)}; the training "
                "wrote nothing (was the listener's storage this file, and was it closed or "
                "flushed?)",
                file=err,
            )
            return 1
        for sid in sessions:
            for wid in storage.list_workers(sid):
                info = storage.get_static_info(sid, wid)
                n = storage.count_updates(sid, wid)
                kind = f"{info.kind}, {info.model_class}" if info is not None else "no static info"
                print(printable(f"session {sid} worker {wid} ({kind}; {n} updates)"), file=stream)
                found = diagnose(storage, sid, wid)
                if not found:
                    print("  no problems found", file=stream)
                for f in found:
                    print(format_finding(f), file=stream)
                    errors += f.severity == "error"
                    warnings += f.severity == "warning"
        print(f"summary: {errors} error(s), {warnings} warning(s)", file=stream)
    except EmbedvizError as exc:  # a damaged page met while reading
        print(f"embedviz: error: {printable(exc)}", file=err)
        return 2
    except sqlite3.DatabaseError as exc:
        print(f"embedviz: error: {printable(path)}: damaged statistics file ({exc})", file=err)
        return 2
    finally:
        storage.close()
    return 1 if errors else 0
