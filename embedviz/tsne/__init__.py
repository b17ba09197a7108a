"""Barnes-Hut t-SNE: the estimator and the plain-Python layers over the numba kernels.

:func:`prefer_workqueue` (opt-in, for programs that own their process) chooses
numba's faster ``workqueue`` threading layer; see :mod:`embedviz.tsne._threads`.
"""

from embedviz.tsne.estimator import TSNE

__all__ = ["TSNE", "prefer_workqueue"]


def __getattr__(name):
    # imported on first use: importing embedviz.tsne does not import numba
    if name == "prefer_workqueue":
        from embedviz.tsne._threads import prefer_workqueue

        return prefer_workqueue
    raise AttributeError(f"module 'embedviz.tsne' has no attribute {name!r}")
