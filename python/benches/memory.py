"""Peak memory of LogisticRegression.fit on a ~1 GB float32 X: the solver reads X in place, so
the peak should be X plus the model-sized buffers, not two copies of X.

    python python/benches/memory.py [GB] [--float64]

Prints the peak resident set size (getrusage) after building X and after the fit; with
--float64 X is float64 (of the same GB), which the estimator converts to float32 once.
"""

import resource
import sys
import time
import warnings

import numpy as np

from mnist_logreg import LogisticRegression


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    gb = float(args[0]) if args else 1.0
    dtype = np.float64 if "--float64" in sys.argv else np.float32
    d = 800
    n = int(gb * 2**30 / (d * np.dtype(dtype).itemsize))
    rng = np.random.default_rng(0)
    X = np.empty((n, d), dtype=dtype)
    for start in range(0, n, 8192):  # filled in blocks: no temporary of X's size
        X[start : start + 8192] = rng.standard_normal((min(8192, n - start), d), dtype=np.float32)
    y = rng.integers(0, 10, size=n)
    before = peak_mb()
    print(f"X: {n} × {d} {np.dtype(dtype).name}, {X.nbytes / 2**20:.0f} MiB; "
          f"peak RSS before fit {before:.0f} MiB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        est = LogisticRegression(max_iter=3).fit(X, y)
        seconds = time.perf_counter() - start
    after = peak_mb()
    print(f"fit (max_iter=3, {est.n_iter_[0]} iterations): {seconds:.1f} s; peak RSS after fit "
          f"{after:.0f} MiB (+{after - before:.0f} MiB)")


if __name__ == "__main__":
    main()
