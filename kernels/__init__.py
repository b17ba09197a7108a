"""Numba kernels of embedviz's t-SNE, installed as ``embedviz.kernels``.

Only numpy and numba are imported here; nothing is compiled at import time (every
kernel is a lazily compiled, cached ``numba.njit`` function). The kernels take raw
arrays (CSR ``indptr``/``indices``/``data``, embeddings as C-contiguous float64) and
write into buffers they are given; the adapters in :mod:`embedviz.tsne` allocate.
"""
