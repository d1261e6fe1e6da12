"""How long it takes to put an image on another host that already has its layers (target: < 5 s).

Starts a second Docker engine and a loopback registry (scripts/second-engine.sh and
scripts/registry.sh), ships the CPU image there once through the registry, then times:

- shipping the same image again (the host holds it: harness only checks its ID);
- shipping a changed image whose layers the host holds but one small new layer (what a
  code change does), through the registry: only that layer is pushed and pulled;
- as the baseline, measured in the same run, the same changed image streamed with
  ``docker save | docker load``, which sends every layer whatever the host holds.

Needs root (it starts dockerd). Run after one build: `.venv/bin/python benchmarks/ship_speed.py`.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness.engine import Engine
from harness.fleet import shipping

REPOSITORY = Path(__file__).resolve().parent.parent
SCRIPTS = REPOSITORY / "scripts"
TARGET_SECONDS = 5.0
REPEATS = 5
CHANGES = 3


def script(*arguments: str) -> str:
    result = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(result.stderr.strip() or f"{arguments[0]} failed")
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def changed_image(engine: Engine, base: str, folder: Path) -> tuple[str, str]:
    """An image made of ``base`` plus one small new layer, as a code change makes."""
    (folder / "token").write_text(uuid.uuid4().hex)
    (folder / "Dockerfile").write_text(f"FROM {base}\nCOPY token /opt/token\n")
    reference = f"harness-ship-bench:{uuid.uuid4().hex[:8]}"
    return engine.build(folder, tag=reference), reference


def main() -> None:
    build = [sys.executable, "-m", "harness", "-q", "build", "--variant", "cpu", "--json"]
    subprocess.run(build, cwd=REPOSITORY, capture_output=True, check=True)
    here = Engine.connect(None)
    image = here.image("harness:cpu")
    if image is None:
        sys.exit("harness:cpu is missing: run `harness build` first")
    with tempfile.TemporaryDirectory(prefix="harness-ship-bench-") as state:
        engine_state, registry_state = f"{state}/engine", f"{state}/registry"
        references: list[str] = []
        try:
            url = script(str(SCRIPTS / "second-engine.sh"), "start", engine_state)
            registry = script(
                str(SCRIPTS / "registry.sh"), "start", registry_state, str(free_port())
            )
            there = Engine.connect(url)

            def ship(image_id: str, reference: str, mode: str) -> shipping.Shipment:
                return shipping.ship(
                    here,
                    there,
                    image_id=image_id,
                    reference=reference,
                    host="bench",
                    mode=mode,
                    registry=f"{registry}/bench",
                )

            first = ship(image.id, "harness:cpu", "registry")
            size = f"{image.size / 1e9:.2f} GB"
            print(f"first ship through the registry ({size}): {first.seconds:.1f} s")
            again = [ship(image.id, "harness:cpu", "registry").seconds for _ in range(REPEATS)]
            changed = []
            for _ in range(CHANGES):
                with tempfile.TemporaryDirectory() as context:
                    image_id, reference = changed_image(here, "harness:cpu", Path(context))
                references.append(reference)
                started = time.perf_counter()
                ship(image_id, reference, "registry")
                changed.append(time.perf_counter() - started)
            with tempfile.TemporaryDirectory() as context:
                image_id, reference = changed_image(here, "harness:cpu", Path(context))
            references.append(reference)
            started = time.perf_counter()
            ship(image_id, reference, "stream")
            baseline = time.perf_counter() - started
        finally:
            for reference in references:
                here.remove_image(reference)
            subprocess.run([str(SCRIPTS / "registry.sh"), "stop", registry_state], check=False)
            subprocess.run([str(SCRIPTS / "second-engine.sh"), "stop", engine_state], check=False)

    unchanged, one_layer = statistics.median(again), statistics.median(changed)
    target = f"the {TARGET_SECONDS:.0f} s target"
    rows = [
        (f"unchanged image, host holds it (median of {REPEATS})", f"{unchanged:.3f} s"),
        (f"one new layer, by registry (median of {CHANGES})", f"{one_layer:.2f} s"),
        ("baseline: the same change by save/load stream", f"{baseline:.1f} s"),
        ("ratio to baseline (one new layer)", f"{one_layer / baseline:.3f}"),
        (f"ratio to {target} (unchanged)", f"{unchanged / TARGET_SECONDS:.4f}"),
        (f"ratio to {target} (one new layer)", f"{one_layer / TARGET_SECONDS:.3f}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(f"{label + ':':<{width}}{value}")


if __name__ == "__main__":
    main()
