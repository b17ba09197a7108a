"""Hardware, software and memory facts recorded with the statistics (no torch needed)."""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
import uuid
from typing import Any

import psutil

log = logging.getLogger(__name__)

_PROCESS: psutil.Process | None = None


def _process() -> tuple[psutil.Process, bool]:
    """This process, and whether its CPU measurement started only now (after a fork too)."""
    global _PROCESS
    if _PROCESS is None or _PROCESS.pid != os.getpid():  # re-created after fork
        _PROCESS = psutil.Process()
        _PROCESS.cpu_percent(None)  # the first call only starts the measurement
        return _PROCESS, True
    return _PROCESS, False


def start_cpu_measurement() -> None:
    """Start measuring this process's CPU load, so that the first :func:`memory_sample`
    has a real ``cpu_percent`` (producers call it when they are created).

    Examples
    --------
    >>> start_cpu_measurement()
    >>> "cpu_percent" in memory_sample()
    True
    """
    _process()


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

    ``cpu_percent`` is the CPU time this process used since the previous sample (or since
    :func:`start_cpu_measurement`), in percent of one CPU: a process keeping several
    cores busy reads more than 100 (4 busy threads: about 400). The first sample of a
    process whose measurement was not started has no ``cpu_percent`` (psutil would
    answer 0 for a measurement that started at that very call).

    Costs about 0.1 ms; producers sample at most once a second.

    Examples
    --------
    >>> memory_sample()["rss_bytes"] > 0
    True
    """
    proc, started_now = _process()
    out = {"rss_bytes": float(proc.memory_info().rss)}
    if not started_now:
        out["cpu_percent"] = float(proc.cpu_percent(None))
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


def unused_session_id(storage: Any, session_id: str, worker_id: str) -> str:
    """``session_id``, or the first of ``session_id-2``, ``-3``, ... under which
    ``storage`` holds no records of ``worker_id``.

    A run started again under a name already used becomes a session of its own (its
    iterations would otherwise mix with the earlier run's); a warning names both.
    Storages that cannot be read (a remote router) keep the name.

    Examples
    --------
    >>> from embedviz.stats.storage import InMemoryStatsStorage
    >>> unused_session_id(InMemoryStatsStorage(), "mlp", "0")
    'mlp'
    """
    list_workers = getattr(storage, "list_workers", None)
    if list_workers is None:
        return session_id
    name, n = session_id, 1
    while worker_id in list_workers(name):
        n += 1
        name = f"{session_id}-{n}"
    if name != session_id:
        log.warning(
            "session %r already holds worker %s's records: recording this run as %r "
            "(give a new session_id to choose the name)",
            session_id,
            worker_id,
            name,
        )
    return name
