#!/usr/bin/env bash
# Build a throwaway crate that depends on this one by path, with the first `rust` code block of
# the README's "Use it as a library" section as its src/main.rs, and run it on data/mnist.
# No RUSTFLAGS: what a user of the crate gets.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
awk '
    /^## Use it as a library/ { in_section = 1; next }
    in_section && /^## / { exit }
    in_section && /^```rust$/ { in_code = 1; next }
    in_code && /^```$/ { exit }
    in_code { print }
' "$repo/README.md" > "$work/src/main.rs"
if [ ! -s "$work/src/main.rs" ]; then
    echo "no rust code block in the README's 'Use it as a library' section" >&2
    exit 1
fi
cat > "$work/Cargo.toml" <<TOML
[package]
name = "uses-mnist-logreg"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
mnist-logreg = { path = "$repo" }

[workspace]
TOML
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
export CARGO_TARGET_DIR="$repo/target/library-example"
cargo run --quiet --release --manifest-path "$work/Cargo.toml" -- "$repo/data/mnist" | tee "$work/out.txt"
grep -q '^step: 1000, ' "$work/out.txt"
grep -q '^Test Accuracy: 0\.9' "$work/out.txt"
echo "library example: OK"
