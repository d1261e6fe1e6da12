"""[tool.harness.mlflow] and the environment, resolved without importing mlflow."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import ConfigError
from harness.integrations import mlflow_tracking


def configured(project: Path, table: str = "") -> Path:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.harness.mlflow]\n" + table)
    return project


def test_defaults_are_mlflows_local_store_at_the_project_root(project: Path) -> None:
    resolved = mlflow_tracking.settings(load_config(project, environ={}), environ={})
    assert resolved.enabled is False
    assert resolved.tracking_uri == f"sqlite:///{project.resolve() / 'mlflow.db'}"
    assert resolved.artifact_location == (project.resolve() / "mlruns").as_uri()
    assert resolved.experiment_name == "demo"  # [project] name
    assert set(resolved.sources.values()) == {"default"}


def test_pyproject_then_environment(project: Path) -> None:
    configured(
        project,
        'enabled = true\ntracking-uri = "sqlite:///runs/store.db"\nexperiment-name = "x"\n',
    )
    config = load_config(project, environ={})
    resolved = mlflow_tracking.settings(config, environ={})
    assert resolved.enabled is True
    # Relative paths are the project's, wherever harness is started.
    assert resolved.tracking_uri == f"sqlite:///{project.resolve() / 'runs' / 'store.db'}"
    assert resolved.artifact_location == (project.resolve() / "runs" / "mlruns").as_uri()
    assert resolved.experiment_name == "x"
    environ = {
        "HARNESS_MLFLOW": "0",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "MLFLOW_EXPERIMENT_NAME": "from-env",
    }
    resolved = mlflow_tracking.settings(config, environ=environ)
    assert (resolved.enabled, resolved.tracking_uri, resolved.experiment_name) == (
        False,
        "http://127.0.0.1:5000",
        "from-env",
    )
    assert resolved.artifact_location is None  # the server decides
    assert resolved.sources["tracking-uri"] == "env MLFLOW_TRACKING_URI"
    assert mlflow_tracking.enabled(config, None, environ) is False
    assert mlflow_tracking.enabled(config, True, environ) is True


def test_a_plain_path_is_a_file_store_at_the_project_root(project: Path) -> None:
    configured(project, 'tracking-uri = "./mlruns"\nartifact-location = "artifacts"\n')
    resolved = mlflow_tracking.settings(load_config(project, environ={}), environ={})
    assert resolved.tracking_uri == (project.resolve() / "mlruns").as_uri()
    assert resolved.artifact_location == (project.resolve() / "artifacts").as_uri()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('tracking_uri = "x"\n', r"unknown key 'tracking_uri' in \[tool.harness.mlflow\]"),
        ('enabled = "yes"\n', r"\[tool.harness.mlflow\] enabled: expected true or false"),
        (
            'experiment-name = ""\n',
            r"\[tool.harness.mlflow\] experiment-name: expected a non-empty",
        ),
    ],
)
def test_bad_keys_are_refused_naming_table_and_key(project: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(configured(project, table), environ={})


def test_a_bad_enable_variable_is_refused(project: Path) -> None:
    with pytest.raises(ConfigError, match="HARNESS_MLFLOW must be 1 or 0"):
        mlflow_tracking.settings(load_config(project, environ={}), environ={"HARNESS_MLFLOW": "y"})


def test_without_mlflow_the_error_says_how_to_install_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an absent package looks like
    with pytest.raises(ConfigError) as caught:
        mlflow_tracking.require(load_config(project, environ={}), environ={})
    assert caught.value.one_line().startswith("mlflow is not installed (fix: pip install ")
    assert "mlflow-skinny" in caught.value.hint
