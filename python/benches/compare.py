"""Fit scikit-learn's LogisticRegression and SGDClassifier and this package's
SoftmaxRegression on MNIST in the same run; print fit time, test accuracy and the ratios.

    python python/benches/compare.py [DATA_DIR] [--quick]

--quick skips the full LogisticRegression (85 s on a 2-core Xeon) and keeps max_iter=20.
"""

import os
import platform
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier

from mnist_logreg import SoftmaxRegression, load_mnist, simd_path


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv
    here = os.path.dirname(os.path.abspath(__file__))
    data = args[0] if args else os.path.join(here, "..", "..", "data", "mnist")
    X, y, Xt, yt = load_mnist(data)
    # What scikit-learn reads: x / 255 as float32 (the same numbers the crate reads from uint8).
    Xf, Xtf = np.asarray(X, np.float32) / 255, np.asarray(Xt, np.float32) / 255
    # Ours first: scikit-learn's BLAS threads keep spinning for a while after a fit, and
    # would share the two cores with the next one.
    runs = [
        ("SoftmaxRegression.tutorial() (uint8)", SoftmaxRegression.tutorial, X, Xt),
        ("SoftmaxRegression() (uint8)", SoftmaxRegression, X, Xt),
        ("SoftmaxRegression() (float32 x / 255)", SoftmaxRegression, Xf, Xtf),
        ('SGDClassifier(loss="log_loss", max_iter=5)',
         lambda: SGDClassifier(loss="log_loss", max_iter=5, random_state=0), Xf, Xtf),
        ("LogisticRegression(max_iter=20)", lambda: LogisticRegression(max_iter=20), Xf, Xtf),
    ]
    if not quick:
        runs.append(("LogisticRegression()", LogisticRegression, Xf, Xtf))
    print(f"CPU: {cpu_name()}, {os.cpu_count()} threads; SIMD path {simd_path()}; "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")
    rows = []
    for name, make, train_x, test_x in runs:
        est = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            est.fit(train_x, y)
            seconds = time.perf_counter() - start
        rows.append((name, seconds, est.score(test_x, yt)))
    fastest = min(s for n, s, _ in rows if n.startswith("SoftmaxRegression()"))
    print("| estimator | fit | test accuracy | fit time ÷ SoftmaxRegression() |")
    print("| --- | --- | --- | --- |")
    for name, seconds, accuracy in rows:
        print(f"| `{name}` | {seconds:.3f} s | {accuracy:.4f} | {seconds / fastest:.1f}× |")


if __name__ == "__main__":
    main()
