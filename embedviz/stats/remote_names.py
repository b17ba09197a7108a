"""The session names under which a :class:`~embedviz.stats.remote.RemoteStatsRouter`
sends its runs, for a run whose name the UI already holds for another run.

The UI answers 409 for a StaticInfo of another run than the one it holds under that
session and worker; :class:`RunNames` then picks the run's new name (``NAME-2``,
``NAME-3``, ...: the first under which the UI holds no records of that worker), logs
the one warning, and puts every later record of that session and worker, and what the
spill file keeps at close, under it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from embedviz.stats.remote_http import bad_position, record_key, with_session

# the router's logger: one name to configure for everything the router says
log = logging.getLogger("embedviz.stats.remote")


class RunNames:
    """The runs a router sends under another session name than the one they were put
    under (see the module docstring).

    Parameters
    ----------
    url : str
        The UI's ``/api/records`` address, for the warning.
    list_workers : callable
        ``list_workers(session_id) -> list[str]``: the workers the UI holds under a
        session (:meth:`RemoteStatsRouter.list_workers
        <embedviz.stats.remote.RemoteStatsRouter.list_workers>`).

    Examples
    --------
    >>> static = '{"type": "static", "session_id": "run", "worker_id": "0"}'
    >>> names = RunNames("http://ui/api/records", lambda s: ["0"] if s == "run-2" else [])
    >>> names.rename(static, replayed=False)  # the UI holds run-2 too: run-3
    True
    >>> names.named([static])
    ['{"type": "static", "session_id": "run-3", "worker_id": "0"}']
    """

    def __init__(self, url: str, list_workers: Callable[[str], list[str]]) -> None:
        self.url = url
        self._list_workers = list_workers
        # (session, worker) -> the session name its records are sent under, for runs
        # the UI holds another run of under the first name (409); the last suffix tried
        self._renames: dict[tuple[str, str], str] = {}
        self._suffix: dict[tuple[str, str], int] = {}

    @property
    def renamed(self) -> bool:
        """Whether any run is sent under another name."""
        return bool(self._renames)

    def named(self, payloads: list[str]) -> list[str]:
        """The records under the session names they are sent under (:meth:`rename`)."""
        if not self._renames:
            return payloads
        out = []
        for payload in payloads:
            key = record_key(payload)
            name = self._renames.get(key[1:]) if key is not None else None
            out.append(payload if name is None else with_session(payload, name))
        return out

    def conflict(self, chunk: list[str], message: str, replayed: bool) -> list[list[str]] | None:
        """After a 409 for the batch ``chunk`` (the answer's ``message`` names the
        StaticInfo): the batches to send next, in order (the records before that
        StaticInfo first; then the batch again, under the run's new name), or None when
        the answer names no StaticInfo (it is then taken as a refusal of the batch).
        ``replayed``: the batch comes from the spill file or memory."""
        bad = bad_position(message)
        if bad is not None and 0 < bad < len(chunk):
            return [chunk[:bad], chunk[bad:]]  # the records before it first
        if bad == 0 and self.rename(chunk[0], replayed):
            return [chunk]  # again, under the new name
        return None

    def rename(self, payload: str, replayed: bool) -> bool:
        """The UI holds another run under the session of the StaticInfo ``payload``
        (409): send it, and every later record of its session and worker, under the
        first of ``NAME-2``, ``NAME-3``, ... under which the UI holds no records of
        that worker. False when ``payload`` is no StaticInfo (the answer is then taken
        as a refusal of the record)."""
        key = record_key(payload)
        if key is None or key[0] != "static":
            return False
        _, session, worker = key
        held = self._renames.get((session, worker), session)
        n = self._suffix.get((session, worker), 1)
        while True:
            n += 1
            if n > 10_000:  # a UI that never takes any name: refuse the record
                return False
            name = f"{session}-{n}"
            if worker not in self._list_workers(name):
                break
        self._renames[(session, worker)] = name
        self._suffix[(session, worker)] = n
        log.warning(
            "remote UI %s: the %srun %r (worker %s) is sent as %r: the UI already holds "
            "another run named %r",
            self.url,
            "spilled " if replayed else "",
            session,
            worker,
            name,
            held,
        )
        return True
