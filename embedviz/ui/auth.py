"""The UI's token: when ``UIServer(token=...)`` is set, it guards every page and route.

Three ways in, every comparison made with :func:`hmac.compare_digest`:

* ``Authorization: Bearer <token>`` (scripts, ``curl``, the remote router);
* ``?token=<token>`` on any page URL, once, from a browser: the answer sets an HttpOnly,
  SameSite=Strict cookie (path ``/``) and redirects to the same URL without ``token``;
* that cookie. It holds :func:`cookie_value`, an HMAC-SHA256 of a fixed label keyed by
  the token, not the token itself; its name carries the port (:func:`cookie_name`),
  since browsers share cookies between the ports of one host.

Anything else is answered 401 before the request reaches a page: a short text page
saying to open the URL with ``?token=...`` (the given token is never echoed), or
``{"error": ...}`` on the JSON routes. ``GET /static/...`` (the BokehJS files) stays
open. The scheme ``Bearer`` is matched in any case (RFC 7235); the token itself must be
printable ASCII (inner spaces allowed) (:func:`check_token`), since clients send other
characters differently (curl as UTF-8, Python as Latin-1).

The ``Host`` header is checked too, with or without a token (:class:`HostCheck`, as
Jupyter does): a web page can make a name of its own resolve to 127.0.0.1 (DNS
rebinding) and then read and post to the UI as if it were its own site; its requests
then carry that name as ``Host``, which is refused (403).

Bokeh's own hook does the pages' part. Every Bokeh handler but the static files --
the document pages, ``/ws``, ``/metadata``, ``/autoload.js`` -- derives from
``bokeh.server.views.auth_request_handler.AuthRequestHandler``, whose ``prepare()``
awaits the auth provider's ``get_user_async(handler)`` before tornado calls the
handler's method; :class:`TokenAuth` answers there, so a refused websocket gets its
401 before the upgrade (``WSHandler.open`` is also ``@tornado.web.authenticated``).
The server then signs session ids with a random per-server secret as well
(``sign_sessions``), so no client can open a session under an id, or with a request
payload, that it made up.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
from urllib.parse import parse_qsl, urlencode

from bokeh.server.auth_provider import AuthProvider

from embedviz.stats.limits import check_token

log = logging.getLogger(__name__)

_COOKIE_LABEL = b"embedviz-ui-cookie-v1"
UNAUTHORISED_PAGE = (
    "401 Unauthorized: this embedviz UI needs its token.\n"
    "Open it with the URL that `embedviz ui` printed when it started, "
    "http://HOST:PORT/?token=..., once in this browser.\n"
    "Scripts send the header  Authorization: Bearer <token>.\n"
)
UNAUTHORISED_JSON = {"error": "missing or wrong bearer token"}


def cookie_value(token: str) -> str:
    """What the UI's cookie holds for ``token``: an HMAC, so the cookie never holds the token.

    Examples
    --------
    >>> len(cookie_value("s3cret"))
    64
    """
    return hmac.new(token.encode("utf-8"), _COOKIE_LABEL, hashlib.sha256).hexdigest()


def cookie_name(port: int) -> str:
    """The cookie's name for the UI on ``port`` (one per port: browsers share cookies
    between the ports of one host).

    Examples
    --------
    >>> cookie_name(9000)
    'embedviz-ui-9000'
    """
    return f"embedviz-ui-{int(port)}"


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether the ``Authorization`` header is ``Bearer <token>`` (constant time; the
    scheme in any case, as RFC 7235 says).

    Examples
    --------
    >>> bearer_matches("Bearer t", "t"), bearer_matches("bearer t", "t")
    (True, True)
    >>> bearer_matches(None, "t"), bearer_matches("Basic t", "t")
    (False, False)
    """
    scheme, _, given = (authorization or "").strip().partition(" ")
    same = hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode("utf-8"))
    return same and scheme.lower() == "bearer"


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "replace"), expected.encode("utf-8")
    )


def decide_impl(
    token: str,
    authorization: str | None,
    cookie: str | None,
    query_token: str | None,
) -> str:
    """How a page request with these credentials is answered.

    Returns ``"ok"`` (Bearer header or cookie right, and no ``?token=``), ``"login"``
    (``?token=`` right: set the cookie, redirect without it) or ``"deny"`` (401). A
    wrong ``?token=`` is refused even beside a good cookie.

    Examples
    --------
    >>> decide_impl("t", None, None, "t"), decide_impl("t", None, None, "x")
    ('login', 'deny')
    """
    if query_token is not None:
        return "login" if _same(query_token, token) else "deny"
    if bearer_matches(authorization, token) or _same(cookie, cookie_value(token)):
        return "ok"
    return "deny"


def without_token(path: str, query: str) -> str:
    """``path?query`` with every ``token`` parameter removed (a local path: a leading
    ``//`` is collapsed so the redirect cannot leave the server).

    Examples
    --------
    >>> without_token("/train/model", "session=a&token=t")
    '/train/model?session=a'
    """
    path = "/" + path.lstrip("/")
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
    return path + ("?" + urlencode(kept) if kept else "")


_TOKEN_IN_URI = re.compile(r"(?<=[?&])token=[^&]*")


def log_request(handler) -> None:
    """Tornado's access log line (``log_function``) with ``?token=`` values hidden."""
    from tornado.log import access_log

    status = handler.get_status()
    method = access_log.info if status < 400 else access_log.warning
    if status >= 500:
        method = access_log.error
    request = handler.request
    uri = _TOKEN_IN_URI.sub("token=...", request.uri or "")
    method(
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        uri,
        request.remote_ip,
        1000.0 * request.request_time(),
    )


class TokenGate:
    """The token check for one running server; tornado handlers call :meth:`admit_page`
    or :meth:`admits`.

    Parameters
    ----------
    token : str
        The token, as given to ``UIServer``.
    port : int
        The port served (names the cookie).

    Examples
    --------
    >>> gate = TokenGate("s3cret", 9000)
    >>> gate.cookie_name
    'embedviz-ui-9000'
    """

    def __init__(self, token: str, port: int) -> None:
        self.token = check_token(token)
        self.cookie_name = cookie_name(port)

    def admits(self, handler) -> bool:
        """Whether the request carries the Bearer header or the cookie (JSON routes)."""
        return (
            decide_impl(
                self.token,
                handler.request.headers.get("Authorization"),
                handler.get_cookie(self.cookie_name),
                None,
            )
            == "ok"
        )

    def admit_page(self, handler) -> bool:
        """True to go on serving the page; else the request has been answered
        (401 page, or the cookie set and a redirect without ``?token=``)."""
        request = handler.request
        query_tokens = handler.get_query_arguments("token")
        decision = decide_impl(
            self.token,
            request.headers.get("Authorization"),
            handler.get_cookie(self.cookie_name),
            query_tokens[-1] if query_tokens else None,
        )
        if decision == "ok":
            return True
        handler.set_header("Cache-Control", "no-store")
        if decision == "login" and all(_same(t, self.token) for t in query_tokens):
            handler.set_cookie(
                self.cookie_name,
                cookie_value(self.token),
                path="/",
                httponly=True,
                samesite="Strict",
            )
            handler.redirect(without_token(request.path, request.query))
            return False
        log.info("refused %s %s: no valid token", request.method, request.path)
        handler.set_status(401)
        handler.set_header("Content-Type", "text/plain; charset=utf-8")
        handler.finish(UNAUTHORISED_PAGE)
        return False


_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def host_name(host_header: str | None) -> str:
    """The name in a ``Host`` header, without the port, brackets or a final dot, in
    lower case.

    Examples
    --------
    >>> host_name("LocalHost:9000"), host_name("[::1]:9000"), host_name("example.org.")
    ('localhost', '::1', 'example.org')
    """
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(
    host_header: str | None, bound: str, token_set: bool, machine: frozenset[str] | None = None
) -> bool:
    """Whether a request with this ``Host`` header may be served (DNS rebinding guard).

    Allowed: an IP address (a rebinding page has a name of its own, never an address),
    ``localhost``, the ``--host`` value the UI was started with, and, when it listens on
    every interface (``0.0.0.0``, ``::``), this machine's names (``machine``; default
    its host name), or any name when a token is set (the token then guards: a rebinding
    page has neither it nor the cookie, which the browser keeps for the real name). A
    request without ``Host`` (HTTP/1.0) is allowed.

    Examples
    --------
    >>> host_allowed("127.0.0.1:9000", "127.0.0.1", False)
    True
    >>> host_allowed("attacker.example:9000", "127.0.0.1", False)
    False
    >>> host_allowed("gpu-box.lab:9000", "0.0.0.0", True)
    True
    """
    name = host_name(host_header)
    if not name or name == "localhost" or _is_ip(name):
        return True
    bound_name = host_name(bound) if bound not in _WILDCARDS else ""
    if bound_name and name == bound_name:
        return True
    if bound in _WILDCARDS:
        if machine is None:
            machine = frozenset({socket.gethostname().lower()})
        return token_set or name in machine
    return False


class HostCheck:
    """The ``Host`` check of one running server (:func:`host_allowed`).

    Parameters
    ----------
    bound : str
        The address the UI listens on (``UIServer.host``).
    token_set : bool
        Whether the UI has a token.

    Examples
    --------
    >>> HostCheck("127.0.0.1", False).allows_host("localhost:9000")
    True
    """

    def __init__(self, bound: str, token_set: bool) -> None:
        self.bound = bound
        self.token_set = token_set
        self.machine = None  # this machine's names, found once (a DNS lookup)
        if bound in _WILDCARDS and not token_set:
            self.machine = frozenset(
                n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n
            )

    def allows_host(self, host_header: str | None) -> bool:
        """Whether ``host_header`` may be served."""
        return host_allowed(host_header, self.bound, self.token_set, self.machine)

    def message(self, host_header: str | None) -> str:
        """The 403 answer's text for a refused ``Host`` (the value shortened, as repr)."""
        return (
            f"Host {str(host_header)[:80]!r} is not allowed (a guard against DNS "
            "rebinding): open the UI by its address (http://127.0.0.1:PORT), as "
            "localhost or by the --host name it was started with"
        )

    def admit(self, handler, json_answer: bool = False) -> bool:
        """True to go on; else the request has been answered 403."""
        host = handler.request.headers.get("Host")
        if self.allows_host(host):
            return True
        log.warning("refused %s %s: Host %r", handler.request.method, handler.request.path, host)
        handler.set_status(403)
        handler.set_header("Cache-Control", "no-store")
        if json_answer:
            handler.set_header("Content-Type", "application/json; charset=utf-8")
            handler.finish(json.dumps({"error": self.message(host)}))
        else:
            handler.set_header("Content-Type", "text/plain; charset=utf-8")
            handler.finish("403 Forbidden: " + self.message(host) + "\n")
        return False


class TokenAuth(AuthProvider):
    """Bokeh's auth provider over a :class:`TokenGate` and a :class:`HostCheck`:
    refuses in ``prepare()``.

    ``get_user_async`` answers a refused request itself (403 for a ``Host`` not allowed,
    401, or the login redirect) and returns None; tornado then stops, as the request is
    finished, so the ``@authenticated`` login redirect (``get_login_url``) is never
    reached. ``gate`` may be None (no token: only the ``Host`` is checked).
    """

    def __init__(self, gate: TokenGate | None, hosts: HostCheck | None = None) -> None:
        self.gate = gate
        self.hosts = hosts
        super().__init__()

    @property
    def get_user_async(self):
        async def user(handler):
            if self.hosts is not None and not self.hosts.admit(handler):
                return None
            if self.gate is None or self.gate.admit_page(handler):
                return "token" if self.gate is not None else "local"
            return None

        return user

    @property
    def get_login_url(self):
        return lambda handler: "/"
