"""The diagnostics of the live UI, run away from the pages that show them.

:func:`get_findings` asks :mod:`embedviz.stats.diagnostics` for one session's findings.
On a long run that takes seconds of CPU (about 5 s for 100k iterations x 50 tensors),
and in the server's own process it holds the interpreter lock half of that time: a page
built meanwhile took twice as long to open. :class:`FindingsRunner` therefore

* runs the diagnostics of a SQLite storage in a child process
  (``python -m embedviz.ui.diagnose``, which opens the file read-only and answers in
  JSON) at a lower CPU priority (``os.nice``), so they hold neither the server's lock
  nor a core that a page needs; an in-memory storage (its records live
  only in this process) is diagnosed in a background thread;
* runs one diagnosis at a time and keeps the findings of the last few (storage,
  session, worker, newest iteration): a page of an unchanged run shows its findings at
  once, and every tab asking while a diagnosis runs shares it.

This module imports neither bokeh nor torch (the child process stays light).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, is_dataclass

log = logging.getLogger(__name__)

NICE = 19  # added to the child's niceness (the lowest priority): pages and training first
TIMEOUT_S = 600.0  # a diagnosis running longer is stopped and reported as failed
KEEP = 32  # diagnoses remembered


def _as_dict(finding) -> dict:
    if isinstance(finding, dict):
        return finding
    if is_dataclass(finding):
        return asdict(finding)
    return {
        k: getattr(finding, k, None)
        for k in ("severity", "check", "layer", "iterations", "evidence", "advice")
    }


def _failed(why: str) -> list[dict]:
    return [{"severity": "warning", "title": "diagnostics failed", "evidence": why, "advice": ""}]


def get_findings(storage, session_id: str, worker_id: str | None = None) -> list[dict]:
    """The diagnostics' findings for a session as dicts.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> from embedviz.stats.records import Update
    >>> st = InMemoryStatsStorage()
    >>> st.put_many([Update("s", "0", i, 0.0, score=float("nan")) for i in range(3)])
    >>> [f["severity"] for f in get_findings(st, "s")]
    ['error']
    """
    from embedviz.stats import diagnostics

    try:
        found = diagnostics.diagnose(storage, session_id, worker_id)
    except Exception:  # a broken rule must not take the page down
        log.exception("diagnostics failed for session %r", session_id)
        return _failed("see the server log")
    return [_as_dict(f) for f in found]


def _jsonable(value):
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)


def main() -> None:
    """Child process: read ``{"path", "session", "worker"}`` (JSON) from stdin, diagnose
    the SQLite file opened read-only, write the findings (JSON) to stdout."""
    try:
        os.nice(NICE)
    except OSError:
        pass
    from embedviz.stats.storage import SQLiteStatsStorage

    ask = json.load(sys.stdin)
    with SQLiteStatsStorage(ask["path"], read_only=True) as storage:
        found = get_findings(storage, ask["session"], ask["worker"])
    json.dump(found, sys.stdout, default=_jsonable)


class FindingsRunner:
    """One diagnosis at a time, remembered per newest iteration (see the module text).

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> runner = FindingsRunner()
    >>> runner.submit(InMemoryStatsStorage(), "none").result()
    []
    >>> runner.shutdown()
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embedviz-findings")
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple, tuple[object, Future]] = OrderedDict()
        self._children: set = set()
        self._stopping = False

    def submit(self, storage, session_id: str, worker_id: str | None = None) -> Future:
        """A future of :func:`get_findings`'s answer for this session and worker."""
        if worker_id is None:
            workers = storage.list_workers(session_id)
            worker_id = workers[0] if workers else None
        latest = storage.get_latest_update(session_id, worker_id) if worker_id else None
        key = (id(storage), session_id, worker_id, None if latest is None else latest.iteration)
        with self._lock:
            held = self._done.get(key)
            if held is not None and held[0] is storage:
                self._done.move_to_end(key)
                return held[1]
            future = self._pool.submit(self._run, storage, session_id, worker_id)
            self._done[key] = (storage, future)
            while len(self._done) > KEEP:
                self._done.popitem(last=False)
        return future

    def _run(self, storage, session_id: str, worker_id: str | None):
        path = getattr(storage, "path", None)
        if path is None or self._stopping:
            return get_findings(storage, session_id, worker_id)
        if not getattr(storage, "read_only", True):
            storage.flush()  # the child reads the file: hand it what is still buffered
        ask = json.dumps({"path": str(path), "session": session_id, "worker": worker_id})
        with self._lock:
            if self._stopping:
                return _failed("the UI is stopping")
            # a fresh interpreter (not multiprocessing's spawn, which imports the
            # caller's main module again)
            child = subprocess.Popen(
                [sys.executable, "-m", "embedviz.ui.diagnose"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            self._children.add(child)
        try:
            out, err = child.communicate(ask.encode(), timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            log.warning("diagnostics of %r ran past %.0f s; stopped", session_id, TIMEOUT_S)
            return _failed(f"ran longer than {TIMEOUT_S:.0f} s")
        finally:
            with self._lock:
                self._children.discard(child)
        if child.returncode != 0 and self._stopping:
            return _failed("the UI stopped")
        if child.returncode != 0:
            log.warning(
                "the diagnostics process of %r failed (exit %s): %s",
                session_id,
                child.returncode,
                err.decode("utf-8", "replace")[-2000:],
            )
            return _failed("the diagnostics process failed; see the server log")
        return json.loads(out)

    def shutdown(self) -> None:
        """Stop the running diagnosis (its child process) and wait for the thread."""
        with self._lock:
            self._stopping = True
            children = list(self._children)
        for child in children:
            child.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)


if __name__ == "__main__":
    main()
