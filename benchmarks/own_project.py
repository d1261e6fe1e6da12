"""A user's own project with harness installed as a tool: how long to a certificate, and how
slim its image is against the full CPU image.

Builds harness's wheel, installs it into a fresh virtual environment, makes a
scikit-learn-only project (a DVC-tracked table, one experiment) in a temporary folder, and
times `harness init` -> lock -> build -> run -> verify -> certify -> `certificate verify`:

- cold: a new project, its image built with `--no-cache` (every wheel downloaded; uv's
  resolver cache is whatever this machine holds);
- warm: the same sequence again on the same project (init changes nothing, the build is a
  cache hit).

Then, as the baseline measured in the same run on the same engine, builds the full CPU
image (numpy, scikit-learn, torch, TensorFlow: this repository's own dependency group)
with `--no-cache`, and prints the slim image's size and cold build time against it. Every
image the script builds is removed at the end, with the layers its builds made.

    .venv/bin/python benchmarks/own_project.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from project_copy import copy_project
from uv import find_uv_bin

from harness.engine import Engine
from harness.images.build import StepImages
from tests.integration.test_own_project import SKLEARN_TRAIN, dvc_tracked_table, new_project

REPOSITORY = Path(__file__).resolve().parent.parent


class Bench:
    def __init__(self, harness: Path, keys: Path) -> None:
        self.harness = harness
        self.keys = keys
        self.step_images: list[str] = []
        self.references: list[str] = []

    def call(self, *arguments: str, cwd: Path) -> tuple[float, str, str]:
        started = time.perf_counter()
        result = subprocess.run(
            [str(self.harness), *arguments],
            cwd=cwd,
            env={
                **_environment(),
                "HARNESS_KEYS_DIR": str(self.keys),
                # The bench key signs the runs as this host, then the certificate.
                "HARNESS_HOST_KEY": str(self.keys / "bench.key"),
            },
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"harness {' '.join(arguments)} failed:\n{result.stderr}")
        return seconds, result.stdout, result.stderr

    def build(self, cwd: Path, *extra: str) -> tuple[float, dict[str, Any]]:
        seconds, out, err = self.call("-v", "build", "--json", *extra, cwd=cwd)
        steps = StepImages()
        for line in err.splitlines():
            steps.feed(line)
        self.step_images += steps.images
        document: dict[str, Any] = json.loads(out)
        self.references.append(document["reference"])
        return seconds, document

    def to_certificate(self, root: Path, *, no_cache: bool) -> dict[str, float]:
        steps: dict[str, float] = {}
        steps["init"] = self.call("init", "fit=fraud.train:fit", cwd=root)[0]
        _declare_inputs(root)
        steps["lock"] = self.call("lock", cwd=root)[0]
        steps["build"], built = self.build(root, *(["--no-cache"] if no_cache else []))
        steps["size_bytes"] = float(built["size"])
        steps["run"] = self.call("run", cwd=root)[0]
        steps["verify"] = self.call("verify", cwd=root)[0]
        seconds, out, _ = self.call(
            "certify", "--key", str(self.keys / "bench.key"), "--json", cwd=root
        )
        steps["certify"] = seconds
        certificate = json.loads(out)["certificate"]
        steps["certificate verify"] = self.call(
            "certificate", "verify", certificate, "--key", str(self.keys / "bench.pub"),
            "--image", built["reference"], cwd=root,
        )[0]  # fmt: skip
        return steps

    def clean(self, engine: Engine) -> None:
        for reference in self.references:
            info = engine.image(reference)
            for tag in info.tags if info else ():
                engine.remove_image(tag)
        for image in reversed(self.step_images):
            engine.remove_unused_image(image)


def _environment() -> dict[str, str]:
    import os  # noqa: PLC0415 - only for the subprocesses' environment

    environment = dict(os.environ)
    environment.pop("PYTHONPATH", None)
    environment.pop("VIRTUAL_ENV", None)
    return environment


def _declare_inputs(root: Path) -> None:
    pyproject = root / "pyproject.toml"
    header = "[tool.harness.experiments.fit]\n"
    text = pyproject.read_text()
    if "inputs = " not in text:
        pyproject.write_text(
            text.replace(
                header,
                header + 'inputs = { transactions = "data/transactions.csv" }\n'
                'outputs = ["importances.npy", "metrics.json"]\n',
            )
        )


def _sklearn_project(root: Path, image: str) -> Path:
    project = new_project(root, "fraud-model", ["numpy>=2.0", "scikit-learn>=1.5"])
    (project / "fraud").mkdir()
    (project / "fraud" / "__init__.py").write_text("")
    (project / "fraud" / "train.py").write_text(SKLEARN_TRAIN)
    dvc_tracked_table(project)
    # The image name is the machine's choice here, not the project's.
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text() + f'\n[tool.harness]\nimage = "{image}"\n'
    )
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    return project


def _install(folder: Path) -> Path:
    uv = find_uv_bin()
    subprocess.run(
        [uv, "build", "--wheel", "--quiet", "--out-dir", str(folder / "dist"), str(REPOSITORY)],
        check=True,
    )
    (wheel,) = (folder / "dist").glob("harness-*.whl")
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(folder / "venv")], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(folder / "venv/bin/python"), str(wheel)],
        check=True,
    )
    return folder / "venv" / "bin" / "harness"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-full", action="store_true", help="Leave out the full image.")
    options = parser.parse_args()
    engine = Engine.connect()
    tag = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="harness-own-project-"))
    bench = Bench(_install(folder), folder / "keys")
    try:
        bench.call("keys", "generate", "--name", "bench", cwd=folder)
        project = _sklearn_project(folder / "fraud", f"harness-bench-slim-{tag}")
        cold = bench.to_certificate(project, no_cache=True)
        warm = bench.to_certificate(project, no_cache=False)
        full: dict[str, Any] | None = None
        if not options.skip_full:
            # This repository's project: the full CPU image's dependencies and pins.
            copy = copy_project(folder / "full")
            # An image name of its own: never a tag of the repository's harness:cpu.
            pyproject = copy / "pyproject.toml"
            text = pyproject.read_text()
            assert 'image = "harness"\n' in text
            pyproject.write_text(
                text.replace('image = "harness"\n', f'image = "harness-bench-full-{tag}"\n')
            )
            seconds, built = bench.build(copy, "--no-cache")
            full = {"build_s": seconds, "size_bytes": built["size"]}
        _report(cold, warm, full)
    finally:
        bench.clean(engine)
        shutil.rmtree(folder, ignore_errors=True)


def _report(cold: dict[str, float], warm: dict[str, float], full: dict[str, Any] | None) -> None:
    def total(steps: dict[str, float]) -> float:
        return sum(v for k, v in steps.items() if k != "size_bytes")

    print("init -> verified certificate, scikit-learn project (harness installed from its wheel)")
    for name in ("init", "lock", "build", "run", "verify", "certify", "certificate verify"):
        print(f"  {name:<20} cold {cold[name]:7.1f} s   warm {warm[name]:7.1f} s")
    print(f"  {'total':<20} cold {total(cold):7.1f} s   warm {total(warm):7.1f} s")
    slim_mb = cold["size_bytes"] / 1e6
    print(f"slim image: {slim_mb:.0f} MB, cold build {cold['build']:.1f} s (--no-cache)")
    if full is not None:
        full_mb = full["size_bytes"] / 1e6
        print(f"full CPU image: {full_mb:.0f} MB, cold build {full['build_s']:.1f} s (--no-cache)")
        print(
            f"slim / full: size {slim_mb / full_mb:.3f}, "
            f"cold build time {cold['build'] / full['build_s']:.3f}"
        )


if __name__ == "__main__":
    main()
