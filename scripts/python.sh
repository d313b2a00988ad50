#!/usr/bin/env bash
# The Python package (python/): build it and install it with its test extra into a fresh
# virtual environment (pip fetches maturin, numpy, scikit-learn, pandas and pytest from PyPI;
# maturin compiles the extension with this machine's cargo), then run its pytest suite with
# the path of the crate's `train` binary, which the bit-for-bit test compares against.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --manifest-path python/Cargo.toml -- --check
cargo clippy --manifest-path python/Cargo.toml --all-targets -- -D warnings
venv="$PWD/target/python-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "./python[test]"
cargo build --bin train
# From outside python/, so `import mnist_logreg` is the installed package, not the sources.
cd target
MNIST_LOGREG_TRAIN="$PWD/debug/train" "$venv/bin/python" -m pytest -q -p no:cacheprovider ../python/tests
