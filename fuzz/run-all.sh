#!/bin/sh
# Runs every fuzz target (the protocol's and the node's) for a given number of executions
# (default 1,000,000), one job each, growing the corpus in fuzz/corpus/<target>/. Only a stable
# toolchain is needed: the sanitizer flags cargo-fuzz passes are unlocked with RUSTC_BOOTSTRAP.
# Extra flags go to libFuzzer, e.g. -max_total_time=600 to stop a slow target earlier.
#   fuzz/run-all.sh [runs] [extra libFuzzer flags...]
set -eu
cd "$(dirname "$0")"
runs=${1:-1000000}
[ $# -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    echo "== $target: $runs runs"
    cargo fuzz run --features node "$target" -- -runs="$runs" -jobs=1 -rss_limit_mb=2048 -print_final_stats=1 "$@"
done
