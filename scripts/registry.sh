#!/usr/bin/env bash
# A container registry on loopback (Debian's docker-registry, Distribution 2.8), for
# shipping images between engines by digest without any outside service.
#
#   scripts/registry.sh start DIR PORT [readonly]   serve 127.0.0.1:PORT from DIR; prints it
#   scripts/registry.sh stop DIR                    stop it and remove DIR
#
# Engines treat registries on 127.0.0.0/8 as insecure by default, so no TLS is needed.
# "readonly" starts one that refuses every push (to test how harness reports that).
set -euo pipefail
action="${1:-}"
state="${2:-}"
if [ -z "$action" ] || [ -z "$state" ]; then
    echo "usage: $0 start DIR PORT [readonly] | stop DIR" >&2
    exit 2
fi
mkdir -p "$state"
state="$(cd "$state" && pwd)"

case "$action" in
start)
    port="${3:?usage: $0 start DIR PORT [readonly]}"
    readonly_mode=false
    [ "${4:-}" = readonly ] && readonly_mode=true
    if ! command -v docker-registry >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            echo "registry: docker-registry missing; install it as root (apt-get install docker-registry)" >&2
            exit 2
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    fi
    cat >"$state/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $state/data
  maintenance:
    readonly:
      enabled: $readonly_mode
http:
  addr: 127.0.0.1:$port
CONFIG
    nohup docker-registry serve "$state/config.yml" >"$state/registry.log" 2>&1 &
    echo $! >"$state/registry.pid"
    for _ in $(seq 30); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/', timeout=2)" 2>/dev/null; then
            echo "127.0.0.1:$port"
            exit 0
        fi
        sleep 0.5
    done
    echo "registry: nothing answered on 127.0.0.1:$port; read $state/registry.log" >&2
    exit 2
    ;;
stop)
    if [ -f "$state/registry.pid" ]; then
        kill "$(cat "$state/registry.pid")" 2>/dev/null || true
    fi
    rm -rf "$state"
    ;;
*)
    echo "usage: $0 start DIR PORT [readonly] | stop DIR" >&2
    exit 2
    ;;
esac
