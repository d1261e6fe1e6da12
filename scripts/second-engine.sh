#!/usr/bin/env bash
# A second, independent Docker engine on this machine: another "host" for cross-host runs
# and their tests. It has its own socket, data root, exec root and containerd namespaces,
# and its own bridge, so that starting or stopping it never touches the first engine's
# docker0.
#
#   scripts/second-engine.sh start DIR   start it with its state under DIR; prints its URL
#   scripts/second-engine.sh stop DIR    stop it and remove DIR
set -euo pipefail
# shellcheck source=scripts/daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
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
answers() { DOCKER_HOST="unix://$socket" docker info >/dev/null 2>&1; }

case "$action" in
start)
    if [ "$(id -u)" != 0 ]; then
        echo "second-engine: starting dockerd needs root" >&2
        exit 2
    fi
    if answers; then
        echo "unix://$socket"
        exit 0
    fi
    # An engine that died (killed, crashed) left its pid files: its dockerd and the
    # containerd it started would refuse to start over them.
    drop_stale_pidfile "$state/docker.pid" dockerd
    drop_stale_pidfile "$exec_root/containerd/containerd.pid" containerd
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
    wait_for_answer second-engine "unix://$socket" "$state/dockerd.log"
    ;;
stop)
    stop_pidfile "$state/docker.pid"
    unmount_under "$state/data" "$exec_root"
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
