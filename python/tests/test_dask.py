"""mnist_logreg.dask.LogisticRegression on a LocalCluster of 2 worker processes reaches the
in-memory estimator's optimum."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from mnist_logreg import LogisticRegression  # noqa: E402
from mnist_logreg.dask import LogisticRegression as DaskLogisticRegression  # noqa: E402
from test_logistic import objective_for, theta_of  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def blobs(n=4000, d=20, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("k", [4, 2])
def test_dask_reaches_the_in_memory_optimum_on_two_workers(client, k):
    X, y = blobs(k=k)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    memory = LogisticRegression(tol=1e-8, max_iter=2000).fit(X, y, sample_weight=w)
    Xd = da.from_array(X, chunks=(1000, -1))
    yd = da.from_array(y, chunks=1000)
    wd = da.from_array(w, chunks=1000)
    est = DaskLogisticRegression(tol=1e-8).fit(Xd, yd, sample_weight=wd)
    # The objective (f64) at the Dask fit is within 1e-5 (relative) of the in-memory one's.
    f = objective_for(memory, X, y, w)
    ours, theirs = f(theta_of(est))[0], f(theta_of(memory))[0]
    assert abs(ours - theirs) < 1e-5 * theirs, (ours, theirs, est.n_iter_)
    rel = np.linalg.norm(theta_of(est) - theta_of(memory)) / np.linalg.norm(theta_of(memory))
    assert rel < 1e-3, rel
    assert est.coef_.shape == memory.coef_.shape
    predicted = est.predict(Xd)
    assert isinstance(predicted, da.Array)
    assert (predicted.compute() == memory.predict(X)).mean() > 0.999
    np.testing.assert_allclose(est.predict_proba(Xd).compute(), memory.predict_proba(X),
                               atol=1e-3)
