"""The deploy image of a project made from scratch, with harness installed from its wheel.

A small project (src layout, numpy, a console script, hatchling) is locked, built,
verified and certified; `harness deploy` then makes the image to deploy, the certified
image plus the project's wheel, and certifies it. Made twice, it is the same image; a
commit that changes the code gives another wheel and another image, which the first
certificate does not cover.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.engine import Engine
from tests.integration.test_own_project import (
    Tool,
    commit,
    image_name,
    init_to_certificate,
    new_project,
    tool,
)

__all__ = ["tool"]  # the fixture, shared with the other projects made from scratch

TRAIN = '''\
"""A seeded least-squares fit, and the command the deployed image runs."""
import json
from pathlib import Path

import numpy as np


def fit(output: Path, seed: int, inputs: dict) -> dict:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(100, 3))
    weights = np.linalg.lstsq(features, features @ np.array([1.0, -2.0, 0.5]), rcond=None)[0]
    np.save(output / "weights.npy", weights)
    return {"w0": float(weights[0])}


def main() -> None:
    print(json.dumps({"answer": ANSWER}))


ANSWER = 42
'''


def deploy(tool: Tool, root: Path) -> dict[str, Any]:
    result = tool.ok("deploy", "--key", str(tool.keys / "runner.key"), "--json", cwd=root)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def verify_certificate(
    tool: Tool, root: Path, certificate: str, *arguments: str
) -> tuple[int, str]:
    result = tool(
        "certificate", "verify", certificate, "--key", str(tool.keys / "runner.pub"), *arguments,
        cwd=root,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_the_deploy_image_is_the_certified_image_plus_the_wheel_and_is_certified(
    tool: Tool, tmp_path: Path, engine: Engine
) -> None:
    root = new_project(tmp_path / "lsq", "lsq", ["numpy>=2.0"])
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + '\n[project.scripts]\nlsq = "lsq.train:main"\n'
        + '\n[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    (root / "src" / "lsq").mkdir(parents=True)
    (root / "src" / "lsq" / "__init__.py").write_text("")
    (root / "src" / "lsq" / "train.py").write_text(TRAIN)
    tool.ok("init", "fit=lsq.train:fit", cwd=root)
    name = image_name("deploy")
    pyproject.write_text(pyproject.read_text().replace('image = "lsq"', f'image = "{name}"'))
    made: list[str] = []
    try:
        built, _ = init_to_certificate(tool, root)
        first = deploy(tool, root)
        made.append(first["image_id"])
        assert first["built_on"] == built["image_id"]
        assert first["reference"] == f"{name}:cpu-deploy"
        # The certified image's layers, unchanged, and one more: the wheel's.
        certified = engine.image_attributes(built["image_id"])
        deployed = engine.image_attributes(first["image_id"])
        assert certified is not None and deployed is not None
        layers = deployed["RootFS"]["Layers"]
        assert layers[:-1] == certified["RootFS"]["Layers"]
        assert layers[-1] == first["layer"]

        # Made again from the same certified image and wheel: the same image.
        second = deploy(tool, root)
        assert second["image_id"] == first["image_id"]
        assert second["wheel"] == first["wheel"]
        assert second["existed"] is True

        # What the deployer runs: the project's command, from the wheel, without network.
        ran = engine.run(first["reference"], ["lsq"], timeout=120)
        assert ran.exit_code == 0, ran.output
        assert json.loads(ran.output.strip().splitlines()[-1]) == {"answer": 42}
        # Its modules come compiled, as the image's others do.
        compiled = engine.run(
            first["reference"],
            ["python", "-c", "import os, lsq.train as t; print(os.path.isfile(t.__cached__))"],
            timeout=120,
        )
        assert compiled.output.strip().splitlines()[-1] == "True", compiled.output

        wheel = root / ".harness" / "dist" / first["wheel"]["name"]
        code, output = verify_certificate(
            tool, root, first["certificate"], "--image", first["reference"], "--wheel", str(wheel)
        )
        assert code == 0, output
        assert "the experiment certificate inside verifies" in output
        assert f"wheel {wheel.name} is the certified one" in output
        # The certified experiment, run again in the deploy image, gives the certified bytes.
        code, output = verify_certificate(tool, root, first["certificate"], "--rerun")
        assert code == 0, output
        assert "fit reproduced again" in output
        # The experiment image is not the deploy image this certificate is for.
        code, output = verify_certificate(
            tool, root, first["certificate"], "--image", built["image_id"]
        )
        assert code == 1, output

        kept = tmp_path / "first.whl"
        kept.write_bytes(wheel.read_bytes())
        # A commit that changes only code: the experiment image stays the certified one
        # (a cache hit), the wheel and so the deploy image change.
        train = root / "src" / "lsq" / "train.py"
        train.write_text(train.read_text().replace("ANSWER = 42", "ANSWER = 43"))
        commit(root)
        changed = deploy(tool, root)
        made.append(changed["image_id"])
        assert changed["built_on"] == built["image_id"]
        assert changed["wheel"]["sha256"] != first["wheel"]["sha256"]
        assert changed["image_id"] != first["image_id"]
        code, output = verify_certificate(
            tool, root, first["certificate"], "--image", changed["reference"]
        )
        assert code == 1, output
        assert "is for image" in output
        new_wheel = root / ".harness" / "dist" / changed["wheel"]["name"]
        code, output = verify_certificate(
            tool, root, first["certificate"], "--wheel", str(new_wheel)
        )
        assert code == 1, output
        assert "is not the certified one" in output
        code, output = verify_certificate(
            tool, root, changed["certificate"], "--image", changed["reference"],
            "--wheel", str(new_wheel),
        )  # fmt: skip
        assert code == 0, output
    finally:
        for image_id in made:
            info = engine.image(image_id)
            for tag in info.tags if info else ():
                engine.remove_image(tag)
            engine.remove_unused_image(image_id)
