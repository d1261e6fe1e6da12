"""A research repository, from installing harness to a verified certificate: how long.

The project is the one of ``tests/integration/test_research_project.py``: a
requirements.txt, a training script run as a ``command`` that seeds nothing itself and logs
through a library that names its files after the time, its data declared as an input and
its logs excluded (the line `verify` gives). The script times, with the same clock:

- install: `uv build --wheel` of this checkout, a fresh virtual environment, the wheel
  installed into it, `harness keys generate`;
- init, lock, build (``--no-cache``: every layer made again), verify (two control runs,
  the run with every variation, as harness runs it), certify, `certificate verify`.

The baseline, measured in the same run: what a researcher does by hand to see whether the
script reproduces, without harness: a virtual environment with the same requirements,
then the script twice and its weights compared. The ratio says what the evidence costs.
Every image the script builds is removed at the end.

    .venv/bin/python benchmarks/research_project.py
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from uv import find_uv_bin

from harness.engine import Engine
from harness.images.build import StepImages
from tests.integration.test_research_project import TBLOG, TRAIN, _research_repository

REPOSITORY = Path(__file__).resolve().parent.parent
EXPERIMENT = (
    "[tool.harness.experiments.train]\n"
    'command = ["python", "train.py"]\n'
    'inputs = { train = "data/train.csv" }\n'
    'exclude = ["events.out.tfevents.*", "*.log"]\n'
)


def _environment(**extra: str) -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("PYTHONPATH", None)
    environment.pop("VIRTUAL_ENV", None)
    return {**environment, **extra}


def _timed(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, env=env or _environment(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def _install(folder: Path) -> Path:
    uv = find_uv_bin()
    dist, venv = folder / "dist", folder / "venv"
    subprocess.run([uv, "build", "--wheel", "--quiet", "--out-dir", str(dist), str(REPOSITORY)],
                   check=True)  # fmt: skip
    (wheel,) = dist.glob("harness-*.whl")
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin/python"), str(wheel)],
        check=True,
    )
    return venv / "bin" / "harness"


def _by_hand(folder: Path, project: Path) -> float:
    """The baseline: a venv with the requirements, the script twice, the weights compared."""
    started = time.perf_counter()
    uv = find_uv_bin()
    venv = folder / "by-hand"
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin/python"),
         "-r", str(project / "requirements.txt")],
        check=True,
    )  # fmt: skip
    outputs = []
    for number in (1, 2):
        out = folder / f"by-hand-{number}"
        out.mkdir()
        env = _environment(HARNESS_OUTPUT=str(out))
        _timed([str(venv / "bin/python"), "train.py"], cwd=project, env=env)
        outputs.append(out / "weights.npy")
    # The comparison a researcher makes by hand (unseeded, the two runs differ).
    same = filecmp.cmp(outputs[0], outputs[1], shallow=False)
    print(f"by hand, the script's two runs are {'identical' if same else 'different'}")
    return time.perf_counter() - started


def _project(folder: Path) -> Path:
    project = _research_repository(folder / "study")
    assert (project / "train.py").read_text() == TRAIN
    assert (project / "tblog.py").read_text() == TBLOG
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    return project


def _declare(project: Path, image: str) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("[tool.harness.experiments.")
    end = text.find("\n[", start + 1)
    text = text[:start] + EXPERIMENT + ("" if end == -1 else text[end:])
    pyproject.write_text(text.replace('image = "sgd-study"', f'image = "{image}"'))


class Harness:
    """The installed `harness`, timing each command; the build's step images kept to remove."""

    def __init__(self, executable: Path, keys: Path) -> None:
        self.executable = executable
        self.keys = keys
        self.steps: dict[str, float] = {}
        self.step_images: list[str] = []
        self.built: dict[str, Any] | None = None

    def __call__(self, name: str, *arguments: str, cwd: Path) -> str:
        clock = time.perf_counter()
        result = subprocess.run(
            [str(self.executable), *arguments], cwd=cwd,
            env=_environment(HARNESS_KEYS_DIR=str(self.keys)),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            sys.exit(f"harness {' '.join(arguments)} failed:\n{result.stderr}")
        self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - clock
        if arguments[:2] == ("-v", "build"):
            found = StepImages()
            for line in result.stderr.splitlines():
                found.feed(line)
            self.step_images = found.images
            self.built = json.loads(result.stdout)
        return result.stdout

    def to_certificate(self, project: Path, image: str) -> None:
        self("init", "init", cwd=project)
        _declare(project, image)
        self("lock", "lock", cwd=project)
        self("build", "-v", "build", "--no-cache", "--json", cwd=project)
        assert self.built is not None
        self("verify", "verify", cwd=project)
        certificate = json.loads(
            self("certify", "certify", "--key", str(self.keys / "bench.key"), "--json", cwd=project)
        )["certificate"]
        self("certificate verify", "certificate", "verify", certificate,
             "--key", str(self.keys / "bench.pub"), "--image", self.built["reference"],
             cwd=project)  # fmt: skip

    def clean(self, engine: Engine) -> None:
        if self.built is not None:
            info = engine.image(self.built["reference"])
            for tag in info.tags if info else ():
                engine.remove_image(tag)
        for step in reversed(self.step_images):
            engine.remove_unused_image(step)


def main() -> None:
    engine = Engine.connect()
    folder = Path(tempfile.mkdtemp(prefix="harness-research-"))
    image = f"harness-bench-research-{uuid.uuid4().hex[:8]}"
    harness: Harness | None = None
    try:
        started = time.perf_counter()
        harness = Harness(_install(folder), folder / "keys")
        harness("install", "keys", "generate", "--name", "bench", cwd=folder)
        harness.steps["install"] = time.perf_counter() - started
        harness.to_certificate(_project(folder), image)
        total = time.perf_counter() - started
        baseline = _by_hand(folder, folder / "study")
    finally:
        if harness is not None:
            harness.clean(engine)
        shutil.rmtree(folder, ignore_errors=True)
    print("install -> verified certificate, research repository (command, relative data, logs)")
    for name, seconds in harness.steps.items():
        print(f"  {name:<20} {seconds:7.1f} s")
    print(f"  {'total':<20} {total:7.1f} s")
    print(f"baseline (venv + the script twice by hand, no evidence): {baseline:.1f} s")
    print(f"ratio: {total / baseline:.1f}x the baseline")


if __name__ == "__main__":
    main()
