"""`harness init` reads what a research repository declares: requirements files, setup.py
(never run), setup.cfg, environment.yml's pip section, [project.dependencies]."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

from harness import declared_dependencies
from harness.cli.main import cli
from harness.config import load_config
from harness.images import lock
from harness.project_init import InitRequest, init_project

SETUP_PY = """\
import os
from setuptools import setup, find_packages

REQUIREMENTS = ["scipy>=1.10", "tqdm"]
os.system("touch ran")  # never run: init reads, it does not execute

setup(
    name="charmodel",
    packages=find_packages(),
    install_requires=REQUIREMENTS,
)
"""

ENVIRONMENT = """\
name: research
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - cudatoolkit=11.8
  - pip:
    - einops==0.8.0
    - --extra-index-url https://example.invalid/simple
"""


def test_every_declaration_file_is_read_and_named(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "# training\ntorch\nnumpy>=1.24  # arrays\n-e .\n-r requirements-extra.txt\n"
        "git+https://example.invalid/x.git\nmatplotlib ; python_version >= '3.9' \\\n"
        "    --hash=sha256:abc\n"
    )
    (tmp_path / "requirements-extra.txt").write_text("tensorboard\n")
    (tmp_path / "requirements-dev.txt").write_text("pytest\n")
    (tmp_path / "setup.py").write_text(SETUP_PY)
    (tmp_path / "setup.cfg").write_text("[options]\ninstall_requires =\n    pyyaml\n    numpy\n")
    (tmp_path / "environment.yml").write_text(ENVIRONMENT)
    declared = declared_dependencies.read(tmp_path)
    found = dict(declared.requirements)
    assert found == {
        "torch": "requirements.txt",
        "numpy>=1.24": "requirements.txt",
        "tensorboard": "requirements-extra.txt",
        'matplotlib; python_version >= "3.9"': "requirements.txt",
        "pyyaml": "setup.cfg [options] install_requires",
        "scipy>=1.10": "setup.py install_requires",
        "tqdm": "setup.py install_requires",
        "einops==0.8.0": "environment.yml pip",
    }
    skipped = "\n".join(declared.skipped)
    assert "requirements.txt: -e . (an editable install)" in skipped
    assert "a URL" in skipped
    assert "requirements-dev.txt (its name says it is not for running the code)" in skipped
    assert "environment.yml: cudatoolkit=11.8 (conda packages" in skipped
    assert not (tmp_path / "ran").exists()
    assert declared.frameworks() == ["torch"]


def test_a_computed_install_requires_is_named_not_run(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup\nsetup(install_requires=open('deps').read().split())\n"
    )
    declared = declared_dependencies.read(tmp_path)
    assert declared.requirements == []
    assert "computed when setup.py runs" in declared.skipped[0]


def test_an_include_outside_the_project_and_a_linked_file_are_not_read(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "secret.txt").write_text("leaked-name\n")
    (project / "requirements.txt").write_text("-r ../secret.txt\n")
    (project / "requirements-linked.txt").symlink_to(tmp_path / "secret.txt")
    declared = declared_dependencies.read(project)
    assert declared.requirements == []
    assert any("outside the project" in line for line in declared.skipped)


def test_init_proposes_the_group_and_the_framework_variants(tmp_path: Path) -> None:
    """The issue's fifth friction: the experiments group came out empty."""
    (tmp_path / "requirements.txt").write_text("torch\nnumpy\n")
    (tmp_path / "setup.py").write_text(SETUP_PY)
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "init", "train=train:main"])
    assert result.exit_code == 0, result.stderr
    assert (
        "[dependency-groups] experiments = the project's dependencies (torch, numpy from "
        "requirements.txt; scipy, tqdm from setup.py install_requires)"
    ) in result.stdout
    assert "torch found; `harness lock` takes the CPU build for cpu" in result.stdout
    document = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["torch", "numpy", "scipy>=1.10", "tqdm"]
    assert set(document["tool"]["harness"]["variants"]) == {"cpu", "cuda"}
    config = load_config(tmp_path, environ={})
    assert [v.name for v in lock.variants_in_use(config)] == ["cpu", "cuda"]
    # Once is enough: a second init changes nothing.
    before = (tmp_path / "pyproject.toml").read_text()
    init_project(tmp_path, InitRequest(experiments=(("train", "train:main"),)))
    assert (tmp_path / "pyproject.toml").read_text() == before


def test_a_project_without_a_framework_gets_no_cuda_variant(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    init_project(tmp_path, InitRequest())
    document = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["scikit-learn"]
    assert "variants" not in document["tool"]["harness"]


# MLflow's example project as published: the MLproject names a conda environment.
MLPROJECT = """\
name: tutorial
conda_env: envs/conda.yaml
entry_points:
  main:
    command: "python train.py"
"""
CONDA = """\
name: tutorial
channels: [defaults]
dependencies:
  - python=3.10
  - numpy>=1.14.3
  - conda-forge::pytorch=2.1
  - scipy=1.11.4=py310_0
  - libgcc-ng
  - pip
  - pip:
    - mlflow
"""


def test_the_environment_an_mlproject_names_is_read_with_conda_names_as_on_pypi(
    tmp_path: Path,
) -> None:
    (tmp_path / "MLproject").write_text(MLPROJECT)
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "conda.yaml").write_text(CONDA)
    declared = declared_dependencies.read(tmp_path)
    assert declared.requirements == [
        ("numpy>=1.14.3", "envs/conda.yaml (conda names, as on PyPI)"),
        ("torch==2.1.*", "envs/conda.yaml (conda names, as on PyPI)"),
        ("scipy==1.11.4", "envs/conda.yaml (conda names, as on PyPI)"),
        ("mlflow", "envs/conda.yaml pip"),
    ]
    assert declared.frameworks() == ["torch"]
    assert any(line.startswith("envs/conda.yaml: libgcc-ng (") for line in declared.skipped)


def test_mlflows_python_env_is_read_as_pip_lines(tmp_path: Path) -> None:
    (tmp_path / "MLProject").write_text("python_env: python_env.yaml\nentry_points: {}\n")
    (tmp_path / "python_env.yaml").write_text(
        'python: "3.10"\nbuild_dependencies: [pip]\n'
        "dependencies:\n  - -r requirements-model.txt\n  - mlflow==2.9.2\n"
    )
    (tmp_path / "requirements-model.txt").write_text("scikit-learn\n")
    declared = declared_dependencies.read(tmp_path)
    assert dict(declared.requirements) == {
        "scikit-learn": "requirements-model.txt",
        "mlflow==2.9.2": "python_env.yaml",
    }


def test_an_environment_named_outside_the_project_is_not_read(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "conda.yaml").write_text(CONDA)
    (project / "MLproject").write_text("conda_env: ../conda.yaml\n")
    declared = declared_dependencies.read(project)
    assert declared.requirements == []
    assert declared.skipped == ["MLproject: conda_env: ../conda.yaml (outside the project)"]
