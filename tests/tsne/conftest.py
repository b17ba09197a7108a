"""Shared fixtures of the t-SNE tests: scikit-learn's digits and its first 300 rows."""

import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits():
    return load_digits().data


@pytest.fixture(scope="session")
def small(digits):
    return digits[:300]
