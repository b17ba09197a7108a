"""A chunked body over the limit gets the documented JSON 413, on a real server on
127.0.0.1 (review 5 #17: tornado's own limit answered a bare 400 first)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from embedviz.stats.storage import SQLiteStatsStorage
from embedviz.ui import receiver
from embedviz.ui.server import UIServer


@pytest.fixture
def ui(tmp_path):
    storage = SQLiteStatsStorage(tmp_path / "runs.db")
    server = UIServer(port=0, enable_remote=True)  # the default 8 MiB limit
    server.attach(storage)
    server.start()
    yield server
    server.stop()
    storage.close()


def post_chunked(port: int, total: int, chunk: int = 2**20) -> bytes:
    """POST ``total`` bytes as ``Transfer-Encoding: chunked`` while reading the answer
    (as curl does); everything the server sent before it closed the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(
        (
            f"POST /api/records HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    piece = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"

    def send() -> None:
        try:
            for _ in range(total // chunk):
                s.sendall(piece)
            s.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed: stop sending, as curl does
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            answer += data
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1]) for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]  # fmt: skip
            if length and len(body) >= length[0]:
                break
    except ConnectionResetError:
        pass
    finally:
        s.close()
        sender.join(30)
    return answer


def _json_413(answer: bytes, limit: int) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b"application/json" in head
    assert json.loads(body) == {
        "error": f"body of more than {limit} bytes exceeds the limit of {limit} bytes"
    }


def test_a_chunked_80_mb_body_gets_the_json_413(ui):
    limit = ui.receiver.max_body_bytes
    _json_413(post_chunked(ui.port, 80 * 2**20), limit)
    # within what is read and dropped, as before: answered after the body
    _json_413(post_chunked(ui.port, 9 * 2**20), limit)
    status = post_chunked(ui.port, 0).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 400 ")  # an empty batch is malformed, not too big


def test_a_chunked_body_is_not_read_far_beyond_the_drain(ui, monkeypatch):
    monkeypatch.setattr(receiver, "DRAIN_BYTES", 2 * ui.receiver.max_body_bytes)
    received = []
    original = receiver.RecordsHandler.data_received

    def counting(self, chunk):
        received.append(len(chunk))
        return original(self, chunk)

    monkeypatch.setattr(receiver.RecordsHandler, "data_received", counting)
    _json_413(post_chunked(ui.port, 200 * 2**20), ui.receiver.max_body_bytes)
    drain = max(receiver.DRAIN_BYTES, 4 * ui.receiver.max_body_bytes)
    assert drain < sum(received) < drain + 4 * 2**20  # of the 200 MiB sent
