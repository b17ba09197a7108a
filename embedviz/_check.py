"""Checks of user-given arguments, with one message form for the whole package:
``"name: expected <what is allowed>, got <value>"``. Where the user needs advice as
well, the caller writes the message itself in the same form and adds ``"; <what to
do>"`` (see ``TSNE``'s perplexity check).

Integers are any :class:`numbers.Integral` except ``bool`` (numpy integers too), numbers
any real number except ``bool``; the checked value comes back as a Python ``int`` or
``float``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from embedviz.errors import InputError


def _bounds(low, high, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"from {low} to {high}" if not low_open else f"> {low} and <= {high}"
    if low is not None:
        return f"> {low}" if low_open else f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` when it is an integer in ``[low, high]``, else InputError.

    Examples
    --------
    >>> check_int("batch_size", 64, low=1)
    64
    >>> check_int("batch_size", 0, low=1)
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: batch_size: expected an integer >= 1, got 0
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok:
        n = int(value)
        ok = (low is None or n >= low) and (high is None or n <= high)
    if not ok:
        what = " ".join(filter(None, ("an integer", _bounds(low, high))))
        raise InputError(f"{name}: expected {what}, got {value!r:.60}")
    return n


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a finite ``float`` in the range (``low_open``: ``> low``), else
    InputError; None passes when ``allow_none``.

    Examples
    --------
    >>> check_number("timeout", 2, low=0, low_open=True)
    2.0
    >>> check_number("timeout", "5", low=0, low_open=True)
    Traceback (most recent call last):
    ...
    embedviz.errors.InputError: timeout: expected a number > 0, got '5'
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        x = float(value)
        ok = (
            math.isfinite(x)
            and (low is None or (x > low if low_open else x >= low))
            and (high is None or x <= high)
        )
    if not ok:
        what = " ".join(filter(None, ("a number", _bounds(low, high, low_open))))
        if allow_none:
            what += " or None"
        raise InputError(f"{name}: expected {what}, got {value!r:.60}")
    return x


def check_choice(name: str, value: Any, allowed) -> Any:
    """The member of ``allowed`` equal to ``value`` (``2.0`` gives ``2``), else InputError
    listing them (also for values that cannot be compared, such as arrays).

    Examples
    --------
    >>> check_choice("report_ranks", "all", ("all", "zero"))
    'all'
    >>> check_choice("dims", 3.0, (2, 3))
    3
    """
    for member in allowed:
        try:
            if value == member and type(value) is not bool:
                return member
        except (TypeError, ValueError):  # an array: its == is not one truth value
            break
    shown = ", ".join(repr(a) for a in allowed)
    raise InputError(f"{name}: expected one of {shown}, got {value!r:.60}")


def plural(n: int, word: str) -> str:
    """``"1 word"``, ``"3 words"``: a count for a message.

    Examples
    --------
    >>> plural(1, "word"), plural(3, "word")
    ('1 word', '3 words')
    """
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
