"""A user's own project, from scratch, with harness installed from its wheel as a tool.

Each project is made in a temporary folder (never inside this repository) and driven by a
`harness` installed into a fresh virtual environment from the wheel `uv build` makes of
this checkout, as a new user would: init, lock, build with harness's own Dockerfile, run,
verify, certify and `certificate verify`. One project needs only scikit-learn and reads a
DVC-tracked data file; the other trains with torch. Every image a test builds is removed
at the end, with the layers its build made and the frameworks images it made.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from uv import find_uv_bin

from harness.engine import Engine
from harness.images.build import StepImages
from tests.conftest import REPOSITORY
from tests.integration.conftest import image_name as session_image_name

SKLEARN_TRAIN = '''\
"""A random forest on a DVC-tracked table."""
import json
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def fit(output: Path, seed: int, inputs: dict, trees: int = 20) -> dict:
    data = np.loadtxt(inputs["transactions"], delimiter=",", skiprows=1)
    features, labels = data[:, :-1], data[:, -1]
    model = RandomForestClassifier(n_estimators=trees, random_state=seed).fit(features, labels)
    np.save(output / "importances.npy", model.feature_importances_)
    accuracy = float(model.score(features, labels))
    (output / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    return {"accuracy": accuracy}
'''

TORCH_TRAIN = '''\
"""A small regression network, trained a few steps."""
import json
from pathlib import Path

import torch


def train(output: Path, seed: int, inputs: dict, steps: int = 20) -> dict:
    features = torch.randn(256, 8)
    target = features @ torch.randn(8, 1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(features), target)
        loss.backward()
        optimiser.step()
    torch.save(model.state_dict(), output / "model.pt")
    (output / "metrics.json").write_text(json.dumps({"loss": float(loss)}))
    return {"loss": float(loss)}
'''


@dataclass
class Tool:
    """The `harness` of a fresh virtual environment, with the images its tests built."""

    executable: Path
    keys: Path
    built: list[str] = field(default_factory=list)
    frameworks: list[str] = field(default_factory=list)
    frameworks_used: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)

    def __call__(
        self, *arguments: str, cwd: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        # The runner's key signs the runs this host makes, and the certificate.
        environment = {
            **os.environ,
            "HARNESS_KEYS_DIR": str(self.keys),
            "HARNESS_HOST_KEY": str(self.keys / "runner.key"),
            **(env or {}),
        }
        # Nothing of this checkout may leak in: the tool runs from its own environment.
        environment.pop("PYTHONPATH", None)
        environment.pop("VIRTUAL_ENV", None)
        return subprocess.run(
            [str(self.executable), *arguments],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )

    def ok(self, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        result = self(*arguments, cwd=cwd)
        assert result.returncode == 0, f"harness {' '.join(arguments)}:\n{result.stderr}"
        return result

    def build(self, cwd: Path) -> dict[str, Any]:
        """`harness -v build --json`, remembering every image the build made."""
        result = self.ok("-v", "build", "--json", cwd=cwd)
        steps = StepImages()
        for line in result.stderr.splitlines():
            steps.feed(line)
        self.built += steps.images
        # A frameworks image this build made (not one it found: that one other images use).
        self.frameworks += re.findall(r"building (harness-frameworks:[0-9a-f]+):", result.stderr)
        self.frameworks_used += re.findall(r"(harness-frameworks:[0-9a-f]+)", result.stderr)[-1:]
        document: dict[str, Any] = json.loads(result.stdout)
        self.references.append(document["reference"])
        return document


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Tool]:
    """harness installed from its wheel into a virtual environment of its own."""
    folder = tmp_path_factory.mktemp("installed-harness")
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
    keys = folder / "keys"
    installed = Tool(folder / "venv" / "bin" / "harness", keys)
    generated = installed("keys", "generate", "--name", "runner", cwd=folder)
    assert generated.returncode == 0, generated.stderr
    yield installed
    for reference in installed.references:
        info = engine.image(reference)
        for tag in info.tags if info else ():
            engine.remove_image(tag)
    for image in reversed(installed.built):
        engine.remove_unused_image(image)
    for reference in reversed(installed.frameworks):  # a tier before the one it is on
        engine.remove_unused_image(reference)


def new_project(root: Path, name: str, dependencies: list[str]) -> Path:
    """A repository as its owners made it: pyproject.toml, code, a git commit; no harness."""
    root.mkdir()
    root.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    quoted = ", ".join(json.dumps(d) for d in dependencies)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f"dependencies = [{quoted}]\n"
    )
    return root


def commit(root: Path) -> None:
    identity = ["-c", "user.name=Owner", "-c", "user.email=owner@example.com"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", *identity, "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", *identity, "-C", str(root), "commit", "-qm", "work"], check=True)


def dvc_tracked_table(root: Path) -> None:
    """data/transactions.csv and the .dvc file `dvc add` would write beside it."""
    (root / "data").mkdir()
    rng = random.Random(7)  # noqa: S311 - data for a test, seeded on purpose
    rows = ["a,b,c,label"]
    for _ in range(200):
        a, b, c = (round(rng.uniform(-1, 1), 4) for _ in range(3))
        rows.append(f"{a},{b},{c},{int(a + b * c > 0)}")
    data = ("\n".join(rows) + "\n").encode()
    (root / "data" / "transactions.csv").write_bytes(data)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    (root / "data" / "transactions.csv.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {len(data)}\n  hash: md5\n  path: transactions.csv\n"
    )


def declare(root: Path, experiment: str, lines: str) -> None:
    """Add settings under the experiment table init wrote, as its owner would by hand."""
    pyproject = root / "pyproject.toml"
    header = f"[tool.harness.experiments.{experiment}]\n"
    text = pyproject.read_text()
    assert header in text
    pyproject.write_text(text.replace(header, header + lines))


def image_name(kind: str) -> str:
    """A name of this session's own, new at each call (see conftest.image_name)."""
    return session_image_name(f"own-{kind}-{uuid.uuid4().hex[:8]}")


def init_to_certificate(tool: Tool, root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """lock, build, run, verify, certify, certificate verify: the build and the run records."""
    tool.ok("lock", cwd=root)
    commit(root)
    built = tool.build(root)
    records = json.loads(tool.ok("run", "--json", cwd=root).stdout)
    assert {r["status"] for r in records} == {"succeeded"}
    verified = tool.ok("verify", "--json", cwd=root)
    assert all(e["reproducible"] for e in json.loads(verified.stdout)["experiments"])
    certified = json.loads(
        tool.ok("certify", "--key", str(tool.keys / "runner.key"), "--json", cwd=root).stdout
    )
    checked = tool.ok(
        "certificate", "verify", certified["certificate"],
        "--key", str(tool.keys / "runner.pub"), "--image", built["reference"],
        cwd=root,
    )  # fmt: skip
    assert "certificate verifies" in checked.stdout
    return built, records


def test_a_scikit_learn_project_from_init_to_a_verified_certificate(
    tool: Tool, tmp_path: Path, engine: Engine
) -> None:
    root = new_project(tmp_path / "fraud", "fraud-model", ["numpy>=2.0", "scikit-learn>=1.5"])
    (root / "fraud").mkdir()
    (root / "fraud" / "__init__.py").write_text("")
    (root / "fraud" / "train.py").write_text(SKLEARN_TRAIN)
    dvc_tracked_table(root)

    init = tool.ok("init", "fit=fraud.train:fit", cwd=root)
    assert "[dependency-groups] experiments = the project's dependencies" in init.stdout
    assert ".harness/" in (root / ".gitignore").read_text()
    assert tool.ok("init", "fit=fraud.train:fit", cwd=root).stdout.startswith("kept")
    declare(
        root,
        "fit",
        'inputs = { transactions = "data/transactions.csv" }\n'
        'outputs = ["importances.npy", "metrics.json"]\n',
    )
    pyproject = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        pyproject.replace('image = "fraud-model"', f'image = "{image_name("sklearn")}"')
    )

    built, (record,) = init_to_certificate(tool, root)
    assert not (root / "Dockerfile").exists()
    assert not (root / "build-constraints.txt").exists()
    labels = built["labels"]
    assert labels["io.harness.dockerfile"] == "harness:Dockerfile"
    installed = json.loads(
        engine.run(
            built["reference"],
            ["python", "-c", "import importlib.metadata as m, json; "
             "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"],
            timeout=120,
        ).output.strip().splitlines()[-1]
    )  # fmt: skip
    # Slim: the pins and harness's runtime, no framework the project does not use.
    assert "scikit-learn" in installed
    assert "harness" in installed
    assert not {"torch", "tensorflow", "tensorflow-cpu"} & set(installed)
    # Built on the frameworks image of its large pins (NumPy, SciPy, scikit-learn), whose
    # layers it shares: the small pins and harness's runtime are the layers on top.
    frameworks = engine.image_attributes(tool.frameworks_used[-1])
    image = engine.image_attributes(built["reference"])
    assert frameworks is not None and image is not None
    shared = frameworks["RootFS"]["Layers"]
    assert image["RootFS"]["Layers"][: len(shared)] == shared
    assert len(image["RootFS"]["Layers"]) == len(shared) + 2

    assert record["image"]["dockerfile"] == "harness:Dockerfile"
    assert record["inputs"]["transactions"]["verified"] is True
    assert record["inputs"]["transactions"]["dvc_file"] == "transactions.csv.dvc"

    # The user's mistakes: each a failed record and one line with the fix.
    pyproject = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        pyproject + '\n[tool.harness.experiments.typo]\nentry = "fraud.train:fitt"\n'
        '\n[tool.harness.experiments.glob]\nentry = "fraud.train:fit"\n'
        'inputs = { transactions = "data/transactions.csv" }\noutputs = ["model.pkl"]\n'
    )
    typo = tool("run", "typo", cwd=root)
    assert typo.returncode == 1
    assert "names 'fitt', which module 'fraud.train' does not define (it defines fit)" in (
        typo.stderr
    )
    glob = tool("run", "glob", cwd=root)
    assert glob.returncode == 1
    assert "declared output 'model.pkl' matches no file the experiment wrote" in glob.stderr


def test_a_torch_project_from_init_to_a_verified_certificate(tool: Tool, tmp_path: Path) -> None:
    root = new_project(tmp_path / "regress", "regress", ["torch==2.13.0", "numpy>=2.0"])
    (root / "regress.py").write_text(TORCH_TRAIN)
    tool.ok("init", "train=regress:train", cwd=root)
    declare(root, "train", 'outputs = ["model.pt", "metrics.json"]\n')
    pyproject = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        pyproject.replace('image = "regress"', f'image = "{image_name("torch")}"')
    )

    # The trap: a CUDA variant offered the wheel folder that holds a CPU torch.
    # (init saw torch and wrote the cpu and cuda variants.)
    header = "[tool.harness.variants.cuda]\n"
    pyproject = (root / "pyproject.toml").read_text()
    assert header in pyproject
    (root / "pyproject.toml").write_text(pyproject.replace(header, header + "find-links = true\n"))
    # (These machines' PIP_FIND_LINKS folder holds torch 2.13.0+cpu: see the README.)
    refused = tool("lock", "--variant", "cuda", cwd=root)
    assert refused.returncode == 2
    assert "pins torch==2.13.0+cpu, a CPU-only build" in refused.stderr
    assert "find-links = false" in refused.stderr
    assert not (root / "constraints-cuda.txt").exists()
    (root / "pyproject.toml").write_text(pyproject)

    built, _ = init_to_certificate(tool, root)
    assert built["labels"]["io.harness.dockerfile"] == "harness:Dockerfile"
    pins = (root / "constraints.txt").read_text()
    assert "torch==2.13.0+cpu" in pins
    assert "nvidia-" not in pins
