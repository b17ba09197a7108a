"""The compare page's runs: the labels they are shown under (:func:`short_label`),
reading a run's score (:func:`read_score`), drawing it (:func:`draw_score`), and adding
the sessions recorded while the page is open (:class:`NewRuns`), as TensorBoard adds
new runs to its run list live.

A new session is read in the server's page builders (its score, its row of the table)
and drawn on the page's next refresh, inside the tick that sends the page's other
changes: its lines join the score charts (their legends and ranges were made at build;
BokehJS 3.9 breaks on a Legend or a y range added to a document it shows, not on lines
and legend entries added to them), its checkbox joins the run list, its row the table.
It is ticked when it is of the kind the ticked runs are of and fewer than
:data:`~embedviz.ui.pages.compare.DEFAULT_TICKED` are ticked; its evaluations are read
on that refresh and drawn like any run's first ones. Past
:data:`~embedviz.ui.pages.compare.MAX_RUNS` runs the page names the newer sessions in a
note instead (a reload offers the newest).
"""

from __future__ import annotations

import logging
import re
import threading

import numpy as np
from bokeh.palettes import Category10_10, Category20_20

from embedviz.ui.pages.charts import add_hover, marks_columns_empty, new_marks
from embedviz.ui.pages.compare_live import X_FIELDS, CompareRun
from embedviz.ui.pages.live import LiveSeries, UpdateFeed, pick_worker

log = logging.getLogger(__name__)

#: the most characters of a run's name in a legend entry and a checkbox label (longer
#: names are shortened in the middle; the legends sit right of the charts and the
#: checkboxes in a 330 px column, which cut longer ones off)
LEGEND_CHARS = 34
EVAL_LEGEND_CHARS = 30
CHECKBOX_CHARS = 44
#: a label's trailing ``(runs.db)``: the file that tells two runs of one name apart
_FILE_SUFFIX = re.compile(r"^(.*\S) (\([^()]+\))$")


def _middle(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters by an ellipsis in the middle, keeping its end
    (a session name's random tail)."""
    if len(text) <= n:
        return text
    tail = min(7, (n - 1) // 2)
    return text[: n - 1 - tail] + "…" + text[len(text) - tail :]


def short_label(name: str, limit: int = LEGEND_CHARS) -> str:
    """``name`` in at most ``limit`` characters: shortened in the middle, keeping its
    start and end, and a trailing ``(file)`` that tells two files' runs apart (a file
    longer than 20 or leaving under 13 for the name keeps its end: ``(…data/runs.db)``).

    Examples
    --------
    >>> short_label("sequential-20261123-013644-48e9c5 (demo_copy.db)", 34)
    'sequential-…-48e9c5 (demo_copy.db)'
    >>> short_label("tsne-20261123-013644-15a769", 34)
    'tsne-20261123-013644-15a769'
    """
    if len(name) <= limit:
        return name
    m = _FILE_SUFFIX.match(name)
    base, suffix = (m.group(1), f" {m.group(2)}") if m else (name, "")
    room = max(min(limit - 13, 20), 8)  # the most the file may take: 13 stay for the name
    if len(suffix) > room:
        suffix = f" (…{suffix[2:-1][-(room - 4) :]})"
    return _middle(base, limit - len(suffix)) + suffix


def short_labels(names: list[str], limit: int) -> list[str]:
    """:func:`short_label` of each name; a name whose short label another name shares
    keeps its full length (two runs are never shown under one label)."""
    short = [short_label(n, limit) for n in names]
    counts = {s: short.count(s) for s in short}
    return [s if counts[s] == 1 else n for s, n in zip(short, names, strict=True)]


def read_score(run: CompareRun, smoothing: float) -> CompareRun:
    """Read ``run``'s score into new sources (``run.score``, its marks, ``run.rel``,
    ``run.feed``); no chart is touched, so it may run off the document's thread."""
    sid, storage = run.sid, run.storage
    first = storage.get_series(sid, run.worker, "score", max_points=None)
    t0 = float(first.timestamps[0]) if len(first) else 0.0

    def rel(line, t0=t0):
        return {"rel": np.asarray(line["t"], dtype=np.float64) / 1000.0 - t0}

    run.rel = rel
    marks = new_marks(f"score:{sid}:marks")
    marks.data = {**marks_columns_empty(), "t": np.zeros(0), "rel": np.zeros(0)}
    run.score = LiveSeries("score", sid, smooth=smoothing, extra_columns=rel)
    run.score.load(storage, sid, run.worker, marks)
    run.note_scores(run.score.source.data["y"])
    run.feed = UpdateFeed(storage, sid, run.worker, run.score.last_iteration)
    return run


def draw_score(run: CompareRun, plots, lines: dict, x: str = "x") -> list:
    """Draw ``run``'s score on each of ``plots`` (a faint raw line, a bold smoothed one
    named in the legend, NaN/inf marks) with ``x`` as the x column; the lines are added
    to ``lines[plot]`` (what the y range follows) and to ``run.renderers``. Returns the
    new renderers."""
    new = []
    s = run.score
    for p in plots:
        raw = p.line(x, "y", source=s.source, color=run.color, alpha=0.3, line_width=1)
        bold = p.line(
            x, "ys", source=s.source, color=run.color, line_width=2, legend_label=run.legend
        )
        # NaN/inf as red x at the frame's edge, as on the overview (the tooltip names the run)
        new += [raw, bold, *add_hover(p, [], s.marks, x=x)]
        lines[p] += [raw, bold]
    run.renderers += new
    return new


def free_colour(used: set[str]) -> str:
    """The first colour of Category10, then of Category20, that no run uses.

    Examples
    --------
    >>> free_colour({"#1f77b4"})
    '#ff7f0e'
    """
    for c in (*Category10_10, *Category20_20):
        if c not in used:
            return c
    return Category20_20[len(used) % 20]


def unique_label(name: str, taken: list[str], limit: int) -> str:
    """:func:`short_label` of ``name``, or ``name`` whole where a run shown already has
    that label (two runs are never shown under one label).

    Examples
    --------
    >>> unique_label("run-20261123-aaaaaaaaaaaaaaaa-1", ["run-202…aaaaa-1"], 15)
    'run-20261123-aaaaaaaaaaaaaaaa-1'
    """
    label = short_label(name, limit)
    return name if label in taken else label


class NewRuns:
    """Sessions recorded while the compare page is open, read in the background and
    drawn on the page's refresh.

    ``make(index, sid, storage, worker, colour)`` makes a new run's
    :class:`CompareRun`, ``row_of(run)`` reads what else the page draws of it (its
    table row, ...), ``smoothing()`` is the smoothing chosen now; :meth:`take` hands
    the runs read to the page's refresh, which draws them. ``room`` is how many runs
    may still be added; ``older`` names sessions listed at build that the page left out
    (they are not new).
    """

    def __init__(
        self, page, names: list[str], room: int, make, row_of, smoothing, older=frozenset()
    ) -> None:
        self.page, self.names, self.room = page, names, room
        self.older = set(older)  # listed when the page was built but not offered
        self.make, self.row_of, self.smoothing = make, row_of, smoothing
        self.reading: set[str] = set()
        self.offered = 0
        self.ready: list[tuple[CompareRun, object]] = []  # read, waiting for a refresh
        self._lock = threading.RLock()  # a synchronous background reads inside offer

    def offer(self, listed: list[tuple[str, object]], colours: set[str]) -> list[str]:
        """Start reading the sessions of ``listed`` the page does not have; return those
        it cannot add (no room left), which a note names."""
        unseen = []
        with self._lock:
            for sid, storage in listed:
                self._offer(sid, storage, colours, unseen)
        return unseen

    def _offer(self, sid: str, storage, colours: set[str], unseen: list[str]) -> None:
        if sid in self.names or sid in self.reading or sid in self.older:
            return
        if self.room <= 0:
            unseen.append(sid)
            return
        worker = pick_worker(storage, sid, None)
        if worker is None:
            return  # no worker has written yet: asked again on the next look
        self.room -= 1
        self.reading.add(sid)
        colour = free_colour(colours)
        colours.add(colour)
        self.offered += 1  # the order they are drawn in
        args = (self.offered, sid, storage, worker, colour)
        self.page.background(lambda a=args: self._read(*a))

    def _read(self, index, sid, storage, worker, colour) -> None:
        try:
            run = read_score(self.make(index, sid, storage, worker, colour), self.smoothing())
            extra = self.row_of(run)
        except Exception:  # a storage hiccup: the session is offered again on the next look
            log.exception("reading the new run %r failed", sid)
            with self._lock:
                self.reading.discard(sid)
                self.room += 1
            return
        with self._lock:
            self.ready.append((run, extra))

    def take(self) -> list[tuple[CompareRun, object]]:
        """The runs read since the last call, in the order they were offered, each
        given its place after the page's runs (and in :attr:`names` from now on)."""
        with self._lock:
            ready, self.ready = sorted(self.ready, key=lambda item: item[0].index), []
            for run, _ in ready:
                self.reading.discard(run.sid)
                run.index = len(self.names)
                self.names.append(run.sid)
        return ready


def x_field(x_mode) -> str:
    """The x column the page's x axis choice draws (``x`` before it is made)."""
    return X_FIELDS[x_mode.active] if x_mode is not None else "x"
