#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io (and debootstrap, which
# `harness base` uses where no registry is reachable, and chromium, which renders the
# compare report in its test) when missing, and start dockerd in the background when
# nothing answers. Does nothing when an engine is already up.
set -euo pipefail
log_dir="${HARNESS_STATE_DIR:-.harness}"

need_packages=()
command -v dockerd >/dev/null 2>&1 || need_packages+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_packages+=(debootstrap)
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
if ((${#need_packages[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "engine: ${need_packages[*]} missing; install them as root (apt-get install ${need_packages[*]})" >&2
        exit 2
    fi
    echo "engine: installing ${need_packages[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "engine: no Docker engine answers; start one (as root: dockerd &) or set DOCKER_HOST" >&2
    exit 2
fi
mkdir -p "$log_dir"
echo "engine: starting dockerd (log: $log_dir/dockerd.log)" >&2
nohup dockerd >"$log_dir/dockerd.log" 2>&1 &
for _ in $(seq 60); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "engine: dockerd did not answer within 60 s; read $log_dir/dockerd.log" >&2
exit 2
