"""An MLflow file store written by a run is kept by logical place: the ids, clocks and
host metrics MLflow stamps are recorded as set aside, never compared."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.runtime import mlflow_store, project_view


def mlflow_run(store: Path, run_id: str, started: int, *, value: str = "0.5") -> set[str]:
    """What MLflow's file store holds after one training (MLflow 3 layout, trimmed)."""
    experiment = store / "412278384573219931"
    files = {
        experiment / "meta.yaml": (
            "artifact_location: file:///harness/project/mlruns/412278384573219931\n"
            f"creation_time: {started}\nexperiment_id: '412278384573219931'\n"
            "lifecycle_stage: active\nname: bikes\n"
        ),
        experiment / run_id / "meta.yaml": (
            f"artifact_uri: file:///x/{run_id}/artifacts\nend_time: {started + 5}\n"
            f"experiment_id: '412278384573219931'\nrun_id: {run_id}\nrun_name: training\n"
            f"run_uuid: {run_id}\nstart_time: {started}\nstatus: 3\nuser_id: harness\n"
        ),
        experiment / run_id / "metrics" / "score": f"{started + 1} {value} 0\n",
        experiment / run_id / "metrics" / "system" / "cpu_utilization_percentage": (
            f"{started + 2} 37.5 0\n"
        ),
        experiment / run_id / "params" / "seed": "42",
        experiment / run_id / "tags" / "mlflow.user": "harness",
        experiment / run_id / "tags" / "mlflow.runName": "training",
        experiment / run_id / "tags" / "team": "bikes",
        experiment / run_id / "artifacts" / "model" / "model.txt": f"{value}\n",
        experiment
        / run_id
        / "outputs"
        / f"m-{run_id}"
        / "meta.yaml": f"destination_id: {run_id}\n",
        experiment / "models" / f"m-{run_id}" / "meta.yaml": (
            f"model_id: m-{run_id}\nname: regressor\ncreation_timestamp: {started}\n"
        ),
        experiment / "models" / f"m-{run_id}" / "artifacts" / "MLmodel": (
            f"artifact_path: file:///x\nflavors:\n  sklearn: {{}}\nmodel_id: m-{run_id}\n"
            f"model_uuid: {run_id}\nrun_id: {run_id}\nutc_time_created: '2026-12-06 {started}'\n"
        ),
        experiment / "models" / f"m-{run_id}" / "artifacts" / "model.pkl": b"\x80\x05weights",
    }
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return {path.relative_to(store).as_posix() for path in files}


def kept(
    tmp_path: Path, name: str, run_id: str, started: int
) -> tuple[dict[str, bytes], list[str]]:
    source, view, output = (
        tmp_path / name / "source",
        tmp_path / name / "view",
        tmp_path / name / "out",
    )
    source.mkdir(parents=True)
    output.mkdir()
    laid = project_view.lay_out(source, view)
    mlflow_run(view / "mlruns", run_id, started)
    collected = project_view.collect(view, laid, output, ["**"])
    files = {
        path.relative_to(output).as_posix(): path.read_bytes()
        for path in sorted(output.rglob("*"))
        if path.is_file()
    }
    assert sorted(files) == sorted(collected.kept)
    return files, collected.set_aside


def test_two_runs_of_one_training_keep_the_same_files(tmp_path: Path) -> None:
    first, set_aside = kept(tmp_path, "a", "5f1c0e2a9b7d4c3e8f6a1b2c3d4e5f60", 1765000000000)
    second, _ = kept(tmp_path, "b", "0a9b8c7d6e5f40312a3b4c5d6e7f8091", 1765000099999)
    assert first == second
    assert sorted(first) == [
        "mlruns/bikes/models/regressor/artifacts/MLmodel",
        "mlruns/bikes/models/regressor/artifacts/model.pkl",
        "mlruns/bikes/training/artifacts/model/model.txt",
        "mlruns/bikes/training/metrics/score",
        "mlruns/bikes/training/params/seed",
        "mlruns/bikes/training/tags/team",
    ]
    assert first["mlruns/bikes/training/metrics/score"] == b"0.5 0\n"
    assert first["mlruns/bikes/models/regressor/artifacts/MLmodel"] == b"flavors:\n  sklearn: {}\n"
    # The record says what was left out, and why.
    assert "mlruns: 3 x " + mlflow_store.WHY_META in set_aside
    assert "mlruns: 1 x " + mlflow_store.WHY_SYSTEM in set_aside
    assert "mlruns: 2 x " + mlflow_store.WHY_TAGS in set_aside
    assert "mlruns: 1 x " + mlflow_store.WHY_LINKS in set_aside


def test_a_metric_that_moved_still_differs(tmp_path: Path) -> None:
    source, view, output = tmp_path / "source", tmp_path / "view", tmp_path / "out"
    source.mkdir()
    output.mkdir()
    laid = project_view.lay_out(source, view)
    mlflow_run(view / "mlruns", "ab" * 16, 1, value="0.75")
    project_view.collect(view, laid, output, ["mlruns/**"])
    assert (output / "mlruns/bikes/training/metrics/score").read_bytes() == b"0.75 0\n"


def test_two_runs_of_one_name_are_told_apart_by_start_time(tmp_path: Path) -> None:
    store = tmp_path / "mlruns"
    written = mlflow_run(store, "b" * 32, 2000) | mlflow_run(store, "a" * 32, 1000)
    logical = mlflow_store.lay_out(store, written)
    assert "bikes/training/params/seed" in logical.files
    assert "bikes/training-2/params/seed" in logical.files


def test_a_folder_that_is_no_store_is_kept_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "meta.yaml").write_text("name: x\n")
    assert not mlflow_store.is_store(tmp_path / "outputs")
    assert not mlflow_store.is_store(tmp_path / "missing")


# The tables of MLflow's tracking database that hold a run (MLflow 3's schema, trimmed).
TRACKING_SCHEMA = """
create table experiments (experiment_id integer, name text, artifact_location text,
    lifecycle_stage text, creation_time integer);
create table runs (run_uuid text, name text, experiment_id integer, lifecycle_stage text,
    artifact_uri text, start_time integer, end_time integer, user_id text);
create table params (key text, value text, run_uuid text);
create table tags (key text, value text, run_uuid text);
create table metrics (key text, value real, timestamp integer, run_uuid text, step integer,
    is_nan integer);
create table logged_models (model_id text, experiment_id integer, name text,
    artifact_location text, creation_timestamp_ms integer);
create table logged_model_params (model_id text, experiment_id integer, param_key text,
    param_value text);
"""


def tracked_in_database(view: Path, run_id: str, started: int, *, loss: float = 0.5) -> None:
    """What `sqlite:///mlflow.db` leaves after one training: rows, and artifacts in folders
    named by ids."""
    artifacts = view / "mlruns" / "1" / run_id / "artifacts"
    model = view / "mlruns" / "1" / "models" / f"m-{run_id}" / "artifacts"
    with sqlite3.connect(view / "mlflow.db") as database:
        database.executescript(TRACKING_SCHEMA)
        database.execute(
            "insert into experiments values (1, 'bikes', ?, 'active', ?)",
            (str(view / "mlruns" / "1"), started),
        )
        database.execute(
            "insert into runs values (?, 'training', 1, 'active', ?, ?, ?, 'root')",
            (run_id, str(artifacts), started, started + 5),
        )
        database.execute("insert into params values ('alpha', '0.5', ?)", (run_id,))
        database.executemany(
            "insert into tags values (?, ?, ?)",
            [("mlflow.user", "root", run_id), ("team", "bikes", run_id)],
        )
        database.executemany(
            "insert into metrics values (?, ?, ?, ?, ?, 0)",
            [
                ("loss", 1.0, started + 1, run_id, 0),
                ("loss", loss, started + 2, run_id, 1),
                ("system/cpu_utilization_percentage", 37.5, started + 2, run_id, 0),
            ],
        )
        database.execute(
            "insert into logged_models values (?, 1, 'regressor', ?, ?)",
            (f"m-{run_id}", f"file://{model}", started),
        )
    artifacts.mkdir(parents=True)
    (artifacts / "report.txt").write_text("hello\n")
    model.mkdir(parents=True)
    (model / "MLmodel").write_text(f"flavors:\n  sklearn: {{}}\nmodel_id: m-{run_id}\n")
    (model / "model.pkl").write_bytes(b"\x80\x05weights")


def kept_from_database(
    tmp_path: Path,
    name: str,
    run_id: str,
    started: int,
    *,
    loss: float = 0.5,
    globs: tuple[str, ...] = ("mlflow.db",),
) -> tuple[dict[str, bytes], list[str]]:
    source, view, output = (tmp_path / name / p for p in ("source", "view", "out"))
    source.mkdir(parents=True)
    output.mkdir()
    laid = project_view.lay_out(source, view)
    tracked_in_database(view, run_id, started, loss=loss)
    collected = project_view.collect(view, laid, output, globs)
    files = {
        path.relative_to(output).as_posix(): path.read_bytes()
        for path in sorted(output.rglob("*"))
        if path.is_file()
    }
    return files, collected.set_aside


def test_a_tracking_database_is_kept_by_logical_place_with_its_artifacts(tmp_path: Path) -> None:
    first, set_aside = kept_from_database(tmp_path, "one", "a" * 32, 1_000)
    second, _ = kept_from_database(tmp_path, "two", "b" * 32, 9_000)
    assert first == second  # other ids, other times: the same result
    assert first["mlflow.db/bikes/training/metrics/loss"] == b"1.0 0\n0.5 1\n"
    assert first["mlflow.db/bikes/training/params/alpha"] == b"0.5"
    assert first["mlflow.db/bikes/training/tags/team"] == b"bikes"
    assert first["mlflow.db/bikes/training/artifacts/report.txt"] == b"hello\n"
    assert first["mlflow.db/bikes/models/regressor/artifacts/model.pkl"] == b"\x80\x05weights"
    assert b"model_id" not in first["mlflow.db/bikes/models/regressor/artifacts/MLmodel"]
    # Neither the database's bytes nor the folders named by id are kept as files.
    assert not any(path.startswith(("mlruns/", "mlflow.db/mlflow")) for path in first)
    assert "mlflow.db" not in first
    assert "mlflow.db: 1 x " + mlflow_store.WHY_SYSTEM in set_aside
    assert "mlflow.db: 1 x " + mlflow_store.WHY_TAGS in set_aside
    changed, _ = kept_from_database(tmp_path, "three", "c" * 32, 5_000, loss=0.25)
    assert changed["mlflow.db/bikes/training/metrics/loss"] == b"1.0 0\n0.25 1\n"


def test_artifacts_a_glob_names_stay_in_their_folder_with_names_for_ids(tmp_path: Path) -> None:
    globs = ("mlflow.db", "mlruns/**")
    first, _ = kept_from_database(tmp_path, "one", "a" * 32, 1_000, globs=globs)
    second, _ = kept_from_database(tmp_path, "two", "b" * 32, 9_000, globs=globs)
    assert first == second
    # mlruns/<experiment id>/<run id>/artifacts/... with the ids replaced by names, so
    # the glob that named the folder still names what is kept.
    assert first["mlruns/bikes/training/artifacts/report.txt"] == b"hello\n"
    assert first["mlruns/bikes/models/regressor/artifacts/model.pkl"] == b"\x80\x05weights"
    assert not any(path.startswith("mlflow.db/bikes/training/artifacts") for path in first)
    assert first["mlflow.db/bikes/training/params/alpha"] == b"0.5"


def test_a_file_that_is_no_tracking_database_is_kept_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_bytes(b"SQLite format 3\x00 but truncated")
    (tmp_path / "other.db").write_bytes(b"not sqlite")
    with sqlite3.connect(tmp_path / "plain.db") as database:
        database.execute("create table t (x)")
    for name in ("notes.db", "other.db", "plain.db", "missing.db"):
        assert not mlflow_store.is_database(tmp_path / name)


def test_without_sqlite3_a_database_is_kept_as_a_file_and_nothing_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interpreter built without sqlite3 (a host executor's may be) still runs the runtime.
    with sqlite3.connect(tmp_path / "mlflow.db") as database:
        database.executescript(TRACKING_SCHEMA)
    assert mlflow_store.is_database(tmp_path / "mlflow.db")
    monkeypatch.setattr(mlflow_store, "sqlite3", None)
    assert not mlflow_store.is_database(tmp_path / "mlflow.db")
