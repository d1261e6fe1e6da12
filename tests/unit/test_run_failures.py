"""How a run ends when harness, not the experiment, fails: never a record left ``running``.

The engine is the real :class:`harness.engine.Engine` over an in-memory Docker whose
daemon can go away in the middle of a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import docker.errors
import jsonschema
import pytest
import requests.exceptions
from click.testing import CliRunner

from harness.cli.main import cli
from harness.config import Config, load_config
from harness.engine import Engine
from harness.errors import EngineError, EngineUnavailable
from harness.images.build import BuildResult
from harness.runs import records
from harness.runs.host_executor import PythonEnvironment, run_on_host
from harness.runs.run import RunRequest, run_experiment
from tests.conftest import RUN_RECORD_SCHEMA
from tests.unit.fake_docker import FakeClient, FakeContainer, Ran
from tests.unit.test_vcs import git

PYPROJECT = """\
[project]
name = "failing"
version = "0"

[tool.harness]
image = "failing"
host-name = "a"

[tool.harness.experiments.train]
entry = "failing:train"
outputs = ["weights.bin"]
"""
IMAGE = BuildResult("failing:cpu", f"sha256:{'ab' * 32}", "cpu", True, 0.0, 1)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o755)  # the container's user reads it
    (project / "pyproject.toml").write_text(PYPROJECT)
    return load_config(project)


def _request(config: Config) -> RunRequest:
    return RunRequest(config.experiment("train"), seed=0, profile="strict", threads=1)


def daemon_gone(experiment: str, environment: Mapping[str, str]) -> Ran:
    # What the SDK raises when dockerd's socket closes while harness waits on a container.
    raise requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")


def container_failed(experiment: str, environment: Mapping[str, str]) -> Ran:
    raise docker.errors.APIError("500 Server Error", explanation="OCI runtime failed")


def only_record(config: Config) -> dict[str, object]:
    found = list(records.all_records(config.project_root))
    assert len(found) == 1
    record = found[0][1]
    assert record is not None
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    return record


def test_a_lost_engine_ends_the_record_lost_and_runs_list_shows_it(config: Config) -> None:
    client = FakeClient(daemon_gone)
    with pytest.raises(EngineUnavailable, match="lost the Docker engine at fake"):
        run_experiment(Engine(client, "fake"), config, IMAGE, _request(config))  # type: ignore[arg-type]
    record = only_record(config)
    assert record["status"] == "lost"
    assert "Connection aborted" in str(record["error"])
    assert client.containers.live == {}  # removed all the same
    listed = CliRunner().invoke(cli, ["--project", str(config.project_root), "runs", "list"])
    assert listed.exit_code == 0
    assert " lost " in listed.stdout


def test_a_container_the_engine_failed_ends_the_record_failed(config: Config) -> None:
    with pytest.raises(EngineError, match="OCI runtime failed"):
        run_experiment(
            Engine(FakeClient(container_failed), "fake"),  # type: ignore[arg-type]
            config,
            IMAGE,
            _request(config),
        )
    record = only_record(config)
    assert record["status"] == "failed"
    assert "OCI runtime failed" in str(record["error"])


def test_a_host_run_whose_process_cannot_start_ends_failed(config: Config) -> None:
    missing = PythonEnvironment(
        config.project_root / "no-such-python",
        {"digest": f"sha256:{'cd' * 32}", "python": "3.11", "distributions": []},
    )
    with pytest.raises(FileNotFoundError):
        run_on_host(config, _request(config), missing)
    record = only_record(config)
    assert record["status"] == "failed"
    assert "No such file or directory" in str(record["error"])
    # A host run names no image: the list shows it all the same.
    listed = CliRunner().invoke(cli, ["--project", str(config.project_root), "runs", "list"])
    assert listed.exit_code == 0, listed.output
    assert " failed " in listed.stdout


def test_a_removal_that_fails_after_the_engine_is_lost_does_not_hide_why(
    config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def gone_too(self: FakeContainer, force: bool = False) -> None:
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    monkeypatch.setattr(FakeContainer, "remove", gone_too)
    with pytest.raises(EngineUnavailable, match="Connection aborted") as raised:
        run_experiment(Engine(FakeClient(daemon_gone), "fake"), config, IMAGE, _request(config))  # type: ignore[arg-type]
    assert only_record(config)["status"] == "lost"
    # One line: the removal failed for the reason the error already gives, and the fix
    # says who removes the container once the engine is back.
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    assert "the next `harness run`, `verify` or `doctor` removes" in raised.value.hint


def test_a_removal_that_fails_after_another_error_is_a_warning(
    config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def gone_too(self: FakeContainer, force: bool = False) -> None:
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    monkeypatch.setattr(FakeContainer, "remove", gone_too)
    with pytest.raises(EngineError, match="OCI runtime failed"):
        run_experiment(
            Engine(FakeClient(container_failed), "fake"), config, IMAGE, _request(config)
        )  # type: ignore[arg-type]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("harness: warning: removing container harness-")
    assert "Connection refused" in warning


def test_a_removal_that_fails_after_success_is_the_error(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(self: FakeContainer, force: bool = False) -> None:
        raise docker.errors.APIError("500", explanation="device or resource busy")

    def fine(experiment: str, environment: Mapping[str, str]) -> Ran:
        return 0.0, {"weights.bin": b"w"}

    monkeypatch.setattr(FakeContainer, "remove", refused)
    with pytest.raises(EngineError) as raised:
        run_experiment(Engine(FakeClient(fine), "fake"), config, IMAGE, _request(config))  # type: ignore[arg-type]
    assert "device or resource busy" in raised.value.message
    assert "docker rm -f harness-" in raised.value.hint
    assert only_record(config)["status"] == "failed"


def test_a_run_of_a_project_with_a_modified_latin1_file_records_it_dirty(
    config: Config,
) -> None:
    root = config.project_root
    (root / "notes.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "latin-1")
    (root / "notes.txt").write_bytes("na\u00efve\n".encode("latin-1"))

    def fine(experiment: str, environment: Mapping[str, str]) -> Ran:
        return 0.0, {"weights.bin": b"w"}

    result = run_experiment(Engine(FakeClient(fine), "fake"), config, IMAGE, _request(config))  # type: ignore[arg-type]
    assert result.status == "succeeded"
    assert only_record(config)["source"]["dirty"] is True  # type: ignore[index]


def test_a_failure_before_the_record_exists_leaves_no_run_folder(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone() -> dict[str, str]:
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    client = FakeClient(daemon_gone)
    monkeypatch.setattr(client, "version", gone)
    with pytest.raises(EngineUnavailable):
        run_experiment(Engine(client, "fake"), config, IMAGE, _request(config))  # type: ignore[arg-type]
    runs = records.runs_root(config.project_root)
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_record_that_cannot_be_written_takes_its_folder_with_it(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(folder: Path, record: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records, "write", full)
    with pytest.raises(OSError, match="No space left"):
        run_experiment(Engine(FakeClient(daemon_gone), "fake"), config, IMAGE, _request(config))  # type: ignore[arg-type]
    assert list(records.runs_root(config.project_root).iterdir()) == []
