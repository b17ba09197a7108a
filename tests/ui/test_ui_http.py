"""The remote receiver and the routes, against a real server on 127.0.0.1 (issue 5 §8)."""

from __future__ import annotations

import http.client
import json
import math
import socket
import sys

import pytest
from ui_records import make_update, static_info

from embedviz.errors import InputError
from embedviz.stats.records import SCHEMA_VERSION, EvalRecord, to_dict
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.receiver import (
    ReceiverConfig,
    check_request_impl,
    parse_records_impl,
    store_records_impl,
)
from embedviz.ui.server import UIServer

LIMIT = 64 * 1024


def body_of(records, version=SCHEMA_VERSION) -> bytes:
    return json.dumps({"schema_version": version, "records": records}).encode()


def good_records(session="remote", n=3):
    return [to_dict(static_info(session, "0"))] + [
        to_dict(make_update(session, "0", i, hist=False)) for i in range(n)
    ]


def request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheader("Location"), data
    finally:
        conn.close()


def post(server, body: bytes, token: str | None = None, headers=None):
    h = {"Content-Type": "application/json"}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    status, _, data = request(server, "POST", "/api/records", body, h)
    return status, json.loads(data)


@pytest.fixture
def served(tmp_path):
    """Start servers on free ports with a SQLite storage attached; stop them afterwards."""
    started = []

    def start(**kwargs):
        storage = SQLiteStatsStorage(tmp_path / f"runs{len(started)}.db")
        ui = UIServer(port=0, max_body_bytes=LIMIT, **kwargs)
        ui.attach(storage)
        ui.start()
        started.append((ui, storage))
        return ui, storage

    yield start
    for ui, storage in started:
        ui.stop()
        storage.close()


def test_good_batch_is_stored_with_nan_kept(served):
    ui, storage = served(enable_remote=True)
    records = good_records()
    records.append(to_dict(EvalRecord("remote", "0", 2, 1.0, {"accuracy": 0.5})))
    records[1]["score"] = math.nan  # json writes the bare token NaN
    body = body_of(records)
    assert b'"score": NaN' in body
    status, answer = post(ui, body)
    assert (status, answer) == (200, {"accepted": 5})
    updates = storage.get_updates("remote", "0")
    assert [u.iteration for u in updates] == [0, 1, 2]
    assert math.isnan(updates[0].score)  # stored as NaN, never 0
    assert updates[1].params["0.weight"].update_param_ratio == pytest.approx(
        make_update("remote", "0", 1).params["0.weight"].update_param_ratio
    )
    assert storage.get_evals("remote")[0].metrics == {"accuracy": 0.5}
    assert storage.get_static_info("remote", "0").model_class == "MLP"


def test_receiver_is_off_unless_enabled(served):
    ui, storage = served()
    status, answer = post(ui, body_of(good_records()))
    assert status == 403 and "--enable-remote" in answer["error"]
    assert storage.list_sessions() == []


def test_token_is_required_when_set(served):
    ui, storage = served(enable_remote=True, token="s3cret")
    for token in (None, "wrong", "s3cre", "S3CRET"):
        status, answer = post(ui, body_of(good_records()), token=token)
        assert status == 401 and answer == {"error": "missing or wrong bearer token"}
    assert storage.list_sessions() == []
    assert post(ui, body_of(good_records()), token="s3cret")[0] == 200
    assert storage.list_sessions() == ["remote"]


def test_body_over_the_limit_is_413(served):
    ui, storage = served(enable_remote=True)
    big = body_of(good_records(n=200))
    assert len(big) > LIMIT
    status, answer = post(ui, big)
    assert status == 413 and f"limit of {LIMIT} bytes" in answer["error"]
    # without Content-Length (chunked), judged while reading
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=30)
    conn.request(
        "POST",
        "/api/records",
        body=iter([big[i : i + 8192] for i in range(0, len(big), 8192)]),
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()
    assert storage.list_sessions() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "expected an object"),
        (b'{"records": []}', "schema_version: expected an integer"),
        (body_of([], version=SCHEMA_VERSION + 1), "newer than this UI reads"),
        (b'{"schema_version": 1, "records": {}}', "records: expected a list"),
        (body_of([{"type": "os.system", "session_id": "s"}]), r"records\[0\].type"),
        (
            body_of(
                [
                    {
                        "type": "eval",
                        "session_id": "s",
                        "worker_id": "0",
                        "iteration": "3",
                        "timestamp": 0.0,
                    }
                ]
            ),
            r"records\[0\].iteration: expected an integer",
        ),
        (
            body_of(
                [
                    {
                        "type": "update",
                        "session_id": "s",
                        "worker_id": "0",
                        "iteration": 1,
                        "timestamp": 0.0,
                        "score": "high",
                    }
                ]
            ),
            r"records\[0\].score",
        ),
        (
            body_of(
                [
                    {
                        "type": "update",
                        "session_id": "s",
                        "worker_id": "0",
                        "iteration": 1,
                        "timestamp": 0.0,
                        "__class__": "x",
                    }
                ]
            ),
            "unknown field",
        ),
        (b"[" * 100_00 + b"]" * 100_00, "JSON"),
        (
            body_of(
                [
                    {
                        "type": "eval",
                        "session_id": "s",
                        "worker_id": "0",
                        "iteration": 2**70,
                        "timestamp": 0.0,
                    }
                ]
            ),
            r"records\[0\].iteration: expected an integer within signed 64 bits",
        ),
        (
            b'{"schema_version": 1, "records": [{"type": "eval", "session_id": "s\\ud800", '
            b'"worker_id": "0", "iteration": 1, "timestamp": 0.0}]}',
            "lone surrogate",
        ),
    ],
)
def test_malformed_input_is_400_with_a_message(served, body, message):
    import re

    ui, storage = served(enable_remote=True)
    status, answer = post(ui, body)
    assert status == 400
    assert re.search(message, answer["error"]), answer
    assert "\n" not in answer["error"]
    assert storage.list_sessions() == []


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_only_json_is_accepted_so_web_pages_cannot_post(served, content_type):
    ui, storage = served(enable_remote=True)
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, _, data = request(ui, "POST", "/api/records", body_of(good_records()), headers)
    assert status == 400 and "Content-Type" in json.loads(data)["error"]
    assert storage.list_sessions() == []
    ok = post(
        ui, body_of(good_records()), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok[0] == 200


def test_a_bad_record_rejects_the_whole_batch(served):
    ui, storage = served(enable_remote=True)
    records = good_records()
    records[2]["score"] = [1, 2]
    status, answer = post(ui, body_of(records))
    assert status == 400 and answer["error"].startswith("records[2].score")
    assert storage.list_sessions() == []


def test_server_keeps_serving_after_bad_requests(served):
    ui, storage = served(enable_remote=True, token="t")
    for body in (b"", b"\x00" * 100, b"{" * 5000, b'{"schema_version": 1}'):
        post(ui, body, token="t")
    post(ui, b"{}", token="nope")
    assert post(ui, body_of(good_records()), token="t") == (200, {"accepted": 4})
    status, _, page = request(ui, "GET", "/train/overview", headers={"Authorization": "Bearer t"})
    assert status == 200 and b"bokeh" in page.lower()


def test_a_resent_batch_is_not_stored_twice(served):
    ui, storage = served(enable_remote=True)
    body = body_of(good_records())
    assert post(ui, body) == (200, {"accepted": 4})
    assert post(ui, body) == (200, {"accepted": 4})
    assert storage.count_updates("remote") == 3


def test_routes_redirect_and_list_sessions(served):
    ui, storage = served(enable_remote=True)
    storage.put(make_update("local", "0", 1))
    status, location, _ = request(ui, "GET", "/")
    assert status in (301, 302) and location == "/train/overview"
    for path in (
        "/train/overview",
        "/train/model",
        "/train/system",
        "/train/compare",
        "/embeddings",
    ):
        assert request(ui, "GET", path)[0] == 200, path
    status, _, data = request(ui, "GET", "/api/sessions")
    assert status == 200
    assert json.loads(data)["sessions"][0]["session_id"] == "local"
    assert request(ui, "GET", "/api/records")[0] == 405


def test_records_go_to_memory_when_no_sqlite_is_attached():
    ui = UIServer(port=0, enable_remote=True)
    ui.start()
    try:
        assert post(ui, body_of(good_records())) == (200, {"accepted": 4})
        assert [sid for sid, _ in ui.sessions()] == ["remote"]
        assert isinstance(ui.receiving_storage(), InMemoryStatsStorage)
    finally:
        ui.stop()


def test_impl_functions_directly():
    off = ReceiverConfig(enabled=False, token="t")
    assert check_request_impl(off, "Bearer t", 10)[0] == 403  # disabled wins
    on = ReceiverConfig(enabled=True, token="t", max_body_bytes=2048)
    assert check_request_impl(on, None, 10)[0] == 401
    assert check_request_impl(on, "Bearer t", 4096)[0] == 413
    assert check_request_impl(on, "Bearer t", 100) is None
    storage = InMemoryStatsStorage()
    status, answer = store_records_impl(on, body_of(good_records(n=1)), lambda: storage)
    assert (status, answer) == (200, {"accepted": 2})
    assert len(parse_records_impl(body_of([]))) == 0


CANARY = "embedviz_canary_mod"


def every_string_names(name: str) -> list[dict]:
    """Records with ``name`` (as a module, a class path and code) in every string field."""
    code = f"__import__('{name}')"
    dotted = f"{name}.Thing"
    static = to_dict(static_info("s", "0"))
    static.update(
        model_class=dotted,
        kind=code,
        layers=[{"name": name, "type": dotted, "n_params": 1, "param_shapes": {code: [1]}}],
        optimizer={"class": dotted, "param_groups": [{"lr": code}]},
        hardware={"gpus": [code]},
        software={"python": dotted, code: dotted},
        config={"__class__": dotted, "__reduce__": code, "py/object": dotted},
    )
    update = to_dict(make_update("s", "0", 1))
    update["tags"] = {code: dotted, "phase": code}
    update["extra"] = {}
    update["params"] = {dotted: update["params"]["0.weight"]}
    return [
        {"type": name, "session_id": code, "worker_id": dotted},
        {"type": dotted, "session_id": "s", "worker_id": "0", "iteration": 1, "timestamp": 0},
        static,
        update,
        {"type": "eval", "session_id": code, "worker_id": dotted, "iteration": 1,
         "timestamp": 0, "metrics": {code: 1.0, dotted: 2.0}},
        {"type": "snapshot", "session_id": code, "worker_id": "0", "iteration": 1,
         "timestamp": 0, "kind": dotted, "labels": [code], "vectors": [[1.0]]},
    ]  # fmt: skip


def test_payload_never_imports_or_evaluates_what_it_names(served, tmp_path, monkeypatch):
    """A real module on sys.path, named in every string field of good and bad records:
    importing it (by any means) sets a flag; eval/exec/__import__ calls that mention it
    are recorded while the server handles the requests."""
    import builtins
    import importlib

    (tmp_path / f"{CANARY}.py").write_text(
        "import builtins\nbuiltins.embedviz_canary_imported = True\nclass Thing:\n"
        "    def __init__(self, *a, **k):\n        builtins.embedviz_canary_imported = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    real = {name: getattr(builtins, name) for name in ("eval", "exec", "__import__")}

    def spy(name):
        def call(*args, **kwargs):
            if CANARY in repr(args[:1]):
                seen.append((name, args[0]))
            return real[name](*args, **kwargs)

        return call

    for name in real:
        monkeypatch.setattr(builtins, name, spy(name))
    try:
        ui, storage = served(enable_remote=True)
        records = every_string_names(CANARY)
        statuses = [post(ui, body_of([r]))[0] for r in records]
        statuses.append(post(ui, body_of(records[2:]))[0])  # the good ones, as one batch
        for name in real:
            monkeypatch.setattr(builtins, name, real[name])
        assert statuses == [400, 400, 200, 200, 200, 200, 200]  # the requests were handled
        assert seen == []
        assert CANARY not in sys.modules
        assert not getattr(builtins, "embedviz_canary_imported", False)
        # the names were stored as plain text
        info = storage.get_static_info("s", "0")
        assert info.model_class == f"{CANARY}.Thing" == info.config["__class__"]
        # and the canary works: importing it does set the flag
        importlib.import_module(CANARY)
        assert builtins.embedviz_canary_imported
    finally:
        sys.modules.pop(CANARY, None)
        vars(builtins).pop("embedviz_canary_imported", None)


def test_constructor_checks_its_arguments():
    with pytest.raises(InputError, match="port: expected an integer from 0 to 65535"):
        UIServer(port=70000)
    with pytest.raises(InputError, match="token: expected a non-empty string"):
        UIServer(token="  ")
    with pytest.raises(InputError, match="max_body_bytes"):
        UIServer(max_body_bytes=10)


def test_port_in_use_is_one_clear_error():
    first = UIServer(port=0).start()
    try:
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            UIServer(port=first.port).start()
    finally:
        first.stop()


def test_remote_router_delivers_everything_to_the_ui(served, tmp_path):
    from embedviz.stats.remote import RemoteStatsRouter

    ui, storage = served(enable_remote=True, token="tok")
    router = RemoteStatsRouter(ui.url, token="tok", batch_size=7, spill_path=tmp_path / "spill.db")
    router.put(static_info("routed", "0"))
    for i in range(60):
        router.put(make_update("routed", "0", i, hist=i % 20 == 0))
    router.close()
    assert [u.iteration for u in storage.get_updates("routed", "0")] == list(range(60))
    assert len(storage.get_histograms("routed", "0", "params", "0.weight")) == 3


# ------------------------------------------------ body limits on a real server
def raw_exchange(ui, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``) on a socket; what the server answers first."""
    import socket

    with socket.create_connection(("127.0.0.1", ui.port), timeout=20) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_a_body_beyond_tornados_own_limit_gets_the_json_413(served):
    ui, storage = served(enable_remote=True)
    # server.py gives tornado 4 x the limit + 1 MiB, which answered a bare 400 before
    size = 4 * LIMIT + 2**20 + 4096
    status, answer = post(ui, b" " * size)  # http.client sends it all before reading
    assert status == 413 and answer == {
        "error": f"body of {size} bytes exceeds the limit of {LIMIT} bytes"
    }
    # a client that waits for 100 Continue (curl) gets the 413 instead, body unsent
    head = (
        f"POST /api/records HTTP/1.1\r\nHost: 127.0.0.1:{ui.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    answer = raw_exchange(ui, head)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 (Continue)" not in answer
    assert answer.endswith(f'limit of {LIMIT} bytes"}}'.encode())
    # a claimed length beyond what is worth reading is answered before any body
    head = head.replace(b"Expect: 100-continue\r\n", b"").replace(
        str(size).encode(), str(10**12).encode()
    )
    assert raw_exchange(ui, head).startswith(b"HTTP/1.1 413 ")
    assert storage.list_sessions() == []
    assert post(ui, body_of(good_records()))[0] == 200  # and the server still serves


# ------------------------------------------------ the Host header (DNS rebinding)
def test_a_foreign_host_header_is_refused(served):
    ui, storage = served(enable_remote=True)
    attacker = {
        "Host": f"attacker.example:{ui.port}",
        "Origin": f"http://attacker.example:{ui.port}",
    }
    status, answer = post(ui, body_of(good_records()), headers=attacker)
    assert status == 403 and "attacker.example" in answer["error"]
    assert "DNS rebinding" in answer["error"]
    status, _, data = request(ui, "GET", "/api/sessions", headers=attacker)
    assert status == 403 and "not allowed" in json.loads(data)["error"]
    assert storage.list_sessions() == []
    for host in (f"localhost:{ui.port}", f"127.0.0.1:{ui.port}", f"[::1]:{ui.port}", "LOCALHOST"):
        assert post(ui, body_of(good_records()), headers={"Host": host})[0] == 200, host
        assert request(ui, "GET", "/api/sessions", headers={"Host": host})[0] == 200, host


def test_host_rules():
    from embedviz.ui.auth import host_allowed, host_name

    assert host_name("[::1]:9000") == "::1" and host_name("Example.ORG.:80") == "example.org"
    loopback = [("127.0.0.1:1", True), ("localhost", True), ("[::1]", True),
                ("10.1.2.3", True), ("evil.example:1", False),
                ("localhost.evil.example", False), (None, True)]  # fmt: skip
    for header, ok in loopback:
        assert host_allowed(header, "127.0.0.1", token_set=True) is ok, header
    assert host_allowed("gpu-box.lab:9000", "gpu-box.lab", False)  # the --host name
    assert not host_allowed("evil.example", "gpu-box.lab", False)
    assert not host_allowed("evil.example", "0.0.0.0", False)  # every interface, no token
    assert host_allowed("evil.example", "0.0.0.0", True)  # ... with a token, the token guards
    assert host_allowed("evil.example", "::", True)
    # every interface, no token: this machine's names, the fully qualified one too
    from embedviz.ui.auth import HostCheck

    machine = frozenset({"gpu-box", "gpu-box.lab.example.com"})
    assert host_allowed("gpu-box.lab.example.com:9000", "0.0.0.0", False, machine)
    assert not host_allowed("gpu-box.evil.example", "0.0.0.0", False, machine)
    check = HostCheck("0.0.0.0", False)
    assert check.allows_host(f"{socket.getfqdn()}:9000") and check.allows_host(socket.gethostname())


# ------------------------------------------------ limits shared with the producers
def test_the_receiver_takes_up_to_the_shared_limits_and_no_more(served):
    from embedviz.stats.limits import MAX_HISTOGRAM_BINS, MAX_NAME_CHARS

    ui, storage = served(enable_remote=True)
    update = to_dict(make_update("limits", "0", 1, hist=False))
    update["histograms"] = {"params": {"0.weight": {"lo": 0.0, "hi": 1.0, "counts": None}}}
    for n, expected in ((MAX_HISTOGRAM_BINS, 200), (MAX_HISTOGRAM_BINS + 1, 400)):
        update["histograms"]["params"]["0.weight"]["counts"] = [1] * n
        status, answer = post(ui, body_of([update]))
        assert status == expected, (n, answer)
    update.pop("histograms")
    for n, expected in ((MAX_NAME_CHARS, 200), (MAX_NAME_CHARS + 1, 400)):
        update["session_id"] = "s" * n
        update["params"] = {"p" * n: update["params"].popitem()[1]}
        status, answer = post(ui, body_of([update]))
        assert status == expected, (n, answer)
        if status == 400:
            assert answer["error"].startswith("records[0].")
            assert str(MAX_NAME_CHARS) in answer["error"]


def test_what_the_listener_makes_the_receiver_takes(served, tmp_path):
    """The largest histograms the listener allows arrive whole; one more bin is refused
    when the listener is built, not by the server at the first report."""
    torch = pytest.importorskip("torch")
    from embedviz.stats.limits import MAX_HISTOGRAM_BINS
    from embedviz.stats.listener import StatsListener
    from embedviz.stats.remote import RemoteStatsRouter

    ui, storage = served(enable_remote=True)
    ui.receiver.max_body_bytes = 8 * 2**20
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    router = RemoteStatsRouter(ui.url, spill_path=tmp_path / "spill.db")
    with pytest.raises(InputError, match=f"histogram_bins: expected at most {MAX_HISTOGRAM_BINS}"):
        StatsListener(router, model, opt, histogram_bins=MAX_HISTOGRAM_BINS + 1)
    with StatsListener(
        router, model, opt, frequency=1, histogram_frequency=1, histogram_bins=MAX_HISTOGRAM_BINS,
        session_id="bins",
    ) as listener:  # fmt: skip
        for _ in range(2):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            listener.step(loss.item())
    router.close()
    assert router.rejected == 0 and router.pending() == 0
    hist = storage.get_histograms("bins", "0", "params", "0.weight")
    assert len(hist) == 2 and len(hist[-1][1].counts) == MAX_HISTOGRAM_BINS


def test_the_bearer_scheme_is_matched_in_any_case(served):
    ui, storage = served(enable_remote=True, token="t0k")
    for scheme in ("Bearer", "bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} t0k"}
        assert post(ui, body_of(good_records()), headers=headers)[0] == 200, scheme
    assert post(ui, body_of(good_records()), headers={"Authorization": "Basic t0k"})[0] == 401


def test_a_full_in_memory_storage_answers_507_and_stores_nothing_of_the_batch():
    """The sender keeps what a full storage refuses (507 is retried), never lost."""
    from embedviz.stats.records import Update, to_dict
    from embedviz.stats.storage import InMemoryStatsStorage
    from embedviz.ui.receiver import ReceiverConfig, store_records_impl

    storage = InMemoryStatsStorage(max_workers=8)
    for k in range(8):
        storage.put(Update(f"run-{k}", "0", 1, 1.0))
    batch = [to_dict(Update("run-0", "0", 2, 2.0)), to_dict(Update("new", "0", 1, 1.0))]
    body = json.dumps({"schema_version": 1, "records": batch}).encode()
    status, answer = store_records_impl(ReceiverConfig(), body, lambda: storage)
    assert status == 507 and "max_workers=8" in answer["error"]
    assert [u.iteration for u in storage.get_updates("run-0")] == [1]


def test_a_session_name_used_before_becomes_name_2_through_the_remote_router(served):
    """The router asks the UI (GET /api/sessions) which workers a session holds, so a
    run started again under the same name does not mix its iterations into the first's;
    a UI that cannot be asked leaves the name as it is."""
    torch = pytest.importorskip("torch")
    from embedviz.stats.listener import StatsListener
    from embedviz.stats.remote import RemoteStatsRouter

    ui, storage = served(enable_remote=True, token="t0ken")
    names = []
    for _ in range(2):
        model = torch.nn.Linear(3, 2)
        router = RemoteStatsRouter(ui.url, token="t0ken", spill_path=None)
        with StatsListener(router, model, frequency=1, session_id="again") as listener:
            loss = model(torch.ones(4, 3)).sum()
            loss.backward()
            listener.step(loss)
        router.close()
        names.append(listener.session_id)
    assert names == ["again", "again-2"]
    assert [len(storage.get_updates(n)) for n in names] == [1, 1]
    away = RemoteStatsRouter("http://127.0.0.1:9", spill_path=None)  # nothing listens
    assert away.list_workers("again") == []
    away.close()
