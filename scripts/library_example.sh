#!/usr/bin/env bash
# Build a throwaway crate that depends on this one by path, with the first `rust` code block of
# the README's "Use it as a library" section as its src/main.rs, and run it on data/mnist.
# No RUSTFLAGS: what a user of the crate gets. The dependency has `default-features = false`,
# and the check below fails if clap (or the other `cli` dependencies) still came along.
# A dev build with the crate's own dev profile (optimised, debug assertions on; the proc macros
# and build-script helpers not), in the crate's target directory: the dependencies that
# scripts/python.sh also builds (this crate without default features) are compiled once, and
# no release build is needed for 1000 steps.
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
mnist-logreg = { path = "$repo", default-features = false }

[workspace]

[profile.dev]
opt-level = 2

[profile.dev.package."*"]
opt-level = 3

[profile.dev.package]
syn = { opt-level = 0, debug = false }
quote = { opt-level = 0, debug = false }
proc-macro2 = { opt-level = 0, debug = false }
unicode-ident = { opt-level = 0, debug = false }
serde_derive = { opt-level = 0, debug = false }
thiserror-impl = { opt-level = 0, debug = false }
zerocopy-derive = { opt-level = 0, debug = false }
bytemuck_derive = { opt-level = 0, debug = false }
autocfg = { opt-level = 0, debug = false }
TOML
# The crate's lock file: the dependencies' versions that its CI tested, not the newest ones.
cp "$repo/Cargo.lock" "$work/Cargo.lock"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
export CARGO_TARGET_DIR="$repo/target"
cargo run --quiet --manifest-path "$work/Cargo.toml" -- "$repo/data/mnist" | tee "$work/out.txt"
grep -q '^step: 1000, ' "$work/out.txt"
grep -q '^Test Accuracy: 0\.9' "$work/out.txt"
deps=$(cargo tree --quiet --manifest-path "$work/Cargo.toml" -e normal --prefix none)
for unwanted in clap indicatif signal-hook; do
    if grep -q "^$unwanted v" <<<"$deps"; then
        echo "a dependent crate with default-features = false still pulls in $unwanted" >&2
        exit 1
    fi
done
echo "library example: OK (built without clap, indicatif, signal-hook)"
