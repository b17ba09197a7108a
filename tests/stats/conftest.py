"""Fixtures for the statistics tests."""

import sys

import pytest

from embedviz.stats.storage import InMemoryStatsStorage, SQLiteStatsStorage


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """torch on one thread: the test machine is shared, and OpenMP threads spinning
    against other processes make tiny models 100x slower."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, tmp_path):
    """Each readable storage in turn, empty, closed after the test."""
    if request.param == "memory":
        st = InMemoryStatsStorage()
    else:
        st = SQLiteStatsStorage(tmp_path / "runs.db")
    yield st
    st.close()


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits as torch tensors (X scaled to [0, 1], y); torch is imported
    here, so that this conftest stays importable without it."""
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)
