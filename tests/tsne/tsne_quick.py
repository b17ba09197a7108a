"""A short TSNE for tests: 300 iterations with the schedule switches at 100."""

from embedviz import TSNE


def quick(**kw):
    params = dict(random_state=0, max_iter=300, stop_lying_iter=100, switch_momentum_iter=100)
    params.update(kw)
    return TSNE(**params)
