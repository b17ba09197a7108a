"""Shared fixtures: seeded data with the awkward cases (duplicate rows, zero rows)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def blobs(rng):
    """Three well separated Gaussian blobs in 10-D, 60 points each."""
    centres = rng.normal(scale=10.0, size=(3, 10))
    X = np.vstack([c + rng.normal(size=(60, 10)) for c in centres])
    labels = np.repeat(np.arange(3), 60)
    return X, labels


@pytest.fixture
def with_duplicates(blobs):
    """The blobs plus exact and near-duplicate copies of their first 20 rows."""
    X, _ = blobs
    return np.vstack([X, X[:20], X[:20] + 1e-12])


@pytest.fixture
def with_zero_rows(blobs):
    """The blobs with rows 3 and 17 set to zero (undefined for the cosine metric)."""
    X = blobs[0].copy()
    X[[3, 17]] = 0.0
    return X


@pytest.fixture
def foreign_sqlite(tmp_path):
    """Another program's SQLite file (not ours): (path, its bytes)."""
    import sqlite3

    path = tmp_path / "foreign.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers(id INTEGER, name TEXT)")
    con.execute("INSERT INTO customers VALUES (1, 'a')")
    con.commit()
    con.close()
    return path, path.read_bytes()
