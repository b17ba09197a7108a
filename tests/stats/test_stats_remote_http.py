"""embedviz.stats.remote_http without a router: the body, one POST, what answers mean."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from embedviz.stats.records import SCHEMA_VERSION, Update, to_dict
from embedviz.stats.remote_http import (
    bad_position,
    body_size,
    classify,
    envelope,
    post_batch,
    workers_of,
)


@pytest.fixture
def canned():
    """``make(status, body)``: a server answering every request with that; it records
    the requests' paths, headers and bodies. Stopped after the test."""
    made = []

    def make(status, body=b""):
        seen = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length", 0))
                seen.append((self.command, self.path, dict(self.headers), self.rfile.read(n)))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        made.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield make
    for server in made:
        server.shutdown()
        server.server_close()


@pytest.fixture
def banner_url():
    """A port where a program answers with an SSH banner, not HTTP."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.02)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                con, _ = sock.accept()
            except TimeoutError:
                continue
            with con:
                con.settimeout(1.0)
                con.recv(65536)
                con.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    done.set()
    thread.join()
    sock.close()


def payloads(n):
    return [json.dumps(to_dict(Update("s", "0", i, 0.5, score=1.0 / (i + 1)))) for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 2, 37])
def test_the_body_is_the_envelope_of_http_api_and_its_size_is_exact(n):
    records = payloads(n)
    body = envelope(records)
    assert body_size(records) == len(body)
    parsed = json.loads(body)
    assert parsed == {"schema_version": SCHEMA_VERSION, "records": [json.loads(p) for p in records]}


def test_each_status_gets_the_move_http_api_md_gives_it():
    # the table "Answers" of embedviz/ui/http_api.md, one row per status
    table = {
        200: "ok", 204: "ok",
        400: "reject", 404: "reject", 405: "reject", 422: "reject",
        401: "refused", 403: "refused",
        408: "retry", 429: "retry", 500: "retry", 503: "retry", 507: "retry", 0: "retry",
        302: "retry",
    }  # fmt: skip
    assert {s: classify(s, 5) for s in table} == table
    assert classify(413, 5) == "split" and classify(413, 1) == "reject"


def test_the_record_a_400_answer_names():
    assert bad_position(json.dumps({"error": "records[12].score: bad"})) == 12
    assert bad_position(json.dumps({"error": "schema_version: too new"})) is None
    assert bad_position(json.dumps({"error": ["records[1]"]})) is None
    assert bad_position("[1, 2]") is None and bad_position("<html>") is None


def test_post_batch_sends_the_body_and_token_and_reports_the_answer(canned):
    url, seen = canned(413, b'{"error": "too large"}')
    status, message = post_batch(url + "/api/records", "tok", payloads(3), 2.0)
    assert (status, json.loads(message)) == (413, {"error": "too large"})
    ((method, path, headers, body),) = seen
    assert (method, path) == ("POST", "/api/records")
    assert headers["Authorization"] == "Bearer tok"
    assert headers["Content-Type"] == "application/json"
    assert body == envelope(payloads(3))
    url, _ = canned(200, b'{"accepted": 3}')
    assert post_batch(url + "/api/records", None, payloads(3), 2.0) == (200, "")


def test_post_batch_never_raises_for_what_the_network_does(banner_url):
    status, message = post_batch(banner_url + "/api/records", None, payloads(1), 2.0)
    assert status == 0 and "not an HTTP answer" in message and "SSH-2.0" in message
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    assert post_batch(f"http://127.0.0.1:{port}/api/records", None, payloads(1), 2.0)[0] == 0


def test_workers_of_reads_the_sessions_and_is_empty_when_it_cannot(canned, banner_url):
    answer = {
        "sessions": [
            {"session_id": "run", "workers": ["0", "1"]},
            {"session_id": "other", "workers": ["7"]},
        ]
    }
    url, seen = canned(200, json.dumps(answer).encode())
    assert workers_of(url + "/api/sessions", "tok", "run", 2.0) == ["0", "1"]
    assert seen[0][0] == "GET" and seen[0][2]["Authorization"] == "Bearer tok"
    assert workers_of(url + "/api/sessions", None, "absent", 2.0) == []
    not_json, _ = canned(200, b"<html>")
    assert workers_of(not_json + "/api/sessions", None, "run", 2.0) == []
    assert workers_of(banner_url + "/api/sessions", None, "run", 2.0) == []  # raised before
