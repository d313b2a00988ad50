#!/usr/bin/env bash
# The Python package (python/): build it and install it with its test extra into a virtual
# environment (pip fetches maturin, numpy, scikit-learn, pandas and pytest from PyPI; maturin
# compiles the extension with this machine's cargo), then run its pytest suite with the path
# of the crate's `train` binary, which the bit-for-bit test compares against.
# The venv (target/python-venv) is kept between runs while it works and has the test extra;
# the package itself is rebuilt and reinstalled every time. The extension is a dev build
# (python/Cargo.toml's dev profile optimises like the crate's: the tests train on MNIST), in
# the crate's target directory, so it shares the dependencies that other builds compiled.
# MNIST_LOGREG_TRAIN: a `train` binary already built (CI passes the one its tests ran);
# without it, `cargo build --bin train` builds one.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$PWD/target"
cargo fmt --manifest-path python/Cargo.toml -- --check
cargo clippy --manifest-path python/Cargo.toml --all-targets -- -D warnings
venv="$PWD/target/python-venv"
if [ -x "$venv/bin/python" ] \
    && [ "$("$venv/bin/python" -V 2>&1)" = "$(python3 -V 2>&1)" ] \
    && "$venv/bin/python" -c "import numpy, sklearn, pandas, pytest" 2>/dev/null; then
    echo "python: reusing the venv $venv ($("$venv/bin/python" -V))"
else
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
# pip always builds and reinstalls a project given as a local path; of its dependencies and
# test extra it installs only what the venv lacks.
MATURIN_PEP517_ARGS="--profile dev" \
    "$venv/bin/pip" install --quiet --disable-pip-version-check "./python[test]"
train="${MNIST_LOGREG_TRAIN:-}"
if [ -z "$train" ]; then
    cargo build --bin train
    train="$CARGO_TARGET_DIR/debug/train"
fi
# From outside python/, so `import mnist_logreg` is the installed package, not the sources.
cd target
MNIST_LOGREG_TRAIN="$train" "$venv/bin/python" -m pytest -q -p no:cacheprovider ../python/tests
