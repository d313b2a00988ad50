#!/usr/bin/env bash
# The library's public surface as one number (issue 26: "≤ 150 public paths in its docs").
# Counts the entries of the `paths` map of rustdoc's JSON for the library built with
# `--no-default-features` that belong to the crate itself (crate_id 0): modules, types,
# functions, constants, traits, enum variants — every name a user can reach in the docs.
# `#[doc(hidden)]` and `pub(crate)` items are not in it; methods and fields are not counted.
# The JSON needs nightly rustdoc (and `jq` to read it); it is built in its own target
# directory (target/rdjson) so it does not evict the stable builds.
#
# `paths` names an item where it is defined (`compute::kernels::Batch`), so the listings walk
# the crate from its root instead, through the re-exports, and name each item as a user writes
# it (`kernels::Batch`; the shortest path when there are two). The walk must reach exactly
# the items `paths` counts; the script fails when it does not.
#
#   scripts/public_paths.sh           the count
#   scripts/public_paths.sh --list    the paths, sorted by kind and path, then the count
#   scripts/public_paths.sh --modules the count per public module (the root's own items as
#                                     "(root)"), then the count
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in "" | --list | --modules) ;; *)
    echo "usage: $0 [--list|--modules]" >&2
    exit 2
    ;;
esac
export CARGO_TARGET_DIR="$PWD/target/rdjson"
cargo +nightly rustdoc --quiet -p mnist-logreg --lib --no-default-features \
    -- -Z unstable-options --output-format json
json="$CARGO_TARGET_DIR/doc/mnist_logreg.json"

# The measure: the ids of the crate's own entries of `paths`, one a line.
counted() {
    jq -r '.paths | to_entries[] | select(.value.crate_id == 0) | .key' "$json" | sort
}

# One line per item reachable from the root: "id<TAB>kind<TAB>public::path".
walked() {
    jq -r '
      .index as $idx
      | def walk($id; $name; $prefix):
          ($idx[($id | tostring)]) as $it
          | if $it == null then empty  # hidden or private: not in the index
            else ($it.inner | keys[0]) as $k
              | if $k == "use" then
                  if $it.inner.use.id == null then empty
                  else walk($it.inner.use.id; $it.inner.use.name; $prefix) end
                else ($prefix + [$name]) as $p
                  | [$id, $k, ($p | join("::"))],
                    (if $k == "module" then
                       $it.inner.module.items[] as $c | walk($c; $idx[($c | tostring)].name; $p)
                     elif $k == "enum" then
                       $it.inner.enum.variants[] as $v
                       | [$v, "variant", (($p + [$idx[($v | tostring)].name]) | join("::"))]
                     else empty end)
                end
            end;
        [walk(.root; "mnist_logreg"; [])]
        | group_by(.[0]) | map(min_by(.[2] | length)) | .[]
        | "\(.[0])\t\(.[1])\t\(.[2])"' "$json"
}

if ! diff <(counted) <(walked | cut -f1 | sort) >/dev/null; then
    echo "$0: the walk from the root does not reach the items of \`paths\`:" >&2
    diff <(counted) <(walked | cut -f1 | sort) >&2 || true
    exit 1
fi
case "$mode" in
--list) walked | cut -f2,3 | sort -t$'\t' -k1,1 -k2,2 ;;
--modules) # a module and all below it count for it (`kernels::simd::Simd` for `kernels`)
    walked | cut -f2,3 | awk -F'\t' '
        { n = split($2, p, "::"); top[NR] = (n > 1 ? p[2] : "")
          if ($1 == "module" && n == 2) module[p[2]] = 1 }
        END { for (i = 1; i <= NR; i++) print (top[i] in module ? top[i] : "(root)") }' \
        | sort | uniq -c ;;
esac
counted | wc -l
