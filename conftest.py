"""Collection rules for the whole checkout.

pytest also runs the examples in the package's docstrings (``--doctest-modules``); the
modules that import torch, an optional extra, are left out when torch is not installed
(the tests that need torch skip themselves).
"""

import importlib.util

try:
    _has_torch = importlib.util.find_spec("torch") is not None
except (ImportError, ValueError):
    _has_torch = False

# their examples use torch
_TORCH_MODULES = ["embedviz/stats/torch_stat*.py", "embedviz/stats/listener.py"]
collect_ignore_glob = [] if _has_torch else _TORCH_MODULES
