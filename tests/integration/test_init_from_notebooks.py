"""A repository whose dependencies live in its notebooks: init, lock, build and run from
harness's wheel, and the image holds what the notebook imports and ``%pip install``s.

The friction before notebooks were read: init proposed an empty experiments group (the
``.py`` files import nothing beyond the standard library), so the image lacked what the
analysis notebook uses and the first run failed on its import.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from harness.engine import Engine
from tests.integration.test_own_project import Tool, commit, image_name, tool  # noqa: F401

# The training script loads the notebook's libraries by name (as a plugin registry does):
# no import statement of its own names them.
TRAIN = '''\
"""Fit a constant, then report it with the libraries the analysis notebook uses."""
import importlib
import json
import sys

if __name__ == "__main__":
    table = importlib.import_module("tabulate").tabulate([["mean", 2.5]])
    six = importlib.import_module("six")
    with open("result.json", "w") as handle:
        json.dump({"table": table, "six": six.__name__}, handle)
    sys.exit(0)
'''

EDA = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"language_info": {"name": "python"}},
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["import not_a_dependency\n"]},
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["import nope\n"]}],
            "source": ["%pip install -q six\n", "%matplotlib inline\n", "import tabulate\n"],
        },
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 2,
            "outputs": [],
            "source": ["df.describe?\n", "def broken(:\n"],
        },
    ],
}


def test_a_repository_whose_notebooks_hold_its_dependencies_runs_after_init(
    tool: Tool,  # noqa: F811
    tmp_path: Path,
    engine: Engine,
) -> None:
    root = tmp_path / "study"
    (root / "notebooks").mkdir(parents=True)
    root.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    (root / "train.py").write_text(TRAIN)
    (root / "notebooks" / "eda.ipynb").write_text(json.dumps(EDA, indent=1))

    init = tool.ok("init", cwd=root)
    assert "six (notebooks/eda.ipynb), tabulate (notebooks/eda.ipynb)" in init.stdout
    assert (
        "1 notebook read for imports and pip install lines only (a notebook is never "
        "declared an experiment); 1 code cell left out: notebooks/eda.ipynb cell 3"
    ) in init.stdout
    document = tomllib.loads((root / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["six", "tabulate"]
    assert list(document["tool"]["harness"]["experiments"]) == ["train"]

    pyproject = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        pyproject.replace('image = "study"', f'image = "{image_name("init-notebooks")}"')
    )
    lock = tool.ok("lock", cwd=root)
    assert "pins nothing" not in lock.stderr
    commit(root)
    tool.build(root)
    (record,) = json.loads(tool.ok("run", "--json", cwd=root).stdout)
    # Without the notebook's libraries in the image, the script fails on its first import.
    assert record["status"] == "succeeded", record
    assert "result.json" in {artifact["path"] for artifact in record["artifacts"]}
