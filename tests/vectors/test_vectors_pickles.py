"""gensim pickles are opened only when trusted: unpickling runs code (review 5, item 1)."""

import gzip
import pickle

import numpy as np
import pytest

from embedviz.errors import FileFormatError, InputError
from embedviz.vectors import load_selection, load_vectors


class _CreatesFile:
    """Unpickling this object creates the file ``target`` (as a payload would run code)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def _evil(path, target, compress=False):
    data = pickle.dumps(_CreatesFile(target), protocol=4)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_the_payload_is_live(tmp_path):
    # the check below is meaningful only if unpickling really creates the file
    canary = tmp_path / "canary"
    pickle.loads(_evil(tmp_path / "p", canary).read_bytes()).close()
    assert canary.exists()


@pytest.mark.parametrize("name", ["vectors.bin", "vectors.vec", "vectors.txt", "model", "v.w2v"])
def test_pickle_under_a_vector_name_is_refused_unopened(tmp_path, name):
    target = tmp_path / "pwned"
    path = _evil(tmp_path / name, target)
    with pytest.raises(
        FileFormatError,
        match=rf"{name}: this is a Python pickle .* runs code stored in it.*rename it to end in "
        r"\.model or pass trust_pickle=True \(--trust-pickle",
    ):
        load_vectors(path)
    assert not target.exists()
    with pytest.raises(FileFormatError, match="Python pickle"):
        load_selection(path, top=5)
    assert not target.exists()


def test_compressed_pickle_under_a_vector_name_is_refused(tmp_path):
    target = tmp_path / "pwned"
    path = _evil(tmp_path / "vectors.bin.gz", target, compress=True)
    with pytest.raises(FileFormatError, match="Python pickle"):
        load_vectors(path)
    assert not target.exists()


def test_trust_pickle_false_refuses_even_a_model_name(tmp_path):
    target = tmp_path / "pwned"
    path = _evil(tmp_path / "word2vec.model", target)
    with pytest.raises(FileFormatError, match="trust_pickle=False forbids that"):
        load_vectors(path, trust_pickle=False)
    assert not target.exists()


def test_bad_trust_pickle_value(tmp_path):
    with pytest.raises(InputError, match="trust_pickle: expected None, True or False, got 'yes'"):
        load_vectors(tmp_path / "x.kv", trust_pickle="yes")


@pytest.mark.parametrize(
    "name", ["v.kv", "word2vec.model", "v.wordvectors", "V.KV", "v.pkl", "v.kv.gz"]
)
def test_gensim_names_still_load(tmp_path, kv, words, name):
    kv.save(str(tmp_path / name))  # gensim compresses a .gz name itself
    got = load_vectors(tmp_path / name)
    assert got.index_to_key == words
    np.testing.assert_array_equal(got.vectors, kv.vectors)


def test_trust_pickle_opens_any_name(tmp_path, kv, words):
    path = tmp_path / "vectors.bin"
    kv.save(str(path))
    with pytest.raises(FileFormatError, match="Python pickle"):
        load_vectors(path)
    assert load_vectors(path, trust_pickle=True).index_to_key == words
    sel = load_selection(path, top=3, trust_pickle=True)
    assert sel.words == words[:3]


def test_gensim_model_of_one_dimension(tmp_path):
    from gensim.models import KeyedVectors

    one = KeyedVectors(1, count=0)
    one.add_vectors(["a", "b"], np.ones((2, 1), dtype=np.float32))
    one.save(str(tmp_path / "one.kv"))
    with pytest.raises(FileFormatError, match="1 dimension per word.*at least 2"):
        load_vectors(tmp_path / "one.kv")
