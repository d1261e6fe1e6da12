"""What `harness run` costs over a plain `docker run` of the same command (target: < 1 s).

Both sides start the same image with the same mounts, user, read-only root and no network,
and run the same runtime on the same trivial experiment; harness adds its own work around
it (configuration, the image check, the record, hashing). Medians of several runs, measured
in one go. Run after one `harness build`: `.venv/bin/python benchmarks/run_overhead.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from project_copy import copy_project

REPEATS = 5
NOOP = """
def main(output, seed, inputs):
    (output / "done.txt").write_text("done")
    return {"ok": 1}
"""


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return seconds, result.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as folder:
        project = copy_project(Path(folder))
        pyproject = project / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text() + '\n[tool.harness.experiments.noop]\nentry = "noop:main"\n'
        )
        (project / "noop.py").write_text(NOOP)
        harness = [sys.executable, "-m", "harness", "-q", "run", "noop", "--json"]
        _, out = timed(harness, project)  # builds or finds the image first
        record = json.loads(out)[0]
        harness_times = [timed(harness, project)[0] for _ in range(REPEATS)]

        run_folder = project / ".harness" / "runs" / record["run_id"]
        env = [f"--env={key}={value}" for key, value in record["environment"].items()]
        plain = [
            "docker", "run", "--rm", "--network", "none", "--read-only",
            "--tmpfs", "/tmp:rw,nosuid,nodev,size=4g", "--user", "10001:10001",
            "--workdir", "/harness/project",
            "--volume", f"{project}:/harness/project:ro",
            "--volume", f"{run_folder / 'spec.json'}:/harness/spec.json:ro",
            "--volume", f"{run_folder / 'artifacts'}:/harness/out",
            "--volume", f"{run_folder / 'meta'}:/harness/meta",
            *env, record["image"]["id"],
            "python", "-P", "-m", "harness.runtime", "/harness/spec.json",
        ]  # fmt: skip
        docker_times = [timed(plain, project)[0] for _ in range(REPEATS)]

    with_harness, without = statistics.median(harness_times), statistics.median(docker_times)
    print(f"harness run (median of {REPEATS}):     {with_harness:.2f} s")
    print(f"plain docker run (median of {REPEATS}): {without:.2f} s")
    print(f"overhead:                         {with_harness - without:+.2f} s (target < 1 s)")
    print(f"ratio:                            {with_harness / without:.2f}x")


if __name__ == "__main__":
    main()
