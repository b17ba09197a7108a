"""TSNEStats: a t-SNE callback that records a run into a statistics storage."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from embedviz._check import check_int
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

_INFO_KEYS = ("grad_norm", "exaggeration", "momentum", "learning_rate", "elapsed")


class TSNEStats:
    """Record an :class:`embedviz.TSNE` run as a session like any training run.

    Pass it in ``TSNE(callbacks=[stats])``. It has ``wants_info = True``, so the
    estimator calls ``stats(iteration, kl, embedding, info)``; each call stores an update
    with ``score`` and ``extra["kl"]`` (the KL divergence), ``extra["grad_norm"]``,
    ``extra["exaggeration"]``, ``extra["momentum"]``, ``extra["learning_rate"]``,
    ``extra["elapsed"]`` and ``tags["phase"]`` (``"exaggeration"`` or ``"main"``). The
    embedding is stored as a :class:`~embedviz.stats.records.Snapshot` (kind
    ``"embedding"``) every ``snapshot_every`` calls (None: only the last one, at
    ``max_iter`` or at :meth:`close`). It never stops the run.

    Parameters
    ----------
    storage : StatsStorage
    session_id : str or None, default=None
        Default: a new id starting with ``tsne-``. This and every later parameter are
        keyword-only.
    worker_id : str or None, default=None
        The worker this process records as. Default: ``"0"`` (a t-SNE run is one
        process; :class:`~embedviz.stats.listener.StatsListener` takes the
        torch.distributed rank).
    labels : sequence of str or None
        Names of the points (words), stored with the snapshots.
    snapshot_every : int or None, default=None
        Snapshot the embedding every this many calls; the estimator calls every
        ``TSNE(callback_every=...)`` iterations. None: only the last embedding.
    config : dict or None
        The estimator's parameters, stored with the static info.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> storage = InMemoryStatsStorage()
    >>> stats = TSNEStats(storage, session_id="t")
    >>> stats(50, 2.5, np.zeros((4, 2)), {"phase": "exaggeration", "grad_norm": 0.1})
    >>> stats.close()
    >>> storage.get_updates("t")[0].extra["kl"]
    2.5
    """

    wants_info = True

    def __init__(
        self,
        storage,
        *,
        session_id: str | None = None,
        worker_id: str | None = None,
        labels: Sequence[str] | None = None,
        snapshot_every: int | None = None,
        config: dict | None = None,
    ) -> None:
        if snapshot_every is not None:
            snapshot_every = check_int("snapshot_every", snapshot_every, low=1)
        self.storage = check_storage(storage)
        self.worker_id = "0" if worker_id is None else str(worker_id)
        self.session_id = (
            unused_session_id(storage, str(session_id), self.worker_id)
            if session_id
            else new_session_id("tsne")
        )
        self.config = dict(config or {})
        self.labels = [str(x) for x in labels] if labels is not None else []
        self.snapshot_every = snapshot_every
        self._calls = 0
        self._static_done = False
        self._last: tuple[int, np.ndarray] | None = None
        self._last_stored = -1
        self._closed = False
        start_cpu_measurement()  # the first update's cpu_percent is then a real one

    def _static(self, info: dict[str, Any]) -> None:
        config = {
            k: v
            for k, v in self.config.items()
            if isinstance(v, int | float | str | bool | type(None))
        }
        for key in ("n_samples", "max_iter"):
            if key in info:
                config[key] = info[key]
        self.storage.put(StaticInfo(
            session_id=self.session_id, worker_id=self.worker_id, timestamp=time.time(),
            kind="tsne", model_class="TSNE", config=config,
            hardware=hardware_info(), software=software_info(),
        ))  # fmt: skip
        self._static_done = True

    def __call__(
        self, iteration: int, kl: float, embedding: np.ndarray, info: dict[str, Any] | None = None
    ) -> None:
        if self._closed:
            return None
        info = info or {}
        if not self._static_done:
            self._static(info)
        t0 = time.perf_counter()
        self._calls += 1
        update = Update(self.session_id, self.worker_id, int(iteration), time.time())
        kl = float(kl) if kl is not None else math.nan
        update.score = kl
        update.extra["kl"] = kl
        for key in _INFO_KEYS:
            value = info.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                update.extra[key] = float(value)
        if "learning_rate" in update.extra:
            update.learning_rates = [update.extra["learning_rate"]]
        if isinstance(info.get("phase"), str):
            update.tags["phase"] = info["phase"]
        update.memory = memory_sample()
        update.collect_seconds = time.perf_counter() - t0
        self.storage.put(update)
        self._last = (int(iteration), np.array(embedding, dtype=np.float64, copy=True))
        max_iter = info.get("max_iter")
        if (self.snapshot_every and self._calls % self.snapshot_every == 0) or (
            max_iter is not None and int(iteration) >= int(max_iter) - 1
        ):
            self._snapshot()
        return None

    def _snapshot(self) -> None:
        if self._last is None or self._last[0] == self._last_stored:
            return
        iteration, emb = self._last
        labels = self.labels if len(self.labels) == len(emb) else []
        self.storage.put(
            Snapshot(
                self.session_id,
                self.worker_id,
                iteration,
                time.time(),
                "embedding",
                labels,
                emb.tolist(),
            )
        )
        self._last_stored = iteration

    def close(self, flush: bool = True) -> None:
        """Store the last embedding seen (if not stored yet) and flush the storage.

        A statistics file that cannot be written never raises here: the flush waits a
        few seconds at most, then one error says how many records the storage still
        holds (:func:`~embedviz.stats.sqlite_close.flush_at_close`). ``flush=False``
        leaves that to the storage's own ``close()``.
        """
        if self._closed:
            return
        self._snapshot()
        self._closed = True
        if flush:
            flush_at_close(self.storage, "TSNEStats")
