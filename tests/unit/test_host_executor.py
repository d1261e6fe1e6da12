"""The host executor: real runs of the runtime in this machine's Python, no container.

These start real interpreters (this test's own, which has numpy): they check what the
record says of a run no image isolated, how runs end, and what the process is given.
"""

from __future__ import annotations

import _thread
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from harness import interrupt, parallel
from harness.cli.main import cli
from harness.config import load_config
from harness.errors import ConfigError, HarnessError
from harness.runs import host_executor, records
from harness.runs.run import RunRequest
from harness.runtime import fingerprint
from tests.conftest import RUN_RECORD_SCHEMA

EXPERIMENTS = """\
import json, os, time
from pathlib import Path

import numpy


def train(output, seed, inputs, scale=1.0):
    values = numpy.random.default_rng(seed).normal(size=16) * scale
    numpy.save(output / "weights.npy", values)
    seen = {name: os.environ.get(name) for name in ("STRAY", "PYTHONHASHSEED")}
    (output / "seen.json").write_text(json.dumps(seen, sort_keys=True))
    return {"mean": float(values.mean()), "home": os.environ["HOME"]}


def weights(output, seed, inputs):
    numpy.save(output / "weights.npy", numpy.random.default_rng(seed).normal(size=16))
    return {}


def drifting(output, seed, inputs):
    numpy.save(output / "weights.npy", numpy.array([time.perf_counter_ns()]))
    return {}


def crash(output, seed, inputs):
    raise RuntimeError("out of memory on purpose")


def beside(output, seed, inputs):
    # Code that writes next to itself, as MLflow's ./mlruns does; and a read of the project.
    Path("mlruns/0").mkdir(parents=True)
    Path("mlruns/0/metric").write_text(str(seed))
    Path("notes.txt").write_text("rewritten by the run")
    return {"config": Path("config.txt").read_text()}


def clobber(output, seed, inputs):
    Path("big.bin").write_bytes(b"overwritten")


def slow(output, seed, inputs):
    (output / "ready").write_text("")
    time.sleep(60)


def located(output, seed, inputs):
    # As Lightning's checkpoints keep ModelCheckpoint's dirpath: the project's path.
    numpy.save(output / "weights.npy", numpy.random.default_rng(seed).normal(size=4))
    (output / "state.json").write_text(json.dumps({"dirpath": os.path.abspath("ckpt")}))
"""

PYPROJECT = """\
[project]
name = "hosted"
version = "0"

[tool.harness.experiments.train]
entry = "hosted_experiments:train"
outputs = ["weights.npy", "seen.json"]

[tool.harness.experiments.weights]
entry = "hosted_experiments:weights"
outputs = ["weights.npy"]

[tool.harness.experiments.drifting]
entry = "hosted_experiments:drifting"
outputs = ["weights.npy"]

[tool.harness.experiments.crash]
entry = "hosted_experiments:crash"

[tool.harness.experiments.beside]
entry = "hosted_experiments:beside"
outputs = ["mlruns/**"]

[tool.harness.experiments.clobber]
entry = "hosted_experiments:clobber"

[tool.harness.experiments.slow]
entry = "hosted_experiments:slow"

[tool.harness.experiments.located]
entry = "hosted_experiments:located"

[tool.harness.experiments.forgetful]
entry = "hosted_experiments:train"
outputs = ["weights.npy", "never-written.bin"]
"""


@pytest.fixture
def hosted(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "hosted_experiments.py").write_text(EXPERIMENTS)
    return tmp_path


@pytest.fixture(scope="module")
def python() -> host_executor.PythonEnvironment:
    return host_executor.inspect_python(Path(sys.executable))


@pytest.fixture(autouse=True)
def _described_once(
    python: host_executor.PythonEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Describing an interpreter starts it and lists its distributions (a tenth of a second
    or more, each command line run): this test's own interpreter is described once."""
    describe = host_executor.inspect_python

    def inspect(executable: Path) -> host_executor.PythonEnvironment:
        if Path(executable).absolute() == Path(sys.executable).absolute():
            return python
        return describe(executable)

    monkeypatch.setattr(host_executor, "inspect_python", inspect)


def _request(project: Path, name: str, **changes: object) -> RunRequest:
    config = load_config(project)
    return RunRequest(config.experiment(name), seed=7, profile="strict", threads=1, **changes)  # type: ignore[arg-type]


def test_a_host_run_records_the_environment_in_place_of_an_image(
    hosted: Path, python: host_executor.PythonEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRAY", "from the user's shell")
    config = load_config(hosted)
    result = host_executor.run_on_host(config, _request(hosted, "train"), python)
    record = result.record
    assert result.status == "succeeded", record.get("log_tail")
    assert record["executor"] == "host"
    assert record["image"] is None and record["container"] is None and record["engine"] is None
    environment = record["python_environment"]
    assert environment["digest"] == python.digest
    assert environment["digest"].startswith("sha256:")
    assert any(d["name"] == "numpy" for d in environment["distributions"])
    assert {a["path"] for a in record["artifacts"]} == {"weights.npy", "seen.json"}
    assert record["metrics"]["mean"] == pytest.approx(
        float(__import__("numpy").random.default_rng(7).normal(size=16).mean())
    )
    # Seeded and switched as in a container; nothing of this shell but what is passed on.
    assert record["observed"]["numpy"]["version"]
    seen = json.loads((result.folder / records.ARTIFACTS / "seen.json").read_text())
    assert seen["STRAY"] is None
    assert seen["PYTHONHASHSEED"] == "7"
    home = record["metrics"]["home"]
    assert home != str(Path.home())
    assert not Path(home).exists(), "the private home is removed after the run"
    assert records.read(result.folder)["status"] == "succeeded"
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    # The schema tells a host record from a container one: without its environment it fails.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "python_environment": None}, RUN_RECORD_SCHEMA)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and ".harness" not in path.parts
    }


def test_a_host_run_writes_next_to_its_code_in_a_view_and_the_checkout_never_changes(
    hosted: Path, python: host_executor.PythonEnvironment
) -> None:
    (hosted / "config.txt").write_text("lr=0.1\n")
    (hosted / "notes.txt").write_text("the user's own\n")
    before = _files(hosted)
    result = host_executor.run_on_host(load_config(hosted), _request(hosted, "beside"), python)
    assert result.status == "succeeded", result.record.get("log_tail")
    assert result.record["metrics"] == {"config": "lr=0.1\n"}
    # What it wrote next to itself and the outputs name is kept, at the same path.
    assert (result.folder / records.ARTIFACTS / "mlruns/0/metric").read_text() == "7"
    assert _files(hosted) == before
    assert not (hosted / "mlruns").exists()


def test_a_host_run_that_writes_through_to_a_large_project_file_fails_naming_it(
    hosted: Path, python: host_executor.PythonEnvironment
) -> None:
    # Large files are linked into the view, not copied (a data set may be gigabytes), so
    # on the host a write in place reaches the project: the run fails and says which.
    (hosted / "big.bin").write_bytes(b"\0" * (2 << 20))
    result = host_executor.run_on_host(load_config(hosted), _request(hosted, "clobber"), python)
    assert result.status == "failed"
    assert "the project's big.bin changed during the run" in str(result.record["error"])


def test_two_host_runs_of_a_seeded_experiment_agree_and_a_drifting_one_is_caught(
    hosted: Path, python: host_executor.PythonEnvironment
) -> None:
    runner = CliRunner()
    arguments = ["--project", str(hosted), "run", "--executor", "host"]
    arguments += ["--python", sys.executable, "--repeat", "2"]
    same = runner.invoke(cli, [*arguments, "train"])
    assert same.exit_code == 0, same.output
    moved = runner.invoke(cli, [*arguments, "drifting"])
    assert moved.exit_code == 1
    assert "its 2 runs differ in weights.npy" in moved.output


def test_ctrl_c_stops_host_runs_made_at_once_and_records_each_aborted(
    hosted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs not stopped by then would be left running: fail soon rather than wait a minute.
    monkeypatch.setattr(parallel, "_GRACE_S", 5.0)
    runs = records.runs_root(hosted)

    def press_ctrl_c_once_both_run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Each experiment says when it runs: its runtime is then ready for SIGTERM.
            ready = list(runs.glob("*/**/ready")) if runs.is_dir() else []
            if len(ready) == 2:
                break
            time.sleep(0.02)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c_once_both_run, daemon=True).start()
    arguments = ["--project", str(hosted), "run", "slow", "--repeat", "2", "--jobs", "2"]
    try:
        result = CliRunner().invoke(
            cli, [*arguments, "--executor", "host", "--python", sys.executable]
        )
    finally:
        interrupt.reset()
    assert result.exit_code == 130, result.output
    statuses = [records.read(folder)["status"] for folder in sorted(runs.iterdir())]
    assert statuses == ["aborted", "aborted"]


def test_runs_at_once_name_themselves_on_every_progress_line(hosted: Path) -> None:
    arguments = ["--project", str(hosted), "run", "weights", "train", "--repeat", "2"]
    result = CliRunner().invoke(
        cli, [*arguments, "--jobs", "3", "--executor", "host", "--python", sys.executable]
    )
    assert result.exit_code == 0, result.output
    assert "harness: up to 3 run(s) at once" in result.stderr
    for name in ("weights, run 1 of 2", "weights, run 2 of 2", "train, run 1 of 2"):
        assert f"harness: {name}: started " in result.stderr
        assert re.search(rf"harness: {name}: succeeded after [\d.]+ s \(", result.stderr)
    # Results on stdout come in the order asked for, whichever run ended first.
    printed = [line.split()[0] for line in result.stdout.splitlines() if "succeeded" in line]
    assert [run_id.split("-")[2] for run_id in printed] == ["weights"] * 2 + ["train"] * 2


def test_a_crash_a_missing_output_and_a_timeout_each_end_their_record(
    hosted: Path, python: host_executor.PythonEnvironment
) -> None:
    config = load_config(hosted)
    crashed = host_executor.run_on_host(config, _request(hosted, "crash"), python)
    assert crashed.status == "failed"
    assert "out of memory on purpose" in crashed.record["error"]
    assert any("RuntimeError" in line for line in crashed.record["log_tail"])
    forgetful = host_executor.run_on_host(config, _request(hosted, "forgetful"), python)
    assert forgetful.status == "failed"
    assert "never-written.bin" in forgetful.record["error"]
    slow = host_executor.run_on_host(config, _request(hosted, "slow", timeout=1), python)
    assert slow.status == "timeout"
    assert slow.record["error"] == "stopped after 1 s"
    for result in (crashed, forgetful, slow):
        assert records.read(result.folder)["status"] == result.status


def test_runs_with_the_switches_off_say_so(
    hosted: Path, python: host_executor.PythonEnvironment
) -> None:
    config = load_config(hosted)
    result = host_executor.run_on_host(config, _request(hosted, "train"), python, switches=False)
    assert result.record["switches"] is False
    assert "CUBLAS_WORKSPACE_CONFIG" not in result.record["environment"]
    assert result.record["violations"] == ["the determinism switches were left off on purpose"]


def test_cpus_is_refused_without_a_container(
    hosted: Path, python: host_executor.PythonEnvironment
) -> None:
    config = load_config(hosted)
    with pytest.raises(ConfigError, match="--cpus limits a container"):
        host_executor.run_on_host(config, _request(hosted, "train", cpus=1.0), python)
    assert not records.runs_root(hosted).exists(), "nothing is written for a refused run"


def test_an_interpreter_that_cannot_run_the_runtime_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Python 2.7 forever' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(
        ConfigError, match=re.escape("cannot run harness's runtime: Python 2.7 forever")
    ):
        host_executor.inspect_python(fake)
    with pytest.raises(ConfigError, match="no such interpreter"):
        host_executor.resolve_python(str(tmp_path / "missing" / "python"), tmp_path)


def test_the_interpreter_defaults_to_the_project_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    assert host_executor.resolve_python(None, tmp_path) == venv_python
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "active"))
    active = tmp_path / "active" / "bin" / "python"
    active.parent.mkdir(parents=True)
    active.write_text("")
    assert host_executor.resolve_python(None, tmp_path) == active


def test_gpus_are_refused_on_a_machine_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint, "nvml_gpus", lambda: None)
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(HarnessError, match="no NVIDIA GPU is visible") as refused:
        host_executor.check_gpus(True)
    assert "leave out --gpus" in refused.value.one_line()
    assert host_executor.check_gpus(False) is None


def test_gpus_are_found_through_nvidia_smi_when_nvml_is_not_on_the_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded = (Path(__file__).parent / "data" / "gpu" / "h200-nvidia-smi.csv").read_bytes()
    monkeypatch.setattr(fingerprint, "nvml_gpus", lambda: None)
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda *_, **__: subprocess.CompletedProcess([], 0, stdout=recorded, stderr=b""),
    )
    found = host_executor.check_gpus(True)
    assert found is not None
    assert found["class"] == "NVIDIA H200 (compute 9.0)"
    assert found["driver"] == "580.159.04"


def test_the_cli_refuses_hosts_and_certificates_with_the_host_executor(hosted: Path) -> None:
    arguments = ["--project", str(hosted), "run", "train", "--executor", "host"]
    refused = CliRunner().invoke(cli, [*arguments, "--hosts", "local,b=unix:///x.sock"])
    assert refused.exit_code == 2
    assert "takes neither --hosts nor --require-certificate" in refused.output
    switches = CliRunner().invoke(
        cli, ["--project", str(hosted), "run", "train", "--unsafe-no-determinism"]
    )
    assert switches.exit_code == 2
    assert "use it with --executor host" in switches.output


def test_verify_with_the_host_executor_then_certify_by_the_environment(
    hosted: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path_factory.mktemp("keys")  # never inside the project
    monkeypatch.setenv("HARNESS_KEYS_DIR", str(keys))
    runner = CliRunner()
    base = ["--project", str(hosted)]
    # The key first: this host signs the runs verify makes with it.
    assert runner.invoke(cli, [*base, "keys", "generate"]).exit_code == 0
    verified = runner.invoke(
        cli,
        [*base, "verify", "weights", "--executor", "host", "--python", sys.executable, "--json"],
    )
    assert verified.exit_code == 0, verified.output
    assert "leaving out hostname, user (they need a container)" in verified.stderr
    document = json.loads(verified.stdout)
    assert document["executor"] == "host"
    assert document["image"] is None
    assert document["variations"] == ["cpus", "timezone", "locale", "workdir", "env", "hashseed"]
    assert document["experiments"][0]["reproducible"] is True
    certified = runner.invoke(cli, [*base, "certify", "--json"])
    assert certified.exit_code == 0, certified.output
    certificate = json.loads(certified.stdout)["certificate"]
    checked = runner.invoke(
        cli, [*base, "certificate", "verify", certificate, "--key", str(keys / "harness.pub")]
    )
    assert checked.exit_code == 0, checked.output
    assert "host environment sha256:" in checked.stdout
    assert "no image isolated the runs" in checked.stdout
    tagged = runner.invoke(cli, [*base, "certify", "--tag"])
    assert tagged.exit_code == 2
    assert "there is no image to tag" in tagged.stderr


def test_verify_with_the_host_executor_names_a_drifting_experiment(hosted: Path) -> None:
    arguments = ["--project", str(hosted), "verify", "drifting", "--vary", "none"]
    result = CliRunner().invoke(cli, [*arguments, "--executor", "host", "--python", sys.executable])
    assert result.exit_code == 1
    assert "NOT reproducible: moved by rerun" in result.stdout


def test_the_hashseed_variation_names_an_experiment_that_writes_the_hash_seed(
    hosted: Path,
) -> None:
    arguments = ["--project", str(hosted), "verify", "train", "--vary", "hashseed,env"]
    result = CliRunner().invoke(cli, [*arguments, "--executor", "host", "--python", sys.executable])
    assert result.exit_code == 1
    assert "NOT reproducible: moved by hashseed" in result.stdout


def test_host_runs_that_differ_only_in_their_project_s_path_are_told_so(hosted: Path) -> None:
    # Each host run lies in a folder of its own: "the clock or unseeded randomness" would
    # be the wrong account of why its control runs disagree.
    arguments = ["--project", str(hosted), "verify", "located", "--vary", "none"]
    result = CliRunner().invoke(cli, [*arguments, "--executor", "host", "--python", sys.executable])
    assert result.exit_code == 1
    assert "NOT reproducible: moved by rerun" in result.stdout
    assert (
        "only the project's path the files hold differs (state.json, in $.dirpath): each run "
        "here lies in a folder of its own"
    ) in " ".join(result.stdout.split())
