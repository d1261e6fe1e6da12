# What the scripts that keep a daemon of their own share (second-engine.sh, podman.sh):
# waiting for it to answer, its pid files, stopping it and unmounting what it left.
# Sourced, never run: each function ends the calling script where it says so.

# wait_for_answer NAME URL LOG: print URL and exit 0 once the caller's `answers` succeeds,
# or exit 2 after 60 s pointing at the daemon's log.
wait_for_answer() {
    local name="$1" url="$2" log="$3"
    for _ in $(seq 60); do
        if answers; then
            echo "$url"
            exit 0
        fi
        sleep 1
    done
    echo "$name: the daemon did not answer within 60 s; read $log" >&2
    exit 2
}

# drop_stale_pidfile FILE COMMAND: remove FILE when the process it names is gone or is not
# COMMAND (its id reused). A daemon that died (SIGKILL, a crash, the machine's OOM killer)
# leaves its pid file, and dockerd and containerd refuse to start over one.
drop_stale_pidfile() {
    local file="$1" command="$2" pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$command" ]; then
        return 0
    fi
    rm -f "$file"
}

# stop_pidfile FILE: end the process FILE names, giving it 30 s to exit.
stop_pidfile() {
    local file="$1" pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
}

# unmount_under PATH...: lazily unmount whatever is mounted at or below each PATH, deepest
# first: a daemon's mounts must go before its files can.
unmount_under() {
    local prefix
    for prefix in "$@"; do
        awk -v p="$prefix" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts
    done | sort -r | while read -r mount; do
        umount -l "$mount" 2>/dev/null || true
    done
}
