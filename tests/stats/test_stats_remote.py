"""RemoteStatsRouter against local test servers that go away, come back, stall, refuse
or do not speak HTTP (§5, §7).

Every server and router is made through a fixture that stops or closes it after the
test, also when an assert fails. Timeouts and back-offs are short; where a test waits
for a request that hangs, an Event decides when it ends.
"""

import json
import logging
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from embedviz.errors import InputError
from embedviz.stats.records import SCHEMA_VERSION, Update, to_dict, to_json
from embedviz.stats.remote import RemoteStatsRouter
from embedviz.stats.validation import record_from_dict


def _serve(handler, port=0):
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    return server


class Receiver:
    """A tiny stand-in for ``embedviz ui --enable-remote`` on 127.0.0.1; ``largest`` is
    the largest Content-Length it got, ``too_large`` how many bodies it answered 413."""

    def __init__(self, port=0, token=None, max_bytes=1 << 20, status=None, bad_iteration=None):
        self.records = []
        self.requests = 0
        self.largest = 0
        self.too_large = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.requests += 1
                if status is not None:
                    return self._answer(status, {"error": "forced"})
                if self.path != "/api/records":
                    return self._answer(404, {"error": "no such route"})
                if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                    return self._answer(401, {"error": "bad token"})
                length = int(self.headers.get("Content-Length", 0))
                outer.largest = max(outer.largest, length)
                if length > max_bytes:
                    outer.too_large += 1
                    return self._answer(413, {"error": "too large"})
                body = json.loads(self.rfile.read(length))
                assert body["schema_version"] == SCHEMA_VERSION
                for i, r in enumerate(body["records"]):  # the UI names the first bad one
                    if r.get("iteration") == bad_iteration:
                        return self._answer(400, {"error": f"records[{i}].score: bad"})
                recs = [record_from_dict(r, f"records[{i}]") for i, r in enumerate(body["records"])]
                outer.records.extend(recs)
                self._answer(200, {"accepted": len(recs)})

            def _answer(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = _serve(Handler, port)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()


class Stalling:
    """A server that reads the request, then holds it until ``release`` is set and
    answers 503; or (``dribble``: seconds) sends its status line one byte at a time at
    that pace, so that no socket read ever times out, until stopped."""

    def __init__(self, dribble=None):
        self.requests = 0
        self.release = threading.Event()
        self.done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.requests += 1
                self.rfile.read(int(self.headers["Content-Length"]))
                if dribble is not None:
                    for ch in b"HTTP/1.1 503 Unavailable\r\n":
                        if outer.done.wait(dribble):
                            return
                        self.wfile.write(bytes([ch]))
                        self.wfile.flush()
                    return
                outer.release.wait()
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = _serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.done.set()
            self.release.set()
            self.server.shutdown()
            self.server.server_close()


class Banner:
    """A TCP server that answers every connection with an SSH banner, not HTTP (what a
    URL with the wrong port meets)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))  # SO_REUSEADDR: the port is
        self.sock.settimeout(0.02)  # free again for a Receiver once stopped
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done.is_set():
            try:
                con, _ = self.sock.accept()
            except TimeoutError:
                continue
            with con:
                self.connections += 1
                con.settimeout(1.0)
                con.recv(65536)
                con.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    def stop(self):
        if not self.done.is_set():
            self.done.set()
            self.thread.join()
            self.sock.close()


def _factory(cls):
    made = []

    def make(*args, **kw):
        made.append(cls(*args, **kw))
        return made[-1]

    return make, made


@pytest.fixture
def receivers():
    """``make(**kw)`` starts a :class:`Receiver`; all are stopped after the test."""
    make, made = _factory(Receiver)
    yield make
    for server in made:
        server.stop()


@pytest.fixture
def stalling():
    """``make(dribble=None)`` starts a :class:`Stalling` server; stopped after the test."""
    make, made = _factory(Stalling)
    yield make
    for server in made:
        server.stop()


@pytest.fixture
def banner():
    server = Banner()
    yield server
    server.stop()


@pytest.fixture
def routers(tmp_path):
    """``make(url, **kw)`` makes a router with a short back-off and a spill file in
    ``tmp_path``; all are closed after the test (quickly, if it failed). The request
    timeout stays 2 s where a real receiver answers (a timed-out request that was
    stored is sent twice, which the order asserts would see); tests of hung requests
    pass ``timeout=0.2``."""
    made = []

    def make(url, **kw):
        kw = {"timeout": 2.0, "max_backoff": 0.05, "spill_path": tmp_path / "spill.db", **kw}
        made.append(RemoteStatsRouter(url, **kw))
        return made[-1]

    yield make
    for router in made:
        router.close_timeout = min(router.close_timeout, 0.5)
        router.close()
        if router.unsent_path is not None:
            router.unsent_path.unlink(missing_ok=True)


def update(worker, i):
    return Update("remote", worker, i, float(i), score=1.0 / (i + 1), extra={"kl": float(i)})


def wait_for(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def by_worker(records):
    out = {}
    for r in records:
        out.setdefault(r.worker_id, []).append(r.iteration)
    return out


def spilled_rows(path):
    con = sqlite3.connect(path)
    try:
        return [json.loads(p) for (p,) in con.execute("SELECT payload FROM spill ORDER BY id")]
    finally:
        con.close()


def test_server_goes_away_and_comes_back_nothing_lost_order_kept(
    tmp_path, caplog, receivers, routers
):
    server = receivers()
    router = routers(server.url, batch_size=50, close_timeout=15)
    for i in range(150):
        for w in ("0", "1"):
            router.put(update(w, i))
    assert wait_for(lambda: len(server.records) == 300)
    server.stop()  # the UI goes away
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        t0 = time.perf_counter()
        for i in range(150, 400):
            for w in ("0", "1"):
                router.put(update(w, i))
        assert time.perf_counter() - t0 < 5  # training is not held up
        assert wait_for(lambda: router._waiting.in_file > 0)
    assert "not accepting records" in caplog.text
    assert (tmp_path / "spill.db").exists()
    back = receivers(port=server.port)  # ... and comes back on the same port
    for i in range(400, 450):
        for w in ("0", "1"):
            router.put(update(w, i))
    router.close()
    got = by_worker(server.records + back.records)
    assert got == {"0": list(range(450)), "1": list(range(450))}
    assert router.sent == 900 and router.pending() == 0
    assert not (tmp_path / "spill.db").exists()  # removed once everything was delivered
    with pytest.raises(InputError, match="closed"):
        router.put(update("0", 1))


def test_full_queue_spills_instead_of_blocking(receivers, routers):
    server = receivers()
    server.stop()
    router = routers(server.url, queue_size=4, put_timeout=0.001, close_timeout=15)
    t0 = time.perf_counter()
    for i in range(300):
        router.put(update("0", i))
    assert time.perf_counter() - t0 < 10
    assert router._waiting.in_file > 0 and router.pending() == 300
    back = receivers(port=server.port)
    router.close()
    assert by_worker(back.records) == {"0": list(range(300))}


def test_bad_token_keeps_records_and_a_later_router_sends_them(
    tmp_path, caplog, receivers, routers
):
    server = receivers(token="right")
    spill = tmp_path / "spill.db"
    router = routers(server.url, token="wrong", close_timeout=0.5, spill_path=spill)
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        for i in range(20):
            router.put(update("0", i))
        router.close()
    assert server.records == []
    assert "HTTP 401" in caplog.text and "kept in" in caplog.text
    assert len(spilled_rows(spill)) == 20
    again = routers(server.url, token="right", spill_path=spill, close_timeout=10)
    again.put(update("0", 20))
    again.close()
    assert by_worker(server.records) == {"0": list(range(21))}


def test_records_a_ui_answers_503_for_are_not_called_unreachable(
    tmp_path, caplog, receivers, routers
):
    """Review 9: the UI answered 503 (its disk full) to the end; close() said "the UI is
    unreachable". It names the answer."""
    server = receivers(status=503)
    router = routers(server.url, close_timeout=0.5, spill_path=tmp_path / "spill.db")
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        router.put(update("0", 1))
        router.close()
    assert server.requests >= 1
    assert "not sent (the UI could not store them (HTTP 503: " in caplog.text
    assert "unreachable" not in caplog.text


def test_malformed_batch_is_kept_as_rejected_not_retried(tmp_path, caplog, receivers, routers):
    server = receivers(status=400)
    router = routers(server.url, close_timeout=5)
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote"):
        router.put(update("0", 1))
        router.close()
    assert router.rejected == 1 and "refused 1 record" in caplog.text
    assert server.requests == 1
    con = sqlite3.connect(tmp_path / "spill.db")
    (reason,) = con.execute("SELECT reason FROM rejected").fetchone()
    assert reason.startswith("HTTP 400")
    con.close()


def test_batches_larger_than_max_body_bytes_are_split_before_they_are_sent(receivers, routers):
    """No body the router sends is over ``max_body_bytes`` (the JSON envelope and the
    commas counted: a limit just above the records' own bytes once let 100 through)."""
    records = [Update("remote", "0", i, 0.0, score=0.5) for i in range(100, 200)]
    size = len(json.dumps(to_dict(records[0])))  # every record has this many bytes
    assert {len(json.dumps(to_dict(r))) for r in records} == {size}
    limit = 100 * size + 70
    server = receivers(max_bytes=limit)
    router = routers(server.url, batch_size=100, max_body_bytes=limit)
    router.put_many(records)
    router.close()
    assert by_worker(server.records) == {"0": list(range(100, 200))}
    assert 0 < server.largest <= limit  # every body, not only the accepted ones
    assert server.too_large == 0 and router.rejected == 0


def test_too_large_batches_are_split(receivers, routers):
    """The server's limit is below the router's: its 413 answers make the router split."""
    server = receivers(max_bytes=2000)
    router = routers(server.url, batch_size=100)
    for i in range(60):
        router.put(update("0", i))
    router.close()
    assert by_worker(server.records) == {"0": list(range(60))}
    assert server.too_large > 0  # the split was needed...
    assert router.rejected == 0 and router.sent == 60  # ...and nothing was refused for good


def test_bad_url():
    with pytest.raises(InputError, match="url"):
        RemoteStatsRouter("localhost:9000")


def test_flush_waits_for_the_batch_being_posted(tmp_path, stalling, routers):
    server = stalling()  # holds the request until told
    router = routers(server.url, close_timeout=0.1)
    router.put(update("0", 1))
    assert wait_for(lambda: server.requests == 1)
    t0 = time.perf_counter()
    assert router.flush(timeout=0.3) is False  # the batch is in flight, not done
    assert time.perf_counter() - t0 >= 0.25
    assert router.pending() == 1 and router.sent == 0
    server.release.set()  # now 503, to this request and every later one
    router.close()
    assert router.pending() == 1
    assert [r["iteration"] for r in spilled_rows(tmp_path / "spill.db")] == [1]


def test_close_keeps_a_batch_whose_answer_never_comes(tmp_path, caplog, stalling, routers):
    server = stalling(dribble=0.05)  # each read gets a byte in time: no socket timeout
    spill = tmp_path / "spill.db"
    router = routers(server.url, timeout=0.2, close_timeout=0.1)
    for i in range(3):
        router.put(update("0", i))
    assert wait_for(lambda: server.requests == 1)
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        t0 = time.perf_counter()
        router.close()
        took = time.perf_counter() - t0
    assert took < 0.1 + 0.2 + 0.2 + 2  # close_timeout + 2 * timeout, and the spill write
    assert router.pending() == 3 and router.sent == 0 and router.rejected == 0
    assert [r["iteration"] for r in spilled_rows(spill)] == [0, 1, 2]
    assert "got no answer" in caplog.text
    left = "3 record(s) not sent (the UI did not take them within close_timeout=0.1 s), kept in"
    assert left in caplog.text
    assert f"spill_path={str(spill)!r}" in caplog.text
    server.stop()  # the router's thread gets its (moot) answer now and touches nothing
    router._thread.join(5)
    assert not router._thread.is_alive()
    assert [r["iteration"] for r in spilled_rows(spill)] == [0, 1, 2]


def test_records_go_to_a_file_when_the_spill_file_cannot_be_written(
    tmp_path, caplog, stalling, routers
):
    server = stalling(dribble=0.05)
    spill = tmp_path / "removed-later" / "s.db"
    spill.parent.mkdir()  # a missing folder is refused up front; one removed later is not
    router = routers(server.url, timeout=0.2, close_timeout=0.1, spill_path=spill)
    spill.parent.rmdir()
    router.put(update("0", 7))
    assert wait_for(lambda: server.requests == 1)
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote"):
        router.close()
    assert router.unsent_path is not None and str(router.unsent_path) in caplog.text
    lines = router.unsent_path.read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [7]
    assert "1 record(s) not sent" in caplog.text


def test_a_refused_token_is_final_and_close_does_not_wait(tmp_path, caplog, receivers, routers):
    server = receivers(token="right")
    spill = tmp_path / "spill.db"
    router = routers(server.url, token="wrong", batch_size=5, close_timeout=30)
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        for i in range(12):
            router.put(update("0", i))
        assert wait_for(lambda: router.refused is not None)
        for i in range(12, 20):
            router.put(update("0", i))
        t0 = time.perf_counter()
        router.close()
        assert time.perf_counter() - t0 < 3  # not the 30 s close timeout
    assert server.requests == 1  # no retries after a 401
    assert "HTTP 401" in router.refused and "token was refused" in router.refused
    assert "unreachable" not in caplog.text
    assert "20 record(s) not sent (the UI refused them: HTTP 401" in caplog.text
    assert "token=<the right token>" in caplog.text
    assert [r["iteration"] for r in spilled_rows(spill)] == list(range(20))
    assert router.pending() == 20


def test_a_bad_record_is_rejected_alone_and_the_rest_is_delivered(tmp_path, receivers, routers):
    server = receivers(bad_iteration=13)
    router = routers(server.url, batch_size=50)
    for i in range(30):
        router.put(update("0", i))
    router.close()
    assert by_worker(server.records) == {"0": [i for i in range(30) if i != 13]}
    assert router.rejected == 1 and router.sent == 29 and router.pending() == 0
    con = sqlite3.connect(tmp_path / "spill.db")
    ((payload,),) = con.execute("SELECT payload FROM rejected").fetchall()
    con.close()
    assert json.loads(payload)["iteration"] == 13
    assert server.requests <= 4  # 0..12 / 13 alone / 14..29, not one request per record


def test_records_the_spill_file_could_not_take_are_sent_first_when_the_server_is_back(
    tmp_path, caplog, receivers, routers
):
    gone = receivers()
    gone.stop()  # the UI is down, and the spill file's folder was removed
    spill = tmp_path / "removed-later" / "s.db"
    spill.parent.mkdir()  # a missing folder is refused up front; one removed later is not
    router = routers(gone.url, close_timeout=5, spill_path=spill)
    spill.parent.rmdir()
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote"):
        for i in range(5):
            router.put(update("0", i))
        assert wait_for(lambda: len(router._waiting.in_memory) == 5)  # kept in memory, not sent
    assert "cannot write the spill file" in caplog.text
    back = receivers(port=gone.port)
    for i in range(5, 8):
        router.put(update("0", i))
    assert router.flush(6) is True
    assert router.pending() == 0 and router.sent == 8
    assert [r.iteration for r in back.records] == list(range(8))
    router.close()
    assert router.unsent_path is None  # nothing left for the JSON-lines file


def test_records_kept_in_memory_are_bounded_and_what_is_dropped_is_logged(
    tmp_path, caplog, receivers, routers
):
    gone = receivers()
    gone.stop()
    spill = tmp_path / "removed-later" / "s.db"
    spill.parent.mkdir()  # a missing folder is refused up front; one removed later is not
    router = routers(
        gone.url, queue_size=3, put_timeout=0.001, close_timeout=5, spill_path=spill,
    )  # fmt: skip
    spill.parent.rmdir()
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote"):
        for i in range(20):
            router.put(update("0", i))
            assert len(router._waiting.in_memory) <= 3
        assert router.dropped > 0
        assert router.pending() == 20 - router.dropped  # dropped ones are not waited for
        drops = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert len(drops) == 1  # one error, not one per record
        assert "could not be written" in drops[0].getMessage()
        back = receivers(port=gone.port)
        assert router.flush(6) is True
        got = [r.iteration for r in back.records]
        assert len(got) == 20 - router.dropped
        assert got == sorted(got) and len(set(got)) == len(got)  # order kept
        router.close()
    assert f"{router.dropped} record(s)" in caplog.text


def test_a_server_that_does_not_speak_http_does_not_stop_the_sender(banner, receivers, routers):
    """Review 6, finding 1: http.client.BadStatusLine killed the sender thread."""
    router = routers(banner.url, batch_size=20)
    for i in range(60):
        for w in ("0", "1"):
            router.put(update(w, i))
    assert wait_for(lambda: banner.connections >= 2)  # asked again after the first
    assert router.flush(0.2) is False
    assert router._thread.is_alive() and router.pending() == 120
    banner.stop()
    back = receivers(port=banner.port)  # the right program on that port now
    assert router.flush(5) is True
    assert by_worker(back.records) == {"0": list(range(60)), "1": list(range(60))}
    assert router.sent == 120 and router.pending() == 0


def test_an_unexpected_error_in_the_sender_is_logged_once_and_sending_goes_on(
    receivers, routers, caplog, monkeypatch
):
    server = receivers()
    router = routers(server.url, batch_size=10)
    post, broken = router._post, threading.Event()
    broken.set()

    def failing_post(payloads):
        if broken.is_set():
            raise RuntimeError("boom")
        return post(payloads)

    monkeypatch.setattr(router, "_post", failing_post)
    with caplog.at_level(logging.ERROR, logger="embedviz.stats.remote"):
        for i in range(30):
            router.put(update("0", i))
        assert wait_for(lambda: router._waiting.in_file == 30)  # put back, not lost
        assert router.flush(0.2) is False
        assert router._thread.is_alive()
    assert len([r for r in caplog.records if r.exc_info]) == 1  # one traceback, not one a try
    assert "RuntimeError: boom" in caplog.text
    assert "30 record(s) not sent: the sender thread failed (RuntimeError: boom" in caplog.text
    broken.clear()
    assert router.flush(5) is True
    assert by_worker(server.records) == {"0": list(range(30))}
    assert router.sent == 30 and router.pending() == 0


def test_close_says_the_sender_failed_rather_than_unreachable(tmp_path, routers, caplog):
    router = routers("http://127.0.0.1:9", close_timeout=0.2)
    router._post = lambda payloads: 1 / 0
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        for i in range(5):
            router.put(update("0", i))
        router.close()
    assert "unreachable" not in caplog.text
    assert "the sender thread failed (ZeroDivisionError" in caplog.text
    assert "5 record(s) not sent (the sender thread failed: ZeroDivisionError" in caplog.text
    assert [r["iteration"] for r in spilled_rows(tmp_path / "spill.db")] == list(range(5))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"timeout": "5"}, r"timeout: expected a number > 0, got '5'"),
        ({"timeout": 0}, r"timeout: expected a number > 0, got 0"),
        ({"put_timeout": -1}, r"put_timeout: expected a number >= 0, got -1"),
        ({"max_backoff": -3}, r"max_backoff: expected a number > 0, got -3"),
        ({"max_backoff": float("inf")}, r"max_backoff: expected a number > 0, got inf"),
        ({"max_body_bytes": 0}, r"max_body_bytes: expected an integer >= 1024, got 0"),
        ({"close_timeout": None}, r"close_timeout: expected a number >= 0, got None"),
        ({"queue_size": 0}, r"queue_size: expected an integer >= 1, got 0"),
        ({"batch_size": 2.0}, r"batch_size: expected an integer >= 1, got 2.0"),
        ({"spill_path": 3}, r"spill_path: expected a file path or None"),
    ],
)
def test_every_parameter_is_checked_when_the_router_is_made(kw, match):
    """Review 6, finding 5: these were taken and failed later, in the sender thread."""
    with pytest.raises(InputError, match=match):
        RemoteStatsRouter("http://127.0.0.1:9", **kw)


def test_numpy_integers_are_taken_and_flush_checks_its_timeout(routers):
    router = routers("http://127.0.0.1:9", batch_size=np.int64(5), queue_size=np.int32(8))
    assert router.batch_size == 5 and type(router.batch_size) is int
    with pytest.raises(InputError, match=r"timeout: expected a number >= 0, got -1"):
        router.flush(-1)


def test_pending_counts_only_records_that_were_queued_or_spilled(receivers, routers, monkeypatch):
    server = receivers()
    router = routers(server.url)
    put, calls = router._queue.put, []

    def put_once(payload, timeout=None):
        calls.append(payload)
        if len(calls) == 2:
            raise RuntimeError("no room")  # the second record is neither queued nor spilled
        put(payload, timeout=timeout)

    monkeypatch.setattr(router._queue, "put", put_once)
    with pytest.raises(RuntimeError, match="no room"):
        router.put_many([update("0", 0), update("0", 1), update("0", 2)])
    assert router.flush(5) is True  # was stuck at 2 for good
    assert router.pending() == 0 and by_worker(server.records) == {"0": [0]}
    router.put(update("0", 3))
    assert router.flush(5) is True and by_worker(server.records) == {"0": [0, 3]}


def test_the_router_is_write_only_and_refuses_listeners(routers):
    router = routers("http://127.0.0.1:9")
    with pytest.raises(InputError, match=r"register_listener: RemoteStatsRouter is write-only"):
        router.register_listener(lambda event: None)
    assert not hasattr(router, "get_updates") and not hasattr(router, "list_sessions")


def test_a_put_still_encoding_when_close_begins_is_refused_not_lost(tmp_path, routers, monkeypatch):
    """Review 7, defect 1: the put was queued after close() had drained the queue, and
    nothing ever sent, kept or mentioned it."""
    import embedviz.stats.remote as remote

    encoding, release = threading.Event(), threading.Event()

    def slow_to_json(record):
        encoding.set()
        release.wait(10)
        return to_json(record)

    monkeypatch.setattr(remote, "to_json", slow_to_json)
    router = routers("http://127.0.0.1:9", close_timeout=0, timeout=0.2)
    errors = []

    def put():
        try:
            router.put(update("0", 7))
        except InputError as exc:
            errors.append(exc)

    putter = threading.Thread(target=put)
    putter.start()
    assert encoding.wait(10)
    router.close()  # the put is still encoding
    release.set()
    putter.join(10)
    assert len(errors) == 1 and "is closing" in str(errors[0])
    assert "1 record(s) were not queued" in str(errors[0])
    assert router.pending() == 0 and router._queue.qsize() == 0
    with pytest.raises(InputError, match=r"put: this RemoteStatsRouter .* is closed; create"):
        router.put(update("0", 8))


def test_a_put_queueing_when_close_begins_is_kept_by_close(tmp_path, routers, monkeypatch):
    """The other side of the same race: a put already counting and queueing its record
    when close() begins holds close() back until the record is in, and close() keeps it."""
    router = routers("http://127.0.0.1:9", close_timeout=0, timeout=0.2)
    queueing, release = threading.Event(), threading.Event()
    real_put = router._queue.put

    def slow_put(payload, timeout=None):
        queueing.set()
        release.wait(10)
        real_put(payload, timeout=timeout)

    monkeypatch.setattr(router._queue, "put", slow_put)
    putter = threading.Thread(target=router.put, args=(update("0", 7),))
    putter.start()
    assert queueing.wait(10)
    closer = threading.Thread(target=router.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and not router._closed  # close() waits for the put
    release.set()
    putter.join(10)
    closer.join(10)
    assert not closer.is_alive() and router._closed
    assert [r["iteration"] for r in spilled_rows(tmp_path / "spill.db")] == [7]


def test_every_parameter_after_url_is_keyword_only():
    """Review 7, nit 13: ``RemoteStatsRouter(url, "tok", 100)`` read as a token and a
    queue size only by position, easy to get wrong among ten parameters."""
    with pytest.raises(TypeError, match="positional argument"):
        RemoteStatsRouter("http://127.0.0.1:9", "secret")


class _Stop(BaseException):
    """Gets past the sender thread's ``except Exception`` and ends the thread."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_close_keeps_the_batch_a_dead_sender_thread_had_in_hand(tmp_path, routers, caplog):
    """close() logged 'keeping them to send again' for the batch in flight when the
    sender had failed, but only kept it when it had not."""
    router = routers("http://127.0.0.1:9", close_timeout=0.2)

    def die(payloads):
        raise _Stop

    router._post = die
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        for i in range(3):
            router.put(update("0", i))
        assert wait_for(lambda: not router._thread.is_alive())
        router.close()
    assert [r["iteration"] for r in spilled_rows(tmp_path / "spill.db")] == [0, 1, 2]
    assert "the sender thread stopped" in caplog.text
    assert "3 record(s) not sent" in caplog.text and "unreachable" not in caplog.text


def test_close_says_the_ui_is_unreachable_and_how_to_send_the_rest(tmp_path, routers, caplog):
    router = routers("http://127.0.0.1:9", close_timeout=0.1)  # nothing listens there
    for i in range(4):
        router.put(update("0", i))
    assert wait_for(lambda: not router._server_ok)
    with caplog.at_level(logging.WARNING):
        router.close()
    [left] = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert left.levelno == logging.WARNING
    assert "4 record(s) not sent (the UI is unreachable), kept in" in left.getMessage()
    spill = str(tmp_path / "spill.db")
    assert left.getMessage().endswith(f"RemoteStatsRouter(url, spill_path={spill!r})")
    assert [r["iteration"] for r in spilled_rows(tmp_path / "spill.db")] == [0, 1, 2, 3]
