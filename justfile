# Recipes for working on harness. On a fresh machine run them through ./dev, which
# installs and starts what they need first (Docker engine, uv, the virtual environment).

harness := ".venv/bin/harness"

# The main job on the built-in examples: check the lock, make the base and the CPU image,
# run each example twice (exit 1 if a run fails or its two runs' artifacts differ), compare
# the torch runs artifact by artifact, verify under every variation, certify the image with
# this machine's key (made on first use) and check the certificate as a deployer would.
main:
    #!/usr/bin/env bash
    set -euo pipefail
    {{harness}} doctor
    {{harness}} lock --check
    {{harness}} base
    {{harness}} build --variant cpu
    {{harness}} run --repeat 2
    {{harness}} compare $({{harness}} runs list --experiment torch --last 2 --ids)
    {{harness}} verify
    keys="${HARNESS_KEYS_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/harness/keys}"
    [ -f "$keys/harness.key" ] || {{harness}} keys generate
    certificate=$({{harness}} certify --tag --json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["certificate"])')
    {{harness}} certificate verify "$certificate" --key "$keys/harness.pub" --image harness:cpu

# The built-in examples on two engines: this machine's and a second dockerd started here
# (its own socket and data), the image shipped by digest through a registry on loopback.
# Every example runs on both; the certificate names both hosts ("2 of 2"). Needs root.
cross-host:
    #!/usr/bin/env bash
    set -euo pipefail
    state=$(mktemp -d -t harness-cross-host.XXXXXX)
    stop() {
        scripts/registry.sh stop "$state/registry" || true
        scripts/second-engine.sh stop "$state/engine" || true
        rm -rf "$state"
    }
    trap stop EXIT
    second=$(scripts/second-engine.sh start "$state/engine")
    port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    registry=$(scripts/registry.sh start "$state/registry" "$port")
    export HARNESS_REGISTRY="$registry/harness"
    {{harness}} base
    {{harness}} build --variant cpu
    # Each engine's runs are signed with a key of its own: hosts are counted by key.
    keys="${HARNESS_KEYS_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/harness/keys}"
    [ -f "$keys/harness.key" ] || {{harness}} keys generate
    [ -f "$keys/hosts/second.key" ] || {{harness}} keys generate --dir "$keys/hosts" --name second
    {{harness}} verify --vary none --runs 1 --hosts "local,second=$second"
    certificate=$({{harness}} certify --json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["certificate"])')
    {{harness}} certificate verify "$certificate" --key "$keys/harness.pub" --key "$keys/hosts/second.pub" --min-hosts 2

# Everything CI checks: lint, formatting, types, then the tests (real engine included).
test: lint
    .venv/bin/pytest tests --durations=15

# Fast feedback: unit tests only, no engine, on every core (pytest-xdist).
unit:
    .venv/bin/pytest tests/unit -q -n auto

lint:
    .venv/bin/ruff check harness tests benchmarks
    .venv/bin/ruff format --check harness tests benchmarks
    .venv/bin/mypy

# Rewrite the constraints files after changing the declared dependencies.
lock:
    {{harness}} lock
