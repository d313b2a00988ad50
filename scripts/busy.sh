#!/usr/bin/env bash
# How `train` behaves when the machine is busy: the default run (one thread per core) against
# `--threads 1`, on a quiet machine, with a CPU hog (`yes > /dev/null`) holding one core, and
# two default runs at once. Prints the median of the 1000-step loop ("train … ms" of the
# timing line) over RUNS interleaved runs of each case.
#
#   scripts/busy.sh [RUNS]          (default 9; builds the release binary first)
#
# A measurement for the README and the issue notes, not a test: it passes or fails nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-9}
cargo build --release --quiet --bin train
bin=target/release/train
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

loop_ms() { # the loop time of one run, from its timing line
    "$bin" --show 0 "$@" 2>/dev/null | sed -n 's/^timing:.* train \([0-9.]*\) ms.*/\1/p'
}

for _ in $(seq "$runs"); do
    echo "quiet,default $(loop_ms)" >>"$out/t"
    echo "quiet,--threads 1 $(loop_ms --threads 1)" >>"$out/t"
    yes >/dev/null &
    hog=$!
    sleep 0.2
    echo "hog,default $(loop_ms)" >>"$out/t"
    echo "hog,--threads 1 $(loop_ms --threads 1)" >>"$out/t"
    kill "$hog"
    wait "$hog" 2>/dev/null || true
    loop_ms >"$out/a" &
    loop_ms >"$out/b"
    wait
    echo "two at once,default $(cat "$out/a")" >>"$out/t"
    echo "two at once,default $(cat "$out/b")" >>"$out/t"
done

python3 - "$out/t" "$runs" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'EOF'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    case, ms = line.rsplit(" ", 1)
    times[case].append(float(ms))
print(f"{sys.argv[3]}, {sys.argv[2]} interleaved runs per case; loop of the default run (ms)")
print("| machine | threads | median | min | max |")
print("| --- | --- | --- | --- | --- |")
for case, v in times.items():
    where, threads = case.split(",")
    print(f"| {where} | {threads} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
EOF
