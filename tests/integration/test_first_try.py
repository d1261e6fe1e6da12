"""A research repository on the first try: requirements.txt with `torch`, a src layout, a
training script; harness installed from its wheel; init, lock, build and run unchanged.

Each friction a first try met is a step here: init that ignored requirements.txt, a CPU
torch that did not lock as written, variants of different torch versions that doctor
called fit, a `keys generate` that failed the second time, and a src/ package the run
could not import.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from harness.engine import Engine
from harness.images import lock as lock_module
from tests.integration.test_own_project import Tool, commit, image_name, tool  # noqa: F401

TRAIN = '''\
"""A character model, reduced to a few steps: trains from src/charmodel."""
import json
from pathlib import Path

import numpy as np
import torch

from charmodel.data import alphabet


def train(output: Path, seed: int, inputs: dict, steps: int = 5) -> dict:
    table = torch.nn.Embedding(len(alphabet()), 4)
    optimiser = torch.optim.SGD(table.parameters(), lr=0.1)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = table.weight.square().mean()
        loss.backward()
        optimiser.step()
    np.save(output / "table.npy", table.weight.detach().numpy())
    (output / "metrics.json").write_text(json.dumps({"loss": float(loss)}))
    return {"loss": float(loss)}
'''


def research_repository(root: Path) -> Path:
    """As such repositories come: requirements.txt, setup.py, src/, and no pyproject.toml."""
    root.mkdir()
    root.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    (root / "requirements.txt").write_text("# training\ntorch\nnumpy\n-e .\n")
    (root / "setup.py").write_text(
        "from setuptools import setup, find_packages\n"
        "setup(name='charmodel', packages=find_packages('src'), package_dir={'': 'src'},\n"
        "      install_requires=['numpy'])\n"
    )
    package = root / "src" / "charmodel"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data.py").write_text("def alphabet():\n    return 'abcdefgh'\n")
    (package / "train.py").write_text(TRAIN)
    return root


def test_a_research_repository_locks_builds_and_runs_unchanged(
    tool: Tool,  # noqa: F811
    tmp_path: Path,
    engine: Engine,
) -> None:
    root = research_repository(tmp_path / "charmodel")

    init = tool.ok("init", "train=charmodel.train:train", cwd=root)
    assert "torch, numpy from requirements.txt" in init.stdout
    assert "requirements.txt: -e . (an editable install)" in init.stdout
    assert "torch found" in init.stdout
    document = tomllib.loads((root / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["torch", "numpy"]
    pyproject = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        pyproject.replace('image = "charmodel"', f'image = "{image_name("first-try")}"')
        + '\n[tool.uv.dependency-groups]\nexperiments = { requires-python = ">=3.11,<3.14" }\n'
    )

    # `torch` as written: the CPU build for cpu, PyPI's build of the same version for cuda.
    locked = tool.ok("lock", cwd=root)
    assert "cpu takes torch==2.13.0+cpu" in locked.stderr
    cpu = (root / "constraints.txt").read_text()
    cuda = (root / "constraints-cuda.txt").read_text()
    assert "\ntorch==2.13.0+cpu " in cpu and "nvidia-" not in cpu
    assert "\ntorch==2.13.0 " in cuda and "nvidia-" in cuda
    assert tool.ok("lock", "--check", cwd=root).returncode == 0

    # A version no source has a CPU build of: the builds that exist and the line to write,
    # and nothing written, uv.lock included.
    before = {name: (root / name).read_bytes() for name in ("uv.lock", "constraints.txt")}
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text().replace('"torch",', '"torch==2.15.0",')
    )
    refused = tool("lock", cwd=root)
    assert refused.returncode == 2
    assert "the CPU builds they have: 2.13.0+cpu" in refused.stderr
    assert 'write "torch==2.13.0" in [dependency-groups] experiments' in refused.stderr
    assert {name: (root / name).read_bytes() for name in before} == before
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text().replace('"torch==2.15.0",', '"torch",')
    )

    # doctor does not call variants of different torch versions fit.
    # (As a lock of each variant at another time would leave them: header and pin agree.)
    moved = cuda.replace("\ntorch==2.13.0 ", "\ntorch==2.14.0 ")
    moved = moved.replace("-> torch==2.13.0", "-> torch==2.14.0")
    # ... and its pins' digest with them, as `lock` writes it.
    written = re.search(r"^# pins-sha256: (\S+)$", moved, re.MULTILINE)
    assert written is not None
    (root / "constraints-cuda.txt").write_text(
        moved.replace(written.group(1), lock_module.pins_digest(moved))
    )
    doctor = tool("doctor", "--json", cwd=root)
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert checks["constraints"]["ok"] is False
    assert "different torch versions" in checks["constraints"]["detail"]
    (root / "constraints-cuda.txt").write_text(cuda)

    # The README's sequence, scripted: a second `keys generate` says where the key is.
    again = tool.ok("keys", "generate", "--name", "runner", cwd=root)
    assert str(tool.keys / "runner.key") in again.stdout

    commit(root)
    built = tool.build(root)
    (record,) = json.loads(tool.ok("run", "--json", cwd=root).stdout)
    assert record["status"] == "succeeded", record
    assert built["labels"]["io.harness.dockerfile"] == "harness:Dockerfile"
