"""How long `harness build` takes when nothing changed (target: under 5 s).

Prints the wall time of a cache-hit rebuild of the CPU image, and, as a baseline measured in
the same run, the time of the smallest engine round trip from a fresh Python process
(import the Docker SDK, ping the engine): the floor any command that talks to the engine
pays. Run after one full build: `.venv/bin/python benchmarks/rebuild_speed.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 5.0
REPEATS = 5


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, result.stdout


def main() -> None:
    build = [sys.executable, "-m", "harness", "-q", "build", "--variant", "cpu", "--json"]
    timed(build)  # builds when the image is missing, so the loop below only hits
    rebuilds = []
    for _ in range(REPEATS):
        seconds, out = timed(build)
        if not json.loads(out)["cached"]:
            sys.exit("the rebuild was not a cache hit: something changes between builds")
        rebuilds.append(seconds)
    ping = [sys.executable, "-c", "import docker; docker.from_env().ping()"]
    baselines = [timed(ping)[0] for _ in range(REPEATS)]

    rebuild, baseline = statistics.median(rebuilds), statistics.median(baselines)
    print(f"cache-hit rebuild (median of {REPEATS}): {rebuild:.2f} s")
    print(f"engine round trip baseline:            {baseline:.2f} s")
    print(f"ratio to baseline:                      {rebuild / baseline:.1f}x")
    print(
        f"ratio to the {TARGET_SECONDS:.0f} s target:                {rebuild / TARGET_SECONDS:.2f}"
    )


if __name__ == "__main__":
    main()
