import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mnist():
    from mnist_logreg import load_mnist

    return load_mnist(REPO / "data" / "mnist")
