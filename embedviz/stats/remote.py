"""RemoteStatsRouter: send statistics to a running ``embedviz ui --enable-remote``.

The router takes the same writes as a storage (``put``, ``put_many``, ``flush``,
``close``) and posts them in batches to ``POST <url>/api/records``. It never drops a
record silently and never blocks training for long:

* ``put`` only enqueues (a bounded queue). When the queue stays full for ``put_timeout``
  seconds, the caller moves the queue and its record to the *spill file* (a local SQLite
  file) and returns; nothing waits on the network.
* A background thread sends batches. While the UI is away it backs off and spills
  everything to the spill file, in order, and replays the file oldest first when the UI
  answers again; a refused token or a disabled receiver (401, 403) stops the sending
  and keeps every record (:attr:`~RemoteStatsRouter.refused` says why).
* ``close()`` sends what is left for at most ``close_timeout`` seconds and keeps the rest
  in the spill file, whose path it logs; a later
  ``RemoteStatsRouter(url, spill_path=that_path)`` sends it first.

Records of one worker arrive in the order they were put. What the router does with
each answer of the UI (back-off, a refused token, a run sent again as ``NAME-2`` after a
409, a record rejected for good), what :meth:`~RemoteStatsRouter.pending` counts, how
long :meth:`~RemoteStatsRouter.close` waits, and where records go when the spill file
cannot be written are written down once, in ``embedviz/ui/http_api.md`` ("Answers" and
the paragraphs after it, "One run per session and worker").

This module holds the router's state and the caller's side (``put``, ``pending``,
``flush``, ``close`` and its handoff of the batch in flight); the sender thread is
:class:`~embedviz.stats.remote_sender.Sender`; the spill file, its memory fallback and
the report of what is left at close are :class:`~embedviz.stats.remote_spill.SpillQueue`;
the request and what its answer means are in :mod:`embedviz.stats.remote_http`; the
names of runs sent as ``NAME-2``, ... are :class:`~embedviz.stats.remote_names.RunNames`.

The router is write-only: it has none of the read methods of
:mod:`embedviz.stats.storage` and takes no listeners (:meth:`register_listener` raises
InputError); read, and listen, on the storage that the UI's receiver writes into.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
import uuid
from pathlib import Path

from embedviz._check import check_int, check_number
from embedviz.errors import InputError
from embedviz.stats.base import StatsStorage
from embedviz.stats.limits import check_token
from embedviz.stats.records import Record, to_json
from embedviz.stats.remote_http import workers_of
from embedviz.stats.remote_names import RunNames
from embedviz.stats.remote_sender import Sender
from embedviz.stats.remote_spill import SpillQueue

log = logging.getLogger(__name__)


class RemoteStatsRouter(Sender, StatsStorage):
    """Post statistics records to a remote embedviz UI, buffering while it is away.

    Parameters
    ----------
    url : str
        The UI's base address, e.g. ``"http://10.0.0.5:9000"`` (``/api/records`` is
        appended unless already there). The other parameters are keyword-only.
    token : str or None
        Sent as ``Authorization: Bearer <token>``; printable ASCII
        (:func:`~embedviz.stats.limits.check_token`).
    queue_size : int, default=10000
        Records queued at most (>= 1); as many again are held in memory when the spill
        file cannot be written.
    batch_size : int, default=500
        Records per request at most (>= 1).
    max_body_bytes : int, default=8 MiB
        A batch whose JSON is larger is split (>= 1024; keep it at most the UI's
        limit, or the UI answers 413 and the router splits then).
    timeout : float, default=5.0
        Seconds per HTTP request (> 0).
    max_backoff : float, default=30.0
        Longest wait between retries, seconds (> 0).
    put_timeout : float, default=0.5
        Longest time ``put`` waits for room in the queue before spilling to disk
        (>= 0 seconds).
    close_timeout : float, default=30.0
        Longest time ``close`` spends sending what is left (>= 0 seconds).
    spill_path : str, Path or None
        The spill file; default a new file in the temporary directory. Records already
        in it (from an earlier run) are sent first. Its folder must exist (InputError
        otherwise).

    Examples
    --------
    >>> router = RemoteStatsRouter("http://127.0.0.1:9000", token="secret")  # doctest: +SKIP
    >>> listener = StatsListener(router, model, optimizer)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
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
        queue_size = check_int("queue_size", queue_size, low=1)
        batch_size = check_int("batch_size", batch_size, low=1)
        max_body_bytes = check_int("max_body_bytes", max_body_bytes, low=1024)
        timeout = check_number("timeout", timeout, low=0, low_open=True)
        max_backoff = check_number("max_backoff", max_backoff, low=0, low_open=True)
        put_timeout = check_number("put_timeout", put_timeout, low=0)
        close_timeout = check_number("close_timeout", close_timeout, low=0)
        if spill_path is not None and not isinstance(spill_path, (str, os.PathLike)):
            raise InputError(
                f"spill_path: expected a file path or None (a new file in the temporary "
                f"directory), got {spill_path!r:.60}"
            )
        if token is not None:
            check_token(token)
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
        #: why the server refused to take records (401/403), which stops the sending;
        #: None while it has not
        self.refused: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        # records put and not yet answered (accepted or rejected for good): queued,
        # spilled or in flight; what pending() says
        self._count_lock = threading.Lock()
        self._outstanding = 0
        # the batch taken from the queue and being posted, and how many of its records
        # (a prefix) the server has answered; close() takes it over when the thread is
        # stuck in a request (``_abandoned``), and the thread then touches nothing
        self._handoff = threading.Lock()
        self._inflight: list[str] = []
        self._inflight_done = 0
        self._abandoned = False
        # records waiting to be sent, oldest first: the spill file's rows, then what it
        # could not take (in memory, at most queue_size); the queue's records are newer
        # the session names runs are sent under, for runs the UI holds another run of
        # under the first name (409); records enter the spill under them, and what the
        # spill holds at a rename is rewritten then (a crash leaves the new names)
        self._names = RunNames(self.url, self.list_workers, on_rename=self._renamed)
        self._waiting = SpillQueue(
            self.spill_path, queue_size, self.url, self._answered, name=self._names.named
        )
        self._stop = threading.Event()
        self._idle = threading.Event()
        # a put counts and queues its records, and close() sets _closed, under this lock
        self._put_lock = threading.Lock()
        self._closed = False
        self._server_ok = True
        self._last_answer: str | None = None  # the last answer that was not a success
        self._backoff = 0.0
        self._next_try = 0.0
        # the batch replayed from the spill (from the file?, its row ids) and how many
        # of its records the server answered; None while none is
        self._replay: tuple[bool, list[int]] | None = None
        self._replay_done = 0
        # the sender thread's last unexpected error (None after a batch went through)
        self._error: str | None = None
        self._error_logged = False
        self._outstanding = self._waiting.in_file
        # the records an earlier router left in the spill file (sent first), and how
        # many of the file's records the server has answered
        self._inherited = self._waiting.in_file
        self._replayed = 0
        self._thread = threading.Thread(target=self._run, name="embedviz-remote", daemon=True)
        self._thread.start()

    # -- what waits (remote_spill.SpillQueue) ----------------------------------------
    @property
    def dropped(self) -> int:
        """Records dropped because the spill file could not be written and the memory
        spill was full (logged as errors; not counted by :meth:`pending`)."""
        return self._waiting.dropped

    @property
    def rejected(self) -> int:
        """Records the server refused for good (kept in the spill file's ``rejected``
        table)."""
        return self._waiting.rejected

    @property
    def unsent_path(self) -> Path | None:
        """Where close() wrote records the spill file could not take (None: none)."""
        return self._waiting.unsent_path

    def _drain_queue_to_spill(self, bound: bool = True) -> None:
        payloads = []
        while True:
            try:
                payloads.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._waiting.add(payloads, bound=bound)

    def _renamed(self) -> None:
        """A run is sent under a new name from now on: so are its records waiting in
        the spill (file and memory); later ones get it on the way in."""
        self._waiting.rewrite(self._names.named)

    # -- writing (caller's thread) ------------------------------------------------
    def _store(self, records: list[Record]) -> None:
        if self._closed:  # refuse early, before the (possibly long) encoding
            raise InputError(
                f"put: this RemoteStatsRouter ({self.url}) is closed; create a new router "
                f"to send more"
            )
        payloads = [to_json(record) for record in records]  # all or none
        # Under _put_lock a put is either wholly in (counted and queued or spilled)
        # before close() begins, so that close() sends or keeps it, or refused: close()
        # sets _closed under the same lock. The lock is held for at most put_timeout
        # (and a spill write); it only ever blocks other puts and close().
        with self._put_lock:
            if self._closed:
                raise InputError(
                    f"put: this RemoteStatsRouter ({self.url}) is closing (close() began "
                    f"while this put was under way), so its {len(records)} record(s) were "
                    f"not queued; put them before close(), or into a new router"
                )
            for payload in payloads:
                # counted first (the sender may answer it at once), uncounted again
                # when it is neither queued nor spilled: pending() never counts a lost put
                with self._count_lock:
                    self._outstanding += 1
                try:
                    try:
                        self._queue.put(payload, timeout=self.put_timeout)
                    except queue.Full:  # keep order: the queue goes first, then this one
                        self._drain_queue_to_spill()
                        self._waiting.add([payload])
                except BaseException:
                    self._answered(1)
                    raise
            self._idle.clear()

    def _answered(self, n: int) -> None:
        with self._count_lock:
            self._outstanding -= n

    def pending(self) -> int:
        """Records not yet answered by the server: queued, spilled or being posted."""
        with self._count_lock:
            return self._outstanding

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until the server has answered every record, at most ``timeout`` seconds.

        Parameters
        ----------
        timeout : float or None, default=5.0
            Seconds to wait at most (None: ``close_timeout``). Returns at once when the
            server refused the token.

        Returns
        -------
        bool
            True when nothing is pending. False leaves the rest to the sender thread
            (and to :meth:`close`, which keeps what is left); when the thread is
            failing, an error says why.

        Notes
        -----
        Unlike a storage's ``flush() -> None``, this one waits for the network and
        says whether it got everything through. ``StatsListener.close()``,
        ``TSNEStats.close()`` and ``Word2VecStats`` at the end of training call it
        without arguments: they wait at most 5 s and go on either way (the rest is
        logged at INFO here and kept by :meth:`close`, which the owner of the router
        calls).

        Examples
        --------
        >>> router.flush(timeout=10)  # doctest: +SKIP
        True
        """
        if timeout is not None:
            timeout = check_number("timeout", timeout, low=0)
        done = self._wait(self.close_timeout if timeout is None else timeout)
        failure = self._failure()
        if not done and failure is None and self.refused is None:
            log.info(
                "remote UI %s: %d record(s) not answered yet; still sending them",
                self.url,
                self.pending(),
            )
        if not done and failure is not None:
            log.error(
                "remote UI %s: %d record(s) not sent: the sender thread failed (%s; its "
                "traceback is logged above); they are kept and sending is tried again",
                self.url,
                self.pending(),
                failure,
            )
        return done

    def _grace(self) -> float:
        """How long close() waits for a request in flight: its timeout (a silent
        server's socket read ends then) and as much again, at most 2 s, to spill."""
        return self.timeout + min(self.timeout, 2.0)

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (
            self.pending()
            and self.refused is None
            and time.monotonic() < deadline
            and self._thread.is_alive()
        ):
            self._idle.wait(0.05)
        return self.pending() == 0

    def _failure(self) -> str | None:
        """Why the sender thread is not sending, when it failed (not the server)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            return self._error or "the sender thread stopped"
        return self._error

    def close(self) -> None:
        """Send what is left (at most ``close_timeout`` s), stop the thread, keep the rest.

        Returns within ``close_timeout + timeout + min(timeout, 2)`` seconds (plus the
        time to write the spill file). Records not answered by then -- a batch whose
        request is still running included -- are kept in the spill file and logged;
        nothing is dropped. A put from another thread that overlaps close() either got
        its records in before close() began (close() then sends or keeps them) or
        raises InputError saying the router is closing.
        """
        with self._put_lock:  # waits for a put that is queueing; later ones are refused
            if self._closed:
                return
            self._closed = True
        self._wait(self.close_timeout)
        failure = self._failure()
        self._stop.set()
        self._thread.join(self._grace())
        with self._handoff:  # the thread, stuck in a request or not, touches nothing now
            self._abandoned = True
            self._waiting.freeze()
            inflight = self._inflight[self._inflight_done :]
            self._inflight, self._inflight_done = [], 0
        if inflight:  # older than the rest
            if failure is None:
                cause = f"a request of {len(inflight)} record(s) got no answer within "
                cause += f"{self._grace():.1f} s"
            else:
                cause = f"the sender thread failed ({failure}) with {len(inflight)} "
                cause += "record(s) in hand"
            log.log(
                logging.WARNING if failure is None else logging.ERROR,
                "remote UI %s: %s; keeping them to send again (the server may store them twice)",
                self.url,
                cause,
            )
            self._waiting.add(inflight, front=True, bound=False)
        self._drain_queue_to_spill(bound=False)
        self._waiting.close(*self._why_unsent(failure))

    def _why_unsent(self, failure: str | None) -> tuple[str, str, int]:
        """For close()'s report of what the spill file keeps: why it was not sent, how
        to send it, and the log level."""
        token = ""
        if self.refused is not None:
            why, level = f"the UI refused them: {self.refused}", logging.ERROR
            token = "token=<the right token>, "
        elif failure is not None:
            why = f"the sender thread failed: {failure}; its traceback is logged above"
            level = logging.ERROR
        elif self._server_ok:  # answering, but not fast enough
            why = f"the UI did not take them within close_timeout={self.close_timeout:g} s"
            level = logging.WARNING
        elif self._last_answer is not None:  # answering, but not storing (its disk is full)
            why, level = f"the UI could not store them ({self._last_answer})", logging.WARNING
        else:
            why, level = "the UI is unreachable", logging.WARNING
        path = str(self.spill_path)
        hint = f"send them later with RemoteStatsRouter(url, {token}spill_path={path!r})"
        return why, hint, level

    def register_listener(self, callback) -> None:
        """Refused: the router is write-only, so a listener on it would never be called.

        Raises
        ------
        InputError
            Always; register the listener on the storage the UI server writes into.
        """
        raise InputError(
            "register_listener: RemoteStatsRouter is write-only (it posts records to a "
            "UI and reads nothing back), so a listener on it would never be called; "
            "register the listener on the storage the UI server writes into (the one "
            "given to `embedviz ui` or UIServer)"
        )

    # -- asking the UI ----------------------------------------------------------------
    def list_workers(self, session_id: str) -> list[str]:
        """The workers the UI already holds under ``session_id`` (``GET /api/sessions``),
        so that a run started again under a name used before becomes ``NAME-2`` (see
        :func:`~embedviz.stats.system.unused_session_id`). ``[]`` when the UI cannot be
        asked (away, refusing, slow: at most 2 s)."""
        sessions_url = self.url[: -len("records")] + "sessions"
        return workers_of(sessions_url, self.token, session_id, min(self.timeout, 2.0))
