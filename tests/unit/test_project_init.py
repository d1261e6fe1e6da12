"""`harness init` in an existing repository: adds what is missing, keeps the rest."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import project_init
from harness.cli.main import cli
from harness.config import load_config
from harness.errors import ConfigError
from harness.fleet import ci_github
from harness.images.dockerfiles import builtin_text
from harness.project_init import InitRequest, init_project

EXISTING = """\
[project]
name = "Fraud Model"
version = "1.0"
dependencies = ["numpy>=2", "scikit-learn>=1.5"]

# Formatting of our own tools: init must leave it as it is.
[tool.ruff]
line-length = 88  # narrow

[dependency-groups]
dev = ["pytest"]
"""


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(EXISTING)
    (tmp_path / ".gitignore").write_text("*.pyc\n/dist")
    return tmp_path


def test_init_adds_the_table_the_group_the_example_and_the_ignore_line(repository: Path) -> None:
    changes = init_project(repository, InitRequest())
    text = (repository / "pyproject.toml").read_text()
    assert text.startswith(EXISTING.split("[dependency-groups]", maxsplit=1)[0])  # untouched above
    assert "line-length = 88  # narrow" in text
    document = tomllib.loads(text)
    assert document["dependency-groups"] == {
        "dev": ["pytest"],
        "experiments": ["numpy>=2", "scikit-learn>=1.5"],
    }
    harness = document["tool"]["harness"]
    assert harness["image"] == "fraud-model"
    assert harness["experiments"]["example"] == {
        "entry": "harness_example:train",
        "parameters": {"steps": 100},
        "outputs": ["result.json"],
    }
    assert (repository / "harness_example.py").read_text() == project_init.STUB
    assert (
        (repository / ".gitignore")
        .read_text()
        .endswith("/dist\n# harness's runs, verifications and certificates\n.harness/\n")
    )
    assert [(c.path, c.action) for c in changes] == [
        ("pyproject.toml", "updated"),
        ("pyproject.toml", "updated"),
        ("pyproject.toml", "updated"),
        ("harness_example.py", "wrote"),
        (".gitignore", "updated"),
    ]
    config = load_config(repository, environ={})
    assert config.experiment("example").entry == "harness_example:train"


def test_the_example_experiment_runs_as_harness_calls_it(repository: Path, tmp_path: Path) -> None:
    init_project(repository, InitRequest())
    namespace: dict[str, object] = {}
    exec(compile(project_init.STUB, "harness_example.py", "exec"), namespace)  # noqa: S102
    output = tmp_path / "out"
    output.mkdir()
    metrics = namespace["train"](output=output, seed=0, inputs={}, steps=100)  # type: ignore[operator]
    assert set(metrics) == {"mean"}  # type: ignore[arg-type]
    assert (output / "result.json").is_file()


GIT_INSTALL = "git+https://example.org/acme/harness@0123abc"


@pytest.fixture
def installed_from_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """harness as `uv tool install git+...` leaves it: a requirement CI runners can use."""
    monkeypatch.setattr(ci_github, "installed_requirement", lambda: GIT_INSTALL)


@pytest.mark.usefixtures("installed_from_git")
def test_a_second_init_changes_nothing(repository: Path) -> None:
    init_project(repository, InitRequest(dockerfiles=True, ci=True))
    before = {p: p.read_bytes() for p in repository.rglob("*") if p.is_file()}
    changes = init_project(repository, InitRequest(dockerfiles=True, ci=True))
    assert {c.action for c in changes} == {"kept"}
    assert {p: p.read_bytes() for p in repository.rglob("*") if p.is_file()} == before


def test_named_experiments_replace_the_example_and_keep_the_group(repository: Path) -> None:
    pyproject = repository / "pyproject.toml"
    pyproject.write_text(
        EXISTING.replace('dev = ["pytest"]', 'dev = ["pytest"]\nexperiments = ["torch"]')
    )
    init_project(repository, InitRequest(experiments=(("fit", "fraud.train:fit"),)))
    document = tomllib.loads(pyproject.read_text())
    assert document["dependency-groups"]["experiments"] == ["torch"]
    assert document["tool"]["harness"]["experiments"] == {"fit": {"entry": "fraud.train:fit"}}
    assert not (repository / "harness_example.py").exists()


def test_a_declared_experiment_is_never_overwritten_without_force(repository: Path) -> None:
    init_project(repository, InitRequest(experiments=(("fit", "fraud.train:fit"),)))
    before = (repository / "pyproject.toml").read_bytes()
    with pytest.raises(ConfigError, match=r"already exists with entry 'fraud\.train:fit'"):
        init_project(repository, InitRequest(experiments=(("fit", "fraud.other:fit"),)))
    assert (repository / "pyproject.toml").read_bytes() == before
    init_project(repository, InitRequest(experiments=(("fit", "fraud.other:fit"),), force=True))
    assert load_config(repository, environ={}).experiment("fit").entry == "fraud.other:fit"


def test_a_customised_dockerfile_is_kept_unless_forced(repository: Path) -> None:
    (repository / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    with pytest.raises(ConfigError, match="Dockerfile exists with other content"):
        init_project(repository, InitRequest(dockerfiles=True))
    # Refused before anything was written.
    assert (repository / "pyproject.toml").read_text() == EXISTING
    init_project(repository, InitRequest(dockerfiles=True, force=True))
    assert (repository / "Dockerfile").read_bytes() == builtin_text("cpu")
    assert (repository / "Dockerfile.cuda").read_bytes() == builtin_text("cuda")


@pytest.mark.usefixtures("installed_from_git")
def test_the_workflow_is_the_one_harness_ci_github_writes(repository: Path) -> None:
    changes = init_project(repository, InitRequest(ci=True))
    assert any("install = " in change.detail for change in changes)
    assert f'install = "{GIT_INSTALL}"' in (repository / "pyproject.toml").read_text()
    written = (repository / ".github" / "workflows" / "harness.yml").read_text()
    table = {"install": GIT_INSTALL}
    assert written == ci_github.render(
        ci_github.settings_from_table(table, "3.11", depends_on_harness=False)
    )
    assert 'uv tool install "$HARNESS_INSTALL"' in written
    assert f"HARNESS_INSTALL: {GIT_INSTALL}\n" in written


def test_ci_from_a_harness_installed_from_a_local_file_asks_how_ci_gets_it(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ci_github, "installed_requirement", lambda: None)
    before = (repository / "pyproject.toml").read_text()
    with pytest.raises(ConfigError, match="installed from a local file"):
        init_project(repository, InitRequest(ci=True))
    assert (repository / "pyproject.toml").read_text() == before
    assert not (repository / ".github").exists()


def test_a_folder_without_pyproject_gets_one(tmp_path: Path) -> None:
    project = tmp_path / "new project"
    project.mkdir()
    init_project(project, InitRequest())
    document = tomllib.loads((project / "pyproject.toml").read_text())
    assert document["project"]["name"] == "new-project"
    assert document["dependency-groups"]["experiments"] == []
    assert load_config(project, environ={}).image == "new-project"


@pytest.mark.parametrize("text", ["train", "train=module", "=m:f", "train=m:f:g", "a b=m:f"])
def test_a_malformed_experiment_argument_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="is not NAME=module:function"):
        project_init.parse_experiment(text)


def test_the_command_prints_what_it_did_and_the_next_steps(repository: Path) -> None:
    result = CliRunner().invoke(cli, ["--project", str(repository), "init", "fit=fraud:fit"])
    assert result.exit_code == 0, result.output
    assert (
        "updated pyproject.toml: [tool.harness.experiments.fit] entry = 'fraud:fit'"
        in result.output
    )
    assert "next: harness lock && harness build && harness run" in result.output
    again = CliRunner().invoke(cli, ["--project", str(repository), "init", "fit=fraud:other"])
    assert again.exit_code == 2
    assert "pass --force to replace it" in again.output


def test_an_mlflow_project_gets_its_entry_points_as_experiments_not_the_example(
    tmp_path: Path,
) -> None:
    # MLflow's example project as published: an MLproject, a conda.yaml, no pyproject.toml.
    (tmp_path / "MLproject").write_text(
        "name: tutorial\nconda_env: conda.yaml\nentry_points:\n  validate:\n"
        '    command: "python validate.py"\n  main:\n'
        "    parameters:\n      alpha: {type: float, default: 0.5}\n"
        '    command: "python train.py {alpha}"\n'
    )
    (tmp_path / "conda.yaml").write_text(
        "channels: [defaults]\ndependencies:\n  - numpy>=1.14.3\n  - scikit-learn>0.19.1\n"
        "  - pip\n  - pip:\n    - mlflow\n"
    )
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    document = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == [
        "numpy>=1.14.3",
        "scikit-learn>0.19.1",
        "mlflow",
    ]
    assert "experiments" not in document["tool"]["harness"]
    assert not (tmp_path / "harness_example.py").exists()
    assert "kept    MLproject: entry points main, validate: each runs as an experiment" in (
        result.output
    )
    assert "next: harness lock && harness build && harness verify --mlproject main" in (
        result.output
    )
