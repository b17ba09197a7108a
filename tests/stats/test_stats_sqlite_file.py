"""The file checks (sqlite_file) and the row packing (sqlite_layout.UpdatePacker) alone,
without a storage object."""

import math
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from embedviz.errors import FileFormatError
from embedviz.stats.records import ActivationStats, Histogram, ParamStats, Update
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


def test_rows_packed_from_flat_statistics_equal_rows_of_stats_objects():
    """The listener's path for SQLite (floats in a list or an array) and put's path (ParamStats and
    ActivationStats) make one row: on a new layout and on one already seen, with and
    without the memory sample, the throughput and the tags, NaN and inf included."""
    rng = np.random.default_rng(1)
    params, layers = ("0.weight", "0.bias"), ("0", "1")
    values = rng.normal(size=10 * len(params) + 3 * len(layers)).tolist()
    values[3], values[9] = math.nan, math.inf
    objects = {
        "params": {p: ParamStats(*values[10 * i : 10 * i + 10]) for i, p in enumerate(params)},
        "activations": {
            a: ActivationStats(*values[20 + 3 * i : 23 + 3 * i]) for i, a in enumerate(layers)
        },
    }
    packer = UpdatePacker()
    heads = [
        Update("run", "0", 0, 1.0, score=2.3, learning_rates=[0.1, 0.01], collect_seconds=1e-4),
        Update("run", "0", 10, 2.0, score=2.1, learning_rates=[0.1, 0.01], collect_seconds=2e-4,
               minibatches_per_sec=9.0, examples_per_sec=576.0,
               memory={"rss_bytes": 1e8, "cpu_percent": 50.0}),
        Update("run", "0", 20, 3.0, score=2.0, learning_rates=[0.1, 0.01], collect_seconds=3e-4,
               minibatches_per_sec=9.5, examples_per_sec=608.0, tags={"phase": "x"}),
    ]  # fmt: skip
    for head in heads + heads:  # the second round finds every layout known
        expected = UpdatePacker().pack(replace(head, **objects))
        for given in (values, np.array(values)):  # a list, or the listener's array
            row = packer.pack_flat(head, params, layers, given)
            assert row == expected  # the same bytes, NaN and inf included
    assert packer.pack(replace(heads[1], **objects)) == packer.pack_flat(
        heads[1], params, layers, values
    )
    with pytest.raises(ValueError, match="27 values for 2 parameters and 2 layers"):
        packer.pack_flat(heads[0], params, layers, values + [0.0])


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
