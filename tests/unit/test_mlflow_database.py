"""MLflow's tracking database (MLflow 3's default store) written by a run is kept by
logical place: its ids, clocks and page layout are set aside, never compared."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harness.runtime import mlflow_database, project_view

# The tables and columns of MLflow's schema that a run fills (MLflow 3.x, trimmed).
SCHEMA = """
CREATE TABLE experiments (experiment_id INTEGER, name TEXT, artifact_location TEXT,
    lifecycle_stage TEXT, creation_time INTEGER, last_update_time INTEGER);
CREATE TABLE runs (run_uuid TEXT, name TEXT, user_id TEXT, status TEXT, start_time INTEGER,
    end_time INTEGER, lifecycle_stage TEXT, artifact_uri TEXT, experiment_id INTEGER);
CREATE TABLE params (key TEXT, value TEXT, run_uuid TEXT);
CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT);
CREATE TABLE metrics (key TEXT, value REAL, timestamp INTEGER, run_uuid TEXT, step INTEGER,
    is_nan INTEGER);
CREATE TABLE inputs (input_uuid TEXT, source_type TEXT, source_id TEXT);
CREATE TABLE logged_models (model_id TEXT, experiment_id INTEGER, name TEXT,
    artifact_location TEXT, creation_timestamp_ms INTEGER, lifecycle_stage TEXT);
CREATE TABLE logged_model_params (model_id TEXT, param_key TEXT, param_value TEXT);
CREATE TABLE logged_model_tags (model_id TEXT, tag_key TEXT, tag_value TEXT);
CREATE TABLE logged_model_metrics (model_id TEXT, metric_name TEXT,
    metric_timestamp_ms INTEGER, metric_step INTEGER, metric_value REAL);
"""


def training(view: Path, run_id: str, clock: int, *, rmse: float = 0.79) -> None:
    """What `mlflow.start_run(); log_param; log_metric; sklearn.log_model` leaves behind
    with the default tracking URI, as MLflow's example project does."""
    run_artifacts = f"{view}/mlruns/0/{run_id}/artifacts"
    model_artifacts = f"{view}/mlruns/0/models/m-{run_id}/artifacts"
    database = sqlite3.connect(view / "mlflow.db")
    database.executescript(SCHEMA)
    rows = {
        "experiments": [(0, "Default", f"{view}/mlruns/0", "active", clock, clock)],
        "runs": [
            (
                run_id,
                "overjoyed-slug-911",
                "harness",
                "FINISHED",
                clock,
                clock + 9,
                "active",
                run_artifacts,
                0,
            ),
            (
                "d" + run_id[1:],
                "discarded",
                "harness",
                "FAILED",
                clock - 5,
                clock - 4,
                "deleted",
                "/elsewhere",
                0,
            ),
        ],
        "params": [("alpha", "0.5", run_id)],
        "tags": [("mlflow.user", "harness", run_id), ("team", "wine", run_id)],
        "metrics": [("rmse", rmse, clock + 1, run_id, 0, 0), ("nan", 0.0, clock, run_id, 0, 1)],
        "inputs": [(f"i-{run_id}", "RUN_OUTPUT", run_id)],
        "logged_models": [
            (f"m-{run_id}", 0, "model", f"file://{model_artifacts}", clock, "active")
        ],
        "logged_model_params": [(f"m-{run_id}", "alpha", "0.5")],
        "logged_model_tags": [(f"m-{run_id}", "mlflow.source.name", "train.py")],
        "logged_model_metrics": [(f"m-{run_id}", "rmse", clock + 1, 0, rmse)],
    }
    for table, values in rows.items():
        marks = ", ".join("?" * len(values[0]))
        database.executemany(f"INSERT INTO {table} VALUES ({marks})", values)  # noqa: S608 - the test's own tables
    database.commit()
    database.close()
    for folder, name, content in (
        (model_artifacts, "MLmodel", f"flavors: {{}}\nmodel_id: m-{run_id}\nrun_id: {run_id}\n"),
        (model_artifacts, "model.skops", f"weights {rmse}"),
        (run_artifacts, "plot.txt", "a plot"),
    ):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_text(content)


def kept(tmp_path: Path, name: str, run_id: str, clock: int, **values: float) -> dict[str, bytes]:
    source, view, output = (tmp_path / name / part for part in ("source", "view", "out"))
    source.mkdir(parents=True)
    output.mkdir()
    laid = project_view.lay_out(source, view)
    training(view, run_id, clock, **values)
    collected = project_view.collect(view, laid, output, ["**"])
    assert "mlflow.db: 1 x MLflow's database file (its runs are laid out by place)" in (
        collected.set_aside
    )
    return {
        path.relative_to(output).as_posix(): path.read_bytes()
        for path in sorted(output.rglob("*"))
        if path.is_file()
    }


def test_two_runs_of_one_training_keep_the_same_files(tmp_path: Path) -> None:
    first = kept(tmp_path, "a", "5f1c0e2a9b7d4c3e8f6a1b2c3d4e5f60", 1796564981168)
    second = kept(tmp_path, "b", "9a8b7c6d5e4f30211203f4e5d6c7b8a9", 1796565023910)
    assert first == second
    place = "mlflow.db/Default/overjoyed-slug-911"
    assert first == {
        f"{place}/params/alpha": b"0.5",
        f"{place}/tags/team": b"wine",
        f"{place}/metrics/rmse": b"0.79 0\n",
        f"{place}/metrics/nan": b"nan 0\n",
        f"{place}/artifacts/plot.txt": b"a plot",
        "mlflow.db/Default/models/model/params/alpha": b"0.5",
        "mlflow.db/Default/models/model/metrics/rmse": b"0.79 0\n",
        "mlflow.db/Default/models/model/artifacts/MLmodel": b"flavors: {}\n",
        "mlflow.db/Default/models/model/artifacts/model.skops": b"weights 0.79",
    }


def test_a_metric_that_moved_is_a_different_file(tmp_path: Path) -> None:
    first = kept(tmp_path, "a", "5f1c0e2a9b7d4c3e8f6a1b2c3d4e5f60", 1796564981168)
    second = kept(tmp_path, "b", "5f1c0e2a9b7d4c3e8f6a1b2c3d4e5f60", 1796564981168, rmse=0.8)
    moved = {path for path in first if first[path] != second.get(path)}
    assert moved == {
        "mlflow.db/Default/overjoyed-slug-911/metrics/rmse",
        "mlflow.db/Default/models/model/metrics/rmse",
        "mlflow.db/Default/models/model/artifacts/model.skops",
    }


def test_only_an_mlflow_database_is_read_as_one(tmp_path: Path) -> None:
    other = tmp_path / "cache.db"
    sqlite3.connect(other).executescript("CREATE TABLE runs (x); CREATE TABLE cache (y);")
    (tmp_path / "fake.db").write_bytes(mlflow_database.SQLITE_HEADER + b"\0" * 100)
    (tmp_path / "link.db").symlink_to(other)
    real = tmp_path / "view"
    real.mkdir()
    training(real, "5f1c0e2a9b7d4c3e8f6a1b2c3d4e5f60", 1)
    assert mlflow_database.is_database(real / "mlflow.db")
    assert not mlflow_database.is_database(other)
    assert not mlflow_database.is_database(tmp_path / "fake.db")
    assert not mlflow_database.is_database(tmp_path / "link.db")


def test_artifacts_outside_the_view_are_not_taken(tmp_path: Path) -> None:
    view = tmp_path / "view"
    view.mkdir()
    training(view, "5f1c0e2a9b7d4c3e8f6a1b2c3d4e5f60", 1)
    database = sqlite3.connect(view / "mlflow.db")
    database.execute("UPDATE runs SET artifact_uri = 's3://bucket/run'")
    database.execute("UPDATE logged_models SET artifact_location = '../../etc'")
    database.commit()
    database.close()
    written = {"mlruns/0/models/m-x/artifacts/model.skops"}
    logical, taken = mlflow_database.lay_out(view / "mlflow.db", view, written)
    assert taken == set()
    assert not any("artifacts" in path for path in logical.files)
