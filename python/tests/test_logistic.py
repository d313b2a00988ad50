"""LogisticRegression against the f64 optimum of scikit-learn's objective (scipy's L-BFGS-B
in float64, to a gradient of 1e-10), and against scikit-learn itself."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mnist_logreg import LogisticRegression, loss_grad


# -- the f64 reference --------------------------------------------------------------------


def multinomial(X, y, k, weights, l2, fit_intercept):
    """f(θ) and ∇f(θ) in float64, θ = [W (k×d) ravelled, b (k) when fit_intercept]."""
    X = np.asarray(X, np.float64)
    n, d = X.shape
    s = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    total = s.sum()

    def f(theta):
        W = theta[: k * d].reshape(k, d)
        b = theta[k * d :] if fit_intercept else np.zeros(k)
        Z = X @ W.T + b
        Z -= Z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(Z).sum(axis=1))
        value = (s * (lse - Z[np.arange(n), y])).sum() / total + 0.5 * l2 * (W * W).sum()
        P = np.exp(Z - lse[:, None])
        P[np.arange(n), y] -= 1
        P *= s[:, None] / total
        g = (P.T @ X + l2 * W).ravel()
        return value, np.concatenate([g, P.sum(axis=0)]) if fit_intercept else g

    return f


def binary(X, y, weights, l2, fit_intercept):
    """scikit-learn's binary objective, mean form: (1/Σs)·Σ sᵢ·log(1 + exp(−tᵢ zᵢ)) + λ/2‖w‖²."""
    X = np.asarray(X, np.float64)
    n, d = X.shape
    s = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    total = s.sum()
    t = np.where(y == 1, 1.0, -1.0)

    def f(theta):
        w = theta[:d]
        z = X @ w + (theta[d] if fit_intercept else 0.0)
        value = (s * np.logaddexp(0, -t * z)).sum() / total + 0.5 * l2 * w @ w
        r = -t * s * scipy.special.expit(-t * z) / total
        g = X.T @ r + l2 * w
        return value, np.concatenate([g, [r.sum()]]) if fit_intercept else g

    return f


def theta_of(est):
    parts = [est.coef_.ravel()]
    if est.fit_intercept:
        parts.append(np.ravel(est.intercept_))
    return np.concatenate(parts).astype(np.float64)


def optimum(f, theta0):
    """scipy's L-BFGS-B in f64 from theta0 (a tol=1e-8 fit: close, so it is quick) to a
    gradient of 1e-9: then f − f* ≤ ‖∇f‖²/(2λ), far below the gaps tested."""
    res = scipy.optimize.minimize(
        f, theta0, jac=True, method="L-BFGS-B",
        options=dict(gtol=1e-9, ftol=1e-16, maxiter=20000, maxcor=30),
    )
    assert np.abs(res.jac).max() < 1e-7, np.abs(res.jac).max()
    return res.fun, res.x


def objective_for(est, X, y_index, weights=None):
    k = len(est.classes_)
    C = est.C
    if est.class_weight == "balanced":
        counts = np.bincount(y_index, weights=weights, minlength=k)
        cw = counts.sum() / (k * counts)
        weights = cw[y_index] if weights is None else weights * cw[y_index]
    elif isinstance(est.class_weight, dict):
        cw = np.array([est.class_weight.get(c, 1.0) for c in est.classes_])
        weights = cw[y_index] if weights is None else weights * cw[y_index]
    total = len(y_index) if weights is None else np.sum(weights)
    l2 = 0.0 if est.penalty is None else 1.0 / (C * total)
    if k == 2:
        return binary(X, y_index, weights, l2, est.fit_intercept)
    return multinomial(X, y_index, k, weights, l2, est.fit_intercept)


def gaps(est, X, y, weights=None, reference=None):
    """(relative objective gap, relative distance of θ) of est to the f64 optimum."""
    y_index = np.searchsorted(est.classes_, y)
    f = objective_for(est, X, y_index, weights)
    if reference is None:
        reference = optimum(f, theta_of(est))
    fstar, xstar = reference
    value = f(theta_of(est))[0]
    return (value - fstar) / abs(fstar), np.linalg.norm(theta_of(est) - xstar) / np.linalg.norm(xstar)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The f64 references are many small BLAS calls: threads only slow them down, a lot on a
    busy machine (100 scipy iterations on digits: 18 s with the default threads, 0.3 s with
    one, measured on the shared 2-core machine)."""
    with threadpool_limits(1):
        yield


# -- data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)  # 1797 × 64, values 0 … 16 (float64, unscaled)
    return X, y


@pytest.fixture(scope="module")
def wide():
    """512 features × 100 classes, float32: 3000 rows around 100 Gaussian centres."""
    rng = np.random.default_rng(7)
    centres = rng.normal(scale=0.25, size=(100, 512))
    y = rng.integers(0, 100, size=3000)
    X = (centres[y] + rng.normal(size=(3000, 512))).astype(np.float32)
    return X, y


# -- optimum ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["digits", "wide"])
def test_default_fit_is_within_1e4_and_tol_1e8_within_1e5_of_the_f64_optimum(data, request):
    X, y = request.getfixturevalue(data)
    tight = LogisticRegression(tol=1e-8, max_iter=2000).fit(X, y)
    reference = optimum(objective_for(tight, X, np.searchsorted(tight.classes_, y)),
                        theta_of(tight))
    default = LogisticRegression().fit(X, y)
    gap, dist = gaps(default, X, y, reference=reference)
    assert gap < 1e-4, (gap, dist, default.n_iter_)
    gap, dist = gaps(tight, X, y, reference=reference)
    assert gap < 1e-5, (gap, dist, tight.n_iter_)


def test_binary_problem_gives_scikit_learns_coef_at_its_optimum(digits):
    X, y = digits
    keep = (y == 3) | (y == 8)
    X, y = X[keep], y[keep]
    ours = LogisticRegression(tol=1e-8, max_iter=2000).fit(X, y)
    assert ours.coef_.shape == (1, 64) and ours.intercept_.shape == (1,)
    gap, dist = gaps(ours, X, y)
    assert gap < 1e-5, (gap, dist)
    sk = SkLogisticRegression(tol=1e-10, max_iter=10000).fit(X, y)
    assert sk.coef_.shape == ours.coef_.shape
    # The same optimum: scikit-learn's objective is no lower at its own fit than at ours.
    f = objective_for(ours, X, np.searchsorted(ours.classes_, y))
    assert f(theta_of(ours))[0] <= f(theta_of(sk))[0] * (1 + 1e-6)
    scale = np.linalg.norm(sk.coef_)
    assert np.linalg.norm(ours.coef_ - sk.coef_) / scale < 1e-3
    assert ours.decision_function(X).shape == (len(y),)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-4)
    assert (ours.predict(X) == sk.predict(X)).mean() > 0.999


@pytest.mark.parametrize(
    "options",
    [
        dict(sample_weight=True),
        dict(class_weight="balanced"),
        dict(fit_intercept=False),
        dict(fit_intercept=False, binary=True),
        dict(class_weight={0: 3.0, 1: 0.5}, C=0.1),
    ],
    ids=["sample_weight", "balanced", "no_intercept", "no_intercept_binary", "dict_C"],
)
def test_weights_class_weights_and_no_intercept_reach_their_optima(digits, options):
    X, y = digits
    options = dict(options)
    rng = np.random.default_rng(1)
    if options.pop("binary", False):
        keep = (y == 1) | (y == 7)
        X, y = X[keep], y[keep]
    # Unbalanced classes, so the class weights matter.
    keep = (y != 5) | (np.arange(len(y)) % 3 == 0)
    X, y = X[keep], y[keep]
    weights = rng.uniform(0.2, 3.0, size=len(y)) if options.pop("sample_weight", False) else None
    est = LogisticRegression(tol=1e-8, max_iter=3000, **options).fit(X, y, sample_weight=weights)
    gap, dist = gaps(est, X, y, weights)
    assert gap < 1e-5, (gap, dist)
    sk = SkLogisticRegression(tol=1e-10, max_iter=20000, **options).fit(X, y, sample_weight=weights)
    f = objective_for(est, X, np.searchsorted(est.classes_, y), weights)
    assert f(theta_of(est))[0] <= f(theta_of(sk))[0] * (1 + 1e-5)
    assert np.linalg.norm(est.coef_ - sk.coef_) / np.linalg.norm(sk.coef_) < 1e-2
    if not est.fit_intercept:
        assert (est.intercept_ == 0).all()


def test_penalty_none_and_C_follow_scikit_learn(digits):
    X, y = digits
    X = X / 16
    est = LogisticRegression(penalty=None, tol=1e-6, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    assert est.score(X, y) == 1.0  # separable: no penalty fits the training set
    strong = LogisticRegression(C=1e-3).fit(X, y)
    weak = LogisticRegression(C=10.0).fit(X, y)
    assert np.linalg.norm(strong.coef_) < np.linalg.norm(weak.coef_)


def test_warm_start_refits_in_fewer_iterations(digits):
    X, y = digits
    cold = LogisticRegression(C=1.0).fit(X, y)
    est = LogisticRegression(C=1.0, warm_start=True).fit(X, y)
    est.set_params(C=1.2)
    est.fit(X, y)
    fresh = LogisticRegression(C=1.2).fit(X, y)
    assert est.n_iter_[0] < fresh.n_iter_[0], (est.n_iter_, fresh.n_iter_, cold.n_iter_)
    assert abs(est.objective_ - fresh.objective_) < 1e-5 * abs(fresh.objective_)


# -- input --------------------------------------------------------------------------------


def test_uint8_integer_and_float_are_the_same_numbers(digits):
    X, y = digits
    a = LogisticRegression().fit(X.astype(np.uint8), y)
    b = LogisticRegression().fit(X.astype(np.float32), y)
    c = LogisticRegression().fit(X.astype(np.int64), y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.coef_, c.coef_)


def test_nan_and_sparse_are_refused_in_scikit_learns_style(digits):
    X, y = digits
    Xn = X.copy()
    Xn[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(Xn, y)
    with pytest.raises(TypeError, match="[Ss]parse"):
        LogisticRegression().fit(scipy.sparse.csr_matrix(X), y)
    with pytest.raises(ValueError, match="penalty"):
        LogisticRegression(penalty="l1").fit(X, y)


def test_string_labels_pickle_pipeline_and_grid_search(digits):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])[y]
    est = LogisticRegression().fit(X, names)
    assert set(est.classes_) == set(names)
    assert est.score(X, names) > 0.99
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    np.testing.assert_allclose(est.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(est.predict_log_proba(X)), est.predict_proba(X))
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression()),
        {"logisticregression__C": [0.1, 1.0]},
        cv=2,
        n_jobs=2,
    ).fit(X, names)
    assert search.best_score_ > 0.9


def test_verbose_reports_iterations(digits, capsys):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        LogisticRegression(verbose=1, max_iter=3).fit(X / 16, y)
    assert "iteration" in capsys.readouterr().out


# -- loss_grad ----------------------------------------------------------------------------


def test_loss_grad_is_the_f64_sum_and_chunks_add_up(digits):
    X, y = digits
    rng = np.random.default_rng(3)
    W, b = rng.normal(scale=0.05, size=(10, 64)), rng.normal(size=10)
    w = rng.uniform(0.5, 2.0, size=len(y))
    loss, gW, gb = loss_grad(W, b, X, y, w)
    f = multinomial(X, y, 10, w, 0.0, True)
    value, g = f(np.concatenate([W.astype(np.float32).ravel(), b.astype(np.float32)]))
    np.testing.assert_allclose(loss, value * w.sum(), rtol=1e-5)
    np.testing.assert_allclose(np.concatenate([gW.ravel(), gb]), g * w.sum(), rtol=1e-3,
                               atol=1e-3)
    parts = [loss_grad(W, b, X[i : i + 500], y[i : i + 500], w[i : i + 500])
             for i in range(0, len(y), 500)]
    np.testing.assert_allclose(sum(p[0] for p in parts), loss, rtol=1e-9)
    np.testing.assert_allclose(sum(p[1] for p in parts), gW, rtol=1e-4, atol=1e-3)
    assert loss_grad(W, b, X[:0], y[:0])[0] == 0.0


def test_the_driver_loop_of_the_loss_grad_docstring_runs():
    import doctest

    import mnist_logreg._loss

    result = doctest.testmod(mnist_logreg._loss)
    assert result.failed == 0 and result.attempted > 0
