"""A large pin moved installs that pin alone: the frameworks' layers on a real engine.

A small project whose large pins (NumPy, Pygments: wheels of 1 MiB or more, none heavy)
get a layer each. Moving Pygments (a new lock, as a user bumps a pin) installs Pygments
alone, takes NumPy's layer from the layer cache, and the image holds the new version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.engine import Engine
from harness.images import layers, stagecache
from tests.integration.conftest import harness, image_name

# The project's name is its image's (this session's own, see conftest.image_name).
NAME = image_name("layers")
PYPROJECT = """\
[project]
name = "{name}"
version = "0"
requires-python = ">=3.11"

[dependency-groups]
experiments = ["numpy==2.4.6", "pygments=={pygments}", "six==1.17.0"]

[tool.harness]
python = "3.11"
"""
PROBE = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({n: m.version(n) for n in ('numpy', 'pygments', 'six')}))"
)


def lock_and_build(project: Path, pygments: str) -> tuple[dict[str, object], str]:
    (project / "pyproject.toml").write_text(PYPROJECT.format(pygments=pygments, name=NAME))
    locked = harness("lock", cwd=project)
    assert locked.returncode == 0, locked.stderr
    # A layer cache of its own: what other builds on this machine left does not count.
    own = {layers.ENV: str(project.parent / "layers")}
    built = harness("build", "--json", cwd=project, env=own)
    assert built.returncode == 0, built.stderr
    document: dict[str, object] = json.loads(built.stdout)
    return document, built.stderr


def test_moving_a_large_pin_installs_it_alone(engine: Engine, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    made: list[str] = []
    first: dict[str, object] = {}
    moved: dict[str, object] = {}
    try:
        first, said = lock_and_build(project, "2.20.0")
        made += re.findall(r"building (harness-frameworks:[0-9a-f]+):", said)
        installed = re.findall(r"installed (\S+) as a layer of its own", said)
        assert installed == ["numpy==2.4.6", "pygments==2.20.0"], said
        moved, said = lock_and_build(project, "2.21.0")
        made += re.findall(r"building (harness-frameworks:[0-9a-f]+):", said)
        installed = re.findall(r"installed (\S+) as a layer of its own", said)
        # NumPy's layer came from the cache: only Pygments was installed, and only its
        # layer was sent to the engine (NumPy's lies below it, on the tier).
        assert installed == ["pygments==2.21.0"], said
        assert "(1 sent to the engine" in said, said
        versions = engine.run(str(moved["image_id"]), ["python", "-c", PROBE], timeout=120)
        assert versions.exit_code == 0, versions.output
        assert json.loads(versions.output.strip().splitlines()[-1]) == {
            "numpy": "2.4.6",
            "pygments": "2.21.0",
            "six": "1.17.0",
        }
        # Both images stand on the same tier, NumPy's layer below Pygments' (heavier first).
        history = [str(h.get("CreatedBy")) for h in engine.history(str(moved["image_id"]))]
        layers = [line for line in history if line.startswith("harness layer: ")]
        assert layers == ["harness layer: pygments==2.21.0", "harness layer: numpy==2.4.6"]
        before = engine.image_attributes(str(first["image_id"]))
        after = engine.image_attributes(str(moved["image_id"]))
        assert before is not None and after is not None
        shared = before["RootFS"]["Layers"][: len(after["RootFS"]["Layers"]) - 3]
        assert after["RootFS"]["Layers"][: len(shared)] == shared
    finally:
        engine.remove_unused_image(f"{NAME}:cpu")
        for image in (first, moved):  # the first lost its tag to the second
            if image:
                engine.remove_unused_image(str(image["image_id"]))
        stagecache.keep(engine, f"{NAME}:cpu", [])  # the install stages kept
        for reference in reversed(made):
            engine.remove_unused_image(reference)
