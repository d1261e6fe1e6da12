"""How long until an experiment prints its first line, and what the image's bytecode buys.

Two ratios, each against a baseline measured in the same run, alternated, medians:

1. time to the experiment's first line: `harness run` of an experiment whose module imports
   torch and TensorFlow, against a plain `docker run` of the same image that imports the
   same and prints (same confinement: no network, read-only root, tmpfs /tmp, user 10001);
   goal <= 1.1x;
2. `import torch, tensorflow` in the image, against the same image with the bytecode of
   its environment removed (how images were built before: nothing compiled ahead of time);
   goal <= 0.6x.

Run after one `harness build` (it builds when the image is missing):
`.venv/bin/python benchmarks/first_line.py`. It removes the image it derives.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from project_copy import copy_project

REPEATS = 3
EXPERIMENT = """
import time

import tensorflow  # noqa: F401
import torch  # noqa: F401


def main(output, seed, inputs):
    print(f"first line at {time.time():.3f}", flush=True)
    (output / "done.txt").write_text("done")
    return {"ok": 1}
"""
PLAIN = "import time, torch, tensorflow; print(f'first line at {time.time():.3f}', flush=True)"
IMPORT = (
    "import time; t = time.perf_counter(); import torch, tensorflow; "
    "print(f'import {time.perf_counter() - t:.3f}')"
)
CONFINED = [
    "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=4g",
    "--user", "10001:10001",
]  # fmt: skip
WITHOUT_BYTECODE = """\
FROM {image}
USER 0
RUN find /opt/harness/venv -name __pycache__ -prune -exec rm -rf {{}} +
USER 10001:10001
"""


def run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{result.stderr[-2000:]}")
    return result.stdout


def first_line_after(started: float, text: str) -> float:
    for line in text.splitlines():
        if line.startswith("first line at "):
            return float(line.removeprefix("first line at ")) - started
    sys.exit(f"no first line in:\n{text[-2000:]}")


def harness_first_line(project: Path) -> float:
    started = time.time()
    out = run([sys.executable, "-m", "harness", "-q", "run", "first", "--json"], project)
    record = json.loads(out)[0]
    log = project / ".harness" / "runs" / record["run_id"] / "log.txt"
    return first_line_after(started, log.read_text())


def docker_first_line(image: str) -> float:
    started = time.time()
    return first_line_after(
        started, run(["docker", "run", *CONFINED, image, "python", "-c", PLAIN])
    )


def import_seconds(image: str) -> float:
    out = run(["docker", "run", *CONFINED, image, "python", "-c", IMPORT])
    return float(out.split()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="harness-first-line-") as folder:
        project = copy_project(Path(folder))
        pyproject = project / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text() + '\n[tool.harness.experiments.first]\nentry = "first:main"\n'
        )
        (project / "first.py").write_text(EXPERIMENT)
        out = run([sys.executable, "-m", "harness", "-q", "run", "first", "--json"], project)
        image = json.loads(out)[0]["image"]["id"]

        stripped = f"harness-bench-no-bytecode:{os.getpid()}"
        context = project / "derived"
        context.mkdir()
        (context / "Dockerfile").write_text(WITHOUT_BYTECODE.format(image=image))
        run(["docker", "build", "-q", "-t", stripped, str(context)])
        try:
            harness_times, docker_times, with_pyc, without_pyc = [], [], [], []
            for _ in range(REPEATS):
                harness_times.append(harness_first_line(project))
                docker_times.append(docker_first_line(image))
                with_pyc.append(import_seconds(image))
                without_pyc.append(import_seconds(stripped))
        finally:
            subprocess.run(["docker", "rmi", stripped], capture_output=True, check=False)

    first_h, first_d = statistics.median(harness_times), statistics.median(docker_times)
    new, old = statistics.median(with_pyc), statistics.median(without_pyc)
    print(f"image {image[:19]}, medians of {REPEATS}, alternated")
    print(f"first line, harness run:           {first_h:6.2f} s")
    print(f"first line, plain docker run:      {first_d:6.2f} s")
    print(f"  ratio:                           {first_h / first_d:6.2f}x  (goal <= 1.10x)")
    print(f"import torch, tensorflow, bytecode: {new:6.2f} s")
    print(f"  same image without bytecode:      {old:6.2f} s")
    print(f"  ratio:                            {new / old:6.2f}x  (goal <= 0.60x)")


if __name__ == "__main__":
    main()
