"""Records for the UI tests, built with the statistics dataclasses (planted values)."""

from __future__ import annotations

import math

import numpy as np

from embedviz.stats.records import (
    ActivationStats,
    EvalRecord,
    Histogram,
    LayerInfo,
    ParamStats,
    Snapshot,
    StaticInfo,
    Update,
)

EVIL = '<img src=x onerror="window.__xss=1">'
PARAMS = ["0.weight", "0.bias", "2.weight", EVIL + ".bias"]
LAYERS = ["0", "1", "2"]
NAN_AT, INF_AT = 120, 150  # iterations whose score is NaN / whose ratio is +inf


def static_info(session: str = "mlp", worker: str = "0", t0: float = 1.7e9) -> StaticInfo:
    return StaticInfo(
        session_id=session,
        worker_id=worker,
        timestamp=t0,
        kind="torch",
        model_class="MLP",
        n_params=1234,
        layers=[
            LayerInfo("0", "Linear", 1040, {"weight": [16, 64], "bias": [16]}),
            LayerInfo("1", "ReLU", 0, {}),
            LayerInfo("2", "Linear", 170, {"weight": [10, 16]}),
            LayerInfo(EVIL, "Linear", 24, {"bias": [24]}),
        ],
        optimizer={"class": "SGD", "param_groups": [{"lr": 0.1, "momentum": 0.9}]},
        hardware={"cpu_count": 2, "memory_bytes": 24 * 2**30, "gpus": []},
        software={"python": "3.11", "torch": "2.13", "os": "Linux", "hostname": EVIL},
        config={"batch_size": 32, "n_classes": 10},
    )


def ratio_of(i: int, k: int) -> float:
    """The planted update:parameter ratio of tensor k at iteration i."""
    return 10.0 ** (-3 + 0.5 * math.sin(i / 37.0 + k))


def make_update(session: str, worker: str, i: int, t0: float = 1.7e9, hist: bool = True):
    score = 2.3 * math.exp(-i / 300.0) + 0.05 * math.sin(i)
    if i == NAN_AT:
        score = math.nan
    params = {}
    for k, name in enumerate(PARAMS):
        r = ratio_of(i, k) if i != INF_AT else math.inf
        params[name] = ParamStats(
            param_mean=0.01 * k,
            param_std=0.1 + 0.01 * k,
            param_mean_magnitude=0.08,
            grad_mean=0.0,
            grad_std=0.01 * (k + 1),
            grad_mean_magnitude=0.005,
            update_mean=0.0,
            update_std=0.001 * (k + 1),
            update_mean_magnitude=0.08 * r,
            update_param_ratio=r,
        )
    acts = {
        name: ActivationStats(mean=0.1 * j, std=0.5 + 0.2 * j, zero_fraction=0.1)
        for j, name in enumerate(LAYERS)
    }
    hists = {}
    if hist and i % 10 == 0:
        hists = {
            "params": {name: Histogram(-1.0 - i / 1000, 1.0, [1, 3, 8, 3, 1]) for name in PARAMS},
            "updates": {name: Histogram(-0.01, 0.01, [2, 5, 2]) for name in PARAMS},
            "activations": {name: Histogram(0.0, 2.0, [4, 2, 1, 1]) for name in LAYERS},
        }
    return Update(
        session_id=session,
        worker_id=worker,
        iteration=i,
        timestamp=t0 + i * 0.1,
        score=score,
        examples_per_sec=3200.0,
        minibatches_per_sec=100.0,
        learning_rates=[0.1 * 0.999**i],
        params=params,
        activations=acts,
        histograms=hists,
        memory={"rss_bytes": 2e8 + i * 1e4, "cpu_percent": 50.0 + i % 7},
    )


def fill(storage, session: str = "mlp", workers=("0",), n: int = 200) -> None:
    for w in workers:
        storage.put(static_info(session, w))
    records = []
    for i in range(n):
        for w in workers:
            records.append(make_update(session, w, i))
            if i % 50 == 49:
                records.append(
                    EvalRecord(
                        session,
                        w,
                        i,
                        1.7e9 + i * 0.1,
                        {"accuracy": 0.5 + i / 1000, "val_loss": 1.0 - i / 500},
                    )
                )
    storage.put_many(records)


def fill_tsne(storage, session: str = "tsne-run", n_points: int = 30) -> None:
    rng = np.random.default_rng(0)
    storage.put(
        StaticInfo(session, "0", 1.7e9, kind="tsne", model_class="TSNE", config={"perplexity": 5})
    )
    for i in range(0, 300, 50):
        storage.put(
            Update(
                session,
                "0",
                i,
                1.7e9 + i,
                score=3.0 - i / 200,
                extra={"kl": 3.0 - i / 200, "grad_norm": 1.0},
                tags={"phase": "exaggeration" if i < 250 else "main"},
            )
        )
    emb = rng.normal(size=(n_points, 2))
    storage.put(
        Snapshot(
            session,
            "0",
            250,
            1.7e9 + 250,
            "embedding",
            [f"w{j}" for j in range(n_points - 1)] + [EVIL],
            emb.tolist(),
        )
    )


def w2v_alpha(epoch: int, epochs: int = 10) -> float:
    """The planted learning rate of a word2vec run at the end of ``epoch`` (linear decay)."""
    return 0.025 - (0.025 - 0.0001) * epoch / epochs


def fill_word2vec(storage, session: str = "w2v-run", epochs: int = 10) -> None:
    """A word2vec session as Word2VecStats records it: one update per epoch."""
    storage.put(
        StaticInfo(
            session,
            "0",
            1.7e9,
            kind="word2vec",
            model_class="Word2Vec",
            n_params=2 * 300 * 50,
            optimizer={"class": "SGD", "param_groups": [{"lr": 0.025}]},
            config={
                "vector_size": 50,
                "vocabulary_size": 300,
                "epochs": epochs,
                "window": 5,
                "sg": 0,
            },
        )
    )
    for e in range(1, epochs + 1):
        loss = 1.5e5 * (0.7 + 0.3 / e)
        storage.put(
            Update(
                session,
                "0",
                e,
                1.7e9 + 0.5 * e,
                score=loss,
                epoch=e,
                learning_rates=[w2v_alpha(e, epochs)],
                extra={
                    "loss": loss,
                    "alpha": w2v_alpha(e, epochs),
                    "words_per_sec": 1e6 + 1e4 * e,
                },
            )
        )
