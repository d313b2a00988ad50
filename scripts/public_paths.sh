#!/usr/bin/env bash
# The library's public surface as one number (issue 26: "≤ 150 public paths in its docs").
# Counts the entries of the `paths` map of rustdoc's JSON for the library built with
# `--no-default-features` that belong to the crate itself (crate_id 0): modules, types,
# functions, constants, traits, enum variants — every name a user can reach in the docs.
# `#[doc(hidden)]` and `pub(crate)` items are not in it; methods and fields are not counted.
# The JSON needs nightly rustdoc (and `jq` to read it); it is built in its own target
# directory (target/rdjson) so it does not evict the stable builds.
#
#   scripts/public_paths.sh           the count
#   scripts/public_paths.sh --list    the paths, sorted by kind and path, then the count
#   scripts/public_paths.sh --modules the count per top-level module, then the count
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
# One line per path: "kind<TAB>a::b::c".
entries() {
    jq -r '.paths | to_entries[] | .value | select(.crate_id == 0)
        | "\(.kind)\t\(.path | join("::"))"' "$json"
}
case "$mode" in
--list) entries | sort -t$'\t' -k1,1 -k2,2 ;;
--modules) # by the module an item is defined in (`compute::`, `data::`, `output::` are private
    # groups): a module counts in its own line, the crate's root and its items as "(root)"
    entries | sed -E 's/\tmnist_logreg(::(compute|data|output))?/\t/; s/\t::/\t/' \
        | awk -F'\t' '{ n = split($2, p, "::"); print (n > 1 || ($1 == "module" && n == 1) ? p[1] : "(root)") }' \
        | sort | uniq -c ;;
esac
entries | wc -l
