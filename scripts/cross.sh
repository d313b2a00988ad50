#!/usr/bin/env bash
# Other CPUs than CI's own, on CI's x86-64 Debian machine:
#   aarch64-unknown-linux-gnu : build with Debian's Rust 1.96 and its arm64 std, clippy, and
#                               under qemu-aarch64: the unit tests of both crates, the kernel
#                               tests (proptests against the f64 reference, thread-count
#                               bit-identity, on neon and scalar), the public-API tests and the
#                               other test modules named in a64_modules (none spawns a binary),
#                               then one end-to-end `train` run of the tutorial that must pick
#                               NEON by itself and print its accuracy;
#   x86-64 with fewer features : the kernel tests under `qemu-x86_64 -cpu Nehalem` (SSE4.2, no
#                               AVX), so detection and fallback meet a CPU that really lacks
#                               AVX2 and AVX-512 (they must run exactly sse2 and scalar);
#   aarch64-apple-darwin,      : `cargo check` of the library and the binaries, std built from
#   x86_64-pc-windows-gnu        Debian's rust-web-src (-Zbuild-std); nothing is linked or run.
# Installs what it needs from Debian's archive; says SKIPPED (not silently) where it cannot.
# CROSS_SKIP=1 skips it all with a message.
# Under qemu the property tests run PROPTEST_CASES (default 32) cases each instead of 256: the
# native test run keeps the full count; what qemu adds is another CPU, not more inputs.
# Every build with Debian's toolchain shares one target directory (target/cross), so the
# build scripts and proc macros are compiled once for all four of its targets.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/section.sh
SECTION_PREFIX="cross: "
trap section_table EXIT
export PROPTEST_CASES="${PROPTEST_CASES:-32}"

if [ "${CROSS_SKIP:-0}" = 1 ]; then
    echo "cross: SKIPPED (CROSS_SKIP=1)"
    exit 0
fi
if [ "$(uname -m)" != x86_64 ] || ! command -v apt-get >/dev/null; then
    echo "cross: SKIPPED (needs an x86-64 Debian machine with apt-get; this is $(uname -m))"
    exit 0
fi

section "packages (Debian's rustc-web/cargo-web 1.96, arm64 std, cross gcc, qemu-user)"
pkgs="rustc-web cargo-web rust-web-clippy rust-web-src libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binutils-mingw-w64-x86-64"
if ! dpkg -s $pkgs >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    dpkg --add-architecture arm64
    # Wait for a dpkg lock that another apt-get holds instead of failing at once.
    apt="apt-get -o DPkg::Lock::Timeout=600"
    if ! { $apt update -q && $apt install -y -q --no-install-recommends $pkgs; }; then
        echo "cross: SKIPPED (Debian's archive could not be reached or lacks: $pkgs)"
        exit 0
    fi
fi

# Debian's toolchain is in /usr/bin, behind rustup's proxies on PATH: name rustc and rustdoc
# (a bare /usr/bin/cargo would run rustup's rustc), and leave PATH alone.
DCARGO=/usr/bin/cargo
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR=target/cross
A64=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# No `-L /usr/aarch64-linux-gnu`: with it qemu loads the cross ld.so next to the multiarch
# libc6:arm64 that the arm64 std pulls in, and every thread spawn hangs.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
# Line tables are enough for a backtrace under qemu, and compile and link in less time than
# full debug info (this target directory is only for these checks).
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
"$RUSTC" -V

section "clippy for $A64 (-D warnings; code behind cfg(x86_64) must not leave dead code)"
CARGO=$DCARGO /usr/bin/cargo-clippy clippy --target $A64 --lib --bins -- -D warnings

section "tests for $A64 built (the unit tests and the two integration-test crates)"
export MNIST_LOGREG_EXPECT_SIMD=neon,scalar
a64_tests=(--target $A64 --lib --test library --test cli)
# The modules of the test crates (tests/library/, cli/tests/cli/) that run under qemu: the ones
# that spawn no binary (a test-name filter: a module's tests are named `module::…`).
a64_modules=(kernels:: public_api:: idx:: hostile_input:: preprocess:: checkpoint:: sampler::)
$DCARGO test "${a64_tests[@]}" --no-run
section "those tests run under qemu-aarch64 ($PROPTEST_CASES proptest cases)"
# Two runs of the same build: the unit tests whole, then the chosen modules of the test crates.
{
    $DCARGO test --target $A64 --lib -- --nocapture
    $DCARGO test --target $A64 --test library --test cli -- --nocapture "${a64_modules[@]}"
} 2>&1 | tee target/cross-tests.log \
    | grep -E "SIMD paths under test|^test result|FAILED|panicked"
grep -q "SIMD paths under test on this CPU: neon, scalar" target/cross-tests.log
if grep -q "FAILED" target/cross-tests.log; then
    echo "cross: aarch64 tests failed" >&2
    exit 1
fi

section "the tutorial end to end on $A64 (train picks NEON by itself)"
# The `train` that the test build above built beside the integration tests (a `cargo build
# --bin train` would build the crate again: without the dev-dependencies, some dependencies'
# features differ). The same command with --no-run is a no-op that makes sure it is current.
$DCARGO test "${a64_tests[@]}" --no-run --quiet
env -u MNIST_LOGREG_SIMD qemu-aarch64-static "$CARGO_TARGET_DIR/$A64/debug/train" \
    --data data/mnist --show 0 | tee target/cross-train.log | grep -E "^Test Accuracy|^timing"
grep -q "simd neon (4 lanes)" target/cross-train.log
grep -q "^Test Accuracy: 0\.91" target/cross-train.log

section "cargo check --lib --bins for aarch64-apple-darwin and x86_64-pc-windows-gnu"
# -D warnings: code behind cfg(unix) or cfg(x86_64) must not leave dead code there either.
# One invocation for both targets: the host's build scripts and proc macros are built once,
# and the two std builds run in parallel.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-D warnings" \
    $DCARGO check --quiet --target aarch64-apple-darwin --target x86_64-pc-windows-gnu \
    -Zbuild-std --lib --bins
echo "aarch64-apple-darwin, x86_64-pc-windows-gnu: cargo check passed"

section "x86-64 kernel tests without AVX (qemu-x86_64 -cpu Nehalem; $PROPTEST_CASES cases)"
# The host build of CI's own toolchain: the runner does not change fingerprints, so this reuses
# the test binary that the main test run built.
unset RUSTC RUSTDOC CARGO_TARGET_DIR CARGO_PROFILE_DEV_DEBUG
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64-static -cpu Nehalem" \
MNIST_LOGREG_EXPECT_SIMD=sse2,scalar \
    cargo test --all-features --test library -- --nocapture kernels:: 2>&1 | tee target/nehalem.log \
    | grep -E "SIMD paths under test|^test result"
grep -q "SIMD paths under test on this CPU: sse2, scalar" target/nehalem.log
grep -q "^test result: ok" target/nehalem.log
section_table
trap - EXIT
echo "== cross: passed"
