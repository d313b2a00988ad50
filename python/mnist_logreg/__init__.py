"""Softmax regression (multinomial logistic regression) on the SIMD + multithreaded kernels of
the ``mnist-logreg`` Rust crate.

- :class:`LogisticRegression`: scikit-learn's ``LogisticRegression`` (L2, multinomial) on
  the crate's full-batch solver, the same parameters and optimum (needs ``scikit-learn``:
  ``pip install "./python[sklearn]"``); for tabular data;
- :class:`SoftmaxRegression`: the crate's mini-batch SGD as a scikit-learn classifier;
- :func:`loss_grad`: one chunk's weighted loss sum and gradient (numpy only), what
  ``mnist_logreg.dask.LogisticRegression`` (``pip install "./python[dask]"``) adds up over a
  ``dask.array``'s chunks, and Spark or Ray drivers can too;
- :func:`load_mnist`: MNIST's four IDX files as uint8 numpy arrays (numpy only).

>>> from mnist_logreg import SoftmaxRegression, load_mnist
>>> X_train, y_train, X_test, y_test = load_mnist("data/mnist")   # doctest: +SKIP
>>> SoftmaxRegression().fit(X_train, y_train).score(X_test, y_test)  # doctest: +SKIP
0.92...
"""

from ._data import load_mnist, simd_path
from ._loss import loss_grad

__all__ = ["LogisticRegression", "SoftmaxRegression", "load_mnist", "loss_grad", "simd_path"]
__version__ = "0.1.0"


def __getattr__(name):
    # The estimator needs scikit-learn, which numpy-only users need not install.
    if name in ("SoftmaxRegression", "LogisticRegression"):
        try:
            if name == "SoftmaxRegression":
                from ._estimator import SoftmaxRegression as found
            else:
                from ._logistic import LogisticRegression as found
        except ImportError as e:
            raise ImportError(
                f"{name} needs scikit-learn: pip install 'mnist-logreg[sklearn]' "
                f"(or scikit-learn itself): {e}"
            ) from e
        return found
    raise AttributeError(f"module 'mnist_logreg' has no attribute {name!r}")
