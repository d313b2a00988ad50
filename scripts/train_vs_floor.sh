#!/usr/bin/env bash
# The `train` binary against the FMA floor, measured in one run: the roofline bench's probes
# (FMA peak of the best path on 1 and 2 threads) and its loop on the same kernel, interleaved
# with RUNS runs of each `train` case. Prints medians and their ratios to the floor.
#
#   scripts/train_vs_floor.sh [RUNS]      (default 7; builds the release binary and bench)
#
# A measurement for the README and the issue notes, not a test: it passes or fails nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
cargo build --release --quiet --bin train
bench=$(cargo bench --bench roofline --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m.get("target", {}).get("name") == "roofline": print(m["executable"])')
path=$(target/release/train --show 0 --steps 1 2>/dev/null | sed -n 's/^timing:.* simd \([a-z0-9]*\) .*/\1/p')
out=$(mktemp)
trap 'rm -f "$out"' EXIT

timing() { # "load train eval" (ms) and the wall time of one `train` run
    local s e line
    s=$(date +%s%N)
    line=$(target/release/train --show 0 "$@" 2>/dev/null | grep '^timing')
    e=$(date +%s%N)
    echo "$line" | sed -E 's/.*load ([0-9.]+) ms, train ([0-9.]+) ms.*eval ([0-9.]+) ms.*/\1 \2 \3/' |
        tr '\n' ' '
    echo $(((e - s) / 1000))
}

for _ in $(seq "$runs"); do
    echo "default $(timing)" >>"$out"
    echo "threads1 $(timing --threads 1)" >>"$out"
    echo "epoch $(timing --epochs 1 --shuffle epoch)" >>"$out"
    echo "epoch8192 $(timing --epochs 1 --shuffle epoch --batch-size 8192)" >>"$out"
    echo "gemm $(timing --kernel gemm)" >>"$out"
    "$bench" --bench --quick --paths "$path" --kernels fused_u8,parallel_u8 2>/dev/null |
        awk -F'|' '/^FMA peak '"$path"':/ {print "peak", $0}
                   /^\| (fused_u8|parallel_u8) / {gsub(/ /, "", $2); print "bench_" $2, $8, $9, $12}' >>"$out"
    # The bench frees ~0.5 GB of huge pages on exit, and for a few seconds after that a run
    # measured 1.5–2× slower here: let the kernel finish before the next round.
    sleep 3
done

python3 - "$out" "$path" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'EOF'
import re, statistics as st, sys
rows = {}
peaks1, peaks2 = [], []
for line in open(sys.argv[1]):
    key, rest = line.split(" ", 1)
    if key == "peak":
        one, two = re.findall(r"([0-9.]+) GFLOP/s \(1 thread\), ([0-9.]+)", rest)[0]
        peaks1.append(float(one)); peaks2.append(float(two))
        continue
    rows.setdefault(key, []).append([float(v) for v in re.findall(r"[0-9.]+", rest)])
med = lambda key, col: st.median(r[col] for r in rows[key])
p1, p2 = st.median(peaks1), st.median(peaks2)
flop_row = 2 * 2 * 784 * 10
floor = lambda rows_, peak, passes=2: rows_ * flop_row / 2 * passes / peak / 1e6  # ms
loop2, loop1 = floor(256_000, p2), floor(256_000, p1)
epoch = floor(60_000, p2)
ev = floor(10_000, p2, 1)
print(f"{sys.argv[3]}, path {sys.argv[2]}, {len(peaks1)} interleaved rounds, medians")
print(f"FMA peak {p1:.0f} GFLOP/s (1 thread), {p2:.0f} (2 threads)")
print("| figure | ms | floor ms | ratio |")
print("| --- | --- | --- | --- |")
def row(name, ms, fl):
    print(f"| {name} | {ms:.1f} | {fl:.1f} | {ms / fl:.2f}× |")
row("bench loop, parallel_u8 (huge-page copy)", med("bench_parallel_u8", 0), loop2)
row("bench loop, parallel_u8 (mapped file)", med("bench_parallel_u8", 2), loop2)
row("`train` loop, default", med("default", 1), loop2)
row("bench loop, fused_u8, 1 thread", med("bench_fused_u8", 0), loop1)
row("`train --threads 1` loop", med("threads1", 1), loop1)
row("`train --epochs 1 --shuffle epoch` loop", med("epoch", 1), epoch)
row("same, `--batch-size 8192`", med("epoch8192", 1), epoch)
row("bench evaluation of 10 000, parallel_u8", med("bench_parallel_u8", 3), ev)
row("`train` evaluation of 10 000", med("default", 2), ev)
whole, gemm = med("default", 3) / 1e3, med("gemm", 3) / 1e3
print(f"| whole `train --show 0` process | {whole:.1f} | `--kernel gemm` process {gemm:.1f} | {whole / gemm:.3f}× |")
print(f"| `train` loop ÷ bench loop (mapped) | | | {med('default', 1) / med('bench_parallel_u8', 2):.2f}× |")
EOF
