#!/usr/bin/env bash
# The amd64 package under a real systemd: boots systemd as PID 1 of a container (new pid, mount,
# network, UTS and cgroup namespaces over a Debian bookworm root, so nothing reaches this
# machine's ports), installs the package, and checks that the unit passes
# `systemd-analyze verify`, that its sandboxed node starts on a fresh data dir without asking
# anything and serves on 127.0.0.1:7878, that `Restart=on-failure` brings it back after a kill,
# that an upgrade restarts it on the same keys, and that purge stops it. Records the unit's
# `systemd-analyze security` exposure. Needs root and packaging/build-deb.sh's package.
#
#   packaging/test-service.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Inside the new namespaces: the file systems systemd expects, then systemd itself.
if [ "${1:-}" = --boot ]; then
    root=$2
    mount --make-rprivate /
    # The root must be a mount point of its own for the unit's sandbox (its own mount namespace).
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --make-rslave "$root/sys"
    mount --rbind /dev "$root/dev"
    mount --make-rslave "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    cd "$root"
    mkdir -p .old-root
    pivot_root . .old-root
    exec /usr/bin/env container=minga-test sh -c 'umount -l /.old-root && exec /lib/systemd/systemd --system'
fi

here=packaging
. "$here/checks.sh"

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$target_dir/deb-test
seed=$work/bookworm-systemd
root=$work/service-root
next=$work/next

[ -e "$next/new.deb" ] || { echo "run packaging/test-deb.sh first: it makes the packages this test installs" >&2; exit 1; }

if [ ! -e "$seed/.complete" ]; then
    [ -e "$work/bookworm-seed/.complete" ] || { echo "run packaging/test-deb.sh first: it makes the bookworm root" >&2; exit 1; }
    rm -rf "$seed"
    cp -a "$work/bookworm-seed" "$seed"
    cp /etc/resolv.conf "$seed/etc/resolv.conf"
    mount -t proc proc "$seed/proc"
    chroot "$seed" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd systemd-sysv dbus man-db' ||
        { umount "$seed/proc"; exit 1; }
    umount "$seed/proc"
    touch "$seed/.complete"
fi

rm -rf "$root"
cp -a "$seed" "$root"
cp "$next/old.deb" "$next/new.deb" "$root/root/"

boot_pid=
cleanup() {
    local status=$?
    if [ $status != 0 ] && [ -n "$boot_pid" ]; then
        echo "== the service's state and log, for the failure above" >&2
        inside systemctl status minga --no-pager >&2 || true
        inside journalctl -u minga --no-pager -n 50 >&2 || true
    fi
    # Killing the container's PID 1 ends every process in it; its mounts go with its namespace.
    [ -z "$boot_pid" ] || kill -KILL "$boot_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap "exit 143" TERM INT
unshare --pid --fork --mount --net --uts --cgroup "$0" --boot "$root" >"$work/container.log" 2>&1 &
unshare_pid=$!

# The container's PID 1, once systemd runs there.
tries=300
until boot_pid=$(pgrep -P "$unshare_pid" -x systemd); do
    tries=$((tries - 1))
    if [ $tries = 0 ] || ! kill -0 "$unshare_pid" 2>/dev/null; then
        cat "$work/container.log" >&2
        exit 1
    fi
    sleep 0.2
done
inside() { nsenter -t "$boot_pid" -m -p -n -u -r -w "$@"; }
# until COMMAND...: polls the command in the container for at most three minutes.
until_inside() {
    local tries=900
    until inside "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ $tries -gt 0 ] || return 1
        sleep 0.2
    done
}
check "systemd boots in the container" \
    until_inside sh -c 'systemctl is-system-running | grep -qE "running|degraded"'

api() { inside curl -fsS "http://127.0.0.1:7878$1"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
restarts() { inside systemctl show minga -p NRestarts --value; }

echo "== install under systemd"
check "dpkg -i installs" inside dpkg -i /root/old.deb
check "systemd-analyze verify passes" inside systemd-analyze verify /lib/systemd/system/minga.service
check "the service is enabled" inside systemctl is-enabled minga
check "the service starts on a fresh data dir and serves its API" until_inside curl -fsS http://127.0.0.1:7878/api/v1/status
check "it runs as the minga user" \
    test "$(inside ps -o user= -p "$(inside systemctl show minga -p MainPID --value)")" = minga
peer_id=$(api /api/v1/status | json '["peer_id"]')
check "it has keys in /var/lib/minga" test -s "$root/var/lib/minga/author.key"
check "the home page answers" until_inside curl -fsS -o /dev/null http://127.0.0.1:7878/
exposure=$(inside systemd-analyze security minga.service --no-pager | tail -1)
echo "systemd-analyze security: $exposure"
inside systemd-analyze security minga.service --no-pager >"$work/security.txt"

echo "== Restart=on-failure"
before=$(restarts)
inside systemctl kill -s KILL minga
check "a killed node is restarted" until_inside sh -c "[ \"\$(systemctl show minga -p NRestarts --value)\" -gt $before ]"
check "and serves again on the same keys" \
    until_inside sh -c "curl -fsS http://127.0.0.1:7878/api/v1/status | grep -q '$peer_id'"

echo "== upgrade"
old_pid=$(inside systemctl show minga -p MainPID --value)
check "dpkg -i upgrades" inside dpkg -i /root/new.deb
check "the service was restarted on the new package" \
    test "$(inside systemctl show minga -p MainPID --value)" != "$old_pid"
check "the upgraded node serves on the same keys" \
    until_inside sh -c "curl -fsS http://127.0.0.1:7878/api/v1/status | grep -q '$peer_id'"

echo "== stop and purge"
check "systemctl stop stops it cleanly" inside systemctl stop minga
check "the node logged its clean stop" bash -c "nsenter -t $boot_pid -m -p -r -w journalctl -u minga --no-pager | grep -q 'stopped cleanly'"
check "dpkg -P purges" inside dpkg -P minga
check "the unit is gone" bash -c "! nsenter -t $boot_pid -m -p -r -w systemctl cat minga >/dev/null 2>&1"
check "the data dir is gone" test ! -e "$root/var/lib/minga"

echo "systemd-analyze security: $exposure (details in $work/security.txt)"
summary
