"""The declared read API (issue 4/5, review 6 finding 8): both readable storages are a
:class:`StatsReader` with the Protocol's signatures, and the remote router, which only
writes, is not one."""

from __future__ import annotations

import inspect

import pytest

from embedviz.stats.base import StatsReader, StatsStorage
from embedviz.stats.remote import RemoteStatsRouter
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage

READ_METHODS = [
    name
    for name, member in vars(StatsReader).items()
    if not name.startswith("_") and inspect.isfunction(member)
]


def _shape(fn) -> list[tuple]:
    """Parameter names, kinds and defaults (annotations are strings: not compared)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_the_protocol_lists_the_documented_read_methods():
    assert READ_METHODS == [
        "list_sessions",
        "list_workers",
        "get_static_info",
        "get_updates",
        "get_latest_update",
        "count_updates",
        "list_series",
        "get_series",
        "get_series_many",
        "get_evals",
        "get_histograms",
        "get_histogram_arrays",
        "get_snapshots",
    ]
    import embedviz.stats.storage as storage_module

    for name in READ_METHODS:  # each documented in the storage module's read API
        assert f"``{name}(" in storage_module.__doc__, name


@pytest.mark.parametrize("cls", [InMemoryStatsStorage, SQLiteStatsStorage])
def test_readable_storages_are_stats_readers_with_the_protocols_signatures(cls, tmp_path):
    storage = cls() if cls is InMemoryStatsStorage else cls(tmp_path / "runs.db")
    try:
        assert isinstance(storage, StatsReader)
        assert isinstance(storage, StatsStorage)
    finally:
        storage.close()
    for name in READ_METHODS:
        assert _shape(getattr(cls, name)) == _shape(getattr(StatsReader, name)), name


def test_the_remote_router_writes_only():
    assert issubclass(RemoteStatsRouter, StatsStorage)
    assert not issubclass(RemoteStatsRouter, StatsReader)
    assert not issubclass(StatsStorage, StatsReader)  # the base declares no read method
