"""`harness verify` of the examples, runs at once against one at a time (goal: ratio <= 0.65).

Both sides verify the same examples in the same image with every variation (two control
runs and the run with all variations for each, then each variation alone where one
moved): once with ``--jobs 1``, the baseline, and once with the default number of jobs
(the machine's cores divided by the thread count). Both sides verify one copy of the
project, one after the other, as a user does many times a day (runs at once start the
longest first, by the times of the runs before), and the two verification documents must
give the same verdicts. With ``--rounds N`` the sides alternate N times and the medians
are compared.

Run after one `harness build`: `.venv/bin/python benchmarks/verify_parallel.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from project_copy import copy_project

GOAL = 0.65


def project_copy(folder: Path) -> Path:
    return copy_project(folder, experiments=True)


def verify(project: Path, jobs: list[str]) -> tuple[float, dict[str, Any]]:
    """Seconds one `harness verify` takes, and its document."""
    command = [sys.executable, "-m", "harness", "-q", "verify", "--json", *jobs]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    document: dict[str, Any] = json.loads(result.stdout)
    return seconds, document


def verdicts(document: dict[str, Any]) -> list[Any]:
    return [
        (e["name"], e["reproducible"], e["culprits"], [c["label"] for c in e["checks"]])
        for e in document["experiments"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternate the sides N times")
    rounds = parser.parse_args().rounds
    one_at_a_time: list[float] = []
    at_once: list[float] = []
    with tempfile.TemporaryDirectory(prefix="harness-verify-bench-") as folder:
        project = project_copy(Path(folder))
        # Builds or finds the image, so that neither side pays for it.
        build = [sys.executable, "-m", "harness", "-q", "build", "--json"]
        subprocess.run(build, cwd=project, capture_output=True, check=True)
        for number in range(1, rounds + 1):
            seconds, alone = verify(project, ["--jobs", "1"])
            one_at_a_time.append(seconds)
            print(f"round {number}: --jobs 1: {seconds:.1f} s", flush=True)
            seconds, together = verify(project, [])
            at_once.append(seconds)
            print(f"round {number}: default jobs: {seconds:.1f} s", flush=True)
            if verdicts(alone) != verdicts(together):
                sys.exit(f"the verdicts differ:\n{verdicts(alone)}\n{verdicts(together)}")
    baseline, parallel = statistics.median(one_at_a_time), statistics.median(at_once)
    cores = len(os.sched_getaffinity(0))
    rows = [
        ("cores", str(cores)),
        (f"baseline: verify --jobs 1 (median of {rounds})", f"{baseline:.1f} s"),
        (f"verify, default jobs (median of {rounds})", f"{parallel:.1f} s"),
        (f"ratio to baseline (goal: <= {GOAL})", f"{parallel / baseline:.3f}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(f"{label + ':':<{width}}{value}")


if __name__ == "__main__":
    main()
