"""The token guards the whole UI, against real servers on 127.0.0.1 (issue 5 §8).

With a token: every page, websocket and JSON route needs the Bearer header or the cookie
that ``?token=`` sets; without one, everything is open as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import logging
import re
from http.cookies import SimpleCookie

import pytest
from ui_records import fill

from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.auth import cookie_value, decide_impl, without_token
from embedviz.ui.server import PAGES, UIServer

TOKEN = "s3cret+/ token"  # characters that need quoting in a URL
GUARDED = [*PAGES, "/", "/train", "/train/overview/metadata", "/train/model/autoload.js"]


def request(ui, path, headers=None, method="GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def start(**kwargs) -> UIServer:
    storage = InMemoryStatsStorage()
    fill(storage)
    ui = UIServer(port=0, **kwargs)
    ui.attach(storage)
    return ui.start()


@pytest.fixture(scope="module")
def guarded():
    ui = start(token=TOKEN, enable_remote=True)
    yield ui
    ui.stop()


@pytest.fixture(scope="module")
def cookie(guarded):
    """The ``Cookie`` header a browser sends after opening ``page_url()``."""
    status, headers, _ = request(guarded, "/?token=" + guarded.page_url("/").split("=", 1)[1])
    assert status == 302
    jar = SimpleCookie(headers["Set-Cookie"])
    return "; ".join(f"{k}={m.value}" for k, m in jar.items())


@pytest.fixture(scope="module")
def open_ui():
    ui = start()
    yield ui
    ui.stop()


# ------------------------------------------------------------------------- pages
@pytest.mark.parametrize("path", GUARDED)
def test_every_page_needs_the_token(guarded, path):
    status, headers, body = request(guarded, path)
    assert status == 401, path
    assert headers["Content-Type"].startswith("text/plain")
    assert b"?token=" in body and b"Bearer" in body
    assert "Set-Cookie" not in headers


def test_a_wrong_query_token_is_refused_and_not_echoed(guarded, caplog):
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        for wrong in ("guess-1234", TOKEN[:-1], TOKEN.upper()):
            status, headers, body = request(
                guarded, "/train/overview?token=" + wrong.replace(" ", "%20")
            )
            assert status == 401 and "Set-Cookie" not in headers
            assert wrong.encode() not in body
    assert "guess-1234" not in caplog.text and "token=..." in caplog.text  # access log


def test_the_right_query_token_sets_a_cookie_and_redirects_without_it(guarded):
    url = guarded.page_url("/train/model?session=mlp")
    assert url.startswith(guarded.url + "/train/model?session=mlp&token=")
    status, headers, _ = request(guarded, url[len(guarded.url) :])
    assert status == 302 and headers["Location"] == "/train/model?session=mlp"
    jar = SimpleCookie(headers["Set-Cookie"])
    ((name, morsel),) = jar.items()
    assert name == f"embedviz-ui-{guarded.port}"
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    # an HMAC of a label keyed by the token, never the token itself
    expected = hmac.new(TOKEN.encode(), b"embedviz-ui-cookie-v1", hashlib.sha256).hexdigest()
    assert morsel.value == expected == cookie_value(TOKEN) != cookie_value(TOKEN + "x")
    assert "s3cret" not in headers["Set-Cookie"]


def test_the_cookie_opens_every_page(guarded, cookie):
    for path in PAGES:
        status, _, body = request(guarded, path + "?session=mlp", {"Cookie": cookie})
        assert status == 200 and b"bokeh" in body.lower(), path
    status, headers, _ = request(guarded, "/", {"Cookie": cookie})
    assert status in (301, 302) and headers["Location"] == "/train/overview"
    name = cookie.split("=", 1)[0]
    for bad in (cookie_value("other token"), "", cookie_value(TOKEN)[:-1]):
        assert request(guarded, "/train/overview", {"Cookie": f"{name}={bad}"})[0] == 401
    # a wrong ?token= is refused even beside a good cookie
    assert request(guarded, "/train/overview?token=x", {"Cookie": cookie})[0] == 401


def test_bearer_opens_a_page_and_stays_out_of_its_session_token(guarded, cookie):
    from bokeh.util.token import get_token_payload

    for headers in (bearer(), {"Cookie": cookie}):
        status, _, page = request(guarded, "/train/overview", headers)
        assert status == 200
        token = re.search(rb'"token":\s*"([^"]+)"', page).group(1).decode()
        payload = json.dumps(get_token_payload(token))
        assert "s3cret" not in payload and cookie_value(TOKEN) not in payload
    assert request(guarded, "/train/overview", bearer("wrong"))[0] == 401


def test_the_bokehjs_files_stay_open(guarded):
    status, _, body = request(guarded, "/static/js/bokeh.min.js")
    assert status == 200 and len(body) > 100_000


# -------------------------------------------------------------------- JSON routes
def test_sessions_need_the_bearer_header_or_the_cookie(guarded, cookie):
    for headers in ({}, bearer("wrong"), {"Authorization": TOKEN}):
        status, h, body = request(guarded, "/api/sessions", headers)
        assert status == 401 and h["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"error": "missing or wrong bearer token"}
    for headers in (bearer(), {"Cookie": cookie}):
        status, _, body = request(guarded, "/api/sessions", headers)
        assert status == 200
        assert [s["session_id"] for s in json.loads(body)["sessions"]] == ["mlp"]


def test_the_receiver_takes_only_the_bearer_header(guarded, cookie):
    body = b'{"schema_version": 1, "records": []}'
    json_type = {"Content-Type": "application/json"}
    for headers in ({}, {"Cookie": cookie}):
        status, _, answer = request(guarded, "/api/records", json_type | headers, "POST", body)
        assert status == 401 and json.loads(answer)["error"] == "missing or wrong bearer token"
    status, _, answer = request(guarded, "/api/records", json_type | bearer(), "POST", body)
    assert (status, json.loads(answer)) == (200, {"accepted": 0})


# ---------------------------------------------------------------------- websocket
def session_token(ui, headers) -> str:
    """The session token a page carries for its websocket."""
    status, _, page = request(ui, "/train/overview", headers)
    assert status == 200
    return re.search(rb'"token":\s*"([^"]+)"', page).group(1).decode()


def made_up_token() -> str:
    from bokeh.util.token import generate_jwt_token, generate_session_id

    return generate_jwt_token(generate_session_id(signed=False), signed=False)


def open_websocket(ui, token: str, cookie: str | None = None) -> str:
    """'ack' when Bokeh answered the connection, 'closed' when it hung up, or 'HTTP <code>'."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    async def connect():
        headers = {"Origin": f"http://127.0.0.1:{ui.port}"}
        if cookie:
            headers["Cookie"] = cookie
        req = HTTPRequest(f"ws://127.0.0.1:{ui.port}/train/overview/ws", headers=headers)
        try:
            conn = await websocket_connect(req, subprotocols=["bokeh", token])
        except HTTPClientError as e:
            return f"HTTP {e.code}"
        message = await asyncio.wait_for(conn.read_message(), 20)
        conn.close()
        return "closed" if message is None else "ack"

    return asyncio.run(connect())


def test_websocket_needs_the_cookie_and_a_session_the_server_signed(guarded, cookie):
    real = session_token(guarded, {"Cookie": cookie})
    assert open_websocket(guarded, real, cookie) == "ack"
    assert open_websocket(guarded, real) == "HTTP 401"  # refused before the upgrade
    assert open_websocket(guarded, made_up_token()) == "HTTP 401"
    # with the cookie, a session id the client made up is still refused (not signed)
    assert open_websocket(guarded, made_up_token(), cookie) == "closed"


# --------------------------------------------------------------------- no token
def test_without_a_token_everything_is_open_as_before(open_ui):
    for path in PAGES:
        assert request(open_ui, path)[0] == 200, path
    status, headers, _ = request(open_ui, "/train/overview?token=anything")
    assert status == 200 and "Set-Cookie" not in headers
    assert request(open_ui, "/api/sessions")[0] == 200
    assert open_ui.page_url() == open_ui.url + "/train/overview"
    # session ids are signed even without a token: one a client made up is refused
    assert open_websocket(open_ui, made_up_token()) == "closed"
    assert open_websocket(open_ui, session_token(open_ui, {})) == "ack"


@pytest.mark.parametrize("token", [None, TOKEN])
def test_pages_refuse_a_foreign_host_header(token):
    """DNS rebinding: a page of another site that resolves to 127.0.0.1 sends its own
    name as Host; every page, websocket and redirect refuses it, with or without token."""
    ui = start(token=token)
    try:
        foreign = {"Host": f"attacker.example:{ui.port}"}
        for path in ("/", "/train", "/train/overview", "/train/overview/ws", "/embeddings"):
            status, _, body = request(ui, path, foreign)
            assert status == 403 and b"not allowed" in body, (path, status)
        if token is None:
            assert request(ui, "/train/overview", {"Host": f"localhost:{ui.port}"})[0] == 200
            assert request(ui, "/", {"Host": f"127.0.0.1:{ui.port}"})[0] in (301, 302)
    finally:
        ui.stop()


# -------------------------------------------------------------------- the pieces
def test_decide_and_without_token():
    t = "tok"
    assert decide_impl(t, "Bearer tok", None, None) == "ok"
    assert decide_impl(t, None, cookie_value(t), None) == "ok"
    assert decide_impl(t, None, t, None) == "deny"  # the cookie holds the HMAC, not the token
    assert decide_impl(t, "Bearer tok", None, "tok") == "login"
    assert decide_impl(t, "Bearer tok", cookie_value(t), "bad") == "deny"
    assert decide_impl(t, "bearer tok", None, None) == "ok"  # RFC 7235: any case
    assert decide_impl(t, "Basic tok", None, None) == "deny"
    assert decide_impl(t, "Bearertok", None, None) == "deny"
    assert decide_impl(t, "Bearer tok2", None, None) == "deny"
    assert without_token("/train/model", "token=a&session=x%20y&token=b") == (
        "/train/model?session=x+y"
    )
    assert without_token("//evil.example", "token=a") == "/evil.example"
    assert without_token("/", "token=a") == "/"


def test_the_command_line_logs_a_url_that_opens_the_ui(sqlite_path, monkeypatch, caplog):
    """The URL ``embedviz ui --token`` prints, followed as a browser does, opens the page."""
    import urllib.request
    from http.cookiejar import CookieJar

    from embedviz.ui import commands

    seen = {}

    def run_briefly(self):
        url = re.search(r"(http://\S+) \(Ctrl-C", caplog.text).group(1)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        with opener.open(url, timeout=30) as r:
            seen["final"], seen["status"] = r.geturl(), r.status
        with opener.open(self.url + "/api/sessions", timeout=30) as r:
            seen["sessions"] = r.status
        seen["url"] = url
        raise KeyboardInterrupt

    monkeypatch.setattr(UIServer, "run_until_shutdown", run_briefly)
    with caplog.at_level(logging.INFO, logger="embedviz.ui.commands"):
        with pytest.raises(KeyboardInterrupt):
            commands.run_ui([str(sqlite_path)], port=0, token=TOKEN)
    assert "?token=s3cret%2B%2F%20token" in seen["url"]
    assert seen["final"].endswith("/train/overview") and seen["status"] == 200
    assert seen["sessions"] == 200


# ------------------------------------------------------------------------ browser
@pytest.mark.browser
def test_a_browser_opens_the_token_url_and_draws_the_overview(browser, guarded):
    from ui_browser_tools import DRAWN, open_page, severe

    other = start(token=TOKEN)  # a port this browser holds no cookie for
    try:
        browser.get(other.url + "/train/overview")
        assert "needs its token" in browser.find_element("tag name", "body").text
        open_page(browser, other.page_url("/"))
        assert browser.current_url == other.url + "/train/overview"
        plots, drawn, empty_frames = browser.execute_script(DRAWN)
        assert empty_frames == 0 and plots >= 4 and drawn >= 4, (plots, drawn)
        assert severe(browser) == []
    finally:
        other.stop()


@pytest.mark.parametrize("token", ["päss", "tök€n", "tab\there", "new\nline", " lead", "trail "])
def test_tokens_that_clients_send_differently_are_refused(token):
    from embedviz.errors import InputError
    from embedviz.stats.remote import RemoteStatsRouter

    with pytest.raises(InputError, match="token: expected") as info:
        UIServer(port=0, token=token)
    assert token.strip() not in str(info.value)  # the token is not echoed
    with pytest.raises(InputError, match="token: expected"):
        RemoteStatsRouter("http://127.0.0.1:9", token=token)


class FakeRequest:
    def __init__(self, host):
        self.headers = {"Host": host} if host is not None else {}
        self.method, self.path = "GET", "/train/overview"


class FakeHandler:
    def __init__(self, host):
        self.request = FakeRequest(host)
        self.status, self.body, self.headers = 200, None, {}

    def set_status(self, status):
        self.status = status

    def set_header(self, name, value):
        self.headers[name] = value

    def finish(self, body):
        self.body = body


def test_the_pages_provider_refuses_a_foreign_host_with_or_without_a_token():
    from embedviz.ui.auth import HostCheck, TokenAuth, TokenGate

    for gate in (None, TokenGate("tok", 9000)):
        provider = TokenAuth(gate, HostCheck("127.0.0.1", gate is not None))
        handler = FakeHandler("attacker.example:9000")
        assert asyncio.run(provider.get_user_async(handler)) is None
        assert handler.status == 403 and "not allowed" in handler.body
        assert handler.headers["Content-Type"].startswith("text/plain")
    open_provider = TokenAuth(None, HostCheck("127.0.0.1", False))
    assert asyncio.run(open_provider.get_user_async(FakeHandler("localhost:9000"))) == "local"
