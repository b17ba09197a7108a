"""Diagnostics on records that plant the faults of review 5 (items 1, 3, 4, 9, 10, 18),
each beside a healthy run that must stay clean. The curves follow the review's runs on
the digits (lr 50, zero biases, 8 sigmoid layers, dead ReLUs, a CNN)."""

import json
import math
from dataclasses import asdict

import numpy as np
import pytest

from embedviz.stats.diagnostics import diagnose, format_finding, iterations_text, where_of
from embedviz.stats.records import ActivationStats, LayerInfo, ParamStats, StaticInfo, Update
from embedviz.stats.storage import InMemoryStatsStorage

MLP = [("0", "Linear"), ("1", "ReLU"), ("2", "Linear"), ("3", "ReLU"), ("4", "Linear")]


def plant(n=35, score=None, params=None, acts=None, layers=MLP, config=None, step=5):
    """A run of ``n`` reports. ``params``: name -> (magnitude(i), ratio(i));
    ``acts``: layer -> (std(i), zero_fraction(i)). Defaults: healthy."""
    if params is None:
        params = {f"{k}.{p}": (lambda i: 0.1, lambda i: 1e-3)
                  for k, t in layers if t == "Linear" for p in ("weight", "bias")}  # fmt: skip
    if acts is None:
        acts = {k: (lambda i: 1.0, lambda i: 0.0) for k, _ in layers}
    storage = InMemoryStatsStorage()
    info = [LayerInfo(k, t, 10 if t in ("Linear", "Conv2d") else 0) for k, t in layers]
    storage.put(StaticInfo("s", "0", 0.0, layers=info, config=config or {}))
    rng = np.random.default_rng(0)
    for i in range(n):
        ps = {}
        for name, (mag, ratio) in params.items():
            m, r = float(mag(i)), float(ratio(i))
            ps[name] = ParamStats(0.0, m, m, update_mean_magnitude=r * m, update_param_ratio=r)
        s = score(i) if score else 2.3 * math.exp(-i / 10) * (1 + 0.3 * rng.standard_normal())
        storage.put(
            Update("s", "0", i * step, float(i), score=abs(s), learning_rates=[0.1], params=ps,
                   activations={k: ActivationStats(0.0, float(sd(i)), float(z(i)))
                                for k, (sd, z) in acts.items()})
        )  # fmt: skip
    return storage


def found(storage, severity=None):
    return [f for f in diagnose(storage) if severity is None or f.severity == severity]


def named(storage, check):
    return [f for f in diagnose(storage) if f.check == check]


def test_a_healthy_planted_run_is_clean():
    assert found(plant()) == []


# -- 1: a score that explodes early and stays high --------------------------------------


def exploded(i):  # lr=50: 2.32, 49.9, 117, ... ending near 15
    return 2.32 if i == 0 else 80 * (1 + 0.4 * math.sin(i)) * (1 - i / 45)


def test_score_that_explodes_and_stays_high_is_an_error():
    (f,) = named(plant(score=exploded), "score_exploded")
    assert f.severity == "error" and f.iterations == (5, 170)
    assert "2.32" in f.evidence and "iteration 5" in f.evidence
    assert "lower the learning rate" in f.advice
    # lr=1e4: 2.32 then tens of thousands
    (f,) = named(plant(score=lambda i: 2.32 if i == 0 else 2e4 + 1e4 * math.sin(i)),
                 "score_exploded")  # fmt: skip
    assert f.severity == "error"


@pytest.mark.parametrize(
    "curve",
    [
        # minibatch noise on a falling loss, with rare 6x spikes
        lambda i: 2.3 * math.exp(-i / 8) * (6 if i % 11 == 5 else 1) + 0.05,
        # a t-SNE KL: early exaggeration plateau, then the drop
        lambda i: 4.0 if i < 5 else 2.57 + 0.2 * math.exp(-(i - 5) / 3),
        # word2vec's per-epoch loss (12 epochs)
        lambda i: 103_000 + 48_000 * math.exp(-i),
        # a loss that starts low and settles a little above it (no explosion)
        lambda i: 0.5 + 0.6 * (1 - math.exp(-i / 3)),
    ],
)
def test_no_explosion_on_healthy_curves(curve):
    assert named(plant(score=curve), "score_exploded") == []


def test_an_early_spike_that_recovers_is_not_an_explosion():
    assert named(plant(score=lambda i: 40.0 if i in (1, 2) else 2.3 / (1 + i)),
                 "score_exploded") == []  # fmt: skip


# -- 3: biases that start at zero -------------------------------------------------------


def zero_bias_params(final=0.25):
    """The review's zerobias run: biases 0 -> ~final and settling, weights 0.06 -> 0.12;
    ratios high while training settles (StepLR lowers the rate later)."""
    grow = lambda top: lambda i: top * min(1.0, i / 15) + 1e-5  # noqa: E731
    ratio_w = lambda i: 0.015 if i < 24 else 0.002  # noqa: E731
    ratio_b = lambda i: 1.0 / (1 + i) if i < 24 else 0.01  # noqa: E731
    out = {}
    for k in ("0", "2", "4"):
        out[f"{k}.weight"] = (lambda i: 0.06 + 0.06 * min(1.0, i / 20), ratio_w)
        out[f"{k}.bias"] = (grow(final), ratio_b)
    return out


def test_zero_initialised_biases_give_no_warning():
    storage = plant(params=zero_bias_params())
    assert [f for f in diagnose(storage) if f.severity != "info"] == []


def test_parameters_that_keep_growing_or_blow_up_are_still_flagged():
    still = {"0.weight": (lambda i: 0.05 * 1.15**i, lambda i: 1e-3)}
    (f,) = named(plant(params=still), "params_diverging")
    assert "still growing" in f.evidence and "weight decay" in f.advice
    blown = {"0.weight": (lambda i: 0.09 if i == 0 else 3e4, lambda i: 1e-3)}
    (f,) = named(plant(params=blown), "params_diverging")
    assert "blew up" in f.advice


def test_tiny_biases_growing_from_zero_are_not_diverging():
    """The vanishing run: biases 2e-17 -> 8e-12, still growing but far below any scale."""
    tiny = {"0.weight": (lambda i: 0.008, lambda i: 1e-3),
            "0.bias": (lambda i: 2e-17 * 1.5**i, lambda i: 1e-3)}  # fmt: skip
    assert named(plant(params=tiny), "params_diverging") == []


def test_bias_ratio_is_judged_against_its_layers_weights():
    # a bias at 1e-4 moving 1e-5 a step: ratio 0.1 of itself, 1e-4 of its weights (0.1)
    params = {"0.weight": (lambda i: 0.1, lambda i: 1e-3),
              "0.bias": (lambda i: 1e-4, lambda i: 0.1)}  # fmt: skip
    assert [f for f in diagnose(plant(params=params)) if f.check == "ratio_high"] == []
    # the same ratio on a weight is an error
    (f,) = named(plant(params={"0.weight": (lambda i: 0.1, lambda i: 0.2)}), "ratio_high")
    assert f.severity == "error"


# -- 4: contradictory and noisy advice ---------------------------------------------------


def dead_run(ratio_first=1e-6):
    params = {"0.weight": (lambda i: 3e4, lambda i: ratio_first),
              "2.weight": (lambda i: 2e5, lambda i: ratio_first),
              "4.weight": (lambda i: 0.1, lambda i: 1e-3)}  # fmt: skip
    acts = {"0": (lambda i: 1.0, lambda i: 0.0), "1": (lambda i: 0.0, lambda i: 1.0),
            "2": (lambda i: 1.0, lambda i: 0.0), "3": (lambda i: 0.0, lambda i: 1.0),
            "4": (lambda i: 1.0, lambda i: 0.0)}  # fmt: skip
    return plant(params=params, acts=acts)


def test_ratio_low_before_dead_units_blames_them_not_the_learning_rate():
    storage = dead_run()
    (low,) = named(storage, "ratio_low")
    assert low.layers == ("0.weight", "2.weight")
    assert "raise the learning rate" not in low.advice and "dead units" in low.advice
    assert "layer 1 (ReLU)" in low.advice
    (dead,) = named(storage, "dead_units")  # one finding for both layers
    assert dead.severity == "error" and dead.layers == ("1", "3")
    assert dead.where == "layers 1 (ReLU), 3 (ReLU)"
    # no contradicting "collapsing"/"activation std" finding on the dead layers
    assert not [f for f in diagnose(storage) if f.check.startswith("activation")]


def test_ratio_low_without_dead_units_gives_the_right_direction():
    (low,) = named(plant(params={"0.weight": (lambda i: 0.1, lambda i: 1e-6)}), "ratio_low")
    assert "upstream" not in low.advice and "through the later layers" in low.advice


@pytest.mark.parametrize(("std", "severity"), [(0.008, "warning"), (0.3, "info"),
                                               (5.0, "warning")])  # fmt: skip
def test_activation_std_severity_grows_with_the_distance(std, severity):
    acts = {"0": (lambda i: std, lambda i: 0.0), "4": (lambda i: 1.0, lambda i: 0.0)}
    (f,) = named(plant(acts=acts), "activation_std")
    assert f.severity == severity


def test_a_flat_noisy_score_at_chance_level_is_flat():
    """The vanishing run: ln(10) +- 2.5 % minibatch noise for the whole run."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.025, 35)
    storage = plant(score=lambda i: math.log(10) * (1 + noise[i]), config={"n_classes": 10})
    (f,) = named(storage, "score_flat")
    assert f.severity == "warning" and "guessing among 10 classes" in f.evidence
    # a healthy falling score with the same noise is not flat
    falling = plant(score=lambda i: math.log(10) * (1 + noise[i]) / (1 + i / 5))
    assert named(falling, "score_flat") == []


def vanishing_params():
    """8 sigmoid layers: ratios falling ~1000x per layer towards the input."""
    out = {}
    for depth, k in enumerate(("0", "2", "4", "6", "8")):
        r = 10.0 ** (-15 + 3 * depth)
        out[f"{k}.weight"] = (lambda i: 0.008, lambda i, r=r: r)
    return out


VANISH = [(str(i), "Linear" if i % 2 == 0 else "Sigmoid") for i in range(9)]


def test_one_check_over_many_tensors_is_one_finding_with_each_evidence():
    storage = plant(params=vanishing_params(), layers=VANISH,
                    acts={str(i): (lambda i: 0.01, lambda i: 0.0) for i in range(9)})  # fmt: skip
    (low,) = named(storage, "ratio_low")
    assert low.layers == ("0.weight", "2.weight", "4.weight", "6.weight")
    assert low.layer == "0.weight, 2.weight, 4.weight, 6.weight"
    assert len(low.details) == 4 and "1e-15" in low.details[0] and "1e-06" in low.details[3]
    assert low.where.startswith("tensors 0.weight (Linear), 2.weight (Linear)")
    (van,) = named(storage, "vanishing_gradients")
    assert "1e+03x per layer" in van.evidence and "ReLU" in van.advice
    assert van.layers == low.layers and van.details == ()
    (std,) = named(storage, "activation_std")  # 8 layers (not the output), one finding
    assert len(std.layers) == 8 and std.severity == "warning"
    assert len(diagnose(storage)) <= 5
    json.dumps(asdict(low))  # the UI sends findings as JSON


def test_no_vanishing_finding_on_a_healthy_deep_net():
    params = {f"{k}.weight": (lambda i: 0.1, lambda i: 1e-3) for k in ("0", "2", "4", "6")}
    assert named(plant(params=params, layers=VANISH), "vanishing_gradients") == []


# -- 9: layers that only reshape or pool ---------------------------------------------------

CNN = [("0", "Unflatten"), ("1", "Conv2d"), ("2", "ReLU"), ("3", "MaxPool2d"), ("4", "Flatten"),
       ("5", "Linear")]  # fmt: skip


def test_reshaping_and_pooling_layers_are_not_judged_but_dead_relus_are():
    acts = {k: (lambda i: 0.01, lambda i: 0.0) for k, _ in CNN}
    storage = plant(acts=acts, layers=CNN, params={})
    (std,) = named(storage, "activation_std")
    assert std.layers == ("1", "2") and std.where == "layers 1 (Conv2d), 2 (ReLU)"
    dead = {k: (lambda i: 0.0, lambda i: 1.0) for k in ("2", "3", "4")}
    dead.update({k: (lambda i: 1.0, lambda i: 0.0) for k in ("0", "1", "5")})
    (f,) = named(plant(acts=dead, layers=CNN, params={}), "dead_units")
    assert f.layers == ("2",) and f.where == "layer 2 (ReLU)"


# -- 10: the ratio verdict judges the latest window -----------------------------------------


@pytest.mark.parametrize("n", [60, 120, 240])
def test_ratio_verdict_does_not_depend_on_run_length(n):
    """30 reports at 3e-2 while training settles, then 1e-3: no ratio_high at any length;
    the early phase is one INFO finding naming its iterations."""
    params = {"0.weight": (lambda i: 0.1, lambda i: 0.03 if i < 30 else 1e-3)}
    found_ = diagnose(plant(n=n, params=params))
    assert [f.check for f in found_] == ["ratio_early"]
    (early,) = found_
    assert early.severity == "info" and early.iterations[0] == 0
    assert 140 <= early.iterations[1] <= 160 and "0.03" in early.evidence


def test_ratio_still_high_in_the_latest_window_is_a_warning():
    params = {"0.weight": (lambda i: 0.1, lambda i: 1e-3 if i < 60 else 0.03)}
    (f,) = named(plant(n=90, params=params), "ratio_high")
    assert f.severity == "warning" and f.iterations[0] >= 300


# -- 18: wording ------------------------------------------------------------------------------


def test_wording():
    assert iterations_text((0, 0)) == "iteration 0"
    assert where_of("lr_flat", "lr/0") == "learning rate (group 0)"
    storage = plant(config={"lr_scheduler": "StepLR"})
    (flat,) = named(storage, "lr_flat")
    assert flat.where == "learning rate (group 0)"
    assert "lr/0" not in format_finding(flat) and "learning rate (group 0)" in format_finding(flat)
    init = plant(n=5, score=lambda i: 9.0, config={"n_classes": 10})
    (f,) = named(init, "initial_loss")
    assert "iteration 0:" in format_finding(f) and "0-0" not in format_finding(f)


# -- the same code on a t-SNE and a word2vec run (their score is a KL, a per-epoch loss) ----


def test_a_real_tsne_run_has_no_finding():
    from sklearn.datasets import load_digits

    from embedviz import TSNE
    from embedviz.stats.tsne_stats import TSNEStats

    storage = InMemoryStatsStorage()
    stats = TSNEStats(storage, session_id="t")
    TSNE(max_iter=500, random_state=0, callbacks=[stats], callback_every=25).fit(
        load_digits().data[:300]
    )
    stats.close()
    kl = storage.get_series("t", "0", "score").values
    assert len(kl) >= 15 and kl[-1] < kl[0]  # the KL fell: a real run was diagnosed
    assert diagnose(storage) == []


def test_a_real_word2vec_run_has_no_finding():
    pytest.importorskip("gensim")
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence
    from gensim.test.utils import datapath

    from embedviz.stats.word2vec import Word2VecStats

    storage = InMemoryStatsStorage()
    stats = Word2VecStats(storage, session_id="w")
    Word2Vec(LineSentence(datapath("lee_background.cor")), vector_size=20, min_count=3,
             epochs=12, workers=1, seed=1, compute_loss=True, callbacks=[stats])  # fmt: skip
    assert len(storage.get_series("w", "0", "score")) == 12
    assert diagnose(storage) == []


def test_every_series_is_read_once():
    """On SQLite each read is a pass over the file: the bias ratios and the growth check
    reuse the magnitudes already read instead of asking again."""
    storage = plant(params=zero_bias_params())
    asked: list[str] = []
    inside = []  # the in-memory get_series_many reads through get_series
    one, many = storage.get_series, storage.get_series_many

    def get_series(sid, wid, name, *a, **k):
        if not inside:
            asked.append(name)
        return one(sid, wid, name, *a, **k)

    def get_series_many(sid, wid, names, *a, **k):
        asked.extend(names)
        inside.append(1)
        try:
            return many(sid, wid, names, *a, **k)
        finally:
            inside.pop()

    storage.get_series, storage.get_series_many = get_series, get_series_many
    diagnose(storage)
    assert "params/0.weight/param_mean_magnitude" in asked
    assert len(asked) == len(set(asked))
