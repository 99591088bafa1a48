# shellcheck shell=bash
# Sourced by the packaging tests: named checks counted into the closing line, and the wait for a
# node's API. Each check prints what it verified; the first failure stops the script.

passed=0
failed=0

# check DESCRIPTION COMMAND...: runs the command; a non-zero exit is a failed check.
check() {
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $what"
    else
        failed=$((failed + 1))
        echo "FAILED: $what" >&2
        summary
        exit 1
    fi
}

summary() {
    echo "$(basename "$0" .sh): $passed passed, $failed failed"
}

# wait_for_api ADDR_FILE PID [CURL...]: the node's API address once api.addr names it and its
# status answers, or a failure when the process PID exits first or three minutes pass (qemu-user
# starts a node in seconds; a node still silent after minutes is stuck). CURL runs curl, e.g.
# inside a chroot.
wait_for_api() {
    local file=$1 pid=$2 tries=900 addr
    shift 2
    local curl=("${@:-curl}")
    while [ $tries -gt 0 ]; do
        kill -0 "$pid" 2>/dev/null || { echo "the node exited before its API answered" >&2; return 1; }
        if [ -s "$file" ]; then
            addr=$(cat "$file")
            if "${curl[@]}" -fsS -o /dev/null "http://$addr/api/v1/status" 2>/dev/null; then
                echo "$addr"
                return 0
            fi
        fi
        sleep 0.2
        tries=$((tries - 1))
    done
    echo "the node's API did not answer" >&2
    return 1
}
