"""harness in the ML ecosystem, for real: a built-in example logged to MLflow and read back,
MLproject entry points run inside the pinned image, and the built-in examples linted."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_config
from harness.engine import Engine
from harness.images import build as build_module
from harness.integrations import mlflow_tracking
from harness.integrations.mlproject import experiment_from_mlproject, pin_image, write_mlproject
from harness.runs.run import RunRequest, RunResult, run_experiment
from tests.conftest import REPOSITORY, copy_project_files
from tests.integration.conftest import harness

WRITER = '''\
"""Writes what the MLproject command passed it into the run's output folder."""

import argparse
import json
import os
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--greeting")
parser.add_argument("--scale", type=float)
parser.add_argument("--data")
parser.add_argument("--seed", type=int)
arguments = parser.parse_args()
output = Path(os.environ["HARNESS_OUTPUT"])
total = sum(int(x) for x in Path(arguments.data).read_text().split())
(output / "result.json").write_text(
    json.dumps({**vars(arguments), "total": total}, sort_keys=True)
)
'''

MLPROJECT = """\
name: ecosystem
entry_points:
  main:
    parameters:
      greeting: {type: string, default: hello}
      scale: {type: float, default: 2.5}
      data: path
      seed: {type: float, default: 1}
    command: >-
      python write.py --greeting {greeting} --scale {scale} --data {data} --seed {seed}
"""


@pytest.fixture
def tmp_project(tmp_path: Path) -> Path:
    """A copy of this project, readable by the container's user."""
    folder = tmp_path / "project"
    folder.mkdir()
    folder.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    copy_project_files(folder)
    return folder


def run_in_image(engine: Engine, project: Path, request: RunRequest) -> RunResult:
    config = load_config(project)
    # The copied project builds the same inputs as this repository: a cache hit.
    image = build_module.build(engine, build_module.plan(config, "cpu"))
    return run_experiment(engine, config, image, request)


def read_mlflow_run(store: str, run_id: str) -> tuple[Any, Any]:
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    return mlflow, client.get_run(run_id)


def test_a_built_in_example_appears_in_mlflow(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason="mlflow-skinny is the optional MLflow dependency")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    result = harness("run", "sklearn", "--json")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    folder = REPOSITORY / ".harness" / "runs" / record["run_id"]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    environ = {"MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_NAME": "examples"}

    run_id = mlflow_tracking.log_run(load_config(REPOSITORY), folder, record, environ=environ)

    mlflow, run = read_mlflow_run(store, run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == record["run_id"]
    assert run.data.params == {"seed": str(record["seed"])}  # sklearn declares no parameters
    assert run.data.metrics == {k: float(v) for k, v in record["metrics"].items()}
    tags = run.data.tags
    assert tags["mlflow.docker.image.id"] == record["image"]["id"]
    assert tags["mlflow.source.git.commit"] == record["source"]["commit"]
    assert tags["harness.constraints_sha256"] == record["constraints_sha256"]
    assert tags["harness.status"] == "succeeded"
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    assert {a.path for a in client.list_artifacts(run_id)} == {
        "model.npz",
        "metrics.json",
        "harness",
    }
    local = Path(client.download_artifacts(run_id, "model.npz", str(tmp_path)))
    (artifact,) = [a for a in record["artifacts"] if a["path"] == "model.npz"]
    assert local.stat().st_size == artifact["size"]
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/harness/record.json")
    assert logged == record


def test_an_mlproject_entry_point_runs_inside_the_image(engine: Engine, tmp_project: Path) -> None:
    (tmp_project / "MLproject").write_text(MLPROJECT)
    (tmp_project / "write.py").write_text(WRITER)
    (tmp_project / "data").mkdir()
    (tmp_project / "data" / "numbers.txt").write_text("1 2 3 4\n")
    experiment = experiment_from_mlproject(
        tmp_project, "main", {"data": "data/numbers.txt", "greeting": "hi there"}
    )

    result = run_in_image(engine, tmp_project, RunRequest(experiment, 5, "strict", 1))

    assert result.status == "succeeded", "\n".join(result.record.get("log_tail") or [])
    written = json.loads((result.folder / "artifacts" / "result.json").read_text())
    assert written == {
        "greeting": "hi there",
        "scale": 2.5,
        "data": "/harness/inputs/data",
        "seed": 5,  # harness's seed, not the MLproject default
        "total": 10,
    }
    assert result.record["inputs"]["data"]["kind"] == "file"
    assert result.record["parameters"]["greeting"] == "hi there"


def test_a_written_mlproject_runs_an_example_and_logs_it(
    engine: Engine, tmp_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPOSITORY / "experiments", tmp_project / "experiments")
    config = load_config(tmp_project)
    write_mlproject(config, pin_image(engine, "harness:cpu"), Path("MLproject"))
    experiment = experiment_from_mlproject(tmp_project, "sklearn", {"n_estimators": "5"})

    result = run_in_image(engine, tmp_project, RunRequest(experiment, 0, "strict", 1))

    assert result.status == "succeeded", "\n".join(result.record.get("log_tail") or [])
    assert set(result.digests) == {"model.npz", "metrics.json"}
    metrics = json.loads((result.folder / "artifacts" / "metrics.json").read_text())
    assert metrics["n_estimators"] == 5
    if importlib.util.find_spec("mlflow") is None:
        return
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = mlflow_tracking.log_run(
        config,
        result.folder,
        result.record,
        entry_point="sklearn",
        environ={"MLFLOW_TRACKING_URI": store},
    )
    _, run = read_mlflow_run(store, run_id)
    assert run.data.tags["mlflow.project.entryPoint"] == "sklearn"
    assert run.data.params["n_estimators"] == "5"
    # The command returned no metrics to the outer runtime: metrics.json stands in.
    assert run.data.metrics["n_estimators"] == 5.0


def test_the_built_in_examples_pass_the_lint() -> None:
    result = harness("lint", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["findings"] == []
