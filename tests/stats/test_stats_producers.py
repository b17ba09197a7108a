"""Word2VecStats and TSNEStats write sessions like any training run (issue 4 §4)."""

import pickle

import numpy as np
import pytest
from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence
from gensim.test.utils import datapath

from embedviz.errors import InputError
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.stats.tsne_stats import TSNEStats
from embedviz.stats.word2vec import Word2VecStats


def test_word2vec_per_epoch_loss_alpha_and_snapshots(tmp_path):
    storage = SQLiteStatsStorage(tmp_path / "w2v.db")
    stats = Word2VecStats(storage, session_id="w2v", words=["the", "government", "zzz-missing"])
    sentences = list(LineSentence(datapath("lee_background.cor")))[:150]
    model = Word2Vec(
        sentences, vector_size=16, min_count=2, epochs=4, compute_loss=True,
        callbacks=[stats], workers=1, seed=3,
    )  # fmt: skip
    updates = storage.get_updates("w2v")
    assert [u.iteration for u in updates] == [1, 2, 3, 4]
    losses = [u.extra["loss"] for u in updates]
    assert all(v > 0 for v in losses)
    # gensim's number is cumulative over the train() call; ours are the per-epoch parts
    assert sum(losses) == pytest.approx(model.get_latest_training_loss(), rel=1e-6)
    alphas = [u.extra["alpha"] for u in updates]
    assert alphas == sorted(alphas, reverse=True)
    assert alphas[-1] == pytest.approx(model.min_alpha_yet_reached)
    assert all(u.extra["words_per_sec"] > 0 for u in updates)
    info = storage.get_static_info("w2v", "0")
    assert info.kind == "word2vec" and info.config["vector_size"] == 16
    snaps = storage.get_snapshots("w2v", kind="word_vectors")
    assert [s.iteration for s in snaps] == [1, 2, 3, 4]
    assert snaps[-1].labels == ["the", "government"]
    np.testing.assert_allclose(snaps[-1].array(), model.wv[["the", "government"]], rtol=1e-6)
    pickle.loads(pickle.dumps(model))  # gensim keeps callbacks on the model
    storage.close()


def test_word2vec_bad_arguments():
    with pytest.raises(InputError, match="snapshot_every"):
        Word2VecStats(InMemoryStatsStorage(), snapshot_every=0)
    with pytest.raises(InputError, match="words"):
        Word2VecStats(InMemoryStatsStorage(), words="king")


def test_tsne_stats_records_kl_grad_norm_phase_and_last_embedding():
    storage = InMemoryStatsStorage()
    stats = TSNEStats(storage, session_id="t", config={"perplexity": 30.0}, labels=["a", "b", "c"])
    assert stats.wants_info is True
    rng = np.random.default_rng(0)
    embeddings = {}
    for it, phase in ((50, "exaggeration"), (100, "exaggeration"), (150, "main")):
        emb = rng.normal(size=(3, 2))
        embeddings[it] = emb.copy()
        info = {
            "phase": phase,
            "grad_norm": 1.0 / it,
            "exaggeration": 12.0,
            "momentum": 0.5,
            "learning_rate": 200.0,
            "elapsed": it / 100,
            "n_samples": 3,
            "max_iter": 1000,
        }
        assert stats(it, 3.0 - it / 100, emb, info) is None
        emb[:] = 0  # the estimator reuses its buffer; stored values must not change
    stats.close()
    updates = storage.get_updates("t")
    assert [u.extra["kl"] for u in updates] == pytest.approx([2.5, 2.0, 1.5])
    assert [u.extra["grad_norm"] for u in updates] == pytest.approx([1 / 50, 1 / 100, 1 / 150])
    assert [u.tags["phase"] for u in updates] == ["exaggeration", "exaggeration", "main"]
    info = storage.get_static_info("t", "0")
    assert info.kind == "tsne" and info.config == {
        "perplexity": 30.0,
        "n_samples": 3,
        "max_iter": 1000,
    }
    (snap,) = storage.get_snapshots("t", kind="embedding")
    assert snap.iteration == 150 and snap.labels == ["a", "b", "c"]
    np.testing.assert_array_equal(snap.array(), embeddings[150])
    series = storage.get_series("t", "0", "extra/kl")
    assert series.iterations.tolist() == [50, 100, 150]


@pytest.mark.slow  # numba compiles the t-SNE kernels on a cold cache
def test_tsne_stats_with_the_real_estimator():
    from sklearn.datasets import load_digits

    from embedviz import TSNE

    X = load_digits().data[:150]
    storage = InMemoryStatsStorage()
    stats = TSNEStats(storage, session_id="real", config={"perplexity": 10.0})
    tsne = TSNE(
        perplexity=10.0, max_iter=120, stop_lying_iter=50, switch_momentum_iter=50,
        callback_every=25, random_state=0, callbacks=[stats],
    )  # fmt: skip
    embedding = tsne.fit_transform(X)
    stats.close()
    updates = storage.get_updates("real")
    assert [u.iteration for u, _ in zip(updates, tsne.kl_history_, strict=True)] == [
        it for it, _ in tsne.kl_history_
    ]
    assert [u.extra["kl"] for u in updates] == pytest.approx([kl for _, kl in tsne.kl_history_])
    assert {u.tags["phase"] for u in updates} == {"exaggeration", "main"}
    (snap,) = storage.get_snapshots("real")
    np.testing.assert_allclose(snap.array(), embedding)


def test_word2vec_warns_once_naming_the_words_missing_from_the_vocabulary(caplog):
    # review 5 #13: the snapshot list's missing words were skipped without a word
    sentences = list(LineSentence(datapath("lee_background.cor")))[:150]
    vocab = {w for s in sentences for w in s}
    assert "australia" not in vocab and "Australia" in vocab  # capitalised in the corpus
    absent = [f"zzz{i}" for i in range(12)]
    words = ["the", "australia", *absent]
    stats = Word2VecStats(InMemoryStatsStorage(), session_id="w", words=words)
    with caplog.at_level("WARNING", logger="embedviz.stats.word2vec"):
        Word2Vec(sentences, vector_size=8, min_count=1, epochs=2, callbacks=[stats], workers=1)
    warned = [r.getMessage() for r in caplog.records if "vocabulary" in r.getMessage()]
    assert len(warned) == 1  # once, not per epoch
    text = warned[0]
    assert "13 of the 14 words" in text
    assert "'australia' (the vocabulary has 'Australia')" in text
    assert "'zzz8'" in text and "'zzz9'" not in text and "and 3 more" in text
    assert "'the'" not in text
    snaps = stats.storage.get_snapshots("w", kind="word_vectors")
    assert snaps[-1].labels == ["the"]


def test_word2vec_records_no_cpu_percent_of_zero_for_the_first_epoch():
    # review 5 #16: the CPU measurement started right before the first sample, so the
    # first cpu_percent was always 0; the producer now starts it when it is created
    import time

    from embedviz.stats import system

    system._PROCESS = None  # as in a fresh process
    storage = InMemoryStatsStorage()
    stats = Word2VecStats(storage, session_id="w")
    end = time.process_time() + 0.3
    while time.process_time() < end:  # CPU work between creation and the first epoch
        pass
    sentences = list(LineSentence(datapath("lee_background.cor")))[:50]
    Word2Vec(sentences, vector_size=8, min_count=1, epochs=1, callbacks=[stats], workers=1)
    first = storage.get_updates("w")[0].memory
    assert first["cpu_percent"] > 5.0


def test_memory_sample_omits_a_cpu_percent_it_cannot_measure():
    import time

    from embedviz.stats import system

    system._PROCESS = None  # nothing started the measurement
    assert "cpu_percent" not in system.memory_sample()  # not a made-up 0
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert system.memory_sample()["cpu_percent"] > 5.0


def _burn_cpu(seconds):
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_listener_and_tsne_stats_first_cpu_percent_is_measured():
    """Both producers start the CPU measurement when created, as Word2VecStats does."""
    torch = pytest.importorskip("torch")
    from embedviz.stats import system
    from embedviz.stats.listener import StatsListener

    system._PROCESS = None  # as in a fresh process
    storage = InMemoryStatsStorage()
    model = torch.nn.Linear(3, 2)
    with StatsListener(storage, model, frequency=1, session_id="l") as listener:
        _burn_cpu(0.3)
        listener.step(1.0)
    assert storage.get_updates("l")[0].memory["cpu_percent"] > 5.0

    system._PROCESS = None
    stats = TSNEStats(storage, session_id="t")
    _burn_cpu(0.3)
    stats(50, 2.0, np.zeros((4, 2)))
    assert storage.get_updates("t")[0].memory["cpu_percent"] > 5.0
