"""SQLiteStatsStorage's reads on a file damaged where opening does not look."""

import inspect
import sqlite3

import pytest

from embedviz.errors import FileFormatError
from embedviz.stats.records import Update
from embedviz.stats.sqlite_read import SQLiteReading
from embedviz.stats.storage import SQLiteStatsStorage

# every public read, with arguments; a read added to SQLiteReading must be added here
_READS = {
    "list_sessions": (),
    "list_workers": ("run",),
    "get_static_info": ("run", "0"),
    "get_updates": ("run",),
    "get_latest_update": ("run", "0"),
    "count_updates": ("run",),
    "list_series": ("run", "0"),
    "get_series": ("run", "0", "score"),
    "get_series_many": ("run", "0", ["score"]),
    "get_evals": ("run",),
    "get_histogram_arrays": ("run", "0", [("params", "w")]),
    "get_histograms": ("run", "0", "params", "w"),
    "get_snapshots": ("run",),
}


class _DamagedConnection:
    """What SQLite does on a damaged data page: the statement fails when it runs."""

    in_transaction = False

    def execute(self, *args):
        raise sqlite3.DatabaseError("database disk image is malformed")


def test_every_public_read_turns_damage_into_a_file_format_error(tmp_path, monkeypatch):
    """Each read method wraps itself (it is defined that way, not listed by hand
    elsewhere), so a read added later cannot leak a raw sqlite3.DatabaseError."""
    public = {
        name
        for name, fn in vars(SQLiteReading).items()
        if not name.startswith("_") and inspect.isfunction(fn)
    }
    assert public == set(_READS)
    path = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(path)
    storage.put(Update("run", "0", 1, 1.0, score=1.0))
    storage.flush()
    for name in public:
        assert hasattr(getattr(SQLiteStatsStorage, name), "__wrapped__"), name
    monkeypatch.setattr(storage, "_reader", lambda: _DamagedConnection())
    for name, args in [*_READS.items(), ("poll", ()), ("quick_check", ())]:
        with pytest.raises(FileFormatError, match=r"runs\.db: damaged statistics file .*\.recover"):
            getattr(storage, name)(*args)
    monkeypatch.undo()
    assert storage.count_updates("run") == 1
    storage.close()
