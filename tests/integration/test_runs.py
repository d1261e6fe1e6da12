"""Real runs: the built-in examples reproduce bit for bit, and failures are recorded cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import jsonschema
import pytest

from harness.engine import Engine
from tests.conftest import REPOSITORY, RUN_RECORD_SCHEMA, copy_project_files
from tests.integration.conftest import containers_left_behind, containers_of, harness, image_name

PROBES = '''\
"""Experiments that probe the sandbox harness runs them in."""

import json
import socket
import time
from pathlib import Path


def network(output: Path, seed: int, inputs: dict) -> dict:
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=3).close()
        reached = "reachable"
    except OSError as error:
        reached = f"unreachable: {type(error).__name__}"
    (output / "network.json").write_text(json.dumps({"network": reached}))
    return {"network": reached}


def crash(output: Path, seed: int, inputs: dict) -> dict:
    print("about to divide by zero")
    return {"value": 1 / 0}


def hang(output: Path, seed: int, inputs: dict) -> dict:
    print("hanging", flush=True)
    time.sleep(600)
    return {}


def next_to_itself(output: Path, seed: int, inputs: dict) -> dict:
    # Relative to the working directory, as code run from its checkout writes.
    Path("mlruns/0").mkdir(parents=True)
    Path("mlruns/0/score").write_text("1.5\\n")
    Path("checkpoints").mkdir()
    Path("checkpoints/last.txt").write_text("1\\n")
    try:
        Path("/harness/source/tamper.txt").write_text("x")
        tamper = "written"
    except OSError:
        tamper = "refused"
    return {"tamper": tamper, "reads_project": Path("probes.py").is_file()}


def read_input(output: Path, seed: int, inputs: dict) -> dict:
    data = (inputs["data"] / "numbers.txt").read_text()
    (output / "sum.txt").write_text(str(sum(int(x) for x in data.split())))
    try:
        (inputs["data"] / "tamper.txt").write_text("x")
        tamper = "written"
    except OSError:
        tamper = "refused"
    return {"tamper": tamper}
'''

PROBE_EXPERIMENTS = """
[tool.harness.experiments.probe-network]
entry = "probes:network"

[tool.harness.experiments.probe-crash]
entry = "probes:crash"

[tool.harness.experiments.probe-hang]
entry = "probes:hang"

[tool.harness.experiments.probe-next-to-itself]
entry = "probes:next_to_itself"
outputs = ["mlruns/**"]

[tool.harness.experiments.probe-input]
entry = "probes:read_input"
inputs = { data = "data" }
outputs = ["sum.txt"]
"""


def run_json(*arguments: str, cwd: Path = REPOSITORY) -> tuple[int, list[dict[str, Any]], str]:
    result = harness("run", "--json", *arguments, cwd=cwd)
    records = json.loads(result.stdout) if result.stdout.strip() else []
    return result.returncode, records, result.stderr


@pytest.fixture(scope="session")
def example_runs(engine: Engine) -> list[dict[str, Any]]:
    """The three built-in examples, each run twice: what `harness run --repeat 2` gives."""
    code, records, stderr = run_json("--repeat", "2")
    assert code == 0, stderr
    return records


@pytest.fixture(scope="session")
def probe_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("probe-project")
    folder.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    copy_project_files(folder)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('image = "harness"', f'image = "{image_name("probe")}"')
        + PROBE_EXPERIMENTS
    )
    (folder / "probes.py").write_text(PROBES)
    (folder / "data").mkdir()
    (folder / "data" / "numbers.txt").write_text("1 2 3 4\n")
    return folder


def by_experiment(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["experiment"], []).append(record)
    return grouped


def digests(record: dict[str, Any]) -> dict[str, str]:
    return {a["path"]: a["sha256"] for a in record["artifacts"]}


def test_each_example_run_twice_gives_identical_artifacts(
    example_runs: list[dict[str, Any]],
) -> None:
    grouped = by_experiment(example_runs)
    assert set(grouped) == {"sklearn", "torch", "tensorflow"}
    for name, (first, second) in grouped.items():
        assert first["status"] == second["status"] == "succeeded", name
        assert digests(first) == digests(second), name
        assert "metrics.json" in digests(first), name
        assert len(digests(first)) >= 2, name


def test_records_follow_the_schema_and_show_the_switches(
    example_runs: list[dict[str, Any]],
) -> None:
    for record in example_runs:
        jsonschema.validate(record, RUN_RECORD_SCHEMA)
        assert record["violations"] == []
        assert record["environment"]["PYTHONHASHSEED"]
        assert record["fingerprint"]
    torch_run = by_experiment(example_runs)["torch"][0]
    assert torch_run["observed"]["torch"]["deterministic_algorithms"] is True
    tensorflow_run = by_experiment(example_runs)["tensorflow"][0]
    assert "tensorflow" in tensorflow_run["observed"]


def test_runs_list_show_and_compare_read_the_records(example_runs: list[dict[str, Any]]) -> None:
    first, second = by_experiment(example_runs)["torch"]
    listed = json.loads(harness("runs", "list", "--json").stdout)
    assert {first["run_id"], second["run_id"]} <= {row["run_id"] for row in listed}
    shown = json.loads(harness("runs", "show", first["run_id"], "--json").stdout)
    assert shown == first
    compared = harness("compare", first["run_id"], second["run_id"], "--json")
    assert compared.returncode == 0, compared.stderr
    verdicts = {a["path"]: a["status"] for a in json.loads(compared.stdout)["artifacts"]}
    assert set(verdicts.values()) == {"identical"}


def test_one_cpu_gives_the_same_bytes_as_two(engine: Engine) -> None:
    code, one, stderr = run_json("torch", "--cpus", "1")
    assert code == 0, stderr
    code, two, stderr = run_json("torch", "--cpus", "2")
    assert code == 0, stderr
    assert digests(one[0]) == digests(two[0])
    assert one[0]["container"]["cpus"] == 1.0
    assert one[0]["threads"] == two[0]["threads"] == 1


def test_the_network_is_off_inside(probe_project: Path) -> None:
    code, (record,), stderr = run_json("probe-network", cwd=probe_project)
    assert code == 0, stderr
    assert record["metrics"]["network"].startswith("unreachable")


def test_inputs_are_hashed_and_read_only(probe_project: Path) -> None:
    code, (record,), stderr = run_json("probe-input", cwd=probe_project)
    assert code == 0, stderr
    assert record["inputs"]["data"]["kind"] == "folder"
    assert record["inputs"]["data"]["files"] == 1
    assert record["metrics"]["tamper"] == "refused"
    assert (
        probe_project / ".harness/runs" / record["run_id"] / "artifacts/sum.txt"
    ).read_text() == "10"


def test_code_that_writes_next_to_itself_runs_and_the_project_never_changes(
    probe_project: Path,
) -> None:
    before = sorted(p.relative_to(probe_project) for p in probe_project.rglob("*"))
    code, (record,), stderr = run_json("probe-next-to-itself", cwd=probe_project)
    assert code == 0, stderr
    assert record["metrics"] == {"tamper": "refused", "reads_project": True}
    # What an output glob names is kept, the rest goes with the container.
    assert [a["path"] for a in record["artifacts"]] == ["mlruns/0/score"]
    after = sorted(
        p.relative_to(probe_project)
        for p in probe_project.rglob("*")
        if ".harness" not in p.relative_to(probe_project).parts
    )
    assert after == [p for p in before if ".harness" not in p.parts]


def test_a_crashing_experiment_gives_a_failed_record_and_exit_1(
    engine: Engine, probe_project: Path
) -> None:
    code, (record,), _ = run_json("probe-crash", cwd=probe_project)
    assert code == 1
    assert record["status"] == "failed"
    assert "ZeroDivisionError" in record["error"]
    assert any("about to divide by zero" in line for line in record["log_tail"])
    stored = json.loads(
        (probe_project / ".harness/runs" / record["run_id"] / "record.json").read_text()
    )
    assert stored["status"] == "failed"
    assert containers_left_behind(engine) == []


def test_a_timeout_stops_the_container(engine: Engine, probe_project: Path) -> None:
    started = time.monotonic()
    code, (record,), _ = run_json("probe-hang", "--timeout", "5", cwd=probe_project)
    assert time.monotonic() - started < 120
    assert code == 1
    assert record["status"] == "timeout"
    assert containers_left_behind(engine) == []


def test_ctrl_c_removes_the_container_and_records_the_run_as_aborted(
    engine: Engine, probe_project: Path
) -> None:
    harness("build", cwd=probe_project)  # so that the run below starts at once
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "probe-hang"],
        cwd=probe_project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not containers_of(engine, process.pid):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run's container never started"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert containers_left_behind(engine) == []
    runs = sorted((probe_project / ".harness/runs").iterdir())
    aborted = [json.loads((r / "record.json").read_text()) for r in runs]
    assert any(r["experiment"] == "probe-hang" and r["status"] == "aborted" for r in aborted)


def test_ctrl_c_stops_every_run_made_at_once_and_records_each_aborted(
    engine: Engine, probe_project: Path
) -> None:
    harness("build", cwd=probe_project)  # so that the runs below start at once
    runs = probe_project / ".harness/runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "probe-hang", "--repeat", "2", "--jobs", "2"],
        cwd=probe_project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    # Each run's log is opened once its container has started: then both are under way.
    while len([r for r in runs.glob("*/log.txt") if r.parent not in before]) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the runs' containers never started"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr
    mine = sorted(set(runs.iterdir()) - before)
    stored = [json.loads((r / "record.json").read_text()) for r in mine]
    assert [r["status"] for r in stored] == ["aborted", "aborted"]
    client = docker.from_env()
    for record in stored:
        label = f"io.harness.run-id={record['run_id']}"
        assert client.containers.list(all=True, filters={"label": label}) == []


def test_a_project_the_container_cannot_read_is_refused_with_the_fix(probe_project: Path) -> None:
    probe_project.chmod(0o700)
    try:
        result = harness("run", "probe-network", cwd=probe_project)
    finally:
        probe_project.chmod(0o755)
    assert result.returncode == 2
    assert "is not readable by the container's user" in result.stderr
    assert f"chmod o+rx {probe_project}" in result.stderr


def test_gpus_without_a_gpu_runtime_are_refused_before_anything_starts(
    engine: Engine, probe_project: Path
) -> None:
    if engine.has_gpu_runtime():
        pytest.skip("this engine has a GPU runtime")
    before = (
        set((probe_project / ".harness/runs").glob("*"))
        if (probe_project / ".harness/runs").exists()
        else set()
    )
    result = harness("run", "probe-network", "--variant", "cuda", "--gpus", cwd=probe_project)
    assert result.returncode == 2
    assert "no NVIDIA runtime" in result.stderr
    after = (
        set((probe_project / ".harness/runs").glob("*"))
        if (probe_project / ".harness/runs").exists()
        else set()
    )
    assert after == before


def test_verify_takes_gpus_and_refuses_them_without_a_gpu_runtime(
    engine: Engine, probe_project: Path
) -> None:
    if engine.has_gpu_runtime():
        pytest.skip("this engine has a GPU runtime")
    result = harness("verify", "probe-network", "--variant", "cuda", "--gpus", cwd=probe_project)
    assert result.returncode == 2
    assert "no NVIDIA runtime" in result.stderr
    assert "install the NVIDIA Container Toolkit" in result.stderr
