"""``mnist_logreg.dask.LogisticRegression``: :class:`mnist_logreg.LogisticRegression` on
``dask.array``s chunked by rows (``pip install "./python[dask]"``).

Every solver iteration computes each chunk's (loss sum, gradient sum) with the crate's kernel
(:func:`mnist_logreg.loss_grad`) where the chunk lives (on the workers of a
``distributed.Client``, or in the threads of dask's local scheduler), and adds them up on the
client, which runs scipy's L-BFGS-B on the same objective as the in-memory estimator:
``(1/Σsᵢ)·Σᵢ sᵢ·CE(xᵢ, yᵢ) + (λ/2)‖coef_‖²``, ``λ = 1/(C·Σsᵢ)``. X is persisted (as float32)
once, so the iterations do not recompute it.

>>> import dask.array as da
>>> from distributed import Client, LocalCluster            # doctest: +SKIP
>>> client = Client(LocalCluster(n_workers=2))               # doctest: +SKIP
>>> X = da.from_array(X_numpy, chunks=(10_000, -1))          # doctest: +SKIP
>>> y = da.from_array(y_numpy, chunks=10_000)                # doctest: +SKIP
>>> clf = LogisticRegression(C=1.0).fit(X, y)                # doctest: +SKIP
>>> clf.predict(X).compute()                                 # doctest: +SKIP
"""

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - without the extra
    raise ImportError(
        f"mnist_logreg.dask needs dask: pip install 'mnist-logreg[dask]': {e}"
    ) from e

from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

from . import _logistic
from ._loss import LABEL_DTYPE, MAX_CLASSES, loss_grad

__all__ = ["LogisticRegression"]


def _chunk_loss_grad(W, b, X, y, w, threads):
    return loss_grad(W, b, X, y, w, n_threads=threads)


def _to_index(y, classes):
    return np.searchsorted(classes, y).astype(LABEL_DTYPE)


def _chunk_sum(w):
    return np.array([w.sum(dtype=np.float64)])


class LogisticRegression(_logistic.LogisticRegression):
    """:class:`mnist_logreg.LogisticRegression` whose ``fit`` takes ``dask.array``s chunked by
    rows (X: 2-D, y and ``sample_weight``: 1-D; numpy arrays are wrapped as one chunk), and
    whose ``predict``, ``predict_proba``, ``predict_log_proba`` and ``decision_function``
    return dask arrays for dask input (numpy for numpy). The same parameters and optimum as
    the in-memory estimator; the solver is scipy's L-BFGS-B (on the client), without the
    preconditioner, stopped by the rate part of the same estimated relative gap (``tol``).

    ``n_jobs`` is the threads of each chunk's kernel call (default 1: dask runs the chunks in
    parallel).
    """

    def __init__(
        self,
        penalty="l2",
        *,
        C=1.0,
        tol=5e-6,
        max_iter=1000,
        fit_intercept=True,
        class_weight=None,
        warm_start=False,
        verbose=0,
        n_jobs=1,
    ):
        super().__init__(
            penalty,
            C=C,
            tol=tol,
            max_iter=max_iter,
            fit_intercept=fit_intercept,
            class_weight=class_weight,
            warm_start=warm_start,
            verbose=verbose,
            n_jobs=n_jobs,
        )

    def fit(self, X, y, sample_weight=None):
        """Fit on dask (or numpy) arrays; see :class:`mnist_logreg.LogisticRegression`."""
        self._check_params()
        X = da.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got {X.ndim} dimensions")
        if len(X.chunks[1]) != 1:
            X = X.rechunk({1: -1})
        rows = X.chunks[0]
        y = da.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must be 1-D with {X.shape[0]} labels, got shape {y.shape}")
        y = y.rechunk((rows,))
        if X.dtype != np.float32:
            X = X.map_blocks(_logistic._as_float32, dtype=np.float32)
        classes = np.unique(np.asarray(da.unique(y).compute()))
        check_classification_targets(classes)
        if len(classes) < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {classes[0]!r}"
            )
        if len(classes) > MAX_CLASSES:
            raise ValueError(f"at most {MAX_CLASSES} classes; y has {len(classes)}")
        k, d = len(classes), X.shape[1]
        y_index = y.map_blocks(_to_index, classes, dtype=LABEL_DTYPE)
        w = None
        if sample_weight is not None:
            w = da.asarray(sample_weight).astype(np.float64).rechunk((rows,))
        if self.class_weight is not None:
            if self.class_weight == "balanced":
                if w is None:
                    counts = da.bincount(y_index, minlength=k).compute()
                    n = counts.sum()
                    per_class = n / (k * np.maximum(counts, 1).astype(np.float64))
                else:
                    counts = da.bincount(y_index, weights=w, minlength=k).compute()
                    per_class = counts.sum() / (k * np.where(counts > 0, counts, 1.0))
            else:
                per_class = compute_class_weight(self.class_weight, classes=classes,
                                                 y=classes)
            per_class = np.asarray(per_class, dtype=np.float64)
            cw = y_index.map_blocks(lambda i, p=per_class: p[i], dtype=np.float64)
            w = cw if w is None else w * cw
        if w is not None:
            w = w.astype(np.float32)
        X, y_index, w = dask.persist(X, y_index, w) if w is not None else (
            *dask.persist(X, y_index), None)
        weight_sum = (
            float(X.shape[0]) if w is None else float(w.sum(dtype=np.float64).compute())
        )
        if not weight_sum > 0:
            raise ValueError("the sample weights (times the class weights) sum to 0")
        form = _logistic._Formulation(k, self._l2(weight_sum))
        ks = 2 if form.binary else k
        start = self._start(form, k, d)
        if start is None:
            start = (np.zeros((ks, d)), np.zeros(ks))
        threads = _logistic._threads(self.n_jobs)
        xs = X.to_delayed().ravel()
        ys = y_index.to_delayed().ravel()
        ws = w.to_delayed().ravel() if w is not None else [None] * len(xs)

        def loss_grad_sum(W, b):
            W, b = dask.delayed(W), dask.delayed(b)
            parts = dask.compute(
                *[dask.delayed(_chunk_loss_grad)(W, b, xc, yc, wc, threads)
                  for xc, yc, wc in zip(xs, ys, ws)]
            )
            loss = sum(p[0] for p in parts)
            return loss, sum(p[1] for p in parts), sum(p[2] for p in parts)

        self.classes_ = classes
        self.n_features_in_ = d
        W, b, iterations, stop, _ = _logistic._scipy_lbfgs(
            loss_grad_sum, weight_sum, form.l2, ks, d, start, bool(self.fit_intercept),
            float(self.tol), int(self.max_iter), self._callback(),
        )
        return self._finish(form, W, b, iterations, stop)

    def _blockwise(self, method, X, shape):
        parent = getattr(_logistic.LogisticRegression, method)
        if not isinstance(X, da.Array):
            return parent(self, X)
        if len(X.chunks[1]) != 1:
            X = X.rechunk({1: -1})
        run = lambda block: parent(self, block)  # noqa: E731
        if shape is None:
            return X.map_blocks(run, drop_axis=1, dtype=self.classes_.dtype
                                if method == "predict" else np.float64)
        return X.map_blocks(run, chunks=(X.chunks[0], (shape,)), dtype=np.float64)

    def predict(self, X):
        return self._blockwise("predict", X, None)

    def predict_proba(self, X):
        return self._blockwise("predict_proba", X, len(self.classes_))

    def predict_log_proba(self, X):
        return self._blockwise("predict_log_proba", X, len(self.classes_))

    def decision_function(self, X):
        if len(self.classes_) == 2:
            return self._blockwise("decision_function", X, None)
        return self._blockwise("decision_function", X, len(self.classes_))
