"""The progress bar while numba compiles the kernels, and its last KL (review 8,
finding 13). A first run with an empty numba cache compiles for seconds in the
kernels' first call; here that call is made slow on purpose (the kernels are usually
cached already), so the tests check the bar's logic, not numba."""

import io
import logging
import re
import sys
import time

import pytest
import tqdm.std
from tsne_quick import quick

from embedviz.tsne import objective

_LINE = re.compile(r"(\d+)/(\d+) \[([\d:]+)<([\d:?]+)")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _seconds(clock):
    seconds = 0
    for part in clock.split(":"):
        seconds = 60 * seconds + int(part)
    return seconds


@pytest.fixture
def slow_first_call(monkeypatch, small):
    """The first gradient evaluation takes ``delay`` seconds more, as a compile does, and
    moves the progress bar's clock (tqdm's) on by ``jump`` seconds more; the real kernels
    are compiled first (with an empty numba cache that takes seconds), so that the delay
    is the only slow part."""
    quick(max_iter=5).fit(small)
    state = {"delay": 0.0, "jump": 0.0, "calls": 0, "offset": 0.0}
    call = objective.BarnesHutGradient.__call__
    clock = tqdm.std.time

    def slow(self, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] == 1:
            time.sleep(state["delay"])
            state["offset"] += state["jump"]
        return call(self, *args, **kwargs)

    monkeypatch.setattr(objective.BarnesHutGradient, "__call__", slow)
    monkeypatch.setattr(tqdm.std, "time", lambda: clock() + state["offset"])
    return state


def test_the_bar_says_it_compiles_and_its_eta_counts_iterations_only(
    small, slow_first_call, monkeypatch
):
    # 1 s of real time (the compile notice comes after 0.5 s), and a "compile" of 10,000 s
    # on the bar's clock: no run of 100 iterations on 300 points is that slow, so a bar
    # that counted it could not pass for one that did not, however busy the machine
    slow_first_call["delay"] = delay = 1.0
    slow_first_call["jump"] = 10_000.0
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    tsne = quick(verbose=True, max_iter=100, callback_every=50).fit(small)
    lines = [line.strip() for line in re.split(r"[\r\n]", terminal.getvalue()) if line.strip()]
    assert any(line.startswith("t-SNE (compiling the kernels, first run only)") for line in lines)
    moving = [(m, line) for line in lines if (m := _LINE.search(line)) and int(m[1]) >= 1]
    assert moving, lines
    optimize = tsne.timings_["optimize"]  # the run's own time for the iterations
    for m, line in moving:
        # the "compile" is neither elapsed bar time nor extrapolated into the ETA
        # (before: "1/100 [2:46:41<275:01:39, 10001.00s/it]"): the elapsed shown fits in
        # the iterations' time, and the ETA in 100 times it (tqdm's rate averages
        # intervals of the run, each of at least one iteration and at most all of them)
        assert _seconds(m[3]) <= optimize + 0.5, line
        assert m[4] == "?" or _seconds(m[4]) <= 100 * optimize + 1, line
    last = moving[-1][1]
    assert last.startswith("t-SNE: 100%") and "100/100" in last
    # the bar ends on the final embedding's KL, the one fit reports
    assert last.endswith(f"KL={tsne.kl_divergence_:.4f}]"), last
    assert tsne.timings_["compile"] >= delay


def test_without_the_bar_the_log_says_it(small, slow_first_call, caplog):
    slow_first_call["delay"] = 0.8
    with caplog.at_level(logging.INFO, logger="embedviz.tsne"):
        tsne = quick(max_iter=20).fit(small)
    messages = [r.getMessage() for r in caplog.records]
    assert "t-SNE: compiling the kernels, first run only (numba caches them for later runs)" in (
        messages
    )
    assert re.search(
        r"20 iterations in [\d.]+ s \(after [\d.]+ s compiling the kernels\)", messages[-1]
    )
    assert tsne.timings_["compile"] >= 0.8


def test_kernels_already_compiled_say_nothing_and_cost_nothing(small, caplog):
    quick(max_iter=5).fit(small)  # compiled (or loaded from the cache) in this process
    with caplog.at_level(logging.INFO, logger="embedviz.tsne"):
        tsne = quick(max_iter=5).fit(small)
    assert not any("compiling" in r.getMessage() for r in caplog.records)
    assert tsne.timings_["compile"] < 0.2  # measured: ~1 ms
