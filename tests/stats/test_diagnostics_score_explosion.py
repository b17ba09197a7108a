"""``score_exploded`` judged against the level just before a jump, not the first score
(issue 4): planted score curves. An unusually high first loss must not hide a later
explosion, nor make normal training after it look wrong; a loss that grows slowly on
purpose is not an explosion; a healthy run has no finding at all."""

import math
import time

import numpy as np

from embedviz.stats import diagnostics_checks
from embedviz.stats.diagnostics import diagnose
from embedviz.stats.records import StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage


def run_of(scores, step=10):
    """A run whose reports carry only ``scores``, one every ``step`` iterations."""
    storage = InMemoryStatsStorage()
    storage.put(StaticInfo("s", "0", 0.0))
    for i, score in enumerate(scores):
        storage.put(Update("s", "0", i * step, float(i), score=float(score)))
    return storage


def noisy(curve, n=40, noise=0.15, seed=3):
    rng = np.random.default_rng(seed)
    return [curve(i) * (1 + noise * rng.standard_normal()) for i in range(n)]


def exploded(storage):
    return [f for f in diagnose(storage) if f.check == "score_exploded"]


def test_an_explosion_after_an_unusually_high_first_loss_is_flagged():
    """First loss 60 (a bad initialisation), normal training near 2, then the loss
    jumps to ~40 at report 15 and stays there: 40 is far below 4x the first loss
    (the old reference, so it went unnoticed) but 20x the level before the jump."""
    normal = noisy(lambda i: 2.3 * math.exp(-i / 30), n=15)
    high = noisy(lambda i: 40.0, n=25, seed=5)
    scores = [60.0] + normal[1:] + high
    (f,) = exploded(run_of(scores))
    assert f.severity == "error"
    assert f.iterations == (150, 390)  # report 15 to the last
    level = float(np.median(scores[12:15]))  # the three reports before the jump
    assert f"score jumped from {level:.3g} (median of the 3 report(s) before)" in f.evidence
    assert "iteration 150" in f.evidence
    assert "lower the learning rate" in f.advice and "clip_grad_norm_" in f.advice


def test_a_high_first_loss_followed_by_normal_training_is_not_flagged():
    scores = [60.0] + noisy(lambda i: 2.3 * math.exp(-i / 12))[1:]
    assert exploded(run_of(scores)) == []


def test_a_loss_that_starts_low_and_grows_slowly_on_purpose_is_not_an_explosion():
    """A VAE's loss while the weight of its KL term is raised from 0 to 1 over 25
    reports: 0.05 -> 0.65, 13x the first score (the old check called it an explosion),
    but never 4x within 3 reports. (``score_rising`` may say it rose: it did.)"""
    scores = noisy(lambda i: 0.05 + 0.6 * min(1.0, i / 25), noise=0.05)
    assert scores[-1] > 8 * scores[0]
    assert exploded(run_of(scores)) == []


def test_an_explosion_at_the_first_step_is_still_flagged():
    """lr far too high: 2.3 at the first report, then ~80 from the second on."""
    scores = [2.3] + noisy(lambda i: 80.0, n=30)[1:]
    (f,) = exploded(run_of(scores))
    assert f.iterations == (10, 290) and "from 2.3 (median of the 1 report(s) before)" in (
        f.evidence
    )


def test_spikes_and_a_jump_in_the_last_reports_are_not_an_explosion():
    """Single 10x spikes in a falling loss, and a jump in the last two reports (too
    few reports after it to tell an explosion from a spike yet)."""
    spiky = [v * (10 if i % 9 == 4 else 1) for i, v in enumerate(noisy(lambda i: 2.3 / (1 + i)))]
    assert exploded(run_of(spiky)) == []
    late = noisy(lambda i: 1.0, n=30) + [30.0, 32.0]
    assert exploded(run_of(late)) == []


# The score of the README's demo (``scripts/demo_train.py``, seed 0: an MLP on digits,
# validation accuracy 0.967), every 10 iterations: late in the run the minibatch loss
# spreads over 0.003-0.14.
DEMO = [2.3211, 2.3185, 2.1639, 1.9067, 1.3982, 1.0287, 0.4666, 0.3409, 0.3175, 0.4443,
        0.3888, 0.1921, 0.3575, 0.1267, 0.2424, 0.1901, 0.1947, 0.3487, 0.2101, 0.2813,
        0.0653, 0.092, 0.0314, 0.1532, 0.0498, 0.059, 0.0345, 0.0645, 0.0297, 0.133,
        0.0817, 0.0943, 0.0174, 0.0212, 0.0254, 0.0336, 0.0156, 0.0606, 0.0266, 0.0188,
        0.0847, 0.0723, 0.1371, 0.014, 0.1, 0.0463, 0.0246, 0.0965, 0.0251, 0.0871,
        0.0166, 0.023, 0.0324, 0.0058, 0.022, 0.0039, 0.0293, 0.029, 0.0125, 0.0101,
        0.0231, 0.0026, 0.0233, 0.026, 0.0398]  # fmt: skip


def test_noise_after_a_lucky_dip_near_zero_is_not_an_explosion():
    """The demo's last reports: three lucky minibatches (0.0058, 0.022, 0.0039), then
    scores back inside the spread of the ten before them (median 0.023 is 4x the dip,
    but the ten before reached 0.097). It was flagged as an ERROR, which failed
    ``embedviz check`` on the README's own healthy example."""
    values = np.array(DEMO)
    assert np.median(values[56:59]) > 4 * np.median(values[53:56])  # 4x the dip
    assert exploded(run_of(DEMO)) == []
    # the same noise after a real explosion of that run is still one
    blown = DEMO[:50] + [3.0 * (1 + 0.1 * math.sin(i)) for i in range(15)]
    (f,) = exploded(run_of(blown))
    assert f.iterations == (500, 640)


def test_one_spike_before_a_jump_does_not_hide_it():
    """Steady at 1, one spike of 8 among the ten reports before a jump to a steady 6x."""
    scores = [1.0] * 20 + [8.0] + [1.0] * 5 + [6.0] * 20
    (f,) = exploded(run_of(scores))
    assert f.iterations == (260, 450)


def test_a_healthy_noisy_run_has_no_finding():
    assert diagnose(run_of(noisy(lambda i: 2.3 * math.exp(-i / 15) + 0.1, n=60))) == []


def test_the_scan_is_fast_on_the_longest_series():
    """10,000 points (the series are read downsampled to that many), with a jump
    every 5 reports that never stays high."""
    values = np.tile([1.0, 1.0, 1.0, 100.0, 100.0], 2000)
    values[-5:] = 1.0
    start = time.perf_counter()
    assert diagnostics_checks._explosion(values) is None
    assert time.perf_counter() - start < 1.0
