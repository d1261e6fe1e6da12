#!/usr/bin/env bash
# A Podman engine serving the Docker API on this machine: harness's engine for teams that
# run no Docker daemon, and the engine its Podman tests use. Its store, run folder and
# socket live under DIR, so it never touches another Podman's images. Installs Debian's
# podman when missing (root only).
#
#   scripts/podman.sh start DIR   start `podman system service` with its state under DIR;
#                                 prints its URL (unix://DIR/podman.sock)
#   scripts/podman.sh stop DIR    stop it and remove DIR
#
# As root, Podman cannot raise a container's limits past its own unless a containers.conf
# lets it ("error setting rlimits ... operation not permitted"): the one written here does.
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
socket="$state/podman.sock"
answers() { DOCKER_HOST="unix://$socket" docker version >/dev/null 2>&1; }

case "$action" in
start)
    if ! command -v podman >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            echo "podman: not installed; install it as root (apt-get install podman)" >&2
            exit 2
        fi
        echo "podman: installing Debian's podman" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
    fi
    if answers; then
        echo "unix://$socket"
        exit 0
    fi
    cat >"$state/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
CONF
    CONTAINERS_CONF="$state/containers.conf" nohup podman \
        --root "$state/storage" --runroot "$state/run" --storage-driver overlay \
        system service --time=0 "unix://$socket" >"$state/podman.log" 2>&1 &
    echo $! >"$state/podman.pid"
    wait_for_answer podman "unix://$socket" "$state/podman.log"
    ;;
stop)
    stop_pidfile "$state/podman.pid"
    # Containers' and the store's mounts must go before their files can.
    unmount_under "$state"
    rm -rf "$state"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
