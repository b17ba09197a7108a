"""One source of defaults for the Python API and the command line.

Both :class:`embedviz.TSNE` and ``embedviz tsne`` read these values; a test fails if
either drifts from them.
"""

TSNE_DEFAULTS = {
    "n_components": 2,
    "perplexity": 30.0,
    "theta": 0.5,
    "max_iter": 1000,
    "stop_lying_iter": 250,
    "early_exaggeration": 12.0,
    "learning_rate": "auto",
    "momentum": 0.5,
    "final_momentum": 0.8,
    "switch_momentum_iter": 250,
    "use_adagrad": False,
    "normalize": True,
    "pca_components": None,
    "init": "pca",
    "method": "barnes_hut",
    "metric": "euclidean",
    "random_state": None,
    "n_jobs": -1,
    "verbose": False,
    "callbacks": (),
    "callback_every": 50,
    "tolerance": 1e-5,
    "min_gain": 0.01,
    "reduce_perplexity": False,
}

# Word-vector maps (`embedviz tsne`, `plot_vocab`).
VOCAB_DEFAULTS = {
    "top": 5000,
    "dims": 2,
    "metric": "cosine",
    "clusters": 12,
    "seed": 42,
}

# Training statistics.
STATS_DEFAULTS = {
    "frequency": 10,
    "histogram_frequency": 100,
    "histogram_bins": 30,
}

UI_DEFAULTS = {
    "host": "127.0.0.1",
    "port": 9000,
}
