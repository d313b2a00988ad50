#!/usr/bin/env python3
"""The f64 optima that tests/library/solve.rs and benches/solver.rs compare the L-BFGS solver with.

Objective (docs: src/solve/mod.rs):
    f(W, b) = (1/sum(s)) * sum_i s_i * CE(x_i, y_i) + (lam/2) * ||W||^2
CE the exact log-softmax cross-entropy, x = pixel / 255, b not penalised.

Problems:
- small:          300 rows, 20 features, 5 classes, made by the splitmix64 formulas below
                  (the same as `small_problem` in tests/library/solve.rs), s_i = 1, lam = 1/300.
- small_weighted: the same rows, s_i = 1 + splitmix64(2_000_000 + i) % 3, lam = 1/sum(s).
- mnist:          data/mnist training split (60000 rows), s_i = 1, lam = 1/60000
                  (scikit-learn's C = 1); also the test accuracy of the optimum.

Run (from the repository root):
    python3 -m venv target/venv-ref && target/venv-ref/bin/pip install scipy numpy
    target/venv-ref/bin/python scripts/reference_optimum.py > tests/data/optima.txt

scipy's L-BFGS-B minimises in the coordinates U = R [W; b] with R^T R the features' second
moment plus the ridge (a change of coordinates only: the objective and the optimum are the
same), to a gradient max-norm of about 1e-10 in the original coordinates.
"""

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy.linalg import cho_factor, solve_triangular
from scipy.optimize import minimize
from scipy.special import logsumexp

MASK = (1 << 64) - 1


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def small_problem(n=300, d=20, k=5):
    """u8 pixels, labels: a linear rule on the pixels with every 5th label replaced."""
    px = np.array([[splitmix64(i * 1000 + j) % 256 for j in range(d)] for i in range(n)], dtype=np.uint8)
    t = np.array([[int(splitmix64(7919 * c + j) % 7) - 3 for j in range(d)] for c in range(k)])
    scores = px.astype(np.int64) @ t.T
    labels = scores.argmax(axis=1).astype(np.int64)  # first index on ties
    for i in range(n):
        if splitmix64(1_000_000 + i) % 5 == 0:
            labels[i] = splitmix64(3_000_000 + i) % k
    weights = np.array([1 + splitmix64(2_000_000 + i) % 3 for i in range(n)], dtype=np.float64)
    return px, labels, weights


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def objective(theta, x1, y, s, lam, k):
    """f and its gradient at theta = [W; b] ((d+1) x k, flattened); x1 = [X 1]."""
    d1 = x1.shape[1]
    th = theta.reshape(d1, k)
    z = x1 @ th
    lse = logsumexp(z, axis=1)
    ce = lse - z[np.arange(len(y)), y]
    sw = s.sum()
    f = (s @ ce) / sw + 0.5 * lam * np.sum(th[:-1] ** 2)
    g = np.exp(z - lse[:, None])
    g[np.arange(len(y)), y] -= 1.0
    grad = x1.T @ (g * (s / sw)[:, None])
    grad[:-1] += lam * th[:-1]
    return f, grad


def solve(px, y, s, lam, k):
    """The optimum for u8 pixels px, read as px / 255."""
    return solve_features(px.astype(np.float64) / 255.0, y, s, lam, k)


def solve_features(x, y, s, lam, k, restarts=3):
    """The optimum for float features x (n x d, used as given; scripts/own_data_checks.py
    uses it for its float data sets): (f, grad max-norm, theta = [W; b], iterations of the
    last restart)."""
    x1 = np.hstack([np.asarray(x, dtype=np.float64), np.ones((x.shape[0], 1))])
    d1 = x1.shape[1]
    # Preconditioner: R^T R = 0.01 * E_s[[x 1][x 1]^T] + lam * diag(1, ..., 1, 0).
    m = 0.01 * (x1.T * (s / s.sum())) @ x1
    m[np.arange(d1 - 1), np.arange(d1 - 1)] += lam
    c, _ = cho_factor(m, lower=False)
    r = np.triu(c)

    def fu(u):
        th = solve_triangular(r, u.reshape(d1, k), lower=False)
        f, g = objective(th.ravel(), x1, y, s, lam, k)
        return f, solve_triangular(r, g, trans="T", lower=False).ravel()

    u = np.zeros(d1 * k)
    for _ in range(restarts):  # restarts refresh the curvature pairs; each ends on gtol/ftol
        res = minimize(fu, u, jac=True, method="L-BFGS-B",
                       options={"maxiter": 20000, "maxcor": 30, "gtol": 1e-13, "ftol": 1e-16})
        u = res.x
    th = solve_triangular(r, u.reshape(d1, k), lower=False)
    f, g = objective(th.ravel(), x1, y, s, lam, k)
    return f, np.abs(g).max(), th, res.nit


def main():
    root = Path(__file__).resolve().parent.parent
    print(f"# made by scripts/reference_optimum.py (numpy {np.__version__}, scipy {scipy.__version__})")
    print("# name objective_f64 grad_max lambda [test_accuracy]")
    px, y, w = small_problem()
    n = len(y)
    for name, s in [("small", np.ones(n)), ("small_weighted", w)]:
        lam = 1.0 / s.sum()
        f, gmax, _, nit = solve(px, y, s, lam, 5)
        print(f"{name} {float(f)!r} {gmax:.3e} {float(lam)!r}", flush=True)
        print(f"# {name}: {nit} iterations in the last restart", file=sys.stderr)
    mnist = root / "data" / "mnist"
    px = read_idx(mnist / "train-images-idx3-ubyte.gz").reshape(60000, -1)
    y = read_idx(mnist / "train-labels-idx1-ubyte.gz").astype(np.int64)
    lam = 1.0 / len(y)
    f, gmax, th, nit = solve(px, y, np.ones(len(y)), lam, 10)
    tpx = read_idx(mnist / "t10k-images-idx3-ubyte.gz").reshape(10000, -1)
    ty = read_idx(mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    tx1 = np.hstack([tpx.astype(np.float64) / 255.0, np.ones((len(ty), 1))])
    acc = float(((tx1 @ th).argmax(axis=1) == ty).mean())
    print(f"mnist {float(f)!r} {gmax:.3e} {float(lam)!r} {acc!r}")
    print(f"# mnist: {nit} iterations in the last restart", file=sys.stderr)


if __name__ == "__main__":
    main()
