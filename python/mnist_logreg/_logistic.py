"""``LogisticRegression``: scikit-learn's L2-regularised multinomial logistic regression on the
crate's full-batch solver (``mnist_logreg::solve``)."""

import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _core
from ._loss import LABEL_DTYPE, MAX_CLASSES, _as_float32

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


def _threads(n_jobs):
    if n_jobs is None:
        return 0
    if isinstance(n_jobs, numbers.Integral) and not isinstance(n_jobs, bool):
        if n_jobs >= 1:
            return int(n_jobs)
        if n_jobs < 0:  # scikit-learn's -1: all cores
            return 0
    raise ValueError(f"n_jobs must be None, -1 or an integer ≥ 1, got {n_jobs!r}")


class _Formulation:
    """How an estimator's parameters map onto the solver's softmax: for two classes,
    scikit-learn's one weight vector ``w`` with the logistic loss is the 2-class softmax
    ``W = [−w/2, w/2]``, ``b = [−b/2, b/2]`` (same logits difference, so the same loss) with
    twice the penalty (``‖W‖² = ‖w‖²/2``)."""

    def __init__(self, n_classes, l2):
        self.n_classes = n_classes
        self.binary = n_classes == 2
        self.l2 = 2.0 * l2 if self.binary else l2

    def to_softmax(self, coef, intercept):
        if self.binary:
            w, b = coef[0], intercept[0]
            return np.stack([-w / 2, w / 2]), np.array([-b / 2, b / 2])
        return np.array(coef, dtype=np.float64), np.array(intercept, dtype=np.float64)

    def from_softmax(self, W, b):
        if self.binary:
            return (W[1] - W[0])[None, :], np.array([b[1] - b[0]])
        return W, b


RATE_WINDOW = 10


def _rate_gap(values):
    """The crate's estimate of the relative gap ``(f − min f)/|f|`` from the objective's
    history (``src/solve/gap.rs``), its rate part: with ``D₁``, ``D₂`` the decreases over the
    last two windows of 10 iterations and ``q = D₂/D₁`` (at most 0.999), the geometric tail
    ``D₂·q/(1 − q)``; infinite before 21 values."""
    if len(values) < 2 * RATE_WINDOW + 1:
        return math.inf
    old, mid, now = values[-2 * RATE_WINDOW - 1], values[-RATE_WINDOW - 1], values[-1]
    d1, d2 = old - mid, mid - now
    if d2 <= 0:
        return 0.0
    q = min(d2 / d1, 0.999) if d1 > 0 else 0.999
    return d2 * q / (1.0 - q) / abs(now)


def _scipy_lbfgs(loss_grad_sum, weight_sum, l2, k, d, start, fit_intercept, tol, max_iter,
                 callback=None):
    """L-BFGS-B (scipy) on ``f = loss_sum/Σs + (l2/2)‖W‖²`` from ``loss_grad_sum(W, b)``;
    without an intercept, b stays 0 (it is no variable). Returns (W, b, iterations, stop)."""
    import scipy.optimize

    W0, b0 = start
    nw = k * d

    def split(theta):
        W = theta[:nw].reshape(k, d)
        b = theta[nw:] if fit_intercept else np.zeros(k)
        return W, b

    def fun(theta):
        W, b = split(theta)
        loss, gW, gb = loss_grad_sum(W, b)
        value = loss / weight_sum + 0.5 * l2 * float((W * W).sum())
        g = (gW / weight_sum + l2 * W).ravel()
        if fit_intercept:
            g = np.concatenate([g, gb / weight_sum])
        return value, g

    theta0 = np.concatenate([W0.ravel(), b0]) if fit_intercept else W0.ravel().copy()
    state = {"it": 0, "values": [], "gap": math.inf}

    def report(intermediate_result):
        state["it"] += 1
        value = float(intermediate_result.fun)
        if callback is not None:
            callback(state["it"], value, math.nan)
        state["values"].append(value)
        state["gap"] = _rate_gap(state["values"])
        if state["gap"] <= tol:
            raise StopIteration

    res = scipy.optimize.minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        callback=report,
        options=dict(maxiter=max_iter, gtol=0.0, ftol=64 * np.finfo(float).eps, maxcor=10,
                     maxls=50),
    )
    W, b = split(res.x)
    grad_max = float(np.abs(res.jac).max()) if res.jac.size else 0.0
    if state["gap"] <= tol or grad_max == 0.0:
        stop = "converged"
    elif res.nit >= max_iter:
        stop = "max_iter"
    else:
        stop = "line_search"
    return W, np.array(b, dtype=np.float64), int(res.nit), stop, grad_max


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """scikit-learn's ``LogisticRegression`` (multinomial, L2 or no penalty) on the
    mnist-logreg crate's full-batch solver: a preconditioned L-BFGS whose every step is one
    fused, multithreaded SIMD pass over X (read in place, the GIL released).

    It minimises scikit-learn's objective, ``C·Σᵢ sᵢ·CE(xᵢ, yᵢ) + ½‖coef_‖²`` (the intercept
    not penalised; ``sᵢ`` = sample weight × class weight), i.e. the mean form
    ``(1/Σsᵢ)·Σᵢ sᵢ·CEᵢ + (λ/2)‖coef_‖²`` with ``λ = 1/(C·Σsᵢ)``: the same optimum as
    scikit-learn's ``lbfgs``. With two classes it fits, like scikit-learn, one weight vector
    with the logistic loss (``coef_`` of shape (1, n_features)).

    Parameters
    ----------
    penalty : {"l2", None}, default="l2"
        None: no penalty (λ = 0; on separable data there is no optimum and the fit stops at
        ``max_iter``).
    C : float, default=1.0
        Inverse regularisation strength, as in scikit-learn.
    tol : float, default=5e-6
        Stop when the **estimated relative gap** ``(f − min f)/f`` of the mean-form objective
        above is at most ``tol``: the larger of the L-BFGS model's predicted decrease and the
        decrease still to come at the rate of the last 20 iterations (so at least 20 iterations
        run). Measured on four data sets, the true gap was at most 10× ``tol`` at the stop (the
        default: 2e-6 to 2e-5); ``tol=1e-9`` runs to the float32 precision limit. This is not
        scikit-learn's ``tol`` (a bound on the largest gradient entry, which stops far from the
        optimum on badly conditioned data). Without an intercept, and in
        :class:`mnist_logreg.dask.LogisticRegression`, the driver is scipy's L-BFGS-B and the
        estimate its rate part only.
    max_iter : int, default=1000
        Solver iterations at most (each takes one pass over X, sometimes a few).
    fit_intercept : bool, default=True
        False: the intercept is fixed at 0 (then the driver is scipy's L-BFGS-B on the
        crate's kernel, without the preconditioner).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into the sample weights, as in scikit-learn.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution (when the classes and features match).
    verbose : int, default=0
        > 0: print each iteration's objective and largest gradient entry.
    n_jobs : int or None, default=None
        Threads of the solver's passes; None or -1: one per core. (Not scikit-learn's meaning,
        which parallelises over one-vs-rest problems; the fit is the same for any value.)

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) for two classes, else (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : ndarray of shape (1,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when X has feature names that are all strings (a DataFrame).
    objective_ : float
        The mean-form objective at the solution, as the solver computed it.

    Input
    -----
    X is read as float32: a C-contiguous float32 array is used in place (no copy, the GIL
    released during the fit, so no other thread may write to it meanwhile); float64 and
    integer arrays (uint8 included: numbers, **not** scaled by 1/255) are converted to float32
    once. NaN, infinity and sparse matrices are refused with scikit-learn's errors.
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
        n_jobs=None,
    ):
        self.penalty = penalty
        self.C = C
        self.tol = tol
        self.max_iter = max_iter
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        tags.input_tags.sparse = False
        return tags

    # -- validation -------------------------------------------------------------------

    def _check_params(self):
        if self.penalty not in ("l2", None):
            raise ValueError(
                f"penalty must be 'l2' or None, got {self.penalty!r} (the solver is L2-only)"
            )
        c = self.C
        if not isinstance(c, numbers.Real) or isinstance(c, bool) or not (0 < c < math.inf):
            raise ValueError(f"C must be a finite number above 0, got {c!r}")
        tol = self.tol
        if not isinstance(tol, numbers.Real) or isinstance(tol, bool) or not (0 <= tol < math.inf):
            raise ValueError(f"tol must be a finite number ≥ 0, got {tol!r}")
        it = self.max_iter
        if not isinstance(it, numbers.Integral) or isinstance(it, bool) or it < 0:
            raise ValueError(f"max_iter must be an integer ≥ 0, got {it!r}")
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise ValueError(f"fit_intercept must be a bool, got {self.fit_intercept!r}")
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        _threads(self.n_jobs)

    def _validate_X(self, X, reset, y=None):
        kwargs = dict(
            accept_sparse=False,
            dtype=[np.float32, np.float64],
            order="C",
            reset=reset,
        )
        if y is None:
            X = _validate_data(self, X, **kwargs)
        else:
            X, y = _validate_data(self, X, y, **kwargs)
        return _as_float32(X), y

    def _targets(self, X, y, sample_weight):
        """classes, class indices (the solver's label dtype), weights (float32 or None)."""
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {classes[0]!r}"
            )
        if len(classes) > MAX_CLASSES:
            raise ValueError(f"at most {MAX_CLASSES} classes; y has {len(classes)}")
        weights = None
        if sample_weight is not None:
            from sklearn.utils.validation import _check_sample_weight

            weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if self.class_weight is not None:
            try:  # scikit-learn >= 1.6 weighs "balanced" by the sample weights
                per_class = compute_class_weight(
                    self.class_weight, classes=classes, y=y, sample_weight=weights
                )
            except TypeError:  # pragma: no cover - older scikit-learn
                per_class = compute_class_weight(self.class_weight, classes=classes, y=y)
            cw = per_class[y_index]
            weights = cw if weights is None else weights * cw
        if weights is not None:
            weights = np.ascontiguousarray(weights, dtype=np.float32)
            if not weights.sum(dtype=np.float64) > 0:
                raise ValueError("the sample weights (times the class weights) sum to 0")
        return classes, y_index.reshape(-1).astype(LABEL_DTYPE), weights

    def _l2(self, weight_sum):
        if self.penalty is None:
            return 0.0
        return 1.0 / (float(self.C) * weight_sum)

    def _start(self, form, k, d):
        if (
            self.warm_start
            and hasattr(self, "coef_")
            and self.coef_.shape == ((1, d) if form.binary else (k, d))
            and len(getattr(self, "classes_", ())) == k
        ):
            intercept = self.intercept_ if self.fit_intercept else np.zeros_like(self.intercept_)
            return form.to_softmax(self.coef_, intercept)
        return None

    def _callback(self):
        if not self.verbose:
            return None

        def report(iteration, objective, grad_max):
            print(
                f"iteration {iteration:4d}  objective {objective:.10g}  "
                f"largest gradient entry {grad_max:.2e}",
                flush=True,
            )

        return report

    def _finish(self, form, W, b, iterations, stop, objective=None):
        coef, intercept = form.from_softmax(np.asarray(W, np.float64), np.asarray(b, np.float64))
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float64)
        self.intercept_ = (
            np.asarray(intercept, dtype=np.float64)
            if self.fit_intercept
            else np.zeros(len(intercept))
        )
        self.n_iter_ = np.array([iterations], dtype=np.int32)
        if objective is not None:
            self.objective_ = float(objective)
        if stop == "max_iter" and self.max_iter > 0:
            warnings.warn(
                f"the solver did not reach tol={self.tol} in max_iter={self.max_iter} "
                "iterations: increase max_iter, or scale the data",
                ConvergenceWarning,
            )
        return self

    # -- training ---------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit to the optimum of the objective (see the class docs) on X, y, with optional
        per-sample weights."""
        self._check_params()
        X, y = self._validate_X(X, reset=True, y=y)
        classes, y_index, weights = self._targets(X, y, sample_weight)
        n, d = X.shape
        k = len(classes)
        weight_sum = float(n) if weights is None else float(weights.sum(dtype=np.float64))
        form = _Formulation(k, self._l2(weight_sum))
        start = self._start(form, k, d)
        self.classes_ = classes
        threads = _threads(self.n_jobs)
        if self.fit_intercept:
            W0, b0 = start if start is not None else (None, None)
            W, b, iterations, _, objective, _, stop, error = _core.solve(
                X,
                y_index,
                weights,
                None if W0 is None else np.ascontiguousarray(W0, dtype=np.float64),
                None if b0 is None else np.ascontiguousarray(b0, dtype=np.float64),
                classes=2 if form.binary else k,
                l2=form.l2,
                tol=float(self.tol),
                max_iter=int(self.max_iter),
                threads=threads,
                callback=self._callback(),
            )
            if error is not None:
                self._finish(form, W, b, iterations, "interrupted", objective)
                raise error
        else:
            ks = 2 if form.binary else k
            if start is None:
                start = (np.zeros((ks, d)), np.zeros(ks))

            def loss_grad_sum(W, b):
                return _core.loss_grad(X, y_index, weights, np.ascontiguousarray(W),
                                       np.ascontiguousarray(b), threads=threads)

            W, b, iterations, stop, _ = _scipy_lbfgs(
                loss_grad_sum, weight_sum, form.l2, ks, d, start, False,
                float(self.tol), int(self.max_iter), self._callback(),
            )
            objective = None
        return self._finish(form, W, b, iterations, stop, objective)

    # -- prediction -------------------------------------------------------------------

    def decision_function(self, X):
        """``X @ coef_.T + intercept_`` in float64: (n_samples,) for two classes (the second
        class's score, as scikit-learn), else (n_samples, n_classes). X is converted to
        float64 a block of rows at a time (no full copy)."""
        check_is_fitted(self)
        X, _ = self._validate_X(X, reset=False)
        W = self.coef_.T
        scores = np.empty((X.shape[0], W.shape[1]))
        block = 8192
        for start in range(0, X.shape[0], block):
            rows = X[start : start + block].astype(np.float64)
            np.matmul(rows, W, out=scores[start : start + block])
        scores += self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_log_proba(self, X):
        """Log-probabilities of the classes (columns in ``classes_`` order), computed stably."""
        scores = self.decision_function(X)
        if scores.ndim == 1:  # the logistic model: log σ(−s), log σ(s)
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        shifted = scores - scores.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict_proba(self, X):
        """Probabilities of the classes: softmax of the scores (the logistic σ for two
        classes), columns in ``classes_`` order."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class of each sample."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]
