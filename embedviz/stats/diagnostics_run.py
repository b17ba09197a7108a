"""Series access and raw findings for :mod:`embedviz.stats.diagnostics`.

:class:`_Run` reads one worker's series (min/max-downsampled, many per pass) and
collects :class:`Raw` findings, one per tensor or layer; the layer classes of the
static info name layers (``1 (ReLU)``) and order them from input to output.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

RATIO_LOW, RATIO_HIGH, RATIO_ERROR = 1e-4, 1e-2, 1e-1
ACT_STD_LOW, ACT_STD_HIGH = 0.5, 2.0
SCORE_EXPLODED = 4.0
_ACT_STD_WARN = 10.0  # this many times outside the band: a warning, not info
#: the series of the scheduler's step count (``scheduler.last_epoch``) at each report,
#: where the listener records it (``Update.extra["lr_scheduler_steps"]``)
SCHEDULER_STEPS = "extra/lr_scheduler_steps"

# Series are read min/max-downsampled to this many points (spikes and NaN survive), as
# many at once as fit in _POINT_BUDGET points: one pass over a SQLite file reads every
# stored number whatever the names asked for, so fewer passes is what makes it fast.
_POINTS = 10_000
_POINT_BUDGET = 1_000_000  # measured: 1.25 s and 202 MiB peak on 100k updates x 50 tensors

# layers whose outputs are their inputs reshaped, pooled or dropped out
_PASS_THROUGH = {"Flatten", "Unflatten", "Identity", "Dropout", "Dropout1d", "Dropout2d",
                 "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"}  # fmt: skip
_POOL = re.compile(r"^(Adaptive)?(Max|Avg|LP)Pool\d?d?$|^MaxUnpool\dd$")


def passes_through(layer_type: str | None) -> bool:
    """Whether a layer of this class only reshapes, pools or drops out its input (its
    activation statistics are then those of the layer before it).

    Examples
    --------
    >>> passes_through("MaxPool2d"), passes_through("Flatten"), passes_through("ReLU")
    (True, True, False)
    """
    return layer_type is not None and (
        layer_type in _PASS_THROUGH or _POOL.match(layer_type) is not None
    )


def _read_by_checks(name: str) -> bool:
    """Whether one of the checks reads this series (the others are never fetched)."""
    head = name.partition("/")[0]
    return (
        name in ("score", SCHEDULER_STEPS)
        or head == "lr"
        or head == "params"
        and name.endswith(("/update_param_ratio", "/param_mean_magnitude"))
        or head == "activations"
        and name.endswith(("/std", "/zero_fraction"))
    )


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _span(it: np.ndarray) -> tuple[int, int] | None:
    return (int(it[0]), int(it[-1])) if len(it) else None


@dataclass
class Raw:
    """A finding about one tensor or layer before grouping; ``about`` and ``short``
    (when given) make the grouped evidence ``about: name short, name short``."""

    severity: str
    check: str
    layer: str | None
    iterations: tuple[int, int] | None
    evidence: str
    advice: str
    about: str | None = None
    short: str | None = None


class _Run:
    """Series access for one worker with the findings collected so far."""

    def __init__(self, storage, session_id: str, worker_id: str) -> None:
        self.storage = storage
        self.session_id = session_id
        self.worker_id = worker_id
        self.names = storage.list_series(session_id, worker_id)
        self.static = storage.get_static_info(session_id, worker_id)
        self.findings: list[Raw] = []
        self.dead: list[str] = []  # layers with dead units, in forward order
        layers = self.static.layers if self.static is not None else []
        self.types = {info.name: info.type for info in layers}
        self.order = {info.name: i for i, info in enumerate(layers)}
        self._ahead: dict = {}  # series read with an earlier one, not yet asked for
        self._asked: set[str] = set()
        self._kept: dict = {}  # magnitudes: asked again (bias ratios, parameter growth)
        count = getattr(storage, "count_updates", None)
        #: updates stored for this worker (None: the storage cannot count them)
        self.n_updates = count(session_id, worker_id) if count is not None else None
        n = self.n_updates if self.n_updates is not None else _POINTS
        self.downsampled = n > _POINTS  # counts of events found are then lower bounds
        self._batch = max(16, _POINT_BUDGET // max(1, min(n, _POINTS)))

    def series(self, name: str):
        """The series, min/max-downsampled to at most ``_POINTS`` points; the series the
        checks ask for next (same kind and statistic: every tensor's update_param_ratio)
        and then the others are read in the same pass, as many as the budget allows."""
        if name in self._kept:
            return self._kept[name]
        got = self._ahead.pop(name, None)
        if got is None:
            head, stat = name.split("/", 1)[0], name.rpartition("/")[2]
            others = [n for n in self.names if n != name and n not in self._asked
                      and n not in self._ahead and _read_by_checks(n)]  # fmt: skip
            same = [n for n in others if n.startswith(head + "/") and n.endswith("/" + stat)]
            taken = set(same)
            batch = (same + [n for n in others if n not in taken])[: self._batch - 1]
            many = getattr(self.storage, "get_series_many", None)
            if many is None or not batch:
                got = self.storage.get_series(self.session_id, self.worker_id, name, _POINTS)
            else:
                read = many(self.session_id, self.worker_id, [name, *batch], max_points=_POINTS)
                got = read.pop(name)
                self._ahead.update(read)
        self._asked.add(name)
        if name.endswith("/param_mean_magnitude"):
            self._kept[name] = got
        return got

    def add(self, severity, check, layer, iterations, evidence, advice, about=None,
            short=None) -> None:  # fmt: skip
        self.findings.append(
            Raw(severity, check, layer, iterations, evidence, advice, about, short)
        )

    def with_suffix(self, prefix: str, suffix: str) -> list[str]:
        return [n[len(prefix) : -len(suffix)] for n in self.names
                if n.startswith(prefix) and n.endswith(suffix)]  # fmt: skip

    def position(self, layer: str) -> float:
        """Forward position of a layer (or a tensor's layer); inf when unknown."""
        module = layer if layer in self.order else layer.rpartition(".")[0]
        return self.order.get(module, math.inf)

    def named(self, layer: str) -> str:
        """``1 (ReLU)`` for a layer, ``0.weight (Linear)`` for a tensor, when known."""
        module = layer if layer in self.types else layer.rpartition(".")[0]
        kind = self.types.get(module)
        return f"{layer} ({kind})" if kind else layer


def _demote(severity: str) -> str:
    return {"error": "warning", "warning": "info"}.get(severity, severity)
