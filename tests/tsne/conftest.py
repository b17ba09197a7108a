"""Shared fixtures of the t-SNE tests: scikit-learn's digits and its first 300 rows, and
a spy on the momentum the optimiser really applies."""

import pytest
from sklearn.datasets import load_digits

from embedviz.tsne.optimizer import GradientDescent


@pytest.fixture(scope="session")
def digits():
    return load_digits().data


@pytest.fixture(scope="session")
def small(digits):
    return digits[:300]


@pytest.fixture
def applied_momentum(monkeypatch):
    """The momentum each optimiser step of the test really gets, in order (a spy on
    ``GradientDescent.step``, which still does the step)."""
    applied = []
    step = GradientDescent.step

    def spy(self, Y, grad, momentum):
        applied.append(momentum)
        return step(self, Y, grad, momentum)

    monkeypatch.setattr(GradientDescent, "step", spy)
    return applied
