"""A small word-vector file for the command line: three groups of 15 words."""

import numpy as np
import pytest

FAST = [
    "--max-iter", "250", "--stop-lying-iter", "50", "--switch-momentum-iter", "50",
    "--perplexity", "5",
]  # fmt: skip


@pytest.fixture
def fast_args():
    return list(FAST)


@pytest.fixture
def small_model(tmp_path):
    """(path of a word2vec binary file, words, group of each word)."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(11)
    centres = rng.normal(size=(3, 16)) * 5
    matrix = np.vstack([c + rng.normal(size=(15, 16)) for c in centres]).astype(np.float32)
    groups = np.repeat(np.arange(3), 15)
    words = [f"{'xyz'[g]}{i}" for i, g in enumerate(groups)]
    words[1], words[16], words[31] = 'comma,"quote"', "ünï", "<script>alert(1)</script>"
    kv = KeyedVectors(matrix.shape[1], count=0)
    kv.add_vectors(words, matrix)
    path = tmp_path / "small.bin"
    kv.save_word2vec_format(str(path), binary=True)
    return path, words, groups
