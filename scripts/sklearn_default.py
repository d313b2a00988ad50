#!/usr/bin/env python3
"""scikit-learn's default LogisticRegression().fit on MNIST, timed, for docs/cli.md's comparison
with `train --solver lbfgs`.

MNIST from data/mnist (the gz IDX files) as float32 pixel / 255, as the Rust solver reads it.
Prints the fit's wall time, its iterations, the objective of the returned model in f64
(mean cross-entropy + (lam/2)·||W||², lam = 1/(C·n) = 1/60000, the bias not penalised: the
objective `train --solver lbfgs` minimises), its gap to tests/data/optima.txt, and the test
accuracy.

Run (from the repository root):
    python3 -m venv target/skvenv && target/skvenv/bin/pip install scikit-learn threadpoolctl
    target/skvenv/bin/python scripts/sklearn_default.py
"""

import gzip
import struct
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_info

DATA = Path("data/mnist")


def idx(name):
    with gzip.open(DATA / f"{name}.gz", "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    x = idx("train-images-idx3-ubyte").reshape(60000, -1).astype(np.float32) / np.float32(255)
    y = idx("train-labels-idx1-ubyte")
    xt = idx("t10k-images-idx3-ubyte").reshape(10000, -1).astype(np.float32) / np.float32(255)
    yt = idx("t10k-labels-idx1-ubyte")
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, BLAS {blas}")
    start = time.perf_counter()
    model = LogisticRegression().fit(x, y)
    seconds = time.perf_counter() - start
    w = model.coef_.astype(np.float64)
    b = model.intercept_.astype(np.float64)
    z = x.astype(np.float64) @ w.T + b
    ce = np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y])
    lam = 1.0 / len(y)
    objective = ce + 0.5 * lam * np.sum(w * w)
    optimum = None
    for line in Path("tests/data/optima.txt").read_text().splitlines():
        if line.startswith("mnist "):
            optimum = float(line.split()[1])
    accuracy = np.mean(model.predict(xt) == yt)
    print(
        f"fit {seconds:.2f} s, n_iter {model.n_iter_[0]}, objective {objective:.10f}, "
        f"relative gap {(objective - optimum) / optimum:.2e}, test accuracy {accuracy:.4f}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
