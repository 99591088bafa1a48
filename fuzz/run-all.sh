#!/bin/sh
# Runs every fuzz target for a given number of executions (default 1,000,000), one job each,
# growing the corpus in fuzz/corpus/<target>/. Only a stable toolchain is needed: the
# sanitizer flags cargo-fuzz passes are unlocked with RUSTC_BOOTSTRAP.
#   fuzz/run-all.sh [runs] [extra libFuzzer flags...]
set -eu
cd "$(dirname "$0")"
runs=${1:-1000000}
[ $# -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    echo "== $target: $runs runs"
    cargo fuzz run "$target" -- -runs="$runs" -jobs=1 -rss_limit_mb=2048 -print_final_stats=1 "$@"
done
