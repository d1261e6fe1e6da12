# Recipes for working on harness. On a fresh machine run them through ./dev, which
# installs and starts what they need first (Docker engine, uv, the virtual environment).

harness := ".venv/bin/harness"

# The main job: check the lock, make the base image, build the CPU image, run the built-in
# examples twice each (exit 1 if any run fails or the two runs' artifacts differ) and
# compare the last two runs of the torch example artifact by artifact.
main:
    {{harness}} doctor
    {{harness}} lock --check
    {{harness}} base
    {{harness}} build --variant cpu
    {{harness}} run --repeat 2
    {{harness}} compare $({{harness}} runs list --experiment torch --last 2 --ids)

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
