"""A session shown under another name: :class:`SessionView`, the read API of a storage
with one session id replaced by a label (``NAME (file.db)`` when two attached files hold
the same session name; see :meth:`embedviz.ui.server.UIServer.sessions`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from embedviz.stats.base import HistogramArrays, StatsReader
from embedviz.stats.records import EvalRecord, Histogram, Snapshot, StaticInfo, Update

if TYPE_CHECKING:
    from embedviz.stats.series import Series


class SessionView:
    """The session ``session_id`` of ``storage`` under the name ``label``: the read API
    (:class:`~embedviz.stats.base.StatsReader`) of ``storage``, read-only.

    Every method takes the label where the storage takes the session id, and reaches
    the storage with ``session_id``; any other session id is passed on as it is.
    :meth:`list_sessions` gives ``label`` in the place of ``session_id``. The records,
    series and histograms read through it are the storage's own, not copied: a record's
    ``session_id`` stays the real one (no page shows or compares it; a page knows the
    session by the name it asked for).

    It has no write methods (``put``, ``flush``, ``close``...: writing through a view is
    a bug, so an AttributeError), and no ``path``, so that the diagnostics read it
    through the view, in this process, rather than open the file under a name the file
    does not hold.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage()
    >>> st.put(Update("baseline", "0", 3, 0.0, score=1.5))
    >>> view = SessionView(st, "baseline", "baseline (dup.db)")
    >>> view.list_sessions(), [u.iteration for u in view.get_updates("baseline (dup.db)")]
    (['baseline (dup.db)'], [3])
    """

    __slots__ = ("storage", "session_id", "label")

    def __init__(self, storage: StatsReader, session_id: str, label: str) -> None:
        self.storage, self.session_id, self.label = storage, session_id, label

    def __repr__(self) -> str:
        return f"SessionView({self.storage!r}, {self.session_id!r}, {self.label!r})"

    def _sid(self, session_id: str) -> str:
        """The storage's id of the session shown as ``session_id``."""
        return self.session_id if session_id == self.label else session_id

    def list_sessions(self) -> list[str]:
        return [self.label if s == self.session_id else s for s in self.storage.list_sessions()]

    def list_workers(self, session_id: str) -> list[str]:
        return self.storage.list_workers(self._sid(session_id))

    def get_static_info(self, session_id: str, worker_id: str) -> StaticInfo | None:
        return self.storage.get_static_info(self._sid(session_id), worker_id)

    def get_updates(
        self,
        session_id: str,
        worker_id: str | None = None,
        after_iteration: int | None = None,
        last: int | None = None,
    ) -> list[Update]:
        return self.storage.get_updates(
            self._sid(session_id), worker_id, after_iteration=after_iteration, last=last
        )

    def get_latest_update(self, session_id: str, worker_id: str) -> Update | None:
        return self.storage.get_latest_update(self._sid(session_id), worker_id)

    def count_updates(self, session_id: str, worker_id: str | None = None) -> int:
        return self.storage.count_updates(self._sid(session_id), worker_id)

    def list_series(self, session_id: str, worker_id: str) -> list[str]:
        return self.storage.list_series(self._sid(session_id), worker_id)

    def get_series(
        self,
        session_id: str,
        worker_id: str,
        name: str,
        max_points: int | None = None,
        after_iteration: int | None = None,
    ) -> Series:
        return self.storage.get_series(
            self._sid(session_id), worker_id, name, max_points, after_iteration=after_iteration
        )

    def get_series_many(
        self,
        session_id: str,
        worker_id: str,
        names: list[str],
        max_points: int | None | dict[str, int | None] = None,
        after_iteration: int | None = None,
    ) -> dict[str, Series]:
        return self.storage.get_series_many(
            self._sid(session_id),
            worker_id,
            names,
            max_points=max_points,
            after_iteration=after_iteration,
        )

    def get_evals(self, session_id: str, worker_id: str | None = None) -> list[EvalRecord]:
        return self.storage.get_evals(self._sid(session_id), worker_id)

    def get_histograms(
        self, session_id: str, worker_id: str, kind: str, name: str
    ) -> list[tuple[int, Histogram]]:
        return self.storage.get_histograms(self._sid(session_id), worker_id, kind, name)

    def get_histogram_arrays(
        self, session_id: str, worker_id: str, items: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], HistogramArrays]:
        return self.storage.get_histogram_arrays(self._sid(session_id), worker_id, items)

    def get_snapshots(
        self, session_id: str, worker_id: str | None = None, kind: str | None = None
    ) -> list[Snapshot]:
        return self.storage.get_snapshots(self._sid(session_id), worker_id, kind=kind)
