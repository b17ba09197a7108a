"""The session names under which a :class:`~embedviz.stats.remote.RemoteStatsRouter`
sends its runs, for a run whose name the UI already holds for another run.

The UI answers 409 for a StaticInfo of another run than the one it holds under that
session and worker; :class:`RunNames` then picks the run's new name (``NAME-2``,
``NAME-3``, ...: the first under which the UI holds no records of that worker), logs
the one warning, and puts every later record of that session and worker under it: the
ones it sends, and the ones the spill file takes (the router renames them on the way in,
and rewrites what the file already holds at the moment of the rename, so that a file a
crashed process leaves behind holds the run under its new name).

Records under the new name may pass through :meth:`RunNames.named` again: it is
idempotent (a name it gives out is never one it renames, unless that name is itself
refused later, and then every name that led to it leads to the next one).
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
    on_rename : callable, optional
        Called with no arguments after each rename (the router rewrites its spill).

    Examples
    --------
    >>> static = '{"type": "static", "session_id": "run", "worker_id": "0"}'
    >>> names = RunNames("http://ui/api/records", lambda s: ["0"] if s == "run-2" else [])
    >>> names.rename(static, replayed=False)  # the UI holds run-2 too: run-3
    True
    >>> names.named([static])
    ['{"type": "static", "session_id": "run-3", "worker_id": "0"}']
    """

    def __init__(
        self,
        url: str,
        list_workers: Callable[[str], list[str]],
        on_rename: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self._list_workers = list_workers
        self._on_rename = on_rename
        # (session, worker) -> the session name its records are sent under, for runs
        # the UI holds another run of under that name (409): the name put, and every
        # name given out since and refused in turn, lead to the newest one
        self._renames: dict[tuple[str, str], str] = {}
        # (base session, worker) -> the last suffix tried; (name given, worker) -> base
        self._suffix: dict[tuple[str, str], int] = {}
        self._base: dict[tuple[str, str], str] = {}

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
        """After a 409 for the batch ``chunk`` (as sent: under the names of
        :meth:`named`; the answer's ``message`` names the StaticInfo): the batches to
        send next, in order (the records before that StaticInfo first; then the batch
        again, under the run's new name), or None when the answer names no StaticInfo
        at position 0 or no free name is found (the router then takes the 409 as a
        400: the named record alone is refused). ``replayed``: the batch comes from
        the spill file or memory."""
        bad = bad_position(message)
        if bad is not None and 0 < bad < len(chunk):
            return [chunk[:bad], chunk[bad:]]  # the records before it first
        if bad == 0 and self.rename(chunk[0], replayed):
            return [self.named(chunk)]  # again, under the new name
        return None

    def rename(self, payload: str, replayed: bool) -> bool:
        """The UI holds another run under the session of the StaticInfo ``payload``
        (409; the record as sent): send it, and every later record of its session and
        worker, under the first of ``NAME-2``, ``NAME-3``, ... under which the UI
        holds no records of that worker (NAME: the name the run was put under). False
        when ``payload`` is no StaticInfo, or when no free name is found (an error
        says that the run's later records go under the name the UI holds)."""
        key = record_key(payload)
        if key is None or key[0] != "static":
            return False
        _, held, worker = key
        base = self._base.get((held, worker), held)
        n = self._suffix.get((base, worker), 1)
        while True:
            n += 1
            if n > 10_000:  # a UI that never takes any name: refuse the record
                log.error(
                    "remote UI %s: the run %r (worker %s) cannot be renamed: the UI holds "
                    "records of that worker under %r and under every name from '%s-2' to "
                    "'%s-10000'; its StaticInfo is refused, and its later records go "
                    "under %r, into the run the UI holds there. Send the run under a new "
                    "session name",
                    self.url,
                    base,
                    worker,
                    held,
                    base,
                    base,
                    held,
                )
                return False
            name = f"{base}-{n}"
            if (name, worker) not in self._renames and worker not in self._list_workers(name):
                break
        # every name that led to the refused one (and it) now leads to the new one
        for old, target in list(self._renames.items()):
            if target == held and old[1] == worker:
                self._renames[old] = name
        self._renames[(held, worker)] = name
        self._base[(name, worker)] = base
        self._suffix[(base, worker)] = n
        log.warning(
            "remote UI %s: the %srun %r (worker %s) is sent as %r: the UI already holds "
            "another run named %r",
            self.url,
            "spilled " if replayed else "",
            base,
            worker,
            name,
            held,
        )
        if self._on_rename is not None:
            self._on_rename()
        return True
