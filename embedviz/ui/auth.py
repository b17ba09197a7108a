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
open. Without a token nothing here runs.

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
import logging
import re
from urllib.parse import parse_qsl, urlencode

from bokeh.server.auth_provider import AuthProvider

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
    """Whether the ``Authorization`` header is ``Bearer <token>`` (constant time).

    Examples
    --------
    >>> bearer_matches("Bearer t", "t"), bearer_matches(None, "t")
    (True, False)
    """
    given = (authorization or "").encode("utf-8", "replace")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


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
        self.token = token
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


class TokenAuth(AuthProvider):
    """Bokeh's auth provider over a :class:`TokenGate`: refuses in ``prepare()``.

    ``get_user_async`` answers an unauthorised request itself (401, or the login
    redirect) and returns None; tornado then stops, as the request is finished, so
    the ``@authenticated`` login redirect (``get_login_url``) is never reached.
    """

    def __init__(self, gate: TokenGate) -> None:
        self.gate = gate
        super().__init__()

    @property
    def get_user_async(self):
        async def user(handler):
            return "token" if self.gate.admit_page(handler) else None

        return user

    @property
    def get_login_url(self):
        return lambda handler: "/"
