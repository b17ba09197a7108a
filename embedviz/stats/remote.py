"""RemoteStatsRouter: send statistics to a running ``embedviz ui --enable-remote``.

The router takes the same writes as a storage (``put``, ``put_many``, ``flush``,
``close``) and posts them in batches to ``POST <url>/api/records`` as described in
``embedviz/ui/http_api.md``. It never drops a record silently and never blocks training
for long:

* ``put`` only enqueues (a bounded queue). When the queue stays full for ``put_timeout``
  seconds, the caller moves the queue and its record to the *spill file* (a local SQLite
  file) and returns; nothing waits on the network.
* A background thread sends batches. When the server is away (connection refused,
  timeout, 5xx, 401/403/429) it backs off exponentially (0.5 s doubling up to
  ``max_backoff``) and meanwhile spills everything to the spill file, in order; when the
  server answers again the spill file is replayed oldest first, then the queue.
* A batch the server rejects as malformed (400) or too large (413, even when split to a
  single record) is logged as an error and kept in the spill file's ``rejected`` table.
* ``close()`` sends what is left for up to ``close_timeout`` seconds; records still
  unsent stay in the spill file, whose path is logged, and a later
  ``RemoteStatsRouter(url, spill_path=that_path)`` sends them first.

Records of one worker arrive in the order they were put.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from embedviz.errors import InputError
from embedviz.stats.base import StatsStorage
from embedviz.stats.records import SCHEMA_VERSION, Record, to_dict

log = logging.getLogger(__name__)

_TRANSIENT = {401, 403, 408, 429}


class RemoteStatsRouter(StatsStorage):
    """Post statistics records to a remote embedviz UI, buffering while it is away.

    Parameters
    ----------
    url : str
        The UI's base address, e.g. ``"http://10.0.0.5:9000"`` (``/api/records`` is
        appended unless already there).
    token : str or None
        Sent as ``Authorization: Bearer <token>``.
    queue_size : int, default=10000
        Records held in memory at most.
    batch_size : int, default=500
        Records per request at most.
    max_body_bytes : int, default=8 MiB
        A batch whose JSON is larger is split.
    timeout : float, default=5.0
        Seconds per HTTP request.
    max_backoff : float, default=30.0
        Longest wait between retries.
    put_timeout : float, default=0.5
        Longest time ``put`` waits for room in the queue before spilling to disk.
    close_timeout : float, default=30.0
        Longest time ``close`` spends sending what is left.
    spill_path : str, Path or None
        The spill file; default a new file in the temporary directory. Records already
        in it (from an earlier run) are sent first.

    Examples
    --------
    >>> router = RemoteStatsRouter("http://127.0.0.1:9000", token="secret")  # doctest: +SKIP
    >>> listener = StatsListener(router, model, optimizer)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        queue_size: int = 10_000,
        batch_size: int = 500,
        max_body_bytes: int = 8 * 1024 * 1024,
        timeout: float = 5.0,
        max_backoff: float = 30.0,
        put_timeout: float = 0.5,
        close_timeout: float = 30.0,
        spill_path: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InputError(f"url: expected an http:// or https:// address, got {url!r}")
        for name, value in (("queue_size", queue_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}: expected an integer >= 1, got {value!r}")
        url = url.rstrip("/")
        self.url = url if url.endswith("/api/records") else url + "/api/records"
        self.token = token
        self.batch_size = batch_size
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.put_timeout = put_timeout
        self.close_timeout = close_timeout
        self.spill_path = Path(
            spill_path
            if spill_path is not None
            else Path(tempfile.gettempdir())
            / f"embedviz-spill-{os.getpid()}-{uuid.uuid4().hex[:8]}.db"
        )
        self.sent = 0  # records the server accepted
        self.rejected = 0  # records the server refused for good (kept in the spill file)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._spill_lock = threading.Lock()
        self._spill_con: sqlite3.Connection | None = None
        self._spilled = 0
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._closed = False
        self._server_ok = True
        if self.spill_path.exists():
            self._open_spill()
        self._thread = threading.Thread(target=self._run, name="embedviz-remote", daemon=True)
        self._thread.start()

    # -- spill file ----------------------------------------------------------------
    def _open_spill(self) -> sqlite3.Connection:
        if self._spill_con is None:
            con = sqlite3.connect(
                self.spill_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("CREATE TABLE IF NOT EXISTS spill(id INTEGER PRIMARY KEY, payload TEXT)")
            con.execute(
                "CREATE TABLE IF NOT EXISTS rejected(id INTEGER PRIMARY KEY, reason TEXT, "
                "payload TEXT)"
            )
            self._spilled = con.execute("SELECT count(*) FROM spill").fetchone()[0]
            self._spill_con = con
        return self._spill_con

    def _spill(self, payloads: list[str], front: bool = False) -> None:
        """Append (or, for a batch that was in flight, prepend) to the spill file."""
        if not payloads:
            return
        with self._spill_lock:
            con = self._open_spill()
            con.execute("BEGIN IMMEDIATE")
            try:
                if front:
                    first = con.execute("SELECT coalesce(min(id), 1) FROM spill").fetchone()[0]
                    start = first - len(payloads)
                    rows = [(start + i, p) for i, p in enumerate(payloads)]
                    con.executemany("INSERT INTO spill(id, payload) VALUES (?, ?)", rows)
                else:
                    con.executemany(
                        "INSERT INTO spill(payload) VALUES (?)", [(p,) for p in payloads]
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._spilled += len(payloads)

    def _drain_queue_to_spill(self) -> None:
        payloads = []
        while True:
            try:
                payloads.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._spill(payloads)

    def _reject(self, payloads: list[str], reason: str) -> None:
        with self._spill_lock:
            con = self._open_spill()
            con.executemany(
                "INSERT INTO rejected(reason, payload) VALUES (?, ?)",
                [(reason, p) for p in payloads],
            )
        self.rejected += len(payloads)
        log.error(
            "remote UI %s refused %d record(s) for good (%s); they are kept in the "
            "'rejected' table of %s",
            self.url,
            len(payloads),
            reason,
            self.spill_path,
        )

    # -- writing (caller's thread) ------------------------------------------------
    def _store(self, records: list[Record]) -> None:
        if self._closed:
            raise InputError("RemoteStatsRouter: closed; create a new router to send more")
        for record in records:
            payload = json.dumps(to_dict(record))
            try:
                self._queue.put(payload, timeout=self.put_timeout)
            except queue.Full:  # keep order: the queue goes first, then this record
                self._drain_queue_to_spill()
                self._spill([payload])
        self._idle.clear()

    def pending(self) -> int:
        """Records not yet accepted by the server (queued or spilled)."""
        return self._queue.qsize() + self._spilled

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until everything is sent, at most ``timeout`` seconds; True when done."""
        deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
        while self.pending() and time.monotonic() < deadline and self._thread.is_alive():
            self._idle.wait(0.05)
        return self.pending() == 0

    def close(self) -> None:
        """Send what is left (at most ``close_timeout`` s) and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self.flush(self.close_timeout)
        self._stop.set()
        self._thread.join(self.timeout + 2)
        self._drain_queue_to_spill()
        left = self._spilled
        with self._spill_lock:
            if self._spill_con is not None:
                self._spill_con.close()
                self._spill_con = None
        if left:
            log.warning(
                "remote UI %s unreachable: %d record(s) kept in %s; send them later with "
                "RemoteStatsRouter(url, spill_path=%r)",
                self.url,
                left,
                self.spill_path,
                str(self.spill_path),
            )
        elif not self.rejected and self.spill_path.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.spill_path) + suffix).unlink(missing_ok=True)

    # -- sending (background thread) ------------------------------------------------
    def _post(self, payloads: list[str]) -> tuple[int, str]:
        """POST one batch; (HTTP status or 0 for no answer, message)."""
        body = (
            f'{{"schema_version": {SCHEMA_VERSION}, "records": [' + ",".join(payloads) + "]}"
        ).encode()
        request = urllib.request.Request(self.url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, ""
        except urllib.error.HTTPError as exc:
            try:
                message = exc.read(2000).decode(errors="replace")
            except Exception:
                message = ""
            return exc.code, message
        except (OSError, ValueError) as exc:  # refused, reset, timeout, bad answer
            return 0, str(exc)

    def _send(self, payloads: list[str]) -> list[str] | None:
        """Send a batch, splitting it when too large.

        Returns None when everything was accepted (or refused for good), else the
        records still to send, in order.
        """
        chunks = [payloads]
        while chunks:
            chunk = chunks.pop(0)
            size = sum(len(p) for p in chunk) + 64
            if size > self.max_body_bytes and len(chunk) > 1:
                half = len(chunk) // 2
                chunks[:0] = [chunk[:half], chunk[half:]]
                continue
            status, message = self._post(chunk)
            if 200 <= status < 300:
                self.sent += len(chunk)
                if not self._server_ok:
                    log.info("remote UI %s is back; sending", self.url)
                self._server_ok = True
                continue
            if status == 413 and len(chunk) > 1:
                half = len(chunk) // 2
                chunks[:0] = [chunk[:half], chunk[half:]]
                continue
            if status in (400, 413) or (400 <= status < 500 and status not in _TRANSIENT):
                self._reject(chunk, f"HTTP {status}: {message[:500]}")
                continue
            if self._server_ok:
                level = logging.ERROR if status in (401, 403) else logging.WARNING
                log.log(
                    level,
                    "remote UI %s not accepting records (%s); keeping them in %s and retrying",
                    self.url,
                    f"HTTP {status}: {message[:200]}" if status else message,
                    self.spill_path,
                )
            self._server_ok = False
            return [p for c in [chunk, *chunks] for p in c]
        return None

    def _read_spill(self) -> tuple[list[int], list[str]]:
        with self._spill_lock:
            con = self._open_spill()
            rows = con.execute(
                "SELECT id, payload FROM spill ORDER BY id LIMIT ?", (self.batch_size,)
            ).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def _delete_spilled(self, ids: list[int]) -> None:
        with self._spill_lock:
            con = self._open_spill()
            con.execute("DELETE FROM spill WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))
            self._spilled -= len(ids)

    def _run(self) -> None:
        backoff = 0.0
        next_try = 0.0
        while not self._stop.is_set():
            if self._spilled:
                self._drain_queue_to_spill()  # keeps order and keeps the queue free
                if time.monotonic() < next_try:
                    self._stop.wait(min(0.05, next_try - time.monotonic()))
                    continue
                ids, payloads = self._read_spill()
                if not payloads:
                    self._spilled = 0
                    continue
                left = self._send(payloads)
                done = len(payloads) - (0 if left is None else len(left))
                if done:
                    self._delete_spilled(ids[:done])
                if left is None:
                    backoff = 0.0
                else:
                    backoff = min(max(2 * backoff, 0.5), self.max_backoff)
                    next_try = time.monotonic() + backoff
                continue
            try:
                batch = [self._queue.get(timeout=0.05)]
            except queue.Empty:
                self._idle.set()
                continue
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._spilled:  # the caller spilled meanwhile: these are newer, append
                self._spill(batch)
                continue
            left = self._send(batch)
            if left is not None:
                self._spill(left, front=True)
                backoff = min(max(2 * backoff, 0.5), self.max_backoff)
                next_try = time.monotonic() + backoff
            else:
                backoff = 0.0
