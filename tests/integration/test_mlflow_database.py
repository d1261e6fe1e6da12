"""MLflow's own tracking database, as real MLflow writes it, kept by logical place.

MLflow 3 tracks to ``sqlite:///mlflow.db`` by default. Three trainings log through the
real MLflow into three project views, as experiments do inside the image: two alike, one
with a metric that moved. What the runtime keeps of each must be equal for the first two
(the database's ids, clocks and pages set aside) and differ for the third exactly where
the metric moved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.runtime import project_view

TRAINING = textwrap.dedent(
    """
    import os, random, warnings
    warnings.filterwarnings("ignore")
    random.seed(7)  # MLflow names a run from random; harness seeds it in a run
    import mlflow

    with mlflow.start_run():
        mlflow.log_param("alpha", 0.5)
        mlflow.set_tag("team", "wine")
        for step in range(3):
            mlflow.log_metric("rmse", float(os.environ["SCALE"]) / (step + 1), step=step)
        mlflow.log_text("hello", "notes/readme.txt")
    """
)


def test_mlflows_database_is_kept_by_logical_place(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="mlflow is a development dependency")
    started = []
    for name, scale in (("a", "1.0"), ("b", "1.0"), ("moved", "1.5")):
        source, view = tmp_path / name / "source", tmp_path / name / "view"
        source.mkdir(parents=True)
        laid = project_view.lay_out(source, view)
        environ = {
            **os.environ,
            "SCALE": scale,
            "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
            "PYTHONHASHSEED": "0",
        }
        process = subprocess.Popen(
            [sys.executable, "-c", TRAINING],
            cwd=view,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append((name, view, laid, process))
    kept: dict[str, dict[str, bytes]] = {}
    for name, view, laid, process in started:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        assert (view / "mlflow.db").is_file()
        output = tmp_path / name / "out"
        output.mkdir()
        collected = project_view.collect(view, laid, output, ["**"])
        assert any(line.startswith("mlflow.db: ") for line in collected.set_aside), (
            collected.set_aside
        )
        kept[name] = {
            path.relative_to(output).as_posix(): path.read_bytes()
            for path in output.rglob("*")
            if path.is_file()
        }
    assert kept["a"] == kept["b"]
    [run] = {path.split("/")[2] for path in kept["a"]}
    place = f"mlflow.db/Default/{run}"
    assert kept["a"] == {
        f"{place}/params/alpha": b"0.5",
        f"{place}/tags/team": b"wine",
        f"{place}/metrics/rmse": b"1.0 0\n0.5 1\n0.3333333333333333 2\n",
        # The glob names the artifacts' folder too: they stay there, names for ids.
        f"mlruns/Default/{run}/artifacts/notes/readme.txt": b"hello",
    }
    moved = {path for path in kept["a"] if kept["a"][path] != kept["moved"].get(path)}
    assert moved == {f"{place}/metrics/rmse"}
