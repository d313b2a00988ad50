#!/usr/bin/env bash
# The public-API and kernel tests once more under AddressSanitizer (nightly only: a heap
# overflow or use-after-free in any kernel, on any SIMD path, aborts the run). Skipped, with a
# message, where no nightly toolchain is installed. The target is named so that build scripts
# and proc macros are not instrumented; its own target directory keeps the normal build warm.
# The property tests run PROPTEST_CASES (default 64) cases each here, not 256: the native run
# keeps the full count, and ASan looks at the memory accesses of every SIMD path in each case.
# Line tables (not full debug info) are enough for ASan's reports and compile faster.
# The library's test crate (tests/library/) is built whole; the name filters run its
# public_api and kernels modules.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "ASan: SKIPPED (no nightly toolchain: cargo +nightly is not installed)"
    exit 0
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
echo "ASan: $(cargo +nightly --version), target $host"
RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
ASAN_OPTIONS="detect_leaks=0" \
CARGO_TARGET_DIR=target/asan CARGO_PROFILE_DEV_DEBUG=line-tables-only \
PROPTEST_CASES="${PROPTEST_CASES:-64}" \
    cargo +nightly test -p mnist-logreg --target "$host" --no-default-features \
    --test library -- public_api:: kernels::
