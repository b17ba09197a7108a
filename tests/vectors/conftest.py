"""Small word-vector files written by gensim's own writers."""

import numpy as np
import pytest

WORDS = ["the", "of", "café", "naïve", "日本語", "a,b", 'say"hi"', "<script>", "x1"] + [
    f"w{i}" for i in range(40)
]


@pytest.fixture
def words():
    return list(WORDS)


@pytest.fixture
def kv():
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    out = KeyedVectors(7, count=0)
    out.add_vectors(WORDS, rng.standard_normal((len(WORDS), 7)).astype(np.float32))
    return out
