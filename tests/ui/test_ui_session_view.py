""":class:`SessionView` (review 6 #20): a session shown under a label is read through an
explicit :class:`~embedviz.stats.base.StatsReader`, not a proxy of every attribute; it
reads the second file's own records and refuses writes."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
from ui_records import fill

from embedviz.stats.base import StatsReader, StatsStorage
from embedviz.stats.records import Snapshot, Update
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.server import UIServer
from embedviz.ui.session_view import SessionView

LABEL = "mlp (dup.db)"
READ_API = [
    name
    for name, member in vars(StatsReader).items()
    if inspect.isfunction(member) and not name.startswith("_")
]


@pytest.fixture
def two_files(tmp_path):
    """runs.db (session "mlp", one worker, 30 iterations) and dup.db: "mlp" too, but two
    workers, 60 iterations (an eval at 49), two snapshots, and a session "other"."""
    runs, dup = tmp_path / "runs.db", tmp_path / "dup.db"
    with SQLiteStatsStorage(runs) as st:
        fill(st, n=30)
    with SQLiteStatsStorage(dup) as st:
        fill(st, workers=("0", "1"), n=60)
        st.put(Snapshot("mlp", "0", 50, 1.7e9, "embedding", ["a", "b"], [[0.0, 1.0], [2.0, 3.0]]))
        st.put(Snapshot("mlp", "0", 55, 1.7e9, "word_vectors", ["c"], [[4.0, 5.0, 6.0]]))
        st.put(Update("other", "0", 0, 1.7e9, score=1.0))
    opened = [SQLiteStatsStorage(p, read_only=True) for p in (runs, dup)]
    ui = UIServer(port=0)
    for st in opened:
        ui.attach(st)
    yield ui, opened
    for st in opened:
        st.close()


# every method of the read API, with the session in first place (the label through the
# view, "mlp" on a storage) and the other arguments by position and by keyword
CALLS = {
    "list_sessions": [((), {})],
    "list_workers": [((), {})],
    "get_static_info": [(("1",), {})],
    "get_updates": [
        ((), {}),
        (("1",), {}),
        (("0",), {"after_iteration": 20, "last": 5}),
        ((None, 40), {}),
    ],
    "get_latest_update": [(("1",), {})],
    "count_updates": [((), {}), (("1",), {})],
    "list_series": [(("0",), {})],
    "get_series": [(("0", "score"), {}), (("1", "lr/0"), {"max_points": 7})],
    "get_series_many": [
        (("0", ["score", "eval/accuracy"]), {}),
        (("1", ["score", "memory/rss_bytes"]), {"max_points": {"score": 5, "memory/rss_bytes": 9}}),
    ],
    "get_evals": [((), {}), (("1",), {})],
    "get_histograms": [(("0", "params", "0.weight"), {})],
    "get_histogram_arrays": [(("1", [("params", "0.weight"), ("activations", "2")]), {})],
    "get_snapshots": [((), {}), (("0",), {"kind": "embedding"}), (("0", "word_vectors"), {})],
}


def _plain(x):
    """``x`` as nested lists, dicts and numbers, to compare results of any read method."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if dataclasses.is_dataclass(x):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {repr(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _read(reader, name, session, args, kwargs):
    if name == "list_sessions":
        return reader.list_sessions()
    return getattr(reader, name)(session, *args, **kwargs)


def test_the_view_is_a_stats_reader_with_the_protocol_s_signatures(two_files):
    ui, (_, second) = two_files
    view = dict(ui.sessions())[LABEL]
    assert isinstance(view, SessionView) and view.storage is second
    assert isinstance(view, StatsReader)
    assert set(CALLS) == set(READ_API)  # the calls below cover the whole protocol
    for name in READ_API:
        want = inspect.signature(getattr(StatsReader, name))
        assert inspect.signature(getattr(SessionView, name)) == want, name


def test_every_read_method_reads_the_second_file_s_session(two_files):
    ui, (first, second) = two_files
    view = dict(ui.sessions())[LABEL]
    for name, calls in CALLS.items():
        for args, kwargs in calls:
            got = _plain(_read(view, name, LABEL, args, kwargs))
            want = _plain(_read(second, name, "mlp", args, kwargs))
            if name == "list_sessions":
                want = [LABEL if s == "mlp" else s for s in want]
            assert repr(got) == repr(want), (name, args, kwargs)
            # the files differ in every read: a view reading the first file would fail
            other = _plain(_read(first, name, "mlp", args, kwargs))
            assert repr(got) != repr(other), (name, args, kwargs)
    assert view.list_sessions() == [LABEL, "other"]
    assert view.count_updates(LABEL) == 120 and view.list_workers(LABEL) == ["0", "1"]
    # by keyword too
    assert view.count_updates(session_id=LABEL, worker_id="1") == 60
    assert len(view.get_updates(session_id=LABEL, worker_id="0", after_iteration=49)) == 10


def test_other_sessions_pass_through_and_records_keep_the_real_id(two_files):
    ui, (_, second) = two_files
    view = dict(ui.sessions())[LABEL]
    assert view.list_workers("other") == second.list_workers("other") == ["0"]
    assert view.count_updates("other") == 1
    # records are the storage's own (no page reads a record's session id)
    assert view.get_static_info(LABEL, "0").session_id == "mlp"
    assert {u.session_id for u in view.get_updates(LABEL)} == {"mlp"}


def test_writes_through_a_view_are_refused():
    st = InMemoryStatsStorage()
    st.put(Update("x", "0", 0, 0.0, score=1.0))
    view = SessionView(st, "x", "x (b)")
    assert not isinstance(view, StatsStorage)
    for name in ("put", "put_many", "flush", "close", "poll", "register_listener", "path"):
        assert not hasattr(view, name), name
    with pytest.raises(AttributeError, match="put"):
        view.put(Update("x (b)", "0", 1, 0.0, score=2.0))
    with pytest.raises(AttributeError):
        view.anything = 1  # no attributes beyond storage, session_id and label
    assert st.count_updates("x") == 1 and st.list_sessions() == ["x"]
    assert view.list_sessions() == ["x (b)"] and view.count_updates("x (b)") == 1
