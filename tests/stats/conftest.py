"""Fixtures for the statistics tests."""

import sys

import pytest


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
