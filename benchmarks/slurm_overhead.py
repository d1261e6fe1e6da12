"""What a run on a SLURM host costs beyond the batch job itself.

`harness run --hosts CLUSTER` stages a job folder (the project, the runtime, the spec),
submits a script that checks the environment, runs the experiment through the runtime,
then waits for the job through `scontrol` and brings its files back checked. In a
temporary project (one small experiment, no dependencies), this times, alternately and
``--repeats`` times each, on the cluster the client commands reach:

* ``sbatch --wait`` of a script that runs the same experiment with the same Python: the
  baseline, what the cluster itself costs for one short job,
* ``harness run --hosts cluster`` of that experiment (its environment made by the first
  run, reused by the others, which are the ones timed),
* ``harness --version``: what starting harness costs whatever it does,

and prints the medians and the ratio of the run, less harness's start, to the bare job.
Target: at most the bare job's time again (1.0x), for the staging, the environment check
and bringing the files back; the job itself is waited for by polling from a quarter
second, where ``sbatch --wait`` polls less often. It reports, it does not assert.

    scripts/slurm.sh start
    .venv/bin/python benchmarks/slurm_overhead.py [--repeats 5] [--partition debug]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPERIMENT = """\
import random


def fit(output, seed, inputs):
    rng = random.Random(seed)
    (output / "weights.txt").write_text(" ".join(str(rng.random()) for _ in range(1000)))
    return {}
"""
BARE = """\
#!/bin/sh
mkdir -p out
python3 -c 'import pathlib, tiny_train; tiny_train.fit(pathlib.Path("out"), 0, {})'
"""


def _seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--partition", default="debug")
    options = parser.parse_args()
    harness = [sys.executable, "-m", "harness"]
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    with tempfile.TemporaryDirectory(prefix="harness-slurm-bench-") as folder:
        root = Path(folder)
        (root / "pyproject.toml").write_text(
            '[project]\nname = "tiny"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            "dependencies = []\n\n[dependency-groups]\nexperiments = []\n\n"
            '[tool.harness.experiments.train]\nentry = "tiny_train:fit"\n'
            'outputs = ["weights.txt"]\n\n'
            f'[tool.harness.hosts.cluster]\nkind = "slurm"\npartition = "{options.partition}"\n'
            f"uv = {json.dumps(uv)}\n"
        )
        (root / "tiny_train.py").write_text(EXPERIMENT)
        (root / "bare.sh").write_text(BARE)
        _seconds([*harness, "lock"], root)
        bare_job = ["sbatch", "--wait", "--quiet", f"--partition={options.partition}"]
        bare_job += ["--output=/dev/null", "bare.sh"]
        run = [*harness, "run", "train", "--hosts", "cluster"]
        first = _seconds(run, root)  # makes the environment
        bare, harnessed, started = [], [], []
        for _ in range(options.repeats):
            bare.append(_seconds(bare_job, root))
            harnessed.append(_seconds(run, root))
            started.append(_seconds([*harness, "--version"], root))
    baseline, measured = statistics.median(bare), statistics.median(harnessed)
    start = statistics.median(started)
    print(f"sbatch --wait, bare job:        {baseline:6.2f} s (median of {options.repeats})")
    print(f"harness run --hosts cluster:    {measured:6.2f} s (first, making the environment: "
          f"{first:.2f} s)")  # fmt: skip
    print(f"harness --version (its start):  {start:6.2f} s")
    print(f"run less start against the bare job: {(measured - start) / baseline:.2f}x")


if __name__ == "__main__":
    main()
