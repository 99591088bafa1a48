#!/usr/bin/env bash
# Exercises the amd64 package with dpkg in a clean Debian bookworm root filesystem (debootstrap,
# then chroot; systemd does not run in a chroot, so the node is started by hand as the service
# would start it): install, run the node as the minga user, write an entry, upgrade to a
# repackaged revision (store and keys kept), remove (data kept), purge (data, user and config
# gone). Then lintian on every package in target/debian. Needs root and the packages built by
# packaging/build-deb.sh.
#
#   packaging/test-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
here=packaging
. "$here/checks.sh"

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$target_dir/deb-test
seed=$work/bookworm-seed
root=$work/root
unit=$here/debian/minga.service

for tool in debootstrap lintian; do
    command -v "$tool" >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool"
    }
done

# The packages under test: the newest amd64 one, and the same binary repackaged as the next
# revision to upgrade to.
deb=$(ls -t "$target_dir"/debian/minga_*_amd64.deb | head -1)
version=$(dpkg-deb -f "$deb" Version)
next=$work/next
rm -rf "$next"
mkdir -p "$next"
cp "$deb" "$next/old.deb"
dpkg-deb -R "$deb" "$next/tree"
next_version="${version%-*}-$((${version##*-} + 1))"
sed -i "s/^Version: .*/Version: $next_version/" "$next/tree/DEBIAN/control"
dpkg-deb --root-owner-group -b "$next/tree" "$next/new.deb" >/dev/null
echo "testing $deb ($version, then $next_version)"

if [ ! -e "$seed/.complete" ]; then
    rm -rf "$seed"
    debootstrap --variant=minbase --include=curl,ca-certificates,adduser,procps bookworm "$seed"
    touch "$seed/.complete"
fi

node_pid=
cleanup() {
    [ -z "$node_pid" ] || kill "$node_pid" 2>/dev/null || true
    mountpoint -q "$root/proc" && umount "$root/proc"
    true
}
trap cleanup EXIT
trap "exit 143" TERM INT
mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc"
rm -rf "$root"
cp -a "$seed" "$root"
mount -t proc proc "$root/proc"
cp "$next/old.deb" "$next/new.deb" "$root/tmp/"

in_root() { chroot "$root" "$@"; }
# As the service runs: its user, its environment, its command, stdin closed (no prompt may
# block it). The test's own addresses keep it off the ports of anything else on this machine.
# setpriv execs (runuser would fork), so the node keeps the pid the test signals.
read -ra as_minga <<<"chroot $root setpriv --reuid=minga --regid=minga --init-groups env $(sed -n 's/^Environment=//p' "$unit" | tr '\n' ' ')"
as_minga() { "${as_minga[@]}" "$@"; }
read -ra exec_start <<<"$(sed -n 's/^ExecStart=//p' "$unit")"
start_node() {
    rm -f "$root/var/lib/minga/api.addr"
    "${as_minga[@]}" "${exec_start[@]}" --api 127.0.0.1:0 --listen /ip4/127.0.0.1/tcp/0 --no-mdns \
        </dev/null >>"$work/node.log" 2>&1 &
    node_pid=$!
    addr=$(wait_for_api "$root/var/lib/minga/api.addr" "$node_pid" in_root curl)
}
stop_node() {
    kill -TERM "$node_pid"
    wait "$node_pid"
    node_pid=
}
# api PATH [CURL OPTIONS...]
api() {
    local path=$1
    shift
    in_root curl -fsS "$@" "http://$addr$path"
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "== install"
check "dpkg -i installs into a clean bookworm" in_root dpkg -i /tmp/old.deb
check "minga --version runs" in_root minga --version
check "the minga system user exists" in_root getent passwd minga
check "/var/lib/minga belongs to minga, mode 750" \
    test "$(in_root stat -c '%U:%G %a' /var/lib/minga)" = "minga:minga 750"
check "the data dir's config.toml is the conffile in /etc" \
    test "$(readlink "$root/var/lib/minga/config.toml")" = /etc/minga/config.toml
check "/etc/minga/config.toml is root:minga 640" \
    test "$(in_root stat -c '%U:%G %a' /etc/minga/config.toml)" = "root:minga 640"
check "the conffile is registered" grep -qx /etc/minga/config.toml "$root/var/lib/dpkg/info/minga.conffiles"
check "the man page is installed" test -s "$root/usr/share/man/man1/minga-node.1.gz"
check "bash completions are installed" test -s "$root/usr/share/bash-completion/completions/minga"
check "the unit is installed" cmp "$unit" "$root/usr/lib/systemd/system/minga.service"

echo "== the node, as the service starts it"
start_node
peer_id=$(api /api/v1/status | json '["peer_id"]')
check "the API answers with a peer id" test -n "$peer_id"
check "the home page answers" api / -o /dev/null
check "the store lives in /var/lib/minga" test -d "$root/var/lib/minga/store"
check "the API token is the minga user's alone" \
    test "$(in_root stat -c '%U %a' /var/lib/minga/api.token)" = "minga 600"
check "a collection is created" as_minga minga collection create paquete --title "Paquete"
entry=$(as_minga minga add --collection paquete --kind practice --title "Biol casero" \
    --body "Fermentar estiércol." --license CC-BY-4.0 --lang es)
check "an entry is written" test -n "$entry"
check "the entry is served" api "/api/v1/entries/$entry" -o /dev/null
stop_node
check "the node stopped cleanly" grep -q "stopped cleanly" "$work/node.log"

echo "== upgrade to $next_version"
check "dpkg -i upgrades" in_root dpkg -i /tmp/new.deb
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
installed=$(in_root dpkg-query -W -f '${Version}' minga)
check "the new version is installed" test "$installed" = "$next_version"
start_node
check "the keys are kept: same peer id" test "$(api /api/v1/status | json '["peer_id"]')" = "$peer_id"
check "the store is kept: the entry is still there" \
    test "$(api "/api/v1/entries/$entry" | json '["title"]')" = "Biol casero"
stop_node

echo "== remove"
check "dpkg -r removes" in_root dpkg -r minga
check "the binary is gone" test ! -e "$root/usr/bin/minga"
check "the store is kept" test -d "$root/var/lib/minga/store"
check "the user is kept" in_root getent passwd minga
check "the conffile is kept" test -e "$root/etc/minga/config.toml"

echo "== purge"
check "dpkg -P purges" in_root dpkg -P minga
check "the data dir is gone" test ! -e "$root/var/lib/minga"
check "the user is gone" bash -c "! chroot '$root' getent passwd minga"
check "the group is gone" bash -c "! chroot '$root' getent group minga"
check "/etc/minga is gone" test ! -e "$root/etc/minga"

echo "== lintian"
for package in "$target_dir"/debian/minga_"${version}"_*.deb; do
    echo "-- $package"
    check "lintian finds no error in $(basename "$package")" lintian --fail-on error "$package"
done

summary
