#!/usr/bin/env bash
# The thread policy's bench (`share.rs`): the default `train` (one thread per core, sharing
# chosen by measurement) against `--threads 1`, on a quiet machine, beside a CPU hog
# (`yes > /dev/null`, started 0.2 s before the run) and with two runs at once; also the epoch
# at batch 256 and the FMA floors (the roofline bench's peak probe, each round). RUNS rounds,
# the cases interleaved within each; prints medians with the fastest and slowest run.
#
#   scripts/busy.sh [RUNS]          (default 7; builds the release binary and the bench)
#
# Floors as in scripts/train_vs_floor.sh: the loop's FLOP (2·2·784·10 per row, 256 000 rows)
# at the FMA peak of the SIMD path `train` picks, on 2 threads (1 for `--threads 1`).
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
bin=target/release/train
path=$("$bin" --show 0 --steps 1 2>/dev/null | sed -n 's/^timing:.* simd \([a-z0-9]*\) .*/\1/p')
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

run() { # the loop ms of one run and its "calls shared N, alone M", from its timing line
    "$bin" --show 0 "$@" 2>/dev/null |
        sed -n 's/^timing:.* train \([0-9.]*\) ms.*calls shared \([0-9]*\), alone \([0-9]*\).*/\1 \2 \3/p; s/^timing:.* train \([0-9.]*\) ms.*threads 1$/\1/p'
}
hog() { yes >/dev/null & echo $!; }

for _ in $(seq "$runs"); do
    echo "quiet default $(run)" >>"$out/t"
    echo "quiet threads1 $(run --threads 1)" >>"$out/t"
    echo "epoch default $(run --epochs 1 --shuffle epoch)" >>"$out/t"
    "$bench" --bench --peaks-only 2>/dev/null |
        sed -n "s/^FMA peak $path: \([0-9.]*\) GFLOP\/s (1 thread), \([0-9.]*\).*/peak x \1 \2/p" >>"$out/t"
    h=$(hog)
    sleep 0.2
    echo "hog default $(run)" >>"$out/t"
    kill "$h"; wait "$h" 2>/dev/null || true
    h=$(hog)
    sleep 0.2
    echo "hog threads1 $(run --threads 1)" >>"$out/t"
    kill "$h"; wait "$h" 2>/dev/null || true
    run >"$out/a" & run >"$out/b"; wait
    echo "two default $(cat "$out/a")" >>"$out/t"
    echo "two default $(cat "$out/b")" >>"$out/t"
    run --threads 1 >"$out/a" & run --threads 1 >"$out/b"; wait
    echo "two threads1 $(cat "$out/a")" >>"$out/t"
    echo "two threads1 $(cat "$out/b")" >>"$out/t"
done

python3 - "$out/t" "$path" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$runs" <<'EOF'
import statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault((f[0], f[1]), []).append([float(v) for v in f[2:]])
def col(key, i=0):
    return [r[i] for r in rows.get(key, []) if len(r) > i]
def fmt(v):
    return f"{st.median(v):.1f} ({min(v):.1f}–{max(v):.1f})" if v else "—"
p1, p2 = st.median(col(("peak", "x"), 0)), st.median(col(("peak", "x"), 1))
floor = lambda rows_, peak: rows_ * 2 * 2 * 784 * 10 / peak / 1e6  # ms
print(f"{sys.argv[3]}, SIMD path {sys.argv[2]}, {sys.argv[4]} interleaved rounds; "
      f"loop ms of `train --show 0`: median (fastest–slowest)")
print(f"FMA peak {p1:.0f} GFLOP/s (1 thread), {p2:.0f} (2 threads); 1000-step loop floor "
      f"{floor(256_000, p2):.1f} ms (2 threads), {floor(256_000, p1):.1f} ms (1 thread)")
print("| machine | default | `--threads 1` | default ÷ `--threads 1` | calls shared (median of runs) |")
print("| --- | --- | --- | --- | --- |")
for case, name in [("quiet", "quiet"), ("hog", "beside `yes > /dev/null`"), ("two", "two runs at once")]:
    d, t = col((case, "default")), col((case, "threads1"))
    shared, alone = col((case, "default"), 1), col((case, "default"), 2)
    ratio = f"{st.median(d) / st.median(t):.2f}×" if d and t else "—"
    calls = f"{st.median(shared):.0f} of {st.median(s + a for s, a in zip(shared, alone)):.0f}" if shared else "—"
    print(f"| {name} | {fmt(d)} | {fmt(t)} | {ratio} | {calls} |")
qd, qt = col(("quiet", "default")), col(("quiet", "threads1"))
ep = col(("epoch", "default"))
print(f"quiet default ÷ 2-thread floor: {st.median(qd) / floor(256_000, p2):.2f}×; "
      f"`--threads 1` ÷ 1-thread floor: {st.median(qt) / floor(256_000, p1):.2f}×; "
      f"slowest ÷ fastest quiet default: {max(qd) / min(qd):.2f}")
print(f"epoch at batch 256 (`--epochs 1 --shuffle epoch`): {fmt(ep)} ms, "
      f"÷ 2-thread floor of 60 000 rows: {st.median(ep) / floor(60_000, p2):.2f}×")
EOF
