"""Softmax regression (multinomial logistic regression) on the SIMD + multithreaded kernels of
the ``mnist-logreg`` Rust crate.

- :class:`SoftmaxRegression`: a scikit-learn classifier (needs ``scikit-learn``:
  ``pip install "./python[sklearn]"``);
- :func:`load_mnist`: MNIST's four IDX files as uint8 numpy arrays (numpy only).

>>> from mnist_logreg import SoftmaxRegression, load_mnist
>>> X_train, y_train, X_test, y_test = load_mnist("data/mnist")   # doctest: +SKIP
>>> SoftmaxRegression().fit(X_train, y_train).score(X_test, y_test)  # doctest: +SKIP
0.92...
"""

from ._data import load_mnist, simd_path

__all__ = ["SoftmaxRegression", "load_mnist", "simd_path"]
__version__ = "0.1.0"


def __getattr__(name):
    # The estimator needs scikit-learn, which numpy-only users need not install.
    if name == "SoftmaxRegression":
        try:
            from ._estimator import SoftmaxRegression
        except ImportError as e:
            raise ImportError(
                "SoftmaxRegression needs scikit-learn: pip install 'mnist-logreg[sklearn]' "
                f"(or scikit-learn itself): {e}"
            ) from e
        return SoftmaxRegression
    raise AttributeError(f"module 'mnist_logreg' has no attribute {name!r}")
