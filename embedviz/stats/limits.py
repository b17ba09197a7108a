"""The limits of what the remote UI accepts, one set for producers and receivers.

The remote receiver (``POST /api/records``, :mod:`embedviz.ui.receiver`) refuses a
record beyond them for good (HTTP 400, which :class:`~embedviz.stats.remote.RemoteStatsRouter`
does not retry), so a producer must never make such a record: the listener checks its
settings and names against these constants when it is built, and
:func:`embedviz.stats.validation.record_from_dict` / ``check_record`` validate with them.
The same holds for the token (:func:`check_token`), which the UI (``UIServer``,
:mod:`embedviz.ui.auth`) and :class:`~embedviz.stats.remote.RemoteStatsRouter` both
check. This module imports neither bokeh nor torch, so any of them can use it.

Examples
--------
>>> from embedviz.stats.limits import MAX_HISTOGRAM_BINS, MAX_NAME_CHARS
>>> MAX_HISTOGRAM_BINS, MAX_NAME_CHARS
(10000, 1000)
"""

from __future__ import annotations

import re

from embedviz.errors import InputError

#: The most bins (``counts`` entries) one histogram may have.
MAX_HISTOGRAM_BINS = 10_000

#: The longest string (characters) for an id, a name or a key: session and worker ids,
#: parameter and layer names, tags, metric names, snapshot labels, keys of free-form data.
MAX_NAME_CHARS = 1_000

#: The deepest nesting of free-form JSON data (``config``, ``hardware``, ...).
MAX_JSON_DEPTH = 8

#: The range of integers anywhere in a record (SQLite stores signed 64 bits).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


#: Characters no id or name may hold, and that ``embedviz check`` escapes when it prints
#: text recorded by someone else: C0 controls, DEL, C1 controls (a newline or
#: ``\x1b[8m`` could rewrite or hide a terminal line) and the bidirectional formatting
#: characters U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069 ("Trojan Source":
#: ``"evil\u202efdp.exe"`` shows as ``evilexe.pdf``). Other format characters (Unicode
#: category Cf) stay allowed: the zero-width joiner and non-joiner and the tag characters
#: are parts of emoji and of Persian or Indic words, and they move no text.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with :data:`CONTROL_CHARS` escaped as Python writes them (``\\n``,
    ``\\x1b``, ``\\u202e``), except the characters in ``keep``.

    Examples
    --------
    >>> escape_controls("evil\\u202efdp.exe\\n", keep="\\n")
    'evil\\\\u202efdp.exe\\n'
    """
    if CONTROL_CHARS.search(text) is None:
        return text
    return CONTROL_CHARS.sub(lambda m: m[0] if m[0] in keep else repr(m[0])[1:-1], text)


_TOKEN_CHARS = re.compile(r"[ -~]+")  # printable ASCII


def check_token(token: str, name: str = "token") -> str:
    """Refuse a token that HTTP clients would not all send alike; returns it.

    A token must be printable ASCII, without spaces at either end: curl sends other
    characters as UTF-8, Python's ``http.client`` as Latin-1, so such a token would let
    one client in and not another, and HTTP drops spaces around a header's value. The
    message names the first bad character's position, never the token.

    Examples
    --------
    >>> check_token("s3cret-Token_1")
    's3cret-Token_1'
    >>> check_token("päss")
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: token: expected printable ASCII ...
    """
    if not isinstance(token, str) or not token:
        raise InputError(f"{name}: expected a non-empty string, got {type(token).__name__}")
    if token != token.strip(" "):
        raise InputError(
            f"{name}: expected no spaces at its start or end (HTTP drops them from the "
            "header), got a token with one; remove them"
        )
    if not _TOKEN_CHARS.fullmatch(token):
        pos = next(i for i, c in enumerate(token) if not _TOKEN_CHARS.fullmatch(c))
        raise InputError(
            f"{name}: expected printable ASCII (letters, digits, punctuation, inner "
            f"spaces), got a token with {token[pos]!r} at position {pos}; HTTP "
            "clients send other characters differently (curl as UTF-8, Python as "
            'Latin-1), so choose another, e.g. the output of  python -c "import '
            'secrets; print(secrets.token_urlsafe(24))"'
        )
    return token
