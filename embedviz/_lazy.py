"""Lazy re-exports for packages: a public name is imported from its module on first use,
so that importing a package stays cheap (no numba, torch, bokeh or gensim)."""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str], namespace: dict):
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose public
    names ``exports`` maps to the modules defining them; ``namespace`` is the package's
    ``globals()`` (a name, once imported, is kept there).

    Examples
    --------
    >>> getattr_, dir_ = lazy_exports("demo", {"sqrt": "math"}, {})
    >>> getattr_("sqrt")(9.0)
    3.0
    """

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(namespace))

    return __getattr__, __dir__
