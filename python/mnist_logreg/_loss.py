"""``loss_grad``: one chunk's share of the objective of :class:`LogisticRegression` (numpy
only), for distributed drivers: ``mnist_logreg.dask``, Spark, Ray."""

import numpy as np

from . import _core

# The solver's label type: one place to change when the library widens it.
LABEL_DTYPE = np.dtype(_core.LABEL_DTYPE)
MAX_CLASSES = int(_core.MAX_CLASSES)


def _as_float32(X):
    """X (already validated: C-contiguous float32 or float64) as C-contiguous float32: float32
    as it is (no copy), float64 converted once."""
    if X.dtype == np.float32 and X.flags.c_contiguous and X.flags.aligned:
        return X
    with np.errstate(over="ignore"):
        X32 = np.require(X, dtype=np.float32, requirements=["C", "A"])
    if not np.isfinite(X32).all():
        raise ValueError("X holds values too large for float32 (the solver reads float32)")
    return X32


def loss_grad(coef, intercept, X, y, sample_weight=None, *, n_threads=1):
    """The weighted cross-entropy **sum** of a chunk of rows and its gradient, computed by the
    crate's fused SIMD kernel (X read in place when it is C-contiguous float32):

    ``loss_sum = Σᵢ sᵢ·CE(xᵢ, yᵢ)``, ``CE = log Σ_c exp(z_c) − z_y``,
    ``z = coef @ x + intercept``;
    ``grad_coef = ∂loss_sum/∂coef`` (n_classes × n_features),
    ``grad_intercept = ∂loss_sum/∂intercept`` (n_classes).

    Sums, not means, and no penalty, so the shares of chunks add up; the driver divides by the
    total weight and adds ``λ·coef`` (see the example). ``y`` holds class **indices**
    ``0 … n_classes − 1``; ``coef``/``intercept`` are read as float32 (the kernel's precision),
    the sums are float64. A chunk whose weights are all 0, or that has no rows, gives zeros.

    The loop of :class:`mnist_logreg.dask.LogisticRegression`, for Spark, Ray or any map-reduce
    (``chunks`` are (X, y) pairs on the workers; scipy's L-BFGS-B on the client):

    >>> import numpy as np, scipy.optimize
    >>> from mnist_logreg import loss_grad
    >>> rng = np.random.default_rng(0)
    >>> chunks = [(rng.normal(size=(50, 4)).astype(np.float32), rng.integers(0, 3, 50))
    ...           for _ in range(4)]
    >>> k, d = 3, 4
    >>> n = sum(len(y) for _, y in chunks)        # Σ sᵢ (the weight sum with weights)
    >>> lam = 1.0 / (1.0 * n)                     # scikit-learn's C = 1: λ = 1/(C·Σsᵢ)
    >>> def f(theta):
    ...     W, b = theta[: k * d].reshape(k, d), theta[k * d :]
    ...     parts = [loss_grad(W, b, X, y) for X, y in chunks]   # map (on the workers)
    ...     loss = sum(p[0] for p in parts)                       # reduce
    ...     gW = sum(p[1] for p in parts); gb = sum(p[2] for p in parts)
    ...     value = loss / n + 0.5 * lam * (W * W).sum()
    ...     return value, np.concatenate([(gW / n + lam * W).ravel(), gb / n])
    >>> res = scipy.optimize.minimize(f, np.zeros(k * d + k), jac=True, method="L-BFGS-B",
    ...                               options=dict(gtol=1e-6, maxiter=500))
    >>> bool(res.success)
    True
    """
    # Aligned and C-contiguous, as the kernel reads them (a block that travelled through
    # pickle can be misaligned).
    coef = np.require(coef, dtype=np.float64, requirements=["C", "A"])
    intercept = np.require(intercept, dtype=np.float64, requirements=["C", "A"])
    if coef.ndim != 2 or intercept.shape != (coef.shape[0],):
        raise ValueError(
            f"coef must be (n_classes, n_features) and intercept (n_classes,); got "
            f"{coef.shape} and {intercept.shape}"
        )
    k, d = coef.shape
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must be 2-D with {d} features, got shape {X.shape}")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must hold one class index per row of X, got shape {y.shape}")
    zeros = (0.0, np.zeros((k, d)), np.zeros(k))
    if X.shape[0] == 0:
        return zeros
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= k:
        raise ValueError(f"y must hold class indices 0 … {k - 1}")
    w = None
    if sample_weight is not None:
        w = np.require(sample_weight, dtype=np.float32, requirements=["C", "A"])
        if w.shape != y.shape:
            raise ValueError(f"sample_weight must hold one weight per row, got shape {w.shape}")
        if (w == 0).all():
            return zeros
    X = _as_float32(X)
    return _core.loss_grad(
        X, y.astype(LABEL_DTYPE), w, coef, intercept, threads=int(n_threads)
    )


