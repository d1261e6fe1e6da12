"""What a fault leaves and how the next harness finds it: process owners, abandoned records,
orphan containers, the room kept for a record's last write, OS errors as one line, and the
second and third Ctrl-C. The engine and the disk are doubles; tests/integration/test_faults.py
makes the same faults for real."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import click
import pytest
from click.testing import CliRunner

from harness import atomic, interrupt, owner
from harness.cli.main import HarnessGroup
from harness.config import load_config
from harness.container import LABEL_RUN_ID
from harness.engine import LABEL_OWNER, ContainerEngine, OwnedContainer
from harness.errors import EngineUnavailable, EnvironmentTrouble, from_os_error
from harness.fleet import crosshost, shipping
from harness.fleet.hosts import Host
from harness.images.build import BuildResult
from harness.runs import reconcile, records
from harness.runs.run import RunRequest


def _dead_process() -> owner.Owner:
    """An owner whose process has ended: a child that exited and was reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    me = owner.current()
    return owner.Owner(me.boot_id, pid, 1, me.hostname)


def test_this_process_is_alive_and_an_ended_one_is_not() -> None:
    assert owner.current().alive() is True
    assert _dead_process().alive() is False
    # A reused id is another process: the start time tells them apart.
    me = owner.current()
    assert owner.Owner(me.boot_id, me.pid, me.started + 1, me.hostname).alive() is False
    # Another machine's process cannot be judged from here.
    assert owner.Owner("another-boot", 1, 1, "another-host").alive() is None
    assert owner.from_label(me.label()) == owner.Owner(me.boot_id, me.pid, me.started, "")
    assert owner.from_dict(me.as_dict()) == me
    assert owner.from_label("not/a-label") is None


def _record(folder: Path, status: str, process: owner.Owner | None) -> dict[str, Any]:
    folder.mkdir(parents=True)
    record: dict[str, Any] = {
        "schema": records.SCHEMA,
        "run_id": folder.name,
        "status": status,
        "engine": {"where": "fake"},
        "timings": {},
        "harness_process": process.as_dict() if process else None,
    }
    records.write(folder, record)
    return record


class _Engine:
    """What reaping uses of an engine: a list of containers, and their removal."""

    where = "fake"

    def __init__(self, containers: list[OwnedContainer], refuse: bool = False) -> None:
        self.containers = containers
        self.refuse = refuse
        self.removed: list[str] = []

    def owned_containers(self) -> list[OwnedContainer]:
        return [c for c in self.containers if c.name not in self.removed]

    def remove_container(self, name: str) -> None:
        if self.refuse:
            raise EngineUnavailable("lost the Docker engine at fake: Connection refused")
        self.removed.append(name)


def _container(name: str, process: owner.Owner | None, run_id: str | None) -> OwnedContainer:
    labels = {"io.harness.owned": "true"}
    if process is not None:
        labels[LABEL_OWNER] = process.label()
    if run_id is not None:
        labels[LABEL_RUN_ID] = run_id
    return OwnedContainer(name, f"{name}-id", "exited", "Exited (2)", labels)


def test_a_record_whose_harness_is_gone_ends_lost_with_what_became_of_its_container(
    tmp_path: Path,
) -> None:
    runs = records.runs_root(tmp_path)
    dead = _dead_process()
    _record(runs / "run-abandoned", "running", dead)
    _record(runs / "run-gone", "running", dead)
    _record(runs / "run-mine", "running", owner.current())  # under way: left alone
    _record(runs / "run-old", "running", None)  # names no process: cannot be judged
    engine = _Engine([_container("harness-a", dead, "run-abandoned")])
    said = reconcile.end_stale(tmp_path, lambda where: engine)
    assert sorted(line.split(":")[0] for line in said) == ["run-abandoned", "run-gone"]
    abandoned = records.read(runs / "run-abandoned")
    assert abandoned["status"] == "lost"
    assert f"pid {dead.pid}" in abandoned["error"]
    assert "was still there (exited) on fake and was removed" in abandoned["error"]
    assert "its container is gone from fake" in records.read(runs / "run-gone")["error"]
    assert engine.removed == ["harness-a"]
    assert records.read(runs / "run-mine")["status"] == "running"
    assert records.read(runs / "run-old")["status"] == "running"
    assert not (runs / "run-abandoned" / records.RESERVE).exists()


def test_an_engine_that_does_not_answer_is_said_and_the_record_still_ends(tmp_path: Path) -> None:
    runs = records.runs_root(tmp_path)
    _record(runs / "run-abandoned", "running", _dead_process())

    def unreachable(where: str) -> _Engine:
        raise EngineUnavailable("cannot reach the Docker engine at fake")

    reconcile.end_stale(tmp_path, unreachable)
    record = records.read(runs / "run-abandoned")
    assert record["status"] == "lost"
    assert "was not looked for (the engine did not answer)" in record["error"]


class _Hung(_Engine):
    """An engine that answers the connection, then never a listing."""

    def __init__(self, where: str) -> None:
        super().__init__([])
        self.where = where
        self.asked = 0

    def owned_containers(self) -> list[OwnedContainer]:
        self.asked += 1
        raise EngineUnavailable(f"lost the Docker engine at {self.where}: Read timed out")


def test_each_record_is_looked_for_on_the_engine_it_names_and_each_engine_asked_once(
    tmp_path: Path,
) -> None:
    """A `--hosts` run's records name the control's engine and the other hosts': each
    record's container is looked for where it ran, and an engine that does not answer is
    asked once, not once per record (each question may cost a timeout)."""
    runs = records.runs_root(tmp_path)
    dead = _dead_process()
    for run, where in (
        ("run-a", "control"),
        ("run-b", "far"),
        ("run-c", "hung"),
        ("run-d", "hung"),
    ):
        record = _record(runs / run, "running", dead)
        records.write(runs / run, {**record, "engine": {"where": where}})
    control = _Engine([_container("harness-a", dead, "run-a")])
    control.where = "control"
    far = _Engine([_container("harness-b", dead, "run-b"), _container("harness-x", dead, "x")])
    far.where = "far"
    hung = _Hung("hung")
    connected: list[str] = []

    def engine_for(where: str) -> _Engine:
        connected.append(where)
        return {"control": control, "far": far, "hung": hung}[where]

    said = reconcile.end_stale(tmp_path, engine_for)
    assert sorted(connected) == ["control", "far", "hung"]
    assert hung.asked == 1
    assert len(said) == 4
    assert control.removed == ["harness-a"] and far.removed == ["harness-b"]
    assert "still there (exited) on far and was removed" in records.read(runs / "run-b")["error"]
    for run in ("run-c", "run-d"):
        record = records.read(runs / run)
        assert record["status"] == "lost"
        assert "its container on hung was not looked for" in record["error"]


def test_a_host_is_swept_before_runs_start_there(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a lost engine kept (the container of a run that ended lost while the engine was
    away) is removed by the next command that runs on that host, not only on the control."""
    dead = _dead_process()
    far = _Engine([_container("harness-kept", dead, "run-kept")])
    far.where = "tcp://far:2376"
    monkeypatch.setattr(Host, "connect", lambda self, timeout=600: far)

    def refuse(*_: object, **__: object) -> None:
        raise shipping.ShipError("no registry to ship through")

    monkeypatch.setattr(shipping, "ship", refuse)
    said: list[str] = []
    done = crosshost.run_there(
        cast(ContainerEngine, None),
        load_config(project, environ={}),
        cast(BuildResult, SimpleNamespace(image_id="sha256:image", reference="probe:cpu")),
        Host("far", far.where),
        [],
        request_for=lambda experiment: cast(RunRequest, None),
        say=said.append,
    )
    assert far.removed == ["harness-kept"]
    assert said[0].startswith("[far] removed container harness-kept (run run-kept) on tcp://far")
    assert done.trouble is not None and done.trouble[0] == crosshost.UNSHIPPED


def test_reaping_removes_what_no_harness_will_and_reports_what_it_cannot_tell(
    tmp_path: Path,
) -> None:
    runs = records.runs_root(tmp_path)
    _record(runs / "run-ended", "failed", None)
    _record(runs / "run-elsewhere", "running", None)
    dead = _dead_process()
    engine = _Engine(
        [
            _container("harness-dead", dead, "run-x"),
            _container("harness-live", owner.current(), "run-y"),
            _container("harness-ended", None, "run-ended"),
            _container("harness-unknown", None, "run-elsewhere"),
        ]
    )
    found = {item.name: item for item in reconcile.reap(engine, tmp_path)}
    assert sorted(engine.removed) == ["harness-dead", "harness-ended"]
    assert "harness-live" not in found  # another harness at work
    assert found["harness-dead"].removed
    assert f"(pid {dead.pid}) is gone" in found["harness-dead"].line()
    assert "its run run-ended has ended" in found["harness-ended"].line()
    unknown = found["harness-unknown"]
    assert not unknown.removed
    assert "docker rm -f harness-unknown" in unknown.line()


def test_a_container_that_cannot_be_removed_is_reported_with_the_error(tmp_path: Path) -> None:
    engine = _Engine([_container("harness-dead", _dead_process(), None)], refuse=True)
    [item] = reconcile.reap(engine, tmp_path)
    assert not item.removed
    assert item.line().startswith("cannot remove container harness-dead on fake: lost the")


def test_the_last_record_of_a_run_is_written_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run"
    record = _record(folder, "running", owner.current())
    assert (folder / records.RESERVE).stat().st_size == records.RESERVE_SIZE
    real = atomic.write_text
    full = {"left": 1}

    def full_until_room_is_given_back(path: Path, text: str) -> None:
        if (folder / records.RESERVE).exists() and full["left"]:
            full["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(atomic, "write_text", full_until_room_is_given_back)
    records.write(folder, {**record, "status": "failed", "error": "the disk is full"})
    assert json.loads((folder / records.RECORD).read_text())["status"] == "failed"
    assert not (folder / records.RESERVE).exists()


def test_os_errors_are_one_line_with_the_fix_and_exit_2() -> None:
    full = from_os_error(OSError(errno.ENOSPC, "No space left on device", "/p/.harness/x"))
    assert isinstance(full, EnvironmentTrouble)
    assert full.exit_code == 2
    assert full.one_line() == (
        "No space left on device on /p/.harness/x (fix: free space on that file system "
        "(`df -h`), then run again)"
    )
    read_only = from_os_error(OSError(errno.EROFS, "Read-only file system", "/p/.harness"))
    assert "read-only: make it writable" in read_only.one_line()

    @click.group(cls=HarnessGroup)
    def group() -> None:
        pass

    @group.command()
    def write() -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "/p/.harness/runs")

    result = CliRunner().invoke(group, ["write"])
    assert result.exit_code == 2
    assert result.stderr == (
        "harness: Permission denied on /p/.harness/runs (fix: check the permissions of that "
        "path (`ls -ld`), or run as its owner)\n"
    )


def test_the_second_interrupt_waits_for_the_records_and_the_third_quits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupt.reset()
    quit_with: list[int] = []
    monkeypatch.setattr(os, "_exit", quit_with.append)
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupt._on_signal(signal.SIGINT, None)
        interrupt._on_signal(signal.SIGINT, None)  # no second KeyboardInterrupt
        assert "recording how they ended" in capsys.readouterr().err
        assert quit_with == []
        interrupt._on_signal(signal.SIGTERM, None)
        assert quit_with == [130]
        assert "the next harness command ends what was left" in capsys.readouterr().err
    finally:
        interrupt.reset()
