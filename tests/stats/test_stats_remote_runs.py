"""Two runs under one session name on a real UI (``embedviz ui --enable-remote``).

A run is known by its StaticInfo. A run whose records reach the UI after another run
of the same name (a spill resent with the right token, or a UI that was away when the
listener asked for the name) becomes ``NAME-2``; a run that replays its own spill into
the UI keeps its name. Every server and router is stopped or closed after the test.
"""

import json
import logging
import sqlite3
import threading
import time

import pytest

from embedviz.stats.records import StaticInfo, Update, to_dict
from embedviz.stats.remote import RemoteStatsRouter
from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage
from embedviz.ui.receiver import ReceiverConfig, store_records_impl
from embedviz.ui.server import UIServer

TOKEN = "right-token"


@pytest.fixture
def ui(tmp_path):
    """A UI with --enable-remote and a token, writing into a SQLite file."""
    storage = SQLiteStatsStorage(tmp_path / "remote.db")
    server = UIServer(port=0, enable_remote=True, token=TOKEN)
    server.attach(storage)
    server.start()
    yield server, storage
    server.stop()
    storage.close()


@pytest.fixture
def routers(tmp_path):
    """``make(url, **kw)``: a router with a short back-off and, unless given, a spill
    file of its own in ``tmp_path`` (not the temporary directory: a record a test has
    rejected keeps its file); closed after the test."""
    made = []

    def make(url, **kw):
        spill = tmp_path / f"router-{len(made)}-spill.db"
        kw = {"timeout": 2.0, "max_backoff": 0.05, "close_timeout": 15.0, "spill_path": spill,
              **kw}  # fmt: skip
        made.append(RemoteStatsRouter(url, **kw))
        return made[-1]

    yield make
    for router in made:
        router.close_timeout = min(router.close_timeout, 0.5)
        router.close()


def static(session, t0):
    return StaticInfo(session, "0", t0, kind="other", model_class="Net", config={"t0": t0})


def update(session, i, t0):
    return Update(session, "0", i, t0 + i, score=t0 + i)


def iterations(storage, session):
    return [u.iteration for u in storage.get_updates(session, "0")]


def scores(storage, session):
    return [u.score for u in storage.get_updates(session, "0")]


def train(router, session, steps=20, frequency=5):
    """A real StatsListener run of a tiny model into ``router``; its session id."""
    torch = pytest.importorskip("torch")
    from embedviz.stats.listener import StatsListener

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with StatsListener(
        router, model, opt, frequency=frequency, histogram_frequency=0, session_id=session
    ) as listener:
        for _ in range(steps):
            opt.zero_grad()
            loss = model(torch.ones(2, 4)).sum()
            loss.backward()
            opt.step()
            listener.step(loss.item(), batch_size=2)
    return listener.session_id


@pytest.mark.slow  # importing torch and loading the listener's kernels: ~3-6 s
def test_a_spill_resent_as_the_401_advises_becomes_name_2_not_merged(ui, routers, tmp_path, caplog):
    """Review 8, finding 3: run 1 with the right token, run 2 with a wrong one
    (spilled), run 2's spill resent with the right token."""
    server, storage = ui
    first = routers(server.url, token=TOKEN)
    assert train(first, "remote-run") == "remote-run"
    first.close()
    spill = tmp_path / "spill.db"
    second = routers(server.url, token="wrong-token", spill_path=spill, close_timeout=0.5)
    assert train(second, "remote-run") == "remote-run"  # the UI could not be asked
    second.close()
    assert second.refused is not None and spill.exists()
    run1 = storage.get_static_info("remote-run", "0")

    with caplog.at_level(logging.INFO, logger="embedviz.stats"):
        routers(server.url, token=TOKEN, spill_path=spill).close()

    assert storage.list_sessions() == ["remote-run", "remote-run-2"]
    assert iterations(storage, "remote-run") == [0, 5, 10, 15]  # once each
    assert iterations(storage, "remote-run-2") == [0, 5, 10, 15]
    assert storage.get_static_info("remote-run", "0") == run1  # run 1's, not replaced
    run2 = storage.get_static_info("remote-run-2", "0")
    assert run2.timestamp > run1.timestamp
    assert (
        "the spilled run 'remote-run' (worker 0) is sent as 'remote-run-2': the UI already "
        "holds another run named 'remote-run'" in caplog.text
    )
    assert f"sent 5 record(s) from the spill file {spill}" in caplog.text  # static + 4
    assert f"every record of the spill file {spill} was sent; the file is removed" in (caplog.text)
    assert not spill.exists()


def test_a_run_that_replays_its_own_spill_keeps_one_session(ui, routers, tmp_path, caplog):
    """The UI goes away mid-run and comes back (the same router sends the spill), then
    goes away again until the router is closed (a later router sends the rest): one
    session, every iteration once, in order, and the resend says what it did."""
    server, storage = ui
    spill = tmp_path / "spill.db"
    router = routers(server.url, token=TOKEN, spill_path=spill, batch_size=20)
    router.put(static("run", 1.7e9))
    for i in range(50):
        router.put(update("run", i, 1.7e9))
    assert router.flush(10)
    server.stop()  # away ...
    for i in range(50, 150):
        router.put(update("run", i, 1.7e9))
    assert not router.flush(0.5) and router._waiting.in_file
    server.start()  # ... and back: the router replays its own spill
    for i in range(150, 200):
        router.put(update("run", i, 1.7e9))
    assert router.flush(15)
    server.stop()  # away again, until the router is closed: its rest is kept
    for i in range(200, 260):
        router.put(update("run", i, 1.7e9))
    router.close_timeout = 0.3
    router.close()
    assert spill.exists()
    server.start()
    with caplog.at_level(logging.INFO, logger="embedviz.stats"):
        routers(server.url, token=TOKEN, spill_path=spill).close()

    assert storage.list_sessions() == ["run"]
    assert iterations(storage, "run") == list(range(260))
    assert "is sent as" not in caplog.text
    assert f"sent 60 record(s) from the spill file {spill}" in caplog.text
    assert "the file is removed" in caplog.text and not spill.exists()


def test_a_run_that_started_while_the_ui_was_away_becomes_name_2(ui, routers, tmp_path, caplog):
    """The listener could not ask the UI for the name (away), so run 2 is sent as 'x'
    from its start; when the UI comes back, the router sends it as 'x-2'."""
    server, storage = ui
    first = routers(server.url, token=TOKEN)
    first.put(static("x", 1.0e9))
    for i in range(30):
        first.put(update("x", i, 1.0e9))
    first.close()
    server.stop()
    second = routers(server.url, token=TOKEN, spill_path=tmp_path / "s2.db", batch_size=7)
    assert second.list_workers("x") == []  # what the listener sees: the name stays
    second.put(static("x", 2.0e9))
    for i in range(20):
        second.put(update("x", i, 2.0e9))
    assert not second.flush(0.5)
    server.start()
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        for i in range(20, 40):
            second.put(update("x", i, 2.0e9))
        second.close()

    assert storage.list_sessions() == ["x", "x-2"]
    assert scores(storage, "x") == [1.0e9 + i for i in range(30)]  # run 1 alone
    assert scores(storage, "x-2") == [2.0e9 + i for i in range(40)]  # run 2, in order
    assert storage.get_static_info("x-2", "0").timestamp == 2.0e9
    assert caplog.text.count("is sent as 'x-2'") == 1


def test_a_spill_with_two_runs_of_one_name_sends_each_to_its_own_session(ui, routers, tmp_path):
    """Runs 2 and 3 both spilled under 'y' (the token was wrong): 'y-2' and 'y-3'."""
    server, storage = ui
    first = routers(server.url, token=TOKEN)
    first.put(static("y", 1.0e9))
    first.put(update("y", 0, 1.0e9))
    first.close()
    spill = tmp_path / "spill.db"
    for t0 in (2.0e9, 3.0e9):
        wrong = routers(server.url, token="wrong", spill_path=spill, close_timeout=0.5)
        wrong.put(static("y", t0))
        for i in range(3):
            wrong.put(update("y", i, t0))
        wrong.close()
    routers(server.url, token=TOKEN, spill_path=spill, batch_size=100).close()
    assert storage.list_sessions() == ["y", "y-2", "y-3"]
    assert scores(storage, "y") == [1.0e9]
    assert scores(storage, "y-2") == [2.0e9, 2.0e9 + 1, 2.0e9 + 2]
    assert scores(storage, "y-3") == [3.0e9, 3.0e9 + 1, 3.0e9 + 2]


def renamed_then_away(ui, routers, spill, first_updates):
    """A router whose run 'z' the UI renamed to 'z-2' (another run 'z', with
    ``first_updates`` updates, reached it first), then the UI stopped and 5 more updates
    put: they wait in the spill file ``spill``."""
    server, storage = ui
    first = routers(server.url, token=TOKEN)
    first.put(static("z", 1.0e9))
    for i in range(first_updates):
        first.put(update("z", i, 1.0e9))
    first.close()
    router = routers(server.url, token=TOKEN, spill_path=spill)
    router.put(static("z", 2.0e9))
    router.put(update("z", 0, 2.0e9))
    assert router.flush(10)
    assert storage.list_sessions() == ["z", "z-2"]
    server.stop()
    for i in range(1, 6):
        router.put(update("z", i, 2.0e9))
    return router


def test_what_a_renamed_run_leaves_in_the_spill_goes_under_its_new_name(ui, routers, tmp_path):
    """A router that renamed its run and is closed before sending the rest rewrites the
    spill file, so that a later router sends the rest under the new name too (its
    records carry no StaticInfo the UI could refuse)."""
    server, storage = ui
    spill = tmp_path / "spill.db"
    router = renamed_then_away(ui, routers, spill, first_updates=0)
    router.close_timeout = 0.3
    router.close()
    assert spill_sessions(spill) == ["z-2"] * 5
    server.start()
    routers(server.url, token=TOKEN, spill_path=spill).close()
    assert iterations(storage, "z") == [] and iterations(storage, "z-2") == list(range(6))


@pytest.mark.parametrize("make_storage", [InMemoryStatsStorage, "sqlite"])
def test_the_receiver_refuses_a_static_info_of_another_run_whole(make_storage, tmp_path):
    storage = SQLiteStatsStorage(tmp_path / "r.db") if make_storage == "sqlite" else make_storage()
    config = ReceiverConfig(enabled=True)

    def send(*records):
        body = json.dumps({"schema_version": 1, "records": [to_dict(r) for r in records]})
        return store_records_impl(config, body.encode(), lambda: storage)

    try:
        assert send(static("s", 1.0), update("s", 0, 1.0))[0] == 200
        # the same StaticInfo again (the same run, sent at least once), in another batch
        assert send(update("s", 1, 1.0), static("s", 1.0), update("s", 2, 1.0))[0] == 200
        # another run's StaticInfo: 409 naming it; nothing of the batch is stored
        status, answer = send(update("t", 0, 1.0), static("s", 5.0), update("s", 3, 5.0))
        assert status == 409
        assert answer["error"].startswith("records[1]: session 's' already holds another run")
        assert (answer["session_id"], answer["worker_id"]) == ("s", "0")
        # two runs of one name in one batch: the second is refused
        status, answer = send(static("u", 1.0), static("u", 2.0))
        assert status == 409 and answer["error"].startswith("records[1]:")
        assert storage.list_sessions() == ["s"]
        assert iterations(storage, "s") == [0, 1, 2]
        assert storage.get_static_info("s", "0").timestamp == 1.0
    finally:
        if make_storage == "sqlite":
            storage.close()


def spill_sessions(path):
    """The session names of the records waiting in a spill file, read from another
    connection (as a later router would find the file if the process died now)."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT payload FROM spill ORDER BY id").fetchall()
    finally:
        con.close()
    return [json.loads(p)["session_id"] for (p,) in rows]


def wait_until(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_renamed_run_is_under_its_new_name_in_the_spill_before_close(ui, routers, tmp_path):
    """Review 9, finding 1: the process dies after the rename while the UI is away (no
    close()); what its spill file holds then, sent by a later router, goes to 'z-2'."""
    server, storage = ui
    spill = tmp_path / "spill.db"
    router = renamed_then_away(ui, routers, spill, first_updates=1)
    wait_until(lambda: router._waiting.in_file == 5)
    crash = tmp_path / "crash.db"  # the file as a crash now would leave it
    src, dst = sqlite3.connect(spill), sqlite3.connect(crash)
    src.backup(dst)
    src.close()
    dst.close()
    assert spill_sessions(crash) == ["z-2"] * 5
    server.start()
    routers(server.url, token=TOKEN, spill_path=crash).close()
    assert iterations(storage, "z") == [0]  # the first run alone
    assert scores(storage, "z") == [1.0e9]
    assert iterations(storage, "z-2") == list(range(6))


def test_a_run_spilled_before_its_409_is_renamed_in_the_spill_at_once(routers, tmp_path):
    """The run was spilled (the UI away) before the 409 renamed it: the rows the file
    holds are rewritten at the rename, and records spilled later go in renamed."""
    spill = tmp_path / "spill.db"
    router = routers("http://127.0.0.1:9", spill_path=spill, batch_size=4)
    conflict, posted = threading.Event(), []

    def post(payloads):  # the UI is away, except for one 409 for run 'x''s StaticInfo
        first = json.loads(payloads[0])
        posted.append(first["session_id"])
        if conflict.is_set() and first["type"] == "static" and first["session_id"] == "x":
            conflict.clear()
            return 409, json.dumps({"error": "records[0]: session 'x' holds another run"})
        return 0, "connection refused"

    router._post = post
    router.put(static("x", 2.0e9))
    for i in range(10):
        router.put(update("x", i, 2.0e9))
    wait_until(lambda: router._waiting.in_file == 11)
    assert spill_sessions(spill) == ["x"] * 11
    conflict.set()
    wait_until(lambda: "x-2" in posted)  # renamed, then the UI was away again
    assert spill_sessions(spill) == ["x-2"] * 11
    for i in range(10, 15):  # spilled after the rename: under the new name
        router.put(update("x", i, 2.0e9))
    wait_until(lambda: router._waiting.in_file == 16)
    assert spill_sessions(spill) == ["x-2"] * 16
    assert [json.loads(p)["iteration"] for p in router._waiting.oldest(16)[1][1:]] == list(
        range(15)
    )


def answering(accepted, refuse):
    """A fake ``_post``: 409 naming the first record ``refuse`` refuses, else 200,
    keeping the records it takes in ``accepted``."""

    def post(payloads):
        records = [json.loads(p) for p in payloads]
        bad = [i for i, r in enumerate(records) if refuse(r)]
        if bad:
            return 409, json.dumps({"error": f"records[{bad[0]}]: holds another run"})
        accepted.extend(records)
        return 200, "{}"

    return post


def test_a_409_that_names_no_static_info_refuses_that_record_alone(routers, caplog):
    """Review 9, N1: taken as a 400 (http_api.md), not as a refusal of the batch."""
    router = routers("http://127.0.0.1:9", batch_size=100)
    accepted = []
    router._post = answering(accepted, lambda r: r.get("iteration") == 3)
    for i in range(8):
        router.put(update("w", i, 1.0e9))
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        assert router.flush(10)
    assert [r["iteration"] for r in accepted] == [0, 1, 2, 4, 5, 6, 7]
    assert router.rejected == 1 and router.sent == 7
    assert "is sent as" not in caplog.text


def test_a_run_that_finds_no_free_name_loses_its_static_info_only_and_says_so(
    routers, caplog, monkeypatch
):
    """Every NAME-k is taken: the StaticInfo is refused (kept as rejected), the run's
    other records are sent under the name, and an error says they merge."""
    monkeypatch.setattr(RemoteStatsRouter, "list_workers", lambda self, session: ["0"])
    router = routers("http://127.0.0.1:9", batch_size=100)
    accepted = []
    router._post = answering(accepted, lambda r: r["type"] == "static")
    router.put(static("v", 2.0e9))
    for i in range(4):
        router.put(update("v", i, 2.0e9))
    with caplog.at_level(logging.WARNING, logger="embedviz.stats.remote"):
        assert router.flush(10)
    assert [(r["session_id"], r["iteration"]) for r in accepted] == [("v", i) for i in range(4)]
    assert router.rejected == 1
    [error] = [r for r in caplog.records if "cannot be renamed" in r.getMessage()]
    assert error.levelno == logging.ERROR
    assert "its later records go under 'v', into the run the UI holds there" in error.getMessage()


def test_a_name_refused_in_turn_leads_every_earlier_name_to_the_next():
    """'y' was sent as 'y-2'; a later run's StaticInfo, in the spill under 'y-2' (or
    still queued under 'y'), is refused too: both names now lead to 'y-3', and a
    record under 'y-3' stays there (records pass through named() more than once)."""
    from embedviz.stats.remote_names import RunNames

    renamed = []
    names = RunNames("http://ui/api/records", lambda session: [], lambda: renamed.append(1))
    as_json = [json.dumps(to_dict(r)) for r in (static("y", 2.0), update("y", 0, 3.0))]

    def sessions(payloads):
        return [json.loads(p)["session_id"] for p in payloads]

    assert names.rename(as_json[0], replayed=True)
    assert sessions(names.named(as_json)) == ["y-2", "y-2"]
    assert names.rename(names.named(as_json)[0], replayed=True)
    assert sessions(names.named(as_json)) == ["y-3", "y-3"]  # from 'y'
    assert sessions(names.named(names.named(as_json))) == ["y-3", "y-3"]  # from 'y-2', 'y-3'
    assert len(renamed) == 2
