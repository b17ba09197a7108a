"""The sender thread of :class:`~embedviz.stats.remote.RemoteStatsRouter`.

:class:`Sender` is mixed into the router and holds what its background thread does:
take the next batch (the spill's oldest records first, then the queue), post it,
split it when it is too large, act on the answer (``embedviz/ui/http_api.md``,
"Answers": :func:`~embedviz.stats.remote_http.classify` says which move), back off
while the UI is away, and put the batch at hand back after an unexpected error, so
that the thread never stops early.

It works on the router's state, which :meth:`RemoteStatsRouter.__init__
<embedviz.stats.remote.RemoteStatsRouter>` sets up: the queue (``_queue``), the
records waiting in the spill (``_waiting``, a
:class:`~embedviz.stats.remote_spill.SpillQueue`), the run names
(``_names``, a :class:`~embedviz.stats.remote_names.RunNames`), the count of records
not yet answered (``_answered``), and the batch in flight (``_inflight``,
``_inflight_done``), which ``close()`` takes over under ``_handoff`` when a request is
stuck (``_abandoned``: the thread then touches nothing).
"""

from __future__ import annotations

import logging
import queue
import time

from embedviz.stats.remote_http import REFUSED, bad_position, body_size, classify, post_batch

# the router's logger: one name to configure for everything the router says
log = logging.getLogger("embedviz.stats.remote")


class Sender:
    """The background thread's half of :class:`~embedviz.stats.remote.RemoteStatsRouter`
    (see the module docstring); not usable on its own."""

    def _post(self, payloads: list[str]) -> tuple[int, str]:
        """POST one batch; (HTTP status or 0 for no answer, message)."""
        return post_batch(self.url, self.token, payloads, self.timeout)

    def _done(self, n: int, track: bool) -> bool:
        """``n`` more records of the batch answered; False when close() took it over."""
        if not track:  # a batch replayed from the spill file or memory
            self._replay_done += n
            return not self._abandoned
        with self._handoff:
            if self._abandoned:
                return False
            self._inflight_done += n
            return True

    def _reject(self, payloads: list[str], reason: str) -> None:
        self._waiting.reject(payloads, reason)
        self._answered(len(payloads))
        log.error(
            "remote UI %s refused %d record(s) for good (%s); they are kept in the "
            "'rejected' table of %s",
            self.url,
            len(payloads),
            reason,
            self.spill_path,
        )

    def _send(self, payloads: list[str], track: bool = False) -> list[str] | None:
        """Send a batch, splitting it when too large.

        Returns None when everything was answered (accepted, or rejected for good),
        else the records still to send, in order. ``track``: the batch is the one in
        flight from the queue (``_inflight``), which close() may take over.
        """
        chunks = [payloads]
        while chunks:
            # under the names the runs are sent under (idempotent: records from the
            # spill already are)
            chunk = self._names.named(chunks.pop(0))
            size = body_size(chunk)
            if size > self.max_body_bytes and len(chunk) > 1:
                half = len(chunk) // 2
                chunks[:0] = [chunk[:half], chunk[half:]]
                continue
            status, message = self._post(chunk)
            if self._abandoned:
                return None  # close() has kept the batch; whatever came back is moot
            verdict = classify(status, len(chunk))
            if verdict == "ok":
                self.sent += len(chunk)
                self._answered(len(chunk))
                if not self._server_ok:
                    log.info("remote UI %s is back; sending", self.url)
                self._server_ok = True
                self._error = None
                self._done(len(chunk), track)
                continue
            if verdict == "split":
                half = len(chunk) // 2
                chunks[:0] = [chunk[:half], chunk[half:]]
                continue
            if verdict == "conflict":  # another run holds the name of a StaticInfo
                again = self._names.conflict(chunk, message, replayed=not track)
                if again is not None:
                    chunks[:0] = again
                    continue
                # taken as a 400: the record it names (the first: conflict() splits
                # before any other) is refused alone, without asking again; the rest
                # is sent
                verdict = "reject"
                if bad_position(message) == 0 and len(chunk) > 1:
                    self._reject(chunk[:1], f"HTTP {status}: {message[:500]}")
                    self._done(1, track)
                    chunks[:0] = [chunk[1:]]
                    continue
            bad = bad_position(message) if status == 400 and len(chunk) > 1 else None
            if bad is not None and bad < len(chunk):
                # the receiver names the first bad record: send the ones before it,
                # that one alone (rejected, so kept), then the rest, in order
                parts = (chunk[:bad], chunk[bad : bad + 1], chunk[bad + 1 :])
                chunks[:0] = [c for c in parts if c]
                continue
            if verdict == "reject":
                self._reject(chunk, f"HTTP {status}: {message[:500]}")
                self._done(len(chunk), track)
                continue
            if verdict == "refused":
                self.refused = f"HTTP {status}, {REFUSED[status]}: {message[:200]}"
                log.error(
                    "remote UI %s refused the records (%s); stopped sending. Every record "
                    "is kept in %s: check the token (and that the UI runs with "
                    "--enable-remote), then send them with RemoteStatsRouter(url, "
                    "token=<the right token>, spill_path=%r)",
                    self.url,
                    self.refused,
                    self.spill_path,
                    str(self.spill_path),
                )
            elif self._server_ok:
                log.warning(
                    "remote UI %s not accepting records (%s); keeping them in %s and retrying",
                    self.url,
                    f"HTTP {status}: {message[:200]}" if status else message,
                    self.spill_path,
                )
            # an answer (503: the UI's disk is full) says more than "unreachable"
            self._last_answer = f"HTTP {status}: {message[:200]}" if status else None
            self._server_ok = False
            return [p for c in [chunk, *chunks] for p in c]
        return None

    def _run(self) -> None:
        """The sender thread: one :meth:`_step` after another until close(). Nothing
        may end it early: an unexpected error is logged once with its traceback, the
        records of the batch at hand are put back, and the thread backs off and
        tries again (:meth:`flush` and :meth:`close` then name the error)."""
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:
                    self._recover(exc)
        finally:
            if not self._stop.is_set():  # a BaseException got through: say so
                self._error = self._error or "the sender thread stopped"

    def _retry_later(self, failed: bool) -> None:
        if failed:
            self._backoff = min(max(2 * self._backoff, 0.5), self.max_backoff)
            self._next_try = time.monotonic() + self._backoff
        else:
            self._backoff = 0.0

    def _step(self) -> None:
        if self.refused is not None:  # final: keep everything, send nothing
            self._drain_queue_to_spill()
            self._idle.set()
            self._stop.wait(0.05)
            return
        if len(self._waiting):
            if self._waiting.in_file:  # keeps order and keeps the queue free
                self._drain_queue_to_spill()
            if time.monotonic() < self._next_try:
                self._stop.wait(min(0.05, self._next_try - time.monotonic()))
                return
            # the spill file's rows are older than memory's, which are older than the
            # queue's
            where, payloads = self._waiting.oldest(self.batch_size)
            if not payloads:
                return
            self._replay, self._replay_done = where, 0
            left = self._send(payloads)
            self._settle_replay()
            self._retry_later(left is not None)
            return
        try:
            batch = [self._queue.get(timeout=0.05)]
        except queue.Empty:
            self._idle.set()
            return
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        with self._handoff:  # from here on close() or _recover() can take it over
            self._inflight, self._inflight_done = batch, 0
        newer = bool(len(self._waiting))  # the caller spilled meanwhile: newer
        left = batch if newer else self._send(batch, track=True)
        with self._handoff:
            if self._abandoned:
                return  # close() kept the batch
            if left is not None:
                self._waiting.add(left, front=not newer)
            self._inflight, self._inflight_done = [], 0
        if not newer:
            self._retry_later(left is not None)

    def _settle_replay(self) -> None:
        """Forget the records of the replayed batch that the server answered."""
        replay, done = self._replay, self._replay_done
        self._replay, self._replay_done = None, 0
        if replay is not None and done:
            self._waiting.forget(replay, done)
            if replay[0]:
                self._replayed += done
                self._inherited_sent()

    def _inherited_sent(self) -> None:
        """Once the records an earlier router left in the spill file are answered, say
        so (at INFO): the file's first records, sent before anything else."""
        if not self._inherited or self._replayed < self._inherited:
            return
        n, self._inherited = self._inherited, 0
        refused = f" ({self.rejected} of them refused for good, kept in its 'rejected' table)"
        log.info(
            "remote UI %s: sent %d record(s) from the spill file %s%s",
            self.url,
            n - self.rejected,
            self.spill_path,
            refused if self.rejected else "",
        )

    def _recover(self, exc: Exception) -> None:
        """After an unexpected error in :meth:`_step`: put the batch at hand back
        (nothing is lost, the answered part is forgotten), log, back off."""
        self._error = f"{type(exc).__name__}: {exc}"
        if not self._error_logged:
            self._error_logged = True
            log.exception(
                "remote UI %s: the sender thread failed (%s); the records are kept and "
                "sending is tried again with back-off (only this first failure is "
                "logged with its traceback)",
                self.url,
                self._error,
            )
        else:
            log.debug("remote UI %s: the sender thread failed again: %s", self.url, self._error)
        try:
            self._settle_replay()
            with self._handoff:
                if not self._abandoned and self._inflight:
                    rest = self._inflight[self._inflight_done :]
                    self._inflight, self._inflight_done = [], 0
                    try:
                        self._waiting.add(rest, front=True)
                    except Exception:
                        self._waiting.hold(rest, front=True, bound=False)
        except Exception:
            log.debug("remote UI %s: recovering failed too", self.url, exc_info=True)
        self._retry_later(True)
