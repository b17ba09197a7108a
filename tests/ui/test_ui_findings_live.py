"""The overview's findings stay current while a run grows (review 5, item 2): they are
diagnosed again, at most every ``every_s``, when new updates arrived, and say which
iteration they speak for."""

from __future__ import annotations

import math
import time

from bokeh.models import Div
from ui_records import fill, make_update

from embedviz.stats.storage import InMemoryStatsStorage
from embedviz.ui.diagnose import FindingsRunner, get_findings
from embedviz.ui.findings import LiveFindings, findings_html
from embedviz.ui.pages.widgets import layer_types


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def settle(live) -> None:
    """Wait until the diagnosis is shown (its callback runs after the future is done)."""
    deadline = time.monotonic() + 60
    while live.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not live.busy


def test_findings_are_diagnosed_again_as_the_run_grows_and_say_as_of_which_iteration():
    st = InMemoryStatsStorage()
    fill(st, session="run", n=60)  # healthy so far (its NaN score is planted later)
    runner, clock, div = FindingsRunner(), Clock(), Div()
    live = LiveFindings(
        div, runner, st, "run", None, call_soon=lambda f: f(), every_s=15.0, clock=clock
    )
    try:
        live.start()
        settle(live)
        assert div.text == findings_html(get_findings(st, "run", "0"), as_of=59)
        assert "As of iteration 59" in div.text and "score not finite" not in div.text
        # the run turns NaN
        for i in range(60, 80):
            up = make_update("run", "0", i)
            up.score = math.nan
            st.put(up)
        clock.now += 5.0
        assert not live.tick()  # not due yet: the old findings stay
        assert "As of iteration 59" in div.text
        clock.now += 11.0
        assert live.tick()  # due and the run grew
        settle(live)
        assert "As of iteration 79" in div.text
        types = layer_types(st.get_static_info("run", "0"))
        assert div.text == findings_html(get_findings(st, "run", "0"), as_of=79, types=types)
        assert "score not finite" in div.text
        clock.now += 60.0
        assert not live.tick()  # nothing new since: no diagnosis
        live.stop()
        st.put(make_update("run", "0", 80))
        clock.now += 60.0
        assert not live.tick()  # a replaced page asks no more
    finally:
        runner.shutdown()


class FakeServer:
    def __init__(self, storage) -> None:
        self.storage = storage

    def sessions(self):
        return [(sid, self.storage) for sid in self.storage.list_sessions()]


def test_embeddings_page_lists_only_tsne_and_word2vec_sessions():
    from ui_records import fill_tsne, fill_word2vec

    from embedviz.stats.records import StaticInfo, Update
    from embedviz.ui.shell import default_session, listed_sessions

    st = InMemoryStatsStorage()
    fill(st, session="mlp", n=20)
    fill_tsne(st)
    fill_word2vec(st)
    st.put(Update("pending", "0", 1, 1.0, score=1.0))  # no static info yet
    server = FakeServer(st)
    kinds = {}
    assert listed_sessions(server, "/train/overview") == st.list_sessions()
    assert listed_sessions(server, "/embeddings", kinds) == ["tsne-run", "w2v-run"]
    assert default_session(server, "/embeddings") == "w2v-run"
    # the pending run's kind becomes known later: listed from then on
    st.put(StaticInfo("pending", "0", 1.0, kind="tsne"))
    assert listed_sessions(server, "/embeddings", kinds) == ["tsne-run", "w2v-run", "pending"]


class SlowRunner:
    """A findings runner whose diagnosis takes ``seconds`` of the test's clock."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds, self.asked = clock, seconds, 0

    def submit(self, storage, session_id, worker_id=None):
        from concurrent.futures import Future

        self.asked += 1
        future = Future()
        self.clock.now += self.seconds  # the diagnosis runs this long
        future.set_result([])
        return future


def test_a_slow_diagnosis_is_repeated_less_often():
    st = InMemoryStatsStorage()
    fill(st, session="run", n=20)
    clock = Clock()
    runner = SlowRunner(clock, 4.0)  # a long run's diagnosis: 4 s
    live = LiveFindings(
        Div(), runner, st, "run", None, lambda f: f(), every_s=15.0, clock=clock, max_share=0.1
    )
    live.start()
    assert runner.asked == 1 and live.took == 4.0 and not live.busy
    for i, wait in enumerate((12.0, 20.0), start=20):  # 16 s, then 36 s after its start
        st.put(make_update("run", "0", i))
        clock.now += wait
        assert not live.tick(), "repeated before 4 s / 0.1 = 40 s had passed"
    clock.now += 4.0  # 40 s after the start: due
    assert live.tick() and runner.asked == 2
    # a quick diagnosis keeps the every_s rhythm
    runner.seconds = 0.5
    clock.now += 40.0
    st.put(make_update("run", "0", 30))
    assert live.tick() and live.took == 0.5
    st.put(make_update("run", "0", 31))
    clock.now += 15.0
    assert live.tick() and runner.asked == 4
