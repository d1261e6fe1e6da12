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

# Everything CI checks: lint, formatting, types, then the tests (real engine included).
test: lint
    .venv/bin/pytest tests

# Fast feedback: unit tests only, no engine.
unit:
    .venv/bin/pytest tests/unit -q

lint:
    .venv/bin/ruff check harness tests benchmarks
    .venv/bin/ruff format --check harness tests benchmarks
    .venv/bin/mypy

# Rewrite the constraints files after changing the declared dependencies.
lock:
    {{harness}} lock
