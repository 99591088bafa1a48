#!/usr/bin/env bash
# The arm64 binary, tested on this amd64 machine under qemu-user on the C library of a real
# Debian arm64 userland (Bullseye's glibc 2.31, the oldest the package supports, and
# Bookworm's 2.36), unpacked here by debootstrap: it starts, serves its API, pages and
# metrics, and keeps a collection level with the amd64 binary over loopback, both ways; then
# the e2e tests of E2E_SUBSET run with every node arm64 on Bullseye's C library
# (MINGA_BIN=packaging/qemu-minga). Needs the binaries packaging/build-deb.sh built.
#
#   packaging/test-arm64.sh            # smoke and sync, then the e2e subset
#   packaging/test-arm64.sh --no-e2e   # smoke and sync only
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/checks.sh

# The e2e tests run against the arm64 binary: the CLI, the API's contract, pages, a sync across
# three nodes and through bundles, concurrent edits. Tests that time a budget (search within a
# second, soaks) or measure the host's memory are left to native runs: qemu-user is many times
# slower and its memory is the emulator's.
readonly E2E_SUBSET=(
    e2e::cli::
    e2e::api::
    e2e::web::
    e2e::network::an_entry_added_on_a_reaches_c_through_b
    e2e::network::concurrent_edits_merge_with_nothing_lost
    e2e::network::private_entries_stay_home_and_tombstones_travel
    e2e::bundles::two_nodes_converge_through_bundles_alone
)

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
arm=packaging/qemu-minga
amd=$target_dir/x86_64-unknown-linux-gnu/release/minga
arm_bin=$target_dir/aarch64-unknown-linux-gnu/release/minga

for tool in qemu-aarch64-static:qemu-user-static debootstrap:debootstrap; do
    command -v "${tool%%:*}" >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool##*:}"
    }
done

# The arm64 userlands, unpacked once (debootstrap's first stage: no arm64 code runs). Debian's
# cross C library (libc6-arm64-cross) is not one: under qemu-user every new thread of a binary
# loaded with it hangs in the dynamic loader.
roots=$target_dir/arm64-root
for release in bullseye bookworm; do
    if [ ! -x "$roots/$release/lib/aarch64-linux-gnu/libc.so.6" ]; then
        rm -rf "${roots:?}/$release"
        debootstrap --foreign --arch=arm64 --variant=minbase "$release" "$roots/$release" >/dev/null
    fi
done
export MINGA_ARM64_ROOT=$roots/bullseye

work=$target_dir/arm64-test
rm -rf "$work"
mkdir -p "$work/arm" "$work/amd"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap "exit 143" TERM INT

# start NAME BINARY [ARGS...]: a node on loopback in $work/NAME; sets `started` to its API address.
start() {
    local name=$1 bin=$2
    shift 2
    "$bin" --data-dir "$work/$name" node --api 127.0.0.1:0 --listen /ip4/127.0.0.1/tcp/0 \
        --no-mdns "$@" </dev/null >"$work/$name.log" 2>&1 &
    pids+=($!)
    started=$(wait_for_api "$work/$name/api.addr" $!)
}
# get ADDR PATH [CURL OPTIONS...]
get() { curl -fsS "${@:3}" "http://$1$2"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# eventually WHAT COMMAND...: until the command succeeds, for at most three minutes.
eventually() {
    local what=$1 tries=900
    shift
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ $tries -gt 0 ] || { echo "never: $what" >&2; return 1; }
        sleep 0.2
    done
}

echo "== the arm64 binary"
check "it is an AArch64 executable" bash -c "readelf -h '$arm_bin' | grep -q AArch64"
check "it needs no glibc newer than 2.31" \
    bash -c "objdump -T '$arm_bin' | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | grep -qx 'GLIBC_2.\(2[0-9]\|30\|31\)'"
check "minga --version under qemu matches the amd64 build" \
    test "$("$arm" --version)" = "$("$amd" --version)"

echo "== an arm64 node on Bullseye's C library serves its API and pages"
start arm "$arm"
addr_arm=$started
check "the API answers" get "$addr_arm" /api/v1/status -o /dev/null
check "the home page answers" bash -c "curl -fsS 'http://$addr_arm/' | grep -q '<html'"
check "the stylesheet answers" get "$addr_arm" /style.css -o /dev/null
check "/metrics answers" get "$addr_arm" /metrics -o /dev/null
arm_p2p=$(get "$addr_arm" /api/v1/status | json '["listen"][0]')

echo "== an arm64 node on Bookworm's C library"
MINGA_ARM64_ROOT=$roots/bookworm start bookworm "$arm"
check "it serves its API" get "$started" /api/v1/status -o /dev/null
kill -TERM "${pids[-1]}"
check "it stops cleanly on SIGTERM" wait "${pids[-1]}"
unset 'pids[-1]'

echo "== it syncs with an amd64 node over loopback"
start amd "$amd" --bootstrap "$arm_p2p"
addr_amd=$started
collection=$("$arm" --data-dir "$work/arm" collection create llakta --title "Llakta")
from_arm=$("$arm" --data-dir "$work/arm" add --collection llakta --kind history \
    --title "Escrito en arm64" --body "Desde la Raspberry." --license CC-BY-4.0 --lang es)
check "the amd64 node follows the arm64 node's collection" \
    "$amd" --data-dir "$work/amd" follow "$collection"
check "the arm64 entry reaches the amd64 node" \
    eventually "arm64 → amd64" get "$addr_amd" "/api/v1/entries/$from_arm"
from_amd=$("$amd" --data-dir "$work/amd" add --collection "$collection" --kind practice \
    --title "Escrito en amd64" --body "Desde el PC." --license CC-BY-4.0 --lang es)
check "the amd64 entry reaches the arm64 node" \
    eventually "amd64 → arm64" get "$addr_arm" "/api/v1/entries/$from_amd"
check "the arm64 node serves the synced entry's page" get "$addr_arm" "/entries/$from_amd" -o /dev/null
for name in amd arm; do
    kill -TERM "${pids[-1]}"
    check "the $name node stops cleanly on SIGTERM" wait "${pids[-1]}"
    unset 'pids[-1]'
done

if [ "${1:-}" != --no-e2e ]; then
    echo "== e2e tests against the arm64 binary: ${E2E_SUBSET[*]}"
    check "the e2e subset passes under qemu" \
        env MINGA_BIN="$PWD/$arm" cargo test -p minga-tests --test e2e -- "${E2E_SUBSET[@]}"
fi

summary
