"""The file checks (sqlite_file) and the row packing (sqlite_layout.UpdatePacker) alone,
without a storage object."""

import sqlite3

import numpy as np
import pytest

from embedviz.errors import FileFormatError
from embedviz.stats.records import Histogram, ParamStats, Update
from embedviz.stats.sqlite_file import check_meta, check_path, create_schema, damaged, file_errors
from embedviz.stats.sqlite_layout import FILE_SCHEMA_VERSION, UpdatePacker


def test_damage_has_one_message_and_other_failures_another(tmp_path):
    path = tmp_path / "runs.db"
    err = damaged(path, sqlite3.DatabaseError("database disk image is malformed"))
    assert str(err) == (
        f"{path}: damaged statistics file (database disk image is malformed); restore it "
        f"from a copy, or recover what is readable with: sqlite3 {path} .recover | "
        f"sqlite3 NEW.db"
    )
    err = damaged(path, sqlite3.OperationalError("unable to open database file"))
    assert "damaged" not in str(err)
    assert str(err).startswith(f"{path}: cannot open the statistics file (OperationalError")
    with pytest.raises(FileFormatError, match="damaged statistics file"):
        with file_errors(path):
            raise sqlite3.DatabaseError("file is not a database")
    with pytest.raises(sqlite3.OperationalError):  # locked or busy: not the file's format
        with file_errors(path):
            raise sqlite3.OperationalError("database is locked")


def test_check_path_refuses_folders_missing_files_to_read_and_other_formats(tmp_path):
    with pytest.raises(FileFormatError, match="is a directory"):
        check_path(tmp_path, read_only=False)
    missing = tmp_path / "runs.db"
    check_path(missing, read_only=False)  # to be created
    with pytest.raises(FileFormatError, match="no such statistics file"):
        check_path(missing, read_only=True)
    missing.write_bytes(b"x,y\n1,2\n")
    with pytest.raises(FileFormatError, match=r"not an embedviz statistics file \(not SQLite\)"):
        check_path(missing, read_only=True)


def test_check_meta_and_create_schema(tmp_path):
    path = tmp_path / "runs.db"
    con = sqlite3.connect(path, isolation_level=None)
    check_meta(con, path, allow_empty=True)
    with pytest.raises(FileFormatError, match="an empty SQLite file"):
        check_meta(con, path)
    create_schema(con, path)
    check_meta(con, path)
    con.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (FILE_SCHEMA_VERSION + 1,)
    )
    with pytest.raises(FileFormatError, match="upgrade embedviz"):
        check_meta(con, path)
    con.execute("DELETE FROM meta")
    with pytest.raises(FileFormatError, match="another program"):
        check_meta(con, path)
    con.close()


def test_rows_packed_from_arrays_equal_rows_of_histogram_objects():
    """The listener's path (arrays) and put's path (Histogram objects) make one row."""
    rng = np.random.default_rng(0)
    packer = UpdatePacker()
    names = {"params": ["a", "b"], "grads": ["a"]}
    arrays, hists = [], {}
    for kind, tensors in names.items():
        lohi = np.sort(rng.normal(size=(len(tensors), 2)), axis=1)
        counts = rng.integers(0, 100, size=(len(tensors), 7))
        arrays.append((kind, tensors, lohi, counts))
        hists[kind] = {
            n: Histogram(float(lo), float(hi), c.tolist())
            for n, (lo, hi), c in zip(tensors, lohi, counts, strict=True)
        }
    params = {"a": ParamStats(*rng.random(10).tolist()), "b": ParamStats(*rng.random(10))}
    plain = Update("run", "0", 3, 1.0, score=0.5, params=params, tags={"phase": "x"})
    with_objects = Update(**{**vars(plain), "histograms": hists})
    row = packer.pack_with_arrays(plain, arrays)
    assert row == packer.pack(with_objects)
    assert row[:4] == ("run", "0", 3, 1.0) and row[6] == '{"phase": "x"}'
    assert row[4] == tuple(with_objects.scalars())
    assert packer.pack_with_arrays(plain, []) == packer.pack(plain)


def test_a_full_disk_at_open_says_so_and_leaves_no_empty_file(tmp_path, monkeypatch):
    """Review 9: 'cannot open ... check that it is a file written by SQLiteStatsStorage
    and that no other program holds it', and a 0-byte runs.db left behind."""
    from embedviz.stats import sqlite_file
    from embedviz.stats.storage import SQLiteStatsStorage

    real = sqlite3.connect

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self.con = real(*args, **kwargs)  # creates the file, as SQLite does

        def execute(self, sql, *args):
            if "journal_mode" in sql:
                raise sqlite3.OperationalError("database or disk is full")
            return self.con.execute(sql, *args)

        def close(self):
            self.con.close()

    monkeypatch.setattr(sqlite_file.sqlite3, "connect", FullDisk)
    path = tmp_path / "runs.db"
    with pytest.raises(
        FileFormatError,
        match=r"runs.db: cannot write the statistics file: the disk is full .*free some space",
    ):
        SQLiteStatsStorage(path)
    assert not path.exists() and not list(tmp_path.iterdir())
