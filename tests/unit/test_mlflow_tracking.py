"""Runs logged to a real local MLflow store (sqlite in a temporary folder) and read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.config import Config, load_config
from harness.errors import HarnessError
from harness.integrations import mlflow_tracking
from harness.runs import records
from tests.conftest import RUN_RECORD_SCHEMA

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is the optional MLflow dependency")
pytest.importorskip("sqlalchemy", reason="the local MLflow store needs SQLAlchemy")

IMAGE_ID = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One sqlite store for the module: creating its tables takes seconds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def environ(store: str, experiment: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_NAME": experiment}


def client(store: str) -> Any:
    return mlflow.tracking.MlflowClient(tracking_uri=store)


def make_run(project: Path, **changes: Any) -> tuple[Path, dict[str, Any]]:
    """A finished run's folder, as harness run leaves it."""
    run_id = changes.pop("run_id", "20261126-064501-demo-3f9a2c")
    folder = records.runs_root(project) / run_id
    (folder / "artifacts" / "weights").mkdir(parents=True)
    (folder / "meta").mkdir()
    (folder / "artifacts" / "weights" / "model.npz").write_bytes(b"\x93NUMPY fake")
    (folder / "artifacts" / "metrics.json").write_text('{"accuracy": 0.75, "loss": {"test": 2}}')
    (folder / "log.txt").write_text("training\n")
    (folder / "spec.json").write_text("{}\n")
    (folder / "meta" / "runtime.json").write_text("{}\n")
    record: dict[str, Any] = {
        "schema": records.SCHEMA,
        "run_id": run_id,
        "status": "succeeded",
        "exit_code": 0,
        "error": None,
        "experiment": "demo",
        "entry": "experiments.demo:train",
        "command": None,
        "parameters": {"steps": 30, "optimizer": {"lr": 0.01}, "name": "adam"},
        "seed": 7,
        "profile": "strict",
        "threads": 1,
        "device": "cpu",
        "image": {
            "reference": "harness:cpu",
            "id": IMAGE_ID,
            "digest": IMAGE_ID,
            "variant": "cpu",
        },
        "constraints_sha256": "c" * 64,
        "lock_sha256": "l" * 64,
        "source": {"commit": "f" * 40, "dirty": False, "diff_sha256": None},
        "inputs": {
            "data": {
                "path": "data",
                "kind": "folder",
                "size": 3,
                "sha256": "d" * 64,
                "files": 1,
                "dvc_md5": "e" * 32 + ".dir",
                "verified": True,
            }
        },
        "environment": {"PYTHONHASHSEED": "7"},
        "container": {"network": "none"},
        "harness_version": "0.1.0",
        "engine": {"where": "unix:///var/run/docker.sock", "version": "27.0"},
        "timings": {
            "started_at": "2026-11-26T06:45:01+00:00",
            "finished_at": "2026-11-26T06:45:31+00:00",
            "container_s": 30.0,
        },
        "log": "log.txt",
        "artifacts": records.artifacts(folder / "artifacts"),
        "metrics": {"accuracy": 0.75, "loss": {"test": 2, "train": "NaN"}, "note": "text"},
        "violations": [],
    }
    record.update(changes)
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    records.write(folder, record)
    return folder, record


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(project, environ={})


def test_a_run_is_logged_with_params_metrics_tags_artifacts_and_record(
    store: str, config: Config
) -> None:
    folder, record = make_run(config.project_root)
    run_id = mlflow_tracking.log_run(config, folder, record, environ=environ(store, "full"))

    run = client(store).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == record["run_id"]
    assert (run.info.start_time, run.info.end_time) == (1795675501000, 1795675531000)
    assert run.data.params == {
        "steps": "30",
        "optimizer": '{"lr": 0.01}',
        "name": "adam",
        "seed": "7",
    }
    assert run.data.metrics["accuracy"] == 0.75
    assert run.data.metrics["loss.test"] == 2.0
    assert run.data.metrics["loss.train"] != run.data.metrics["loss.train"]  # NaN
    assert "note" not in run.data.metrics
    tags = run.data.tags
    assert tags["mlflow.runName"] == record["run_id"]
    assert tags["mlflow.source.git.commit"] == "f" * 40
    assert tags["mlflow.source.name"] == "experiments.demo:train"
    assert tags["mlflow.docker.image.id"] == IMAGE_ID
    assert tags["mlflow.docker.image.name"] == "harness:cpu"
    assert tags["harness.seed"] == "7"
    assert tags["harness.profile"] == "strict"
    assert tags["harness.constraints_sha256"] == "c" * 64
    assert tags["harness.lock_sha256"] == "l" * 64
    assert tags["harness.status"] == "succeeded"
    assert tags["harness.input.data.dvc_md5"] == "e" * 32 + ".dir"

    listed = {a.path for a in client(store).list_artifacts(run_id)}
    assert listed == {"weights", "metrics.json", "harness"}
    inside = {a.path for a in client(store).list_artifacts(run_id, "harness")}
    assert inside == {"harness/record.json", "harness/log.txt", "harness/spec.json", "harness/meta"}
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/harness/record.json")
    assert logged == record


def test_logging_the_same_run_again_returns_the_first_mlflow_run(
    store: str, config: Config
) -> None:
    folder, record = make_run(config.project_root)
    first = mlflow_tracking.log_run(config, folder, record, environ=environ(store, "twice"))
    again = mlflow_tracking.log_run(config, folder, record, environ=environ(store, "twice"))
    assert again == first
    experiment = client(store).get_experiment_by_name("twice")
    assert len(client(store).search_runs([experiment.experiment_id])) == 1


def test_a_failed_command_run_and_its_verdicts(store: str, config: Config) -> None:
    folder, record = make_run(
        config.project_root,
        status="failed",
        exit_code=3,
        error="command exited with status 3",
        entry=None,
        command=["python", "train.py", "--fast"],
        metrics=None,
        verdicts={"repeat": "identical"},
        source={"commit": "f" * 40, "dirty": True, "diff_sha256": "9" * 64},
        image={
            "reference": "registry.example/harness:cpu",
            "id": IMAGE_ID,
            "digest": "sha256:" + "12" * 32,
            "variant": "cpu",
        },
    )
    run_id = mlflow_tracking.log_run(
        config,
        folder,
        record,
        entry_point="main",
        verdicts={"compare": "within ulp:4"},
        environ=environ(store, "failed"),
    )
    run = client(store).get_run(run_id)
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert tags["mlflow.source.name"] == "python train.py --fast"
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["mlflow.source.git.dirty"] == "true"
    assert tags["mlflow.docker.image.uri"] == "registry.example/harness@sha256:" + "12" * 32
    assert tags["harness.exit_code"] == "3"
    assert tags["harness.verdict.repeat"] == "identical"
    assert tags["harness.verdict.compare"] == "within ulp:4"
    assert "command exited with status 3" in tags["mlflow.note.content"]
    # A command returns no metrics to the runtime: its metrics.json stands in.
    assert run.data.metrics == {"accuracy": 0.75, "loss.test": 2.0}


def test_an_unreachable_store_is_one_harness_error(config: Config, tmp_path: Path) -> None:
    folder, record = make_run(config.project_root)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's folder should be")
    uri = f"sqlite:///{blocked / 'mlflow.db'}"
    with pytest.raises(HarnessError, match=r"cannot log run .* to MLflow at"):
        mlflow_tracking.log_run(config, folder, record, environ=environ(uri, "x"))
