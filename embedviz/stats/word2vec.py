"""Word2VecStats: a gensim callback that records word2vec training into a storage."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from gensim.models.callbacks import CallbackAny2Vec

from embedviz._check import check_int
from embedviz.errors import InputError
from embedviz.stats.base import check_storage
from embedviz.stats.records import Snapshot, StaticInfo, Update
from embedviz.stats.sqlite_close import flush_at_close
from embedviz.stats.system import (
    hardware_info,
    memory_sample,
    new_session_id,
    software_info,
    start_cpu_measurement,
    unused_session_id,
)

log = logging.getLogger(__name__)

_HYPER = (
    "vector_size",
    "window",
    "min_count",
    "sg",
    "hs",
    "negative",
    "sample",
    "alpha",
    "min_alpha",
    "epochs",
    "workers",
    "cbow_mean",
    "ns_exponent",
    "seed",
)


class Word2VecStats(CallbackAny2Vec):
    """Record gensim word2vec (or FastText, Doc2Vec) training, one update per epoch.

    Each update (iteration = epoch number, counted from 1 across ``train`` calls) holds
    ``score`` and ``extra["loss"]`` -- the loss of that epoch alone (gensim reports a
    loss summed since ``train`` began; this records the difference) --
    ``extra["alpha"]`` (the learning rate reached at the end of the epoch),
    ``extra["words_per_sec"]`` (raw corpus words per second) and
    ``learning_rates = [alpha]``. Optionally the vectors of ``words`` are stored as a
    :class:`~embedviz.stats.records.Snapshot` (kind ``"word_vectors"``) every
    ``snapshot_every`` epochs and after the last one.

    Parameters
    ----------
    storage : StatsStorage
    session_id : str or None, default=None
        Default: a new id starting with ``word2vec-``. This and every later parameter
        are keyword-only.
    worker_id : str or None, default=None
        The worker this process records as. Default: ``"0"`` (gensim trains in one
        process; :class:`~embedviz.stats.listener.StatsListener` takes the
        torch.distributed rank).
    words : sequence of str or None
        Words whose vectors to snapshot; words missing from the vocabulary are skipped,
        with one warning naming them when training begins.
    snapshot_every : int, default=1
        Snapshot ``words`` every this many epochs (and after the last one); an update
        is recorded every epoch regardless.
    config : dict or None
        Stored with the static info besides the model's hyper-parameters.

    Notes
    -----
    Train with ``compute_loss=True`` for a loss; otherwise only alpha and speed are
    recorded. The callback pickles without its storage (gensim saves callbacks with the
    model), so a model loaded later records nothing.

    Examples
    --------
    >>> from gensim.models import Word2Vec
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> storage = InMemoryStatsStorage()
    >>> stats = Word2VecStats(storage, session_id="w2v", words=["a"])
    >>> model = Word2Vec([["a", "b", "c"]] * 50, vector_size=8, min_count=1, epochs=3,
    ...                  compute_loss=True, callbacks=[stats], workers=1)
    >>> [u.iteration for u in storage.get_updates("w2v")]
    [1, 2, 3]
    """

    def __init__(
        self,
        storage,
        *,
        session_id: str | None = None,
        worker_id: str | None = None,
        words: Sequence[str] | None = None,
        snapshot_every: int = 1,
        config: dict | None = None,
    ) -> None:
        snapshot_every = check_int("snapshot_every", snapshot_every, low=1)
        if words is not None and (
            isinstance(words, str) or not all(isinstance(w, str) for w in words)
        ):
            raise InputError(f"words: expected a list of strings, got {words!r:.60}")
        self.storage = check_storage(storage)
        self.worker_id = "0" if worker_id is None else str(worker_id)
        self.session_id = (
            unused_session_id(storage, str(session_id), self.worker_id)
            if session_id
            else new_session_id("word2vec")
        )
        self.words = list(words) if words is not None else None
        self.snapshot_every = snapshot_every
        self.config = dict(config or {})
        self.epoch = 0
        self._static_done = False
        self._loss_at_begin = 0.0
        self._t_begin = 0.0
        self._warned = False
        self._checked_words = False
        start_cpu_measurement()  # the first epoch's CPU load is then a real one

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["storage"] = None  # a storage holds connections and threads
        return state

    def _static(self, model) -> None:
        hyper = {k: getattr(model, k) for k in _HYPER if hasattr(model, k)}
        hyper = {
            k: v if isinstance(v, int | float | str | type(None)) else repr(v)
            for k, v in hyper.items()
        }
        config = {**hyper, "vocabulary_size": len(model.wv), **self.config}
        self.storage.put(StaticInfo(
            session_id=self.session_id, worker_id=self.worker_id, timestamp=time.time(),
            kind="word2vec", model_class=type(model).__name__,
            n_params=int(model.wv.vectors.size) * 2, optimizer={"class": "SGD",
            "param_groups": [{"lr": getattr(model, "alpha", None)}]},
            hardware=hardware_info(), software=software_info(), config=config,
        ))  # fmt: skip
        self._static_done = True

    def on_train_begin(self, model) -> None:
        if self.storage is not None and not self._static_done:
            self._static(model)
        if self.words and not self._checked_words:
            self._checked_words = True
            warn_missing_words(self.words, model.wv.key_to_index)

    def on_epoch_begin(self, model) -> None:
        self._loss_at_begin = float(model.get_latest_training_loss())
        self._t_begin = time.perf_counter()

    def on_epoch_end(self, model) -> None:
        if self.storage is None:
            return
        t0 = time.perf_counter()
        elapsed = t0 - self._t_begin
        self.epoch += 1
        update = Update(self.session_id, self.worker_id, self.epoch, time.time(), epoch=self.epoch)
        alpha = float(getattr(model, "min_alpha_yet_reached", getattr(model, "alpha", 0.0)))
        update.learning_rates = [alpha]
        update.extra["alpha"] = alpha
        if getattr(model, "compute_loss", False):
            loss = float(model.get_latest_training_loss()) - self._loss_at_begin
            update.score = loss
            update.extra["loss"] = loss
        elif not self._warned:
            if type(model).__name__ == "FastText":  # gensim's FastText computes no loss
                log.info(
                    "Word2VecStats: gensim's FastText reports no loss; recording alpha and speed"
                )
            else:
                log.warning("Word2VecStats: train with compute_loss=True to record the loss")
            self._warned = True
        words = getattr(model, "corpus_total_words", None)
        if words and elapsed > 0:
            update.extra["words_per_sec"] = words / elapsed
        update.memory = memory_sample()
        update.collect_seconds = time.perf_counter() - t0
        self.storage.put(update)
        last = self.epoch % max(getattr(model, "epochs", 1), 1) == 0
        if self.words and (self.epoch % self.snapshot_every == 0 or last):
            present = [w for w in self.words if w in model.wv.key_to_index]
            if present:
                vectors = model.wv[present].astype(float).tolist()
                self.storage.put(
                    Snapshot(
                        self.session_id,
                        self.worker_id,
                        self.epoch,
                        time.time(),
                        "word_vectors",
                        present,
                        vectors,
                    )
                )

    def on_train_end(self, model) -> None:
        if self.storage is not None:  # a few seconds at most; never raises for the file
            flush_at_close(self.storage, "Word2VecStats")


SHOWN_MISSING = 10  # missing words named in the warning; the rest are counted


def warn_missing_words(words: Sequence[str], vocabulary) -> list[str]:
    """Log one warning naming the ``words`` that are not in ``vocabulary`` (the first
    :data:`SHOWN_MISSING`, then a count), with their spelling in the vocabulary where it
    differs only in case; return the missing words.

    Examples
    --------
    >>> warn_missing_words(["king", "Queen"], {"king": 0, "queen": 1})
    ['Queen']
    """
    missing = list(dict.fromkeys(w for w in words if w not in vocabulary))
    if not missing:
        return missing
    folded: dict[str, str] = {}
    if len(vocabulary) <= 5_000_000:
        lower = {w.lower() for w in missing}
        for key in vocabulary:
            k = key.lower() if isinstance(key, str) else None
            if k in lower:
                folded.setdefault(k, key)
    shown = []
    for w in missing[:SHOWN_MISSING]:
        other = folded.get(w.lower())
        shown.append(f"{w!r} (the vocabulary has {other!r})" if other else repr(w))
    more = len(missing) - len(shown)
    log.warning(
        "Word2VecStats: %d of the %d words to snapshot are not in the vocabulary and are "
        "skipped: %s%s; check their spelling and case, or lower min_count",
        len(missing),
        len(dict.fromkeys(words)),
        ", ".join(shown),
        f" and {more} more" if more else "",
    )
    return missing
