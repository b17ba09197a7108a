"""gensim's own files (Python pickles): when to open them, loading, and new KeyedVectors.

``KeyedVectors.save`` and ``Word2Vec.save``/``FastText.save`` write a Python pickle
(protocol 2 to 5: it starts with ``\\x80`` and the protocol byte), sometimes with large
arrays beside it in ``.npy`` files. Unpickling runs code stored in the file, so a
pickle is opened only when the caller trusts it: its name ends in one of
:data:`PICKLE_SUFFIXES` (the names gensim's documentation uses, and the generic pickle
suffixes), optionally followed by ``.gz``/``.bz2``, or the caller passes
``trust_pickle=True``. A pickle under any other name (``vectors.bin``, ``.vec``,
``.txt``: a name that promises plain numbers) is refused before a byte is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedviz.errors import FileFormatError

PICKLE_SUFFIXES = (".model", ".kv", ".wordvectors", ".gensim", ".pkl", ".pickle")
_SUFFIX_LIST = ", ".join("*" + s for s in PICKLE_SUFFIXES)


def is_pickle(head: bytes) -> bool:
    """Whether ``head`` starts like a pickle of protocol 2 to 5 (what gensim writes)."""
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def named_as_pickle(path: Path) -> bool:
    """Whether the file name says it is a gensim model or a pickle."""
    name = path.name.lower()
    for compressed in (".gz", ".bz2"):
        name = name.removesuffix(compressed)
    return name.endswith(PICKLE_SUFFIXES)


def check_trusted(path: Path, trust_pickle: bool | None) -> None:
    """Raise unless the pickle at ``path`` may be opened (see the module docstring)."""
    if trust_pickle or (trust_pickle is None and named_as_pickle(path)):
        return
    if trust_pickle is False:
        rule = "and trust_pickle=False forbids that"
        advice = "pass trust_pickle=True only if you trust where the file comes from"
    else:
        rule = f"so embedviz opens only pickles named {_SUFFIX_LIST}"
        advice = (
            "if you trust where the file comes from, rename it to end in .model or pass "
            "trust_pickle=True (--trust-pickle on the command line)"
        )
    raise FileFormatError(
        f"{path}: this is a Python pickle (a gensim model saved with .save()), and opening a "
        f"pickle runs code stored in it, {rule}; {advice}; otherwise ask for the vectors in "
        "word2vec or GloVe format (KeyedVectors.save_word2vec_format)"
    )


def load(path: Path, limit: int | None, keep=None):
    """The KeyedVectors in the gensim file at ``path`` (a model gives its ``wv``), cut to
    ``limit`` words and to those ``keep`` accepts."""
    from gensim.models import KeyedVectors
    from gensim.utils import SaveLoad

    try:
        obj = SaveLoad.load(str(path), mmap="r" if limit or keep else None)
    except FileNotFoundError as exc:
        raise FileFormatError(
            f"{path}: gensim saved part of this model in a separate file that is missing "
            f"({exc.filename}); keep the .npy files next to the model file"
        ) from None
    except Exception as exc:  # unpickling foreign data raises anything
        raise FileFormatError(
            f"{path}: looks like a Python pickle but gensim cannot load it "
            f"({type(exc).__name__}: {exc}); save it with gensim's KeyedVectors.save or "
            "Word2Vec.save, or export it with save_word2vec_format"
        ) from None
    kv = getattr(obj, "wv", obj)
    if not isinstance(kv, KeyedVectors):
        raise FileFormatError(
            f"{path}: holds a gensim {type(obj).__name__}, which has no word vectors; give a "
            "KeyedVectors, Word2Vec or FastText file"
        )
    if len(kv.index_to_key) == 0:
        raise FileFormatError(f"{path}: the gensim model holds no words (was it trained?)")
    if kv.vector_size < 2:
        raise FileFormatError(
            f"{path}: the gensim model has {kv.vector_size} dimension per word; a map needs "
            "word vectors of at least 2 dimensions"
        )
    if keep is not None:
        chosen = [i for i, w in enumerate(kv.index_to_key) if keep(w)][:limit]
        kv = _subset(kv, chosen)
    elif limit is not None and limit < len(kv.index_to_key):
        kv = _subset(kv, range(limit))
    elif limit is not None or isinstance(kv.vectors, np.memmap):
        kv.vectors = np.array(kv.vectors)
    return kv


def new_keyed_vectors(words, vectors, key_to_index=None, ranks=None):
    """A gensim KeyedVectors of ``words`` and ``vectors`` (the 1-based file rank of each
    word kept in its expandos)."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1], count=0, dtype=vectors.dtype)
    kv.index_to_key = list(words)
    kv.key_to_index = key_to_index or {w: i for i, w in enumerate(words)}
    kv.vectors = np.ascontiguousarray(vectors)
    kv.next_index = len(words)
    if ranks is not None:
        kv.expandos["rank"] = np.asarray(ranks, dtype=np.int64)
    return kv


def _subset(kv, indices):
    """A new KeyedVectors of the words at ``indices``, their file rank kept."""
    indices = np.fromiter(indices, dtype=np.int64)
    words = [kv.index_to_key[i] for i in indices]
    return new_keyed_vectors(words, np.array(kv.vectors[indices]), ranks=indices + 1)
