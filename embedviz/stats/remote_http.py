"""The HTTP side of :class:`~embedviz.stats.remote.RemoteStatsRouter`: the request body,
one POST, and what an answer means (``embedviz/ui/http_api.md``, "Answers").

Plain functions without state, so that each can be tested without a router:

* :func:`envelope` / :func:`body_size`: the body of ``POST /api/records`` and its length
  in bytes (the records are ASCII JSON, as :func:`json.dumps` writes by default).
* :func:`post_batch`: one request; ``(HTTP status, message)``, status 0 when nothing
  that is HTTP came back (refused, reset, timed out, another program on the port).
* :func:`classify`: the router's next move for a status.
* :func:`bad_position`: the index of the record a 400 answer names.
* :func:`workers_of`: the workers a UI holds under a session (``GET /api/sessions``).
* :func:`record_key` / :func:`with_session`: a record's type, session and worker, and
  the record under another session name (for a run the UI answered 409 for).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import urllib.error
import urllib.request
from typing import Literal

from embedviz.stats.records import SCHEMA_VERSION

log = logging.getLogger(__name__)

#: statuses that mean "try again later" although they are 4xx
TRANSIENT = frozenset({408, 429})
#: statuses that are final for the whole router, and what they mean
REFUSED = {401: "the token was refused", 403: "the receiver is disabled or refused us"}
_POSITION = re.compile(r"^records\[(\d+)\]")

_KEY = re.compile(
    r'^\{"type": "(\w+)", "session_id": ("(?:[^"\\]|\\.)*"), "worker_id": ("(?:[^"\\]|\\.)*")'
)

Verdict = Literal["ok", "split", "reject", "refused", "retry", "conflict"]


def envelope(payloads: list[str]) -> bytes:
    """The request body: the records (JSON texts) in the envelope of http_api.md.

    Examples
    --------
    >>> envelope(['{"a": 1}', '{"b": 2}'])[-20:]
    b'[{"a": 1},{"b": 2}]}'
    """
    return (
        f'{{"schema_version": {SCHEMA_VERSION}, "records": [' + ",".join(payloads) + "]}"
    ).encode()


_EMPTY_BODY = len(envelope([]))


def body_size(payloads: list[str]) -> int:
    """``len(envelope(payloads))`` without building the body (ASCII payloads).

    Examples
    --------
    >>> body_size(['{"a": 1}', '{"b": 2}']) == len(envelope(['{"a": 1}', '{"b": 2}']))
    True
    """
    return _EMPTY_BODY + sum(len(p) for p in payloads) + max(len(payloads) - 1, 0)


def _authorized(request: urllib.request.Request, token: str | None) -> urllib.request.Request:
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    return request


def post_batch(url: str, token: str | None, payloads: list[str], timeout: float) -> tuple[int, str]:
    """POST one batch to ``url``; ``(HTTP status, message)``, status 0 for no answer.

    The message is the answer's body (at most 2,000 bytes) for an HTTP error, the
    reason for no answer, else empty. Never raises for anything the network or the
    server does.

    Examples
    --------
    >>> post_batch("http://127.0.0.1:9/api/records", None, [], 0.5)[0]  # doctest: +SKIP
    0
    """
    request = urllib.request.Request(url, data=envelope(payloads), method="POST")
    request.add_header("Content-Type", "application/json")
    _authorized(request, token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        try:
            message = exc.read(2000).decode(errors="replace")
        except Exception:
            message = ""
        return exc.code, message
    except http.client.HTTPException as exc:  # not HTTP (a wrong port): no answer
        return 0, f"not an HTTP answer ({type(exc).__name__}: {str(exc).strip()[:200]})"
    except (OSError, ValueError) as exc:  # refused, reset, timeout, bad answer
        return 0, str(exc)


def classify(status: int, n_records: int) -> Verdict:
    """What the router does after ``status`` for a batch of ``n_records``.

    ``"ok"`` (2xx): forget the batch. ``"split"`` (413 for several records): send the
    halves. ``"conflict"`` (409): the UI holds another run under the session name of
    the StaticInfo the answer names; send that run under another name. ``"reject"``
    (400, a 413 for one record, any other 4xx that is neither transient nor a
    refusal): keep it as rejected, never retry (a 400 naming a record is split around
    it first: :func:`bad_position`). ``"refused"`` (401, 403): stop
    sending for good. ``"retry"`` (0 for no answer, 5xx, 408, 429): back off, retry.

    Examples
    --------
    >>> [classify(s, 2) for s in (200, 413, 400, 401, 409, 429, 503, 0)]
    ['ok', 'split', 'reject', 'refused', 'conflict', 'retry', 'retry', 'retry']
    """
    if 200 <= status < 300:
        return "ok"
    if status == 409:
        return "conflict"
    if status == 413 and n_records > 1:
        return "split"
    if status in REFUSED:
        return "refused"
    if 400 <= status < 500 and status not in TRANSIENT:
        return "reject"
    return "retry"


def bad_position(message: str) -> int | None:
    """The index of the record a 400 answer names (``records[3].score: ...``), if any.

    Examples
    --------
    >>> bad_position('{"error": "records[3].score: expected a number"}')
    3
    >>> bad_position("not JSON") is None
    True
    """
    try:
        error = json.loads(message).get("error", "")
    except (ValueError, AttributeError):
        return None
    match = _POSITION.match(error) if isinstance(error, str) else None
    return int(match.group(1)) if match else None


def workers_of(sessions_url: str, token: str | None, session_id: str, timeout: float) -> list[str]:
    """The workers the UI at ``sessions_url`` (``GET /api/sessions``) holds under
    ``session_id``; ``[]`` when it cannot be asked (away, refusing, not JSON).

    Examples
    --------
    >>> workers_of("http://127.0.0.1:9/api/sessions", None, "run", 0.5)  # doctest: +SKIP
    []
    """
    request = _authorized(urllib.request.Request(sessions_url), token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read(16 * 2**20))
    except (OSError, ValueError, http.client.HTTPException) as exc:  # no answer, not JSON
        log.debug("could not ask %s for its sessions: %s", sessions_url, exc)
        return []
    sessions = answer.get("sessions") if isinstance(answer, dict) else None
    if not isinstance(sessions, list):
        return []
    return [
        str(w)
        for s in sessions
        if isinstance(s, dict) and s.get("session_id") == session_id
        for w in s.get("workers") or []
    ]


def record_key(payload: str) -> tuple[str, str, str] | None:
    """A record's ``(type, session_id, worker_id)``, from its JSON text; None when it
    is not a record.

    Examples
    --------
    >>> record_key('{"type": "update", "session_id": "run", "worker_id": "0", "iteration": 5}')
    ('update', 'run', '0')
    """
    match = _KEY.match(payload)
    if match is not None:  # as records.to_json writes: no need to read the whole record
        return match.group(1), json.loads(match.group(2)), json.loads(match.group(3))
    try:
        record = json.loads(payload)
        key = record["type"], record["session_id"], record["worker_id"]
    except (ValueError, TypeError, KeyError):
        return None
    return key if all(isinstance(k, str) for k in key) else None


def with_session(payload: str, session_id: str) -> str:
    """The record ``payload`` (JSON text) under the session ``session_id``.

    Examples
    --------
    >>> with_session('{"type": "eval", "session_id": "run", "worker_id": "0"}', "run-2")
    '{"type": "eval", "session_id": "run-2", "worker_id": "0"}'
    """
    match = _KEY.match(payload)
    if match is not None:
        start, end = match.span(2)
        return payload[:start] + json.dumps(session_id) + payload[end:]
    record = json.loads(payload)
    record["session_id"] = session_id
    return json.dumps(record)
