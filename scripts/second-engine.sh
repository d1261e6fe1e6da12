#!/usr/bin/env bash
# A second, independent Docker engine on this machine: another "host" for cross-host runs
# and their tests. It has its own socket, data root, exec root and containerd namespaces,
# and its own bridge, so that starting or stopping it never touches the first engine's
# docker0.
#
#   scripts/second-engine.sh start DIR   start it with its state under DIR; prints its URL
#   scripts/second-engine.sh stop DIR    stop it and remove DIR
set -euo pipefail
action="${1:-}"
state="${2:-}"
if [ -z "$action" ] || [ -z "$state" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi
state="$(mkdir -p "$state" && cd "$state" && pwd)"
# Unix socket paths are limited to 108 bytes: containerd's live under a short exec root.
exec_root="/tmp/harness-engine-$(printf '%s' "$state" | sha256sum | cut -c1-8)"
bridge="${HARNESS_SECOND_BRIDGE:-harnessb0}"
socket="$state/docker.sock"

case "$action" in
start)
    if [ "$(id -u)" != 0 ]; then
        echo "second-engine: starting dockerd needs root" >&2
        exit 2
    fi
    if DOCKER_HOST="unix://$socket" docker info >/dev/null 2>&1; then
        echo "unix://$socket"
        exit 0
    fi
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add name "$bridge" type bridge
        ip addr add "${HARNESS_SECOND_BRIDGE_CIDR:-10.213.0.1/24}" dev "$bridge"
        ip link set "$bridge" up
    fi
    namespace="harness-$(basename "$exec_root")"
    nohup dockerd \
        --data-root "$state/data" \
        --exec-root "$exec_root" \
        --pidfile "$state/docker.pid" \
        --host "unix://$socket" \
        --bridge "$bridge" \
        --iptables=false \
        --ip-masq=false \
        --containerd-namespace "$namespace" \
        --containerd-plugins-namespace "$namespace-plugins" \
        >"$state/dockerd.log" 2>&1 &
    for _ in $(seq 60); do
        if DOCKER_HOST="unix://$socket" docker info >/dev/null 2>&1; then
            echo "unix://$socket"
            exit 0
        fi
        sleep 1
    done
    echo "second-engine: dockerd did not answer within 60 s; read $state/dockerd.log" >&2
    exit 2
    ;;
stop)
    if [ -f "$state/docker.pid" ]; then
        pid="$(cat "$state/docker.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
    fi
    # Whatever the daemon left mounted must go before its files can.
    { grep -o " $state/data[^ ]*\| $exec_root[^ ]*" /proc/mounts || true; } | sort -r |
        while read -r mount; do
            umount -l "$mount" 2>/dev/null || true
        done
    rm -rf "$state" "$exec_root"
    # The bridge goes with the last engine that used it.
    if ! pgrep -f -- "--bridge $bridge" >/dev/null && ip link show "$bridge" >/dev/null 2>&1; then
        ip link delete "$bridge" 2>/dev/null || true
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
