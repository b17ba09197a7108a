"""``kl_history_``: kept without verbose or callbacks, and what each entry is."""

import numpy as np
import pytest
from tsne_quick import quick

from embedviz.tsne.objective import exact_kl_gradient


@pytest.fixture(scope="module")
def few(small):
    return small[:200]  # under 257 points Barnes-Hut computes every pair: exact KL


def test_history_is_kept_without_verbose_or_callbacks(few):
    silent = quick(max_iter=130, callback_every=20).fit(few)
    assert [it for it, _ in silent.kl_history_] == [20, 40, 60, 80, 100, 120, 130]
    watched = quick(max_iter=130, callback_every=20, callbacks=[lambda i, kl, Y: None]).fit(few)
    assert silent.kl_history_ == watched.kl_history_
    np.testing.assert_array_equal(silent.embedding_, watched.embedding_)


def test_each_entry_is_the_kl_of_the_layout_before_that_iterations_step(few):
    layouts = {}

    def keep(iteration, kl, Y):
        layouts[iteration] = Y

    tsne = quick(max_iter=120, callback_every=1, callbacks=[keep]).fit(few)
    history = dict(tsne.kl_history_)
    assert sorted(history) == list(range(1, 121))
    for iteration in (2, 60, 101, 120):  # the layout after the previous step
        _, kl = exact_kl_gradient(tsne.P_, layouts[iteration - 1])
        assert history[iteration] == pytest.approx(kl, rel=1e-9)
    # kl_divergence_ is that of the final layout, one step after the last entry
    _, final = exact_kl_gradient(tsne.P_, tsne.embedding_)
    assert tsne.kl_divergence_ == pytest.approx(final, rel=1e-9)
    assert history[120] != tsne.kl_divergence_
