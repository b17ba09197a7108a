"""``max_iter`` at or below ``stop_lying_iter``: a warning, and ``stop_lying_iter_`` is
the iteration the exaggeration really ended (the last one run).

The runs use ``early_exaggeration=4``: the layout of 200 digits grows under it, so the
collapse guard never ends the exaggeration early (at 12 it does, at iteration 39).
"""

import logging

import pytest
from tsne_quick import quick


@pytest.fixture(scope="module")
def few(small):
    return small[:200]


def test_max_iter_before_the_end_of_exaggeration_warns(few, caplog):
    seen = []

    def record(iteration, kl, Y, info):
        seen.append(info["exaggeration"])

    record.wants_info = True
    with caplog.at_level(logging.WARNING, logger="embedviz.tsne"):
        tsne = quick(max_iter=60, early_exaggeration=4.0, callbacks=[record], callback_every=1)
        tsne.fit(few)
    assert seen == [4.0] * 60  # stop_lying_iter=100: every iteration exaggerated
    assert tsne.n_iter_ == 60
    assert tsne.stop_lying_iter_ == 60
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "max_iter=60" in warnings[0] and "stop_lying_iter=100" in warnings[0]
    assert "exaggerated" in warnings[0]


def test_no_warning_when_exaggeration_ends_or_a_callback_stops(few, caplog):
    with caplog.at_level(logging.WARNING, logger="embedviz.tsne"):
        full = quick(max_iter=130, early_exaggeration=4.0).fit(few)
        stop = [lambda i, kl, Y: i >= 40]
        stopped = quick(early_exaggeration=4.0, callbacks=stop, callback_every=20).fit(few)
        none = quick(max_iter=60, early_exaggeration=1.0).fit(few)
    assert full.stop_lying_iter_ == 100
    assert stopped.n_iter_ == stopped.stop_lying_iter_ == 40  # ended with the run
    assert none.stop_lying_iter_ == 60  # a factor of 1 changes nothing
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("max_iter", [100, 101])
def test_the_warning_is_given_exactly_when_every_iteration_was_exaggerated(few, caplog, max_iter):
    """At the edge: max_iter equal to stop_lying_iter (100), and one more."""
    seen = []

    def record(iteration, kl, Y, info):
        seen.append(info["exaggeration"])

    record.wants_info = True
    with caplog.at_level(logging.WARNING, logger="embedviz.tsne"):
        tsne = quick(max_iter=max_iter, early_exaggeration=4.0, callbacks=[record])
        tsne.callback_every = 1
        tsne.fit(few)
    every = all(e == 4.0 for e in seen)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(seen) == max_iter and len(warned) == int(every)
    assert tsne.stop_lying_iter_ == (max_iter if every else 100)
