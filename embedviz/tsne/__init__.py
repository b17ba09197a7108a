"""Barnes-Hut t-SNE: the estimator and the plain-Python layers over the numba kernels."""

from embedviz.tsne.estimator import TSNE

__all__ = ["TSNE"]
