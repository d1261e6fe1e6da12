"""`harness verify --hosts local,B` against the slower host alone (goal: ratio <= 1.15).

Hosts work at the same time, so verifying on two should take about as long as on the
slower of them. Starts a second Docker engine on this machine (scripts/second-engine.sh),
puts the CPU image there once (save/load stream), then times, alternating:

- ``verify --hosts local``: this engine alone;
- ``verify --hosts b``: the second engine alone (files copied in, as for any remote host);
- ``verify --hosts local,b``: both; the baseline is the slower of the two alone.

Each verifies the three examples once (``--vary none --runs 1``): the same runs on either
host. Both engines share this machine's cores, so each host stands for a one-core machine:
one run at a time (``--jobs 1``), each held to one CPU (``--cpus 1``). Without the CPU
limit a run alone borrows the idle core (the engine's and the kernel's work beside the
interpreter), which two hosts on one machine cannot both do. On separate machines the
default jobs apply on each.

Needs root (it starts dockerd). Run after one build:
`.venv/bin/python benchmarks/hosts_parallel.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from project_copy import copy_project

from harness.config import load_config
from harness.engine import Engine
from harness.fleet import shipping
from harness.images import built as builtimages
from harness.images.base import find_base

REPOSITORY = Path(__file__).resolve().parent.parent
SCRIPTS = REPOSITORY / "scripts"
GOAL = 1.15


def script(*arguments: str) -> str:
    result = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(result.stderr.strip() or f"{arguments[0]} failed")
    return result.stdout.strip()


def project_copy(folder: Path, url: str) -> Path:
    copy_project(folder, experiments=True)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'\n[tool.harness.hosts]\nb = "{url}"\n')
    return folder


def verify(project: Path, hosts: str) -> tuple[float, float]:
    """Seconds one `harness verify --hosts HOSTS` takes, and the seconds the containers of
    the busiest host ran (the rest is harness's own work, and waiting for the other)."""
    command = [sys.executable, "-m", "harness", "-q", "verify", "--json", "--hosts", hosts]
    command += ["--vary", "none", "--runs", "1", "--jobs", "1", "--cpus", "1"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    document = json.loads(result.stdout)
    statuses = [host["status"] for host in document["hosts"]]
    if any(status not in ("control", "agreed") for status in statuses):
        sys.exit(f"--hosts {hosts}: {statuses}")
    runs = project / ".harness" / "runs"
    busiest = max(
        sum(
            json.loads((runs / run_id / "record.json").read_text())["timings"]["container_s"]
            for ids in host["runs"].values()
            for run_id in ids
        )
        for host in document["hosts"]
    )
    return seconds, busiest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternate the sides N times")
    rounds = parser.parse_args().rounds
    here = Engine.connect(None)
    with tempfile.TemporaryDirectory(prefix="harness-hosts-bench-") as state:
        url = script(str(SCRIPTS / "second-engine.sh"), "start", f"{state}/engine")
        try:
            # Built in the copy: a project's inputs (its commit time among them) name its
            # image, so that `--hosts b` finds there the very image built from them.
            project = project_copy(Path(state) / "project", url)
            build = [sys.executable, "-m", "harness", "-q", "build", "--variant", "cpu", "--json"]
            done = subprocess.run(build, cwd=project, capture_output=True, check=True)
            built = json.loads(done.stdout)
            there = Engine.connect(url)
            # The base image too: `--hosts b` alone finds its base there as on a host that
            # built the image, instead of bootstrapping Debian again.
            config = load_config(project)
            base = find_base(here, config)
            if base is None:
                sys.exit("the base image is missing: run `harness base` first")
            for image_id, reference in (
                (base.id, base.reference),
                (built["image_id"], built["reference"]),
            ):
                shipped = shipping.ship(
                    here, there, image_id=image_id, reference=reference, host="b", mode="stream"
                )
                print(f"{reference} on b by {shipped.method} in {shipped.seconds:.1f} s")
            info = there.image(built["image_id"])
            if info is None:
                sys.exit("the image did not arrive on b")
            builtimages.remember(there, info.labels[builtimages.LABEL_BUILD_INPUT], info.id)
            times: dict[str, list[float]] = {"local": [], "b": [], "local,b": []}
            running: dict[str, list[float]] = {"local": [], "b": [], "local,b": []}
            for number in range(1, rounds + 1):
                for hosts, seconds in times.items():
                    wall, busiest = verify(project, hosts)
                    seconds.append(wall)
                    running[hosts].append(busiest)
                    print(
                        f"round {number}: --hosts {hosts}: {wall:.1f} s "
                        f"(containers of the busiest host: {busiest:.1f} s)",
                        flush=True,
                    )
        finally:
            subprocess.run(
                [str(SCRIPTS / "second-engine.sh"), "stop", f"{state}/engine"], check=False
            )
    local, other, both = (statistics.median(times[h]) for h in ("local", "b", "local,b"))
    slower = max(local, other)
    # How much longer each host's containers ran with the other host beside them: the
    # machine's cores are shared, as two machines' would not be.
    contention = statistics.median(running["local,b"]) / max(
        statistics.median(running["local"]), statistics.median(running["b"])
    )
    rows = [
        (f"local alone (median of {rounds})", f"{local:.1f} s"),
        (f"b alone (median of {rounds})", f"{other:.1f} s"),
        ("one after another (local alone + b alone)", f"{local + other:.1f} s"),
        (f"both at once: --hosts local,b (median of {rounds})", f"{both:.1f} s"),
        (f"ratio to the slower alone (goal: <= {GOAL})", f"{both / slower:.3f}"),
        ("ratio to one after another", f"{both / (local + other):.3f}"),
        ("containers' time at once / alone (shared cores)", f"{contention:.3f}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(f"{label + ':':<{width}}{value}")


if __name__ == "__main__":
    main()
