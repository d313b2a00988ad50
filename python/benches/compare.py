"""MNIST (float32, x / 255): this package's LogisticRegression against scikit-learn's (and
scikit-learn-intelex's, when installed) in the same process, interleaved, with each fit's
distance to the optimum of the shared objective measured in float64; then the SGD
estimators for reference.

    python python/benches/compare.py [DATA_DIR] [--quick] [--rounds N]

--quick: scikit-learn's LogisticRegression with max_iter=20 instead of its default (a full
default fit takes 85 s or more on a 2-core machine) and no SGD section.

Every model is scored on scikit-learn's objective in its mean form,
f = (1/n)·Σ CE + (1/(2n))·‖W‖² (C = 1), computed in float64 with numpy: "f − f*" is its excess
over the best f of all the fits (a tol=1e-8 fit of ours), "|∇f|max" the largest entry of its
float64 gradient (scikit-learn's and our stopping test).
"""

import os
import platform
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import SGDClassifier

from mnist_logreg import LogisticRegression, SoftmaxRegression, load_mnist, simd_path


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def objective(X, y, coef, intercept):
    """scikit-learn's objective (C = 1), mean form, and its largest gradient entry, in f64."""
    n = len(y)
    W, b = np.asarray(coef, np.float64), np.asarray(intercept, np.float64)
    Z = X @ W.T + b
    Z -= Z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(Z).sum(axis=1))
    value = (lse - Z[np.arange(n), y]).mean() + 0.5 / n * (W * W).sum()
    P = np.exp(Z - lse[:, None])
    P[np.arange(n), y] -= 1
    gW = P.T @ X / n + W / n
    gb = P.mean(axis=0)
    return value, max(np.abs(gW).max(), np.abs(gb).max())


def timed_fit(make, X, y):
    est = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
    return est, seconds


def sklearnex_logistic():
    try:
        from sklearnex.linear_model import LogisticRegression as ExLogisticRegression
    except ImportError as e:
        print(f"scikit-learn-intelex: not installed ({e}); skipped "
              "(pip install scikit-learn-intelex)")
        return None
    return ExLogisticRegression


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv
    rounds = 2
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
        args = [a for a in args if a != str(rounds)]
    here = os.path.dirname(os.path.abspath(__file__))
    data = args[0] if args else os.path.join(here, "..", "..", "data", "mnist")
    X, y, Xt, yt = load_mnist(data)
    Xf, Xtf = np.asarray(X, np.float32) / 255, np.asarray(Xt, np.float32) / 255
    X64 = Xf.astype(np.float64)
    y = np.asarray(y, np.int64)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} threads, load average "
          f"{os.getloadavg()[0]:.1f} at the start; SIMD path {simd_path()}; "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")

    sk_iter = 20 if quick else 100
    runs = [
        ("mnist_logreg.LogisticRegression()", LogisticRegression),
        (f"sklearn LogisticRegression(max_iter={sk_iter})" if quick
         else "sklearn LogisticRegression()", lambda: SkLogisticRegression(max_iter=sk_iter)),
    ]
    ex = sklearnex_logistic()
    if ex is not None:
        runs.append(("sklearnex LogisticRegression()", ex))
    # Interleaved, so the load of the machine (shared) falls on every estimator alike.
    times = {name: [] for name, _ in runs}
    fitted = {}
    for _ in range(rounds):
        for name, make in runs:
            est, seconds = timed_fit(make, Xf, y)
            times[name].append(seconds)
            fitted[name] = est
    tight, tight_s = timed_fit(lambda: LogisticRegression(tol=1e-8, max_iter=2000), Xf, y)
    fitted["mnist_logreg.LogisticRegression(tol=1e-8)"] = tight
    times["mnist_logreg.LogisticRegression(tol=1e-8)"] = [tight_s]
    scores = {name: objective(X64, y, est.coef_, est.intercept_) for name, est in fitted.items()}
    best = min(v for v, _ in scores.values())
    ours = min(times["mnist_logreg.LogisticRegression()"])
    print(f"\n{rounds} interleaved rounds; fit time: the fastest of the rounds (all rounds in []).")
    print("| estimator | fit (s) | iterations | f − f* | \\|∇f\\|max | test accuracy | time ÷ ours |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, est in fitted.items():
        value, grad = scores[name]
        ts = times[name]
        n_iter = int(np.max(getattr(est, "n_iter_", [0])))
        print(f"| `{name}` | {min(ts):.2f} [{', '.join(f'{t:.2f}' for t in ts)}] | {n_iter} "
              f"| {value - best:.2e} | {grad:.1e} | {est.score(Xtf, yt):.4f} "
              f"| {min(ts) / ours:.1f}× |")
    if quick:
        return
    print("\nSGD estimators (one fit each):")
    for name, make in [
        ("SoftmaxRegression() (float32 x / 255)", SoftmaxRegression),
        ('SGDClassifier(loss="log_loss", max_iter=5)',
         lambda: SGDClassifier(loss="log_loss", max_iter=5, random_state=0)),
    ]:
        est, seconds = timed_fit(make, Xf, y)
        print(f"| `{name}` | {seconds:.2f} s | test accuracy {est.score(Xtf, yt):.4f} |")


if __name__ == "__main__":
    main()
