"""Hardware, software and memory facts recorded with the statistics (no torch needed)."""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
import uuid
from typing import Any

import psutil

_PROCESS: psutil.Process | None = None


def _process() -> psutil.Process:
    global _PROCESS
    if _PROCESS is None or _PROCESS.pid != os.getpid():  # re-created after fork
        _PROCESS = psutil.Process()
        _PROCESS.cpu_percent(None)  # the first call only starts the measurement
    return _PROCESS


def _torch():
    """The torch module if this process already imported it (never imports it)."""
    return sys.modules.get("torch")


def hardware_info() -> dict[str, Any]:
    """CPU count, total memory and GPUs (name, memory) of this machine.

    Examples
    --------
    >>> hardware_info()["cpu_count"] >= 1
    True
    """
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count() or 1,
        "memory_bytes": int(psutil.virtual_memory().total),
        "machine": platform.machine(),
        "gpus": [],
    }
    torch = _torch()
    if torch is not None and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": props.name, "memory_bytes": int(props.total_memory)})
    return info


def software_info() -> dict[str, Any]:
    """Python, torch, OS, hostname and embedviz versions.

    Examples
    --------
    >>> "python" in software_info()
    True
    """
    from embedviz import __version__

    torch = _torch()
    return {
        "python": platform.python_version(),
        "torch": None if torch is None else torch.__version__,
        "os": platform.platform(),
        "hostname": socket.gethostname(),
        "embedviz": __version__,
        "pid": os.getpid(),
    }


def memory_sample() -> dict[str, float]:
    """RSS and CPU load of this process now, and CUDA memory where torch uses CUDA.

    Costs about 0.1 ms; producers sample at most once a second.

    Examples
    --------
    >>> memory_sample()["rss_bytes"] > 0
    True
    """
    proc = _process()
    out = {"rss_bytes": float(proc.memory_info().rss), "cpu_percent": proc.cpu_percent(None)}
    torch = _torch()
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_allocated_bytes"] = float(torch.cuda.memory_allocated())
        out["cuda_reserved_bytes"] = float(torch.cuda.memory_reserved())
    return out


def new_session_id(prefix: str = "run") -> str:
    """A readable unique session id: ``<prefix>-YYYYmmdd-HHMMSS-<6 hex>``.

    Examples
    --------
    >>> new_session_id("mlp").startswith("mlp-")
    True
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"
