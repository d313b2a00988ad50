"""End to end on MNIST: the estimator is the crate's `train`, number for number."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

from mnist_logreg import SoftmaxRegression, load_mnist, simd_path

from conftest import REPO


def test_load_mnist_gives_uint8_arrays_of_the_right_shapes(mnist):
    X, y, Xt, yt = mnist
    assert (X.shape, y.shape, Xt.shape, yt.shape) == ((60000, 784), (60000,), (10000, 784), (10000,))
    assert X.dtype == y.dtype == np.uint8
    assert (y[:5].tolist(), yt[:3].tolist()) == ([5, 0, 4, 1, 9], [7, 2, 1])
    # Mapped from the files, read-only: no copy, and no way to scribble on the cache.
    assert isinstance(X, np.memmap) and not X.flags.writeable
    with pytest.raises(ValueError):
        X[0, 0] = 1


def test_load_mnist_names_what_is_missing(tmp_path):
    with pytest.raises(OSError, match="train-images"):
        load_mnist(tmp_path)


def test_the_tutorial_recipe_is_trains_run_to_the_bit(mnist, tmp_path):
    X, y, Xt, yt = mnist
    est = SoftmaxRegression.tutorial().fit(X, y)
    assert est.n_iter_ == 1000
    # The crate's own binary, when the build gives its path (.ci/run does).
    train = os.environ.get("MNIST_LOGREG_TRAIN")
    if not train:
        pytest.skip("MNIST_LOGREG_TRAIN (the path of the train binary) is not set")
    path = tmp_path / "model.safetensors"
    out = subprocess.run(
        [train, "--data", str(REPO / "data" / "mnist"), "--save", str(path), "--quiet"],
        check=True, capture_output=True, text=True,
    ).stdout
    accuracy = float(out.split("Test Accuracy:")[1].split()[0])
    from_train = SoftmaxRegression.load(path)
    assert np.array_equal(from_train.coef_.view(np.uint32), est.coef_.view(np.uint32))
    assert np.array_equal(from_train.intercept_.view(np.uint32), est.intercept_.view(np.uint32))
    assert np.array_equal(from_train.predict(Xt), est.predict(Xt))
    assert est.score(Xt, yt) == pytest.approx(accuracy, abs=5e-7)


def test_the_defaults_train_mnist_better_than_the_tutorial(mnist):
    X, y, Xt, yt = mnist
    assert SoftmaxRegression(scale_uint8=True).fit(X, y).score(Xt, yt) > 0.92  # measured 0.9238


def test_uint8_and_float_input_give_the_same_model(mnist):
    X, y, _, _ = mnist
    a = SoftmaxRegression(scale_uint8=True, steps=50).fit(X[:5000], y[:5000])
    b = SoftmaxRegression(scale_uint8=True, steps=50).fit(X[:5000].astype(np.float32) / 255, y[:5000])
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-4, atol=1e-6)


def test_every_simd_path_of_this_cpu_runs(mnist):
    X, y, Xt, yt = mnist
    for simd in ["scalar", "sse2", "avx2", "avx512", "neon"]:
        try:
            simd_path(simd)
        except ValueError:
            continue
        assert SoftmaxRegression(scale_uint8=True, steps=200, simd=simd).fit(X, y).score(Xt, yt) > 0.85, simd
