"""The remote receiver: ``POST /api/records`` and ``GET /api/sessions`` (see ``http_api.md``).

Both take the token of a server started with one: the receiver only as
``Authorization: Bearer``, the session list also by the browser's cookie
(:mod:`embedviz.ui.auth`).

Route handlers only read the request and call the ``*_impl`` functions, which return
``(status, body_dict)``; tests call them directly. Checks, in order: 403 for a ``Host``
header that is not the UI's own (:func:`embedviz.ui.auth.host_allowed`, against DNS
rebinding; both routes), 403 when the receiver is disabled, 401 for a missing or wrong
bearer token (compared with :func:`hmac.compare_digest`), 400 for a Content-Type other
than JSON (so that no other web site can post records through the user's browser), 413
for a body over the limit (judged from ``Content-Length`` before the body is kept), 400
for anything malformed (not UTF-8, not JSON, not an object, ``schema_version`` missing or
newer, ``records`` not a list, a record invalid -- the message names the position). A
batch is validated whole before any record is stored.

The handler sets the body limit of its own request (tornado's ``max_body_size``, which
otherwise answers a bare ``400`` and drops the connection): a body up to
:data:`DRAIN_BYTES` (at least 4 times the limit) is read and dropped when the answer is
decided from the headers, so that a client that sends its whole body before reading
(Python's ``http.client``) gets the JSON answer; a client that waits for ``100
Continue`` (curl), or a larger body, gets the answer at once, without the body being
read, and the connection is then closed. A body of unknown length (``Transfer-Encoding:
chunked``) is read and dropped in the same way once it passes the limit, and answered
(413) as soon as more than :data:`DRAIN_BYTES` have come, closing the connection: tornado's
own limit, which would answer a bare ``400`` first, is not the one that stops it.

A StaticInfo for a session and worker that already hold a different StaticInfo (in the
receiving storage, or earlier in the same batch) belongs to another run: the batch is
answered 409, naming that record, before anything of it is stored, so that two runs never
mix under one name; the router then sends that run under ``NAME-2`` (``NAME-3``, ...).
The same StaticInfo sent again (the same run, at least once) is taken.

Validation is :func:`embedviz.stats.validation.record_from_dict`, a fixed table of four
dataclasses: nothing named in a payload is imported, evaluated or instantiated.
Delivery is at least once: a batch whose exact bytes were stored recently is answered
200 again without storing it twice (the router resends a batch whose answer it lost).

While the storage's file cannot be written (disk full, locked: its ``failing``), a batch
is answered 503 before anything of it is stored, and the router keeps it and retries;
one error is logged per such episode, not one per request. A batch whose own write found
the file failing stays buffered in the storage (written once the file works) and its
records are remembered one by one: sent again, in the same batch or regrouped with
others (the router does), they are answered 503 while the file fails and 200 once the
file works, never stored twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from tornado.ioloop import IOLoop
from tornado.web import RequestHandler, stream_request_body

from embedviz.errors import EmbedvizError, StatsWriteError, StorageFullError
from embedviz.stats.limits import check_token
from embedviz.stats.records import SCHEMA_VERSION, StaticInfo, to_dict
from embedviz.stats.validation import record_from_dict
from embedviz.ui.auth import UNAUTHORISED_JSON, HostCheck, bearer_matches

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 * 2**20
_RECENT = 2048  # how many stored batch digests are remembered for duplicate answers
_PENDING = 200_000  # records buffered while the file failed, remembered until resent
#: a refused body up to this size (or 4 times the limit, if more) is read and dropped
#: before the answer; a larger one is answered at once and the connection closed
DRAIN_BYTES = 64 * 2**20
_UNBOUNDED = 2**62  # tornado's limit for a chunked body, which data_received bounds


@dataclass
class ReceiverConfig:
    """How the receiver answers: on/off, the token (checked by
    :func:`~embedviz.stats.limits.check_token`), the body limit; and what it remembers
    between requests: the digests of batches stored recently (``recent``) and of the
    records buffered while the file failed (``pending``), and whether the current
    failure of the file is logged (``refusing``)."""

    enabled: bool = False
    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    recent: OrderedDict = field(default_factory=OrderedDict)
    pending: OrderedDict = field(default_factory=OrderedDict)
    refusing: bool = False

    def __post_init__(self) -> None:
        if self.token is not None:
            check_token(self.token)


def _error(status: int, message: str) -> tuple[int, dict]:
    return status, {"error": message}


def check_request_impl(
    config: ReceiverConfig,
    authorization: str | None,
    content_length: int | None,
    content_type: str | None = "application/json",
) -> tuple[int, dict] | None:
    """The answer decided from the headers alone (403/401/400/413), or None to go on.

    A Content-Type other than ``application/json`` is refused (400): a web page can
    post ``text/plain`` to 127.0.0.1 without the browser asking first, but not JSON,
    so this keeps other sites from writing into the storage.
    """
    if not config.enabled:
        return _error(403, "remote receiver disabled; start embedviz ui --enable-remote")
    if config.token is not None and not bearer_matches(authorization, config.token):
        return _error(401, UNAUTHORISED_JSON["error"])
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        return _error(
            400, f"Content-Type: expected application/json, got {content_type or 'none'!r:.60}"
        )
    if content_length is not None and content_length > config.max_body_bytes:
        return _error(
            413,
            f"body of {content_length} bytes exceeds the limit of {config.max_body_bytes} bytes",
        )
    return None


def parse_records_impl(body: bytes) -> list:
    """Validate a request body; the records it holds, or EmbedvizError naming the problem."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EmbedvizError(f"body: not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise EmbedvizError("body: JSON nested too deeply") from None
    except ValueError as exc:
        raise EmbedvizError(f"body: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EmbedvizError(
            f'body: expected an object {{"schema_version": ..., "records": [...]}}, '
            f"got {type(data).__name__}"
        )
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise EmbedvizError(f"schema_version: expected an integer, got {version!r:.60}")
    if version > SCHEMA_VERSION:
        raise EmbedvizError(
            f"schema_version: {version} is newer than this UI reads ({SCHEMA_VERSION}); "
            "upgrade embedviz on the UI side"
        )
    records = data.get("records")
    if not isinstance(records, list):
        raise EmbedvizError(f"records: expected a list, got {type(records).__name__}")
    out = []
    for i, r in enumerate(records):
        out.append(record_from_dict(r, where=f"records[{i}]"))
    return out


def store_records_impl(
    config: ReceiverConfig, body: bytes, get_storage: Callable[[], object]
) -> tuple[int, dict]:
    """Validate ``body`` and store every record into ``get_storage()``; (status, answer).

    503 while the storage's file cannot be written: refused before anything is stored
    when the file is known to fail, else when the batch's own write fails (its records
    then stay buffered in the storage, and none of them is stored again when resent, in
    any batch). 409,
    before anything is stored, for a StaticInfo of another run than the one the storage
    holds under its session and worker (:func:`other_run_impl`).
    """
    digest = hashlib.blake2b(body, digest_size=16).digest()
    if digest in config.recent:
        return 200, {"accepted": config.recent[digest]}
    try:
        records = parse_records_impl(body)
    except EmbedvizError as exc:  # InputError from record_from_dict is one too
        return _error(400, " ".join(str(exc).split())[:500])
    if records:
        storage = get_storage()
        failing = getattr(storage, "failing", None)
        if failing is not None:  # the sender keeps the batch and retries
            return _unavailable(config, storage, failing)
        fresh, held = records, []  # held: buffered when the file failed, sent again
        if config.pending:
            keyed = [(r, _record_digest(r)) for r in records]
            fresh = [r for r, d in keyed if d not in config.pending]
            held = [d for _, d in keyed if d in config.pending]
        if fresh:
            conflict = other_run_impl(storage, fresh)
            if conflict is not None:
                return conflict
            try:
                storage.put_many(fresh)
            except StorageFullError as exc:  # the sender keeps the records and retries
                return _error(507, " ".join(str(exc).split())[:500])
        try:
            storage.flush()  # committed before the router is told 200 and forgets the batch
        except StatsWriteError as exc:
            for r in fresh:  # buffered in the storage: never put a second time
                _remember(config.pending, _record_digest(r), 1, bound=_PENDING)
            return _unavailable(config, storage, getattr(storage, "failing", None) or str(exc))
        for d in held:
            config.pending.pop(d, None)
        if config.refusing:
            config.refusing = False
            log.warning("%s: storing remote records works again", _name(storage))
    _remember(config.recent, digest, len(records))
    return 200, {"accepted": len(records)}


def _same_run(a: StaticInfo, b: StaticInfo) -> bool:
    """Whether two StaticInfos are the same one (sent again), NaN equal to NaN."""
    return json.dumps(to_dict(a), sort_keys=True) == json.dumps(to_dict(b), sort_keys=True)


def other_run_impl(storage: object, records: list) -> tuple[int, dict] | None:
    """409 for the first StaticInfo of ``records`` whose session and worker already hold
    a different StaticInfo (in ``storage`` or earlier in the batch), else None.

    A run is known by its StaticInfo (every producer puts one first, stamped with the
    time it started): another one under the same session and worker is another run,
    whose records would otherwise mix with the first one's (iterations twice). The
    answer names the record (``records[i]: ...``) and its ``session_id`` and
    ``worker_id``; the router sends the records before it, then that run under
    ``NAME-2``.
    """
    seen: dict[tuple[str, str], StaticInfo | None] = {}
    for i, record in enumerate(records):
        if not isinstance(record, StaticInfo):
            continue
        key = (record.session_id, record.worker_id)
        held = seen[key] if key in seen else storage.get_static_info(*key)
        seen[key] = record
        if held is None or _same_run(held, record):
            continue
        message = (
            f"records[{i}]: session {key[0]!r:.200} already holds another run of worker "
            f"{key[1]!r:.200} (a different StaticInfo); send this run under another "
            f"session name (RemoteStatsRouter does: NAME-2, NAME-3, ...)"
        )
        return 409, {"error": message, "session_id": key[0], "worker_id": key[1]}
    return None


def _remember(digests: OrderedDict, digest: bytes, n: int, bound: int = _RECENT) -> None:
    digests[digest] = n
    while len(digests) > bound:
        digests.popitem(last=False)


def _record_digest(record) -> bytes:
    """One record's identity for duplicate detection (its fields, NaN included)."""
    text = json.dumps(to_dict(record), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _name(storage: object) -> str:
    return str(getattr(storage, "path", type(storage).__name__))


def _unavailable(config: ReceiverConfig, storage: object, cause: str) -> tuple[int, dict]:
    """503 for a file that cannot be written; the first of an episode is logged."""
    cause = " ".join(str(cause).split())[:300]
    if not config.refusing:
        config.refusing = True
        log.error(
            "%s: cannot write remote records (%s); answering 503 until the file works "
            "again (the senders keep their records and retry)", _name(storage), cause,
        )  # fmt: skip
    return _error(
        503,
        f"the UI cannot write its statistics file now ({cause}); the batch is not "
        f"committed, send it again later",
    )


def sessions_impl(
    storages: list[tuple[str, object]], labels: dict[tuple[int, str], str] | None = None
) -> tuple[int, dict]:
    """The sessions of every attached storage with their workers.

    ``labels`` maps ``(id(storage), session_id)`` to the name the pages show the session
    under (``NAME (file.db)`` for a name an earlier storage holds too); an entry has
    ``label`` when it differs from ``session_id``.
    """
    labels = labels or {}
    out = []
    for name, storage in storages:
        for sid in storage.list_sessions():
            entry = {"session_id": sid, "workers": storage.list_workers(sid), "storage": name}
            label = labels.get((id(storage), sid), sid)
            if label != sid:
                entry["label"] = label
            out.append(entry)
    return 200, {"sessions": out}


class _JSONHandler(RequestHandler):
    def reply(self, status: int, body: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs) -> None:  # tornado's own errors
        self.reply(status_code, {"error": self._reason})


def _hosts(server) -> HostCheck:
    return HostCheck(server.host, server.receiver.token is not None)


@stream_request_body
class RecordsHandler(_JSONHandler):
    """``POST /api/records``: headers checked first, the body kept only within the limit."""

    def initialize(self, server) -> None:
        self.server = server

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._drain = DRAIN_BYTES
        headers = self.request.headers
        length = headers.get("Content-Length")
        try:
            length = int(length) if length is not None else None
        except ValueError:
            length = None  # tornado answers 400 itself
        hosts = _hosts(self.server)
        if not hosts.allows_host(headers.get("Host")):
            log.warning("refused POST /api/records: Host %r", headers.get("Host"))
            self._early = _error(403, hosts.message(headers.get("Host")))
        else:
            self._early = check_request_impl(
                self.server.receiver,
                headers.get("Authorization"),
                length,
                headers.get("Content-Type"),
            )
        if self.request.method != "POST":
            return
        limit = self.server.receiver.max_body_bytes
        drain = self._drain = max(DRAIN_BYTES, 4 * limit)
        connection = self.request.connection
        # this request's own limit, so that tornado never answers its bare 400 first; a
        # chunked body (no length) is stopped by data_received, after ``drain`` bytes
        connection.set_max_body_size(max(drain, length) if length is not None else _UNBOUNDED)
        if self._early is not None and (
            headers.get("Expect", "").lower() == "100-continue"
            or (length is not None and length > drain)
        ):
            # answer before the body: curl waits for 100 Continue and stops on this;
            # a body beyond ``drain`` is not read (the connection closes after this)
            self.reply(*self._early)

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        limit = self.server.receiver.max_body_bytes
        if self._early is None and self._size > limit:
            self._chunks = []
            self._early = _error(
                413, f"body of more than {limit} bytes exceeds the limit of {limit} bytes"
            )
        if self._early is not None:  # read and drop: the answer is decided
            if self._size > self._drain and not self._finished:
                # a chunked body beyond what is worth reading: answer now; tornado
                # closes the connection once the answer is sent
                self.reply(*self._early)
            return
        self._chunks.append(chunk)

    async def post(self) -> None:
        if self._finished:  # answered in prepare()
            return
        if self._early is not None:
            self.reply(*self._early)
            return
        body = b"".join(self._chunks)
        self._chunks = []
        try:
            status, answer = await IOLoop.current().run_in_executor(
                self.server.executor,
                store_records_impl,
                self.server.receiver,
                body,
                self.server.receiving_storage,
            )
        except Exception:  # a bug answers 500 (the file failing is 503); serving goes on
            log.exception("storing remote records failed")
            status, answer = _error(500, "could not store the records; see the UI's log")
        self.reply(status, answer)

    def get(self) -> None:
        self.reply(405, {"error": "use POST with a JSON body, see embedviz/ui/http_api.md"})


class SessionsHandler(_JSONHandler):
    """``GET /api/sessions``: what the UI shows, as JSON (behind the token when set)."""

    def initialize(self, server) -> None:
        self.server = server

    def get(self) -> None:
        if not _hosts(self.server).admit(self, json_answer=True):
            return
        gate = self.server.gate
        if gate is not None and not gate.admits(self):
            self.reply(401, dict(UNAUTHORISED_JSON))
            return
        labels = {(id(st), sid): label for label, sid, st, _ in self.server.session_entries()}
        self.reply(*sessions_impl(self.server.named_storages(), labels))
