"""The checks of :mod:`embedviz.stats.diagnostics`, one function per concept.

Each check reads series through :class:`_Run` and adds raw findings to it; the caller
(:func:`embedviz.stats.diagnostics.diagnose`) groups the same check over many tensors
into one finding. Thresholds and why they were chosen:

* score exploded: a jump, then a plateau. The level before a report is the median of
  the (up to) 3 finite scores before it; the score has exploded at the first report
  where the median of it and the next 2 is above ``SCORE_EXPLODED`` (4) times that
  level, and more than half of the scores from there on, and of the latest half of
  them, stay above it too. The level is measured just before the jump, not at the first
  report: an unusually high first loss (a bad initialisation) no longer hides a later
  explosion, a lucky low first minibatch no longer makes normal training look exploded,
  and a score that grows slowly (a loss term weighted up over the run) never jumps 4x
  within 3 reports. Minibatch noise moves single reports, not the median of 3 or of
  the rest of the run; a classifier whose typical loss is 4x its loss before is far
  worse than guessing. The median after the jump must also be above the 80th
  percentile of the (up to) 10 reports before it: near zero, a minibatch loss spreads
  over several times its level (0.004-0.1 late in the README's demo), and a dip of 3
  lucky reports followed by scores still inside that spread is noise, not a jump; one
  spike among those 10 does not hide a real jump after it. A slow climb is
  ``score_rising``.
* score flat: over at least 20 reports, the medians of the first and last quarter
  within 2 % of each other and the robust spread (1.4826 x the median absolute
  deviation) within 5 % of the level: minibatch noise of a few per cent (a run stuck at
  ln 10) no longer hides it, while a converged run with noisy small losses is not flat.
* update:parameter ratio: judged on the latest third of the reports (at least 3), so the
  verdict does not depend on how much history came before; an early phase out of the
  band is reported apart, as INFO. A bias is judged against its layer's weights (its own
  magnitude or the weights', the larger), since a bias that starts at zero has no scale
  of its own; bias findings are one severity lower (the rule of thumb is for weights).
* parameters diverging: growth of the mean magnitude measured from a floor (the first
  value, a tenth of the layer's weights' magnitude, and 1e-3, the largest), more than
  10x and still growing (by half) over the second half, or more than 1000x at once.
* activation std above 2 (a WARNING: it compounds layer by layer) or below 0.5 (a WARNING
  when 10x or more below, else INFO: sigmoid outputs and small nets sit there); not
  judged on layers that only reshape, pool or drop out (their statistics are those of
  the layer before), nor on dead layers (``dead_units`` says why).
"""

from __future__ import annotations

import math

import numpy as np

from embedviz.stats.diagnostics_run import (
    _ACT_STD_WARN,
    ACT_STD_HIGH,
    ACT_STD_LOW,
    RATIO_ERROR,
    RATIO_HIGH,
    RATIO_LOW,
    SCORE_EXPLODED,
    _demote,
    _fmt,
    _Run,
    _span,
    passes_through,
)
from embedviz.stats.diagnostics_schedule import check_schedule

# -- score ----------------------------------------------------------------------------


def check_score(run: _Run) -> None:
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
    values, its = s.values[~bad], s.iterations[~bad]  # the trend of the finite scores
    n = len(values)
    jump = _explosion(values)
    if jump is not None:
        at, level = jump
        since = values[at:]
        typical = float(np.median(since))
        before = min(at, _JUMP_WINDOW)
        run.add(
            "error", "score_exploded", None, (int(its[at]), int(its[-1])),
            f"score jumped from {_fmt(level)} (median of the {before} report(s) before) to "
            f"{_fmt(values[at])} at iteration {int(its[at])} and stayed high: median of "
            f"the {len(since)} reports since {_fmt(typical)} ({typical / level:.0f}x the "
            f"level before), latest {_fmt(values[-1])}",
            "the run diverged there (a step too large for the loss surface it reached): "
            "lower the learning rate (by about 10x), warm it up over the first iterations, "
            "or cap the gradient norm (torch.nn.utils.clip_grad_norm_); if a schedule "
            "raised the rate just before, lower its peak",
        )  # fmt: skip
        return
    if n < 8:
        return
    q = max(n // 4, 2)
    head, tail = float(np.mean(values[:q])), float(np.mean(values[-q:]))
    if tail > head + 0.1 * abs(head) and tail > head + 1e-12:
        run.add(
            "error", "score_rising", None, _span(its),
            f"mean score rose from {_fmt(head)} (first quarter) to {_fmt(tail)} (last quarter)",
            "the loss should fall: the learning rate is probably too high, or the gradient "
            "sign or loss definition is wrong",
        )  # fmt: skip
        return
    if n < 20:
        return
    mhead, mtail = float(np.median(values[:q])), float(np.median(values[-q:]))
    level = max(abs(mhead), 1e-12)
    spread = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    if abs(mtail - mhead) <= 0.02 * level and spread <= 0.05 * level:
        n_classes = n_classes_of(run)
        chance = ""
        if n_classes is not None:
            expected = math.log(n_classes)
            if abs(mtail - expected) <= 0.05 * expected:
                chance = f", the loss of guessing among {n_classes} classes"
        run.add(
            "warning", "score_flat", None, _span(its),
            f"score stayed near {_fmt(mtail)} over {n} reports (first-quarter median "
            f"{_fmt(mhead)}, spread {_fmt(spread)}{chance})",
            "nothing is being learned: the learning rate may be far too low, parameters "
            "frozen, units dead, or gradients not reaching the model",
        )  # fmt: skip


_JUMP_WINDOW = 3  # reports on each side of a jump: the level before, the level after
_RECENT = 10  # reports before a jump, most of which the level after must exceed


def _explosion(values: np.ndarray) -> tuple[int, float] | None:
    """``(index, level before)`` of the first report where the finite scores
    ``values`` jump above ``SCORE_EXPLODED`` times their level before (that report and
    the median of it and the next :data:`_JUMP_WINDOW` - 1) and above the 80th
    percentile of the :data:`_RECENT` reports before it, and stay there (see the module
    docstring); None when they never do, or when fewer than 4 reports or fewer than
    :data:`_JUMP_WINDOW` after the jump show it."""
    n, w = len(values), _JUMP_WINDOW
    if n < 4:
        return None
    pad = np.concatenate([np.full(w, np.nan), values, np.full(w, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(pad, w)  # windows[k] = pad[k:k+w]
    last = n - w  # the last report with w reports from it on
    if last < 1:
        return None
    with np.errstate(invalid="ignore"):
        before = np.nanmedian(windows[1 : last + 1], axis=1)  # values[j-w:j], j = 1..last
        after = np.median(windows[1 + w : last + 1 + w], axis=1)  # values[j:j+w]
        limits = SCORE_EXPLODED * before
        jumps = (before > 0) & (after > limits) & (values[1 : last + 1] > limits)
    candidates = np.flatnonzero(jumps) + 1
    for j in candidates:
        if after[j - 1] <= np.percentile(values[max(0, j - _RECENT) : j], 80):
            continue  # inside the spread of the scores just before: noise
        limit = limits[j - 1]
        since = values[j:]
        latest = since[len(since) // 2 :]
        if 2 * np.count_nonzero(since > limit) > len(since) and (
            2 * np.count_nonzero(latest > limit) > len(latest)
        ):
            return int(j), float(before[j - 1])
    return None


def n_classes_of(run: _Run) -> int | None:
    """The static info's ``config["n_classes"]`` when it is a class count (an int >= 2,
    or a float equal to one), else None (:func:`check_initial_loss` reports a bad one)."""
    config = run.static.config if run.static is not None else {}
    n = config.get("n_classes") if isinstance(config, dict) else None
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return n if type(n) is int and n >= 2 else None


def check_initial_loss(run: _Run) -> None:
    config = run.static.config if run.static is not None else {}
    n_classes = n_classes_of(run)
    if n_classes is None:
        given = config.get("n_classes") if isinstance(config, dict) else None
        if given is not None:  # given, but not a class count: say the check was skipped
            run.add(
                "warning", "bad_config", None, None,
                f"config n_classes is {given!r:.60} ({type(given).__name__}): expected the "
                "number of classes, an int >= 2; the initial-loss check (the first score "
                "of a classifier near ln(n_classes)) was skipped",
                "pass the number of classes as an int, e.g. StatsListener(..., "
                "config={'n_classes': 10}), or leave n_classes out for a model that is not "
                "a classifier",
            )  # fmt: skip
        return
    s = run.series("score")
    if not len(s) or not np.isfinite(s.values[0]):
        return
    start = config.get("start_iteration") if isinstance(config, dict) else None
    if isinstance(start, int) and 0 < start <= s.iterations[0]:
        return  # a run resumed from a checkpoint: its first score is not at initialisation
    expected = math.log(n_classes)
    got = float(s.values[0])
    if not expected / 2 <= got <= 2 * expected:
        run.add(
            "warning", "initial_loss", None, (int(s.iterations[0]), int(s.iterations[0])),
            f"first score {_fmt(got)}; a {n_classes}-class cross-entropy starts near "
            f"ln({n_classes}) = {_fmt(expected)}",
            "verify the loss at initialisation: the last layer's initial weights may be too "
            "large, the loss may be summed instead of averaged, or labels may be wrong",
        )  # fmt: skip


# -- update:parameter ratios ------------------------------------------------------------


def _is_bias(run: _Run, name: str) -> bool:
    """``fc.bias``, and PyTorch's other biases: ``in_proj_bias`` (MultiheadAttention),
    ``bias_ih_l0`` (LSTM, GRU)."""
    last = name.rpartition(".")[2]
    return last == "bias" or last.endswith("_bias") or last.startswith("bias_")


def _weight_of(bias: str) -> str:
    """The weight beside a bias: ``fc.weight``, ``in_proj_weight``, ``weight_ih_l0``."""
    head, dot, last = bias.rpartition(".")
    return head + dot + last.replace("bias", "weight")


def _against_weights(run: _Run, name: str, values, its):
    """A bias's ratios rescaled to the larger of its own and its layer's weights'
    mean magnitude (a bias that starts at zero has no scale of its own)."""
    weight = _weight_of(name)
    own_name = f"params/{name}/param_mean_magnitude"
    w_name = f"params/{weight}/param_mean_magnitude"
    if own_name not in run.names or w_name not in run.names:
        return values
    own, w = run.series(own_name), run.series(w_name)
    scale = []
    for got in (own, w):  # on the ratio's iterations (long runs are downsampled apart)
        ok = np.isfinite(got.values)
        if ok.sum() < 1:
            return values
        scale.append(np.interp(its, got.iterations[ok], got.values[ok]))
    p, ref = scale
    return values * p / np.maximum(np.maximum(p, ref), 1e-30)


def check_update_stats(run: _Run) -> None:
    """A PyTorch run whose reports record parameters but none has update statistics:
    the update checks below had nothing to read, which ``embedviz check`` must not pass
    silently. (A run that records no parameter at all, only a score, is not judged.)"""
    if run.static is None or run.static.kind != "torch" or not run.n_updates:
        return
    if run.with_suffix("params/", "/update_param_ratio"):
        return
    if not run.with_suffix("params/", "/param_mean_magnitude"):
        return
    n = run.n_updates
    reports = f"{n} report{'s' if n != 1 else ''}"
    if not run.static.optimizer:
        run.add(
            "warning", "no_update_stats", None, None,
            f"no update statistics recorded ({reports}, no optimizer given to the "
            "StatsListener): the update:parameter ratio checks could not run",
            "pass the optimizer: StatsListener(storage, model, optimizer, ...)",
        )  # fmt: skip
        return
    run.add(
        "warning", "no_update_stats", None, None,
        f"no update statistics recorded: none of the {reports} saw a step of the "
        "optimizer given to the StatsListener, so the update:parameter ratio checks "
        "could not run",
        "call listener.step() once per optimizer.step() (with gradient accumulation, after "
        "the step, not once per micro-batch), and give the listener the optimizer that is "
        "stepped (a re-created optimizer needs a new listener)",
    )  # fmt: skip


def check_ratios(run: _Run) -> None:
    medians: dict[str, float] = {}
    for name in run.with_suffix("params/", "/update_param_ratio"):
        s = run.series(f"params/{name}/update_param_ratio")
        finite = np.isfinite(s.values) & (s.values > 0)
        if finite.sum() < 2:
            continue
        values, its = s.values[finite], s.iterations[finite]
        bias = _is_bias(run, name)
        if bias:
            values = _against_weights(run, name, values, its)
        k = len(values)
        w = max(3, math.ceil(k / 3)) if k >= 6 else k  # the latest third
        median = float(np.median(values[-w:]))
        if not bias:
            medians[name] = median
        of = "of the latest third" if w < k else ""
        scaled = " (against its layer's weights)" if bias else ""
        span = _span(its[-w:])
        sev = _demote if bias else (lambda x: x)
        if median > RATIO_HIGH:
            run.add(
                sev("error" if median > RATIO_ERROR else "warning"), "ratio_high", name, span,
                f"median update:parameter ratio {of} {_fmt(median)}{scaled} (healthy near "
                f"1e-3, expected within [{RATIO_LOW:g}, {RATIO_HIGH:g}])".replace("  ", " "),
                "each step changes this tensor too much: lower the learning rate",
                about=f"median update:parameter ratio {of} (healthy near 1e-3, expected "
                f"within [{RATIO_LOW:g}, {RATIO_HIGH:g}])".replace("  ", " "),
                short=_fmt(median) + scaled,
            )  # fmt: skip
        elif median < RATIO_LOW:
            run.add(
                sev("warning"), "ratio_low", name, span,
                f"median update:parameter ratio {of} {_fmt(median)}{scaled} (healthy near "
                "1e-3)".replace("  ", " "),
                _low_advice(run, name),
                about=f"median update:parameter ratio {of} (healthy near 1e-3)".replace("  ", " "),
                short=_fmt(median) + scaled,
            )  # fmt: skip
        elif w < k:  # within the band now: was an early phase out of it?
            _early_phase(run, name, values[:-w], its[:-w], median, scaled, sev)
        _spikes(run, name, values, its)
    _vanishing(run, medians)


def _low_advice(run: _Run, name: str) -> str:
    if run.dead:  # no gradient passes back through them, and the layer after them sees
        # zero inputs: every weight of a chain through them gets (almost) no gradient
        return (
            "the dead units of "
            + ", ".join(f"layer {run.named(d)}" for d in run.dead)
            + " pass no gradient back to the layers before them and feed zeros to the "
            "layer after them: fix those first (see dead_units); raising the learning "
            "rate will not help"
        )
    return (
        "barely moving: the learning rate may be too low for this tensor, or its "
        "gradient vanishes on the way back from the loss through the later layers (the "
        "layers nearest the input learn slowest)"
    )


def _early_phase(run, name, values, its, median_now, scaled, sev) -> None:
    """Reports before the latest third whose rolling median (of 3) left the band: at
    least 3 of them, however long the healthy history after them."""
    if len(values) < 5:
        return
    rolling = np.median(np.lib.stride_tricks.sliding_window_view(values, 3), axis=1)
    high, low = np.flatnonzero(rolling > RATIO_HIGH), np.flatnonzero(rolling < RATIO_LOW)
    out, side = (high, "high") if len(high) >= len(low) else (low, "low")
    if len(out) < 3:
        return
    stop = min(out[-1] + 2, len(its) - 1)
    early = float(np.median(values[out[0] : stop + 1]))
    run.add(
        sev("info"), "ratio_early", name, (int(its[out[0]]), int(its[stop])),
        f"update:parameter ratio about {_fmt(early)}{scaled} early on ({side}er than "
        f"[{RATIO_LOW:g}, {RATIO_HIGH:g}]), {_fmt(median_now)} over the latest third",
        "an early phase out of the band is common while training settles (large first "
        "steps, no warm-up); nothing to do unless it comes back",
        about=f"update:parameter ratio early on, outside [{RATIO_LOW:g}, {RATIO_HIGH:g}] "
        "(now within it)",
        short=_fmt(early) + scaled,
    )  # fmt: skip


def _spikes(run: _Run, name: str, values, its) -> None:
    spikes: list[int] = []
    if len(values) > 10:  # the median of the 10 values before each one
        recent = np.median(np.lib.stride_tricks.sliding_window_view(values, 10)[:-1], axis=1)
        later = values[10:]
        spikes = (np.flatnonzero((later > 10 * recent) & (later > RATIO_HIGH)) + 10).tolist()
    if spikes:
        largest = float(values[spikes].max())
        at = int(its[spikes[int(np.argmax(values[spikes]))]])
        run.add(
            "warning", "ratio_spike", name, (int(its[spikes[0]]), int(its[spikes[-1]])),
            f"{'at least ' if run.downsampled else ''}{len(spikes)} ratio spike(s), "
            f"largest {_fmt(largest)} at iteration {at}",
            "exploding gradients: clip gradients (torch.nn.utils.clip_grad_norm_) or "
            "lower the learning rate",
        )  # fmt: skip


def _vanishing(run: _Run, medians: dict[str, float]) -> None:
    """Weights' ratios rising steadily with depth from below the band near the input."""
    known = sorted((run.position(n), n) for n in medians if run.position(n) < math.inf)
    if len(known) < 3:
        return
    names = [n for _, n in known]
    logs = np.log10([medians[n] for n in names])
    if medians[names[0]] >= RATIO_LOW or logs.max() - logs[0] < 3:
        return
    top = int(np.argmax(logs))
    rising = np.diff(logs[: top + 1])
    if top < 2 or np.mean(rising > 0) < 0.75:
        return
    per_layer = (logs[top] - logs[0]) / top
    low = [n for n in names[:top] if medians[n] < RATIO_LOW]
    run.add(
        "warning", "vanishing_gradients", ", ".join(low), None,
        f"the update:parameter ratio falls about {10**per_layer:.3g}x per layer towards the "
        f"input: {_fmt(medians[names[top]])} at {run.named(names[top])}, "
        f"{_fmt(medians[names[0]])} at {run.named(names[0])}",
        "vanishing gradients: the layers nearest the input barely learn. Use ReLU-type "
        "activations instead of sigmoid/tanh, a scaled initialisation (Kaiming, Xavier), "
        "normalisation layers or residual connections",
    )  # fmt: skip


# -- activations, parameters ----------------------------------------------------------


def check_activations(run: _Run) -> None:
    layers = [la for la in run.with_suffix("activations/", "/std")
              if not passes_through(run.types.get(la))]  # fmt: skip
    layers.sort(key=run.position)  # stable: storage order where the static info is missing
    output_layer = layers[-1] if len(layers) > 1 else None  # logits may be wide
    for layer in layers:
        if f"activations/{layer}/zero_fraction" in run.names:
            z = run.series(f"activations/{layer}/zero_fraction")
            zl = z.values[len(z) // 2 :]
            zmed = float(np.median(zl)) if len(zl) else math.nan
            if zmed > 0.9:
                run.dead.append(layer)
                run.add(
                    "error" if zmed >= 1.0 else "warning", "dead_units", layer,
                    _span(z.iterations),
                    f"{zmed:.0%} of the layer's outputs are exactly zero",
                    "dead ReLUs: lower the learning rate, use LeakyReLU/GELU, or check the "
                    "bias initialisation",
                    about="share of the layer's outputs that are exactly zero",
                    short=f"{zmed:.0%}",
                )  # fmt: skip
                continue  # its std says nothing more
        s = run.series(f"activations/{layer}/std")
        ok = np.isfinite(s.values)
        if ok.sum() < 1:
            continue
        values, its = s.values[ok], s.iterations[ok]
        median = float(np.median(values[len(values) // 2 :]))
        if len(values) >= 4 and values[0] > 0 and median < 0.1 * values[0]:
            run.add(
                "warning", "activations_collapsing", layer, _span(its),
                f"activation std fell from {_fmt(values[0])} to {_fmt(median)}",
                "the layer's outputs are collapsing towards a constant: check the "
                "initialisation, normalisation and learning rate",
                about="activation std fell from the first value to the median of the "
                "second half", short=f"{_fmt(values[0])} -> {_fmt(median)}",
            )  # fmt: skip
        elif layer != output_layer and not ACT_STD_LOW <= median <= ACT_STD_HIGH:
            below = median < ACT_STD_LOW
            off = ACT_STD_LOW / max(median, 1e-300) if below else median / ACT_STD_HIGH
            side = "below" if below else "above"
            run.add(
                "info" if below and off < _ACT_STD_WARN else "warning", "activation_std", layer,
                _span(its),
                f"median activation std {_fmt(median)}, {off:.3g}x {side} the healthy "
                f"[{ACT_STD_LOW:g}, {ACT_STD_HIGH:g}]",
                "poorly scaled activations slow training: consider a normalisation layer or "
                "a scaled initialisation (Kaiming for ReLU, Xavier for tanh)",
                about=f"median activation std (healthy within [{ACT_STD_LOW:g}, "
                f"{ACT_STD_HIGH:g}])", short=_fmt(median),
            )  # fmt: skip


def check_params(run: _Run) -> None:
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
                about="parameters became NaN/inf at iteration", short=str(first),
            )  # fmt: skip
            continue
        v, n = s.values, len(s)
        if n < 4:
            continue
        floor = max(float(v[0]), 1e-3)
        weight = f"params/{_weight_of(name)}/param_mean_magnitude"
        if _is_bias(run, name) and weight in run.names:
            w = run.series(weight)
            if len(w) and np.isfinite(w.values[0]):
                floor = max(floor, 0.1 * float(w.values[0]))
        q = max(1, n // 8)
        end = float(np.median(v[-q:]))
        mid = float(np.median(v[max(0, n // 2 - q) : n // 2 + q]))
        growth = end / floor
        still = end > 1.5 * mid
        if growth > 10 and (still or growth > 1000):
            how = ("and is still growing (x" + _fmt(end / mid) + " over the second half)"
                   if still else "at once, and stayed there")  # fmt: skip
            run.add(
                "warning", "params_diverging", name, _span(s.iterations),
                f"mean parameter magnitude grew from {_fmt(v[0])} to {_fmt(end)} "
                f"({growth:.3g}x) {how}",
                "the weights keep growing: lower the learning rate or add weight decay"
                if still else
                "the weights blew up early: lower the learning rate and clip gradients",
                about="mean parameter magnitude, first -> latest",
                short=f"{_fmt(v[0])} -> {_fmt(end)}",
            )  # fmt: skip


# dead units first: the ratio advice depends on them
CHECKS = (check_score, check_initial_loss, check_activations, check_update_stats,
          check_ratios, check_params, check_schedule)  # fmt: skip
