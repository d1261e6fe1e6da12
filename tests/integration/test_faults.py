"""Faults that end cleanly: whatever stops a run, its record ends true, the command says so on
one line, and no container is left behind.

Every fault is made on a second engine started for the purpose (scripts/second-engine.sh, as
the cross-host tests do), never on the main one: its dockerd is killed, stopped (SIGSTOP, an
engine that accepts connections and never answers) or paused for a while; the project's
state folder is filled or made read-only (a small tmpfs over it); harness itself gets
Ctrl-C, SIGTERM or SIGKILL. Each test asserts the record's final state, the exit code, the
one-line message and that no container is left.

One engine, one small project and one image (no dependency: the build takes seconds once
the base image is loaded) serve the whole module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.engine import Engine
from tests.conftest import REPOSITORY
from tests.integration.conftest import image_name

SCRIPTS = REPOSITORY / "scripts"
BASE = "harness-base:bookworm-python3.11"

PYPROJECT = """\
[project]
name = "faults-probe"
version = "0"
requires-python = ">=3.11"

[dependency-groups]
experiments = []

[tool.harness]
image = "{image}"

[tool.harness.experiments.quick]
entry = "probe.steps:main"
outputs = ["done.txt"]

[tool.harness.experiments.slow]
entry = "probe.steps:main"
outputs = ["done.txt"]
parameters = {{ steps = 60, pause = 0.5 }}

[tool.harness.experiments.fill]
entry = "probe.steps:fill"
outputs = ["big.bin"]
"""

STEPS = '''\
"""Steps that each leave a file: how far a run got is counted in its output folder."""
import time
from pathlib import Path


def main(output: Path, seed: int, inputs: dict, steps: int = 1, pause: float = 0.0) -> dict:
    for step in range(steps):
        (output / f"step-{step}.txt").write_text(str(step))
        time.sleep(pause)
    (output / "done.txt").write_text("done")
    return {"steps": steps}


def fill(output: Path, seed: int, inputs: dict) -> dict:
    with (output / "big.bin").open("wb") as stream:
        for _ in range(256):
            stream.write(bytes(64 * 1024))
            stream.flush()
    return {}
'''


class FaultEngine:
    """The second engine, and the faults made on it."""

    def __init__(self, state: Path, url: str) -> None:
        self.state = state
        self.url = url

    @property
    def pid(self) -> int:
        return int((self.state / "docker.pid").read_text().strip())

    def engine(self) -> Engine:
        return Engine.connect(self.url)

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """The crash form: dockerd and its containerd SIGKILLed, the containers' shims
        left as a crash leaves them."""
        pid = self.pid
        containerd = _children(pid, "containerd")
        os.kill(pid, signal.SIGKILL)
        for child in containerd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        _wait_gone(pid)

    def restart(self) -> None:
        # The crash left dockerd's and containerd's pid files behind, as a machine's crash
        # would: the script finds them stale and starts the engine over them.
        assert (self.state / "docker.pid").exists()
        assert _script("start", self.state) == self.url


def _children(pid: int, name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields and int(fields[1]) == pid and f"({name}" in stat:
            found.append(int(entry.name))
    return found


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)


def _script(action: str, state: Path) -> str:
    result = subprocess.run(
        [str(SCRIPTS / "second-engine.sh"), action, str(state)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultEngine]:
    state = tmp_path_factory.mktemp("faults-engine")
    url = _script("start", state)
    fault = FaultEngine(state, url)
    try:
        with subprocess.Popen(["docker", "save", BASE], stdout=subprocess.PIPE) as saved:
            loaded = subprocess.run(
                ["docker", "-H", url, "load"], stdin=saved.stdout, capture_output=True, check=False
            )
        assert saved.returncode == 0 and loaded.returncode == 0, loaded.stderr
        yield fault
    finally:
        with contextlib.suppress(OSError, ValueError):
            fault.resume()
        try:
            assert fault.engine().containers_owned() == []
        finally:
            _script("stop", state)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, faults: FaultEngine) -> Path:
    folder = tmp_path_factory.mktemp("faults-project")
    folder.chmod(0o755)  # the container's user reads it
    (folder / "pyproject.toml").write_text(PYPROJECT.format(image=image_name("faults")))
    (folder / "probe").mkdir()
    (folder / "probe" / "__init__.py").write_text("")
    (folder / "probe" / "steps.py").write_text(STEPS)
    for arguments in (("lock",), ("build",)):
        result = harness(folder, faults, *arguments)
        assert result.returncode == 0, result.stderr
    return folder


def _environment(faults: FaultEngine) -> dict[str, str]:
    return {**os.environ, "HARNESS_DOCKER_HOST": faults.url}


def harness(
    project: Path, faults: FaultEngine, *arguments: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *arguments],
        cwd=project,
        env=_environment(faults),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def start(project: Path, faults: FaultEngine, *arguments: str) -> subprocess.Popen[str]:
    """harness in the background, quiet: what it says on stderr is its one line."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "-q", *arguments],
        cwd=project,
        env=_environment(faults),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def records(project: Path) -> dict[str, dict[str, Any]]:
    runs = project / ".harness" / "runs"
    found = {}
    for path in sorted(runs.glob("*/record.json")) if runs.is_dir() else []:
        found[path.parent.name] = json.loads(path.read_text())
    return found


def running_now(project: Path, before: set[str], count: int = 1) -> list[str]:
    """The runs started since ``before`` once ``count`` of them have written a first step
    (their containers are up and the experiment under way)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = sorted(set(records(project)) - before)
        under_way = [
            run
            for run in new
            if (project / ".harness" / "runs" / run / "artifacts" / "step-0.txt").exists()
        ]
        if len(under_way) >= count:
            return under_way
        time.sleep(0.2)
    raise AssertionError("the runs did not start within 120 s")


def ended(process: subprocess.Popen[str], within: float) -> tuple[int, str]:
    """The exit code and stderr of a command that must end within ``within`` seconds."""
    try:
        _, stderr = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"harness still ran after {within} s: {stderr}") from None
    return process.returncode, stderr


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("harness: "), stderr
    return lines[0]


def no_container_left(faults: FaultEngine) -> None:
    assert faults.engine().containers_owned() == []


def test_an_engine_that_accepts_connections_but_never_answers_is_refused_in_seconds(
    project: Path, faults: FaultEngine
) -> None:
    before = set(records(project))
    faults.stop()
    try:
        began = time.monotonic()
        code, stderr = ended(start(project, faults, "run", "quick"), within=60)
        took = time.monotonic() - began
    finally:
        faults.resume()
    assert code == 2
    assert "did not answer within 5 s" in one_line(stderr)
    assert took < 30
    assert set(records(project)) == before  # nothing started
    no_container_left(faults)


def test_two_ctrl_c_in_quick_succession_end_the_record_aborted(
    project: Path, faults: FaultEngine
) -> None:
    before = set(records(project))
    process = start(project, faults, "run", "slow")
    [run] = running_now(project, before)
    process.send_signal(signal.SIGINT)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    code, stderr = ended(process, within=60)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    record = records(project)[run]
    assert record["status"] == "aborted"
    assert "interrupted" in record["error"]
    no_container_left(faults)


def test_sigterm_during_verify_aborts_every_run(project: Path, faults: FaultEngine) -> None:
    before = set(records(project))
    process = start(project, faults, "verify", "slow", "--vary", "none", "--runs", "2")
    started = running_now(project, before, count=2)
    process.send_signal(signal.SIGTERM)
    code, stderr = ended(process, within=60)
    assert code == 130, stderr
    assert "interrupted" in one_line(stderr)
    assert [records(project)[run]["status"] for run in started] == ["aborted", "aborted"]
    no_container_left(faults)


def test_a_killed_harness_is_found_by_the_next_command_and_its_container_removed(
    project: Path, faults: FaultEngine
) -> None:
    before = set(records(project))
    process = start(project, faults, "run", "slow")
    [run] = running_now(project, before)
    process.kill()
    process.communicate()
    assert records(project)[run]["status"] == "running"
    assert faults.engine().containers_owned() != []  # it runs on, with nobody to stop it
    listed = harness(project, faults, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{run}  " in listed.stdout or f"{run} " in listed.stdout
    record = records(project)[run]
    assert record["status"] == "lost"
    assert f"pid {process.pid}" in record["error"]
    assert "still there (running)" in record["error"] and "was removed" in record["error"]
    assert f"{run}: lost: " in listed.stderr
    no_container_left(faults)


def test_an_engine_paused_past_the_timeout_stops_the_run_at_its_timeout(
    project: Path, faults: FaultEngine
) -> None:
    before = set(records(project))
    process = start(project, faults, "run", "slow", "--timeout", "4")
    [run] = running_now(project, before)
    faults.stop()
    try:
        time.sleep(15)
    finally:
        faults.resume()
    code, stderr = ended(process, within=90)
    assert code == 1, stderr
    record = records(project)[run]
    assert record["status"] == "timeout"
    assert record["artifacts"] == []
    # The experiment needs 30 s for its 60 steps: stopped at its timeout (and the kill's
    # few seconds), it wrote far fewer, and never its last file.
    written = list((project / ".harness" / "runs" / run / "artifacts").glob("step-*.txt"))
    assert len(written) < 40
    assert not (project / ".harness" / "runs" / run / "artifacts" / "done.txt").exists()
    no_container_left(faults)


def test_an_engine_killed_during_a_run_ends_it_lost_and_the_next_command_reaps(
    project: Path, faults: FaultEngine
) -> None:
    before = set(records(project))
    process = start(project, faults, "run", "slow")
    [run] = running_now(project, before)
    faults.kill()
    code, stderr = ended(process, within=60)
    assert code == 2
    line = one_line(stderr)
    assert "lost the Docker engine" in line
    assert "removes the containers it left" in line
    record = records(project)[run]
    assert record["status"] == "lost"
    faults.restart()
    # The engine kept the container (exited) across its restart: doctor removes it.
    doctor = harness(project, faults, "doctor", "--json")
    leftovers = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "leftovers"]
    assert leftovers[0]["ok"], leftovers
    assert "removed container" in leftovers[0]["detail"]
    no_container_left(faults)


def test_verify_survives_a_lost_engine(project: Path, faults: FaultEngine) -> None:
    before = set(records(project))
    process = start(project, faults, "verify", "slow", "--vary", "none", "--runs", "2")
    started = running_now(project, before, count=2)
    faults.kill()
    code, stderr = ended(process, within=60)
    assert code == 2
    line = one_line(stderr)
    assert "lost the Docker engine" in line and "saved in" in line
    [saved] = sorted((project / ".harness" / "verifications").glob("*.json"))[-1:]
    document = json.loads(saved.read_text())
    # Nothing finished: the control host counts for nothing.
    assert document["quorum"]["text"] == "0 of 1"
    assert document["hosts"][0]["status"] == "unreachable"
    [experiment] = document["experiments"]
    unfinished = {u["run_id"] for u in experiment["unfinished"]}
    assert set(started) <= unfinished
    assert {records(project)[run]["status"] for run in started} == {"lost"}
    faults.restart()
    # The next run removes what the lost engine kept, then runs.
    result = harness(project, faults, "run", "quick")
    assert result.returncode == 0, result.stderr
    assert "removed container" in result.stderr
    no_container_left(faults)


@pytest.fixture
def small_state(project: Path) -> Iterator[Path]:
    """The project's runs folder on a 1 MiB tmpfs, for the length of one test."""
    runs = project / ".harness" / "runs"
    kept = project / ".harness" / "runs-kept"
    runs.mkdir(parents=True, exist_ok=True)
    shutil.move(runs, kept)
    runs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(runs)], check=True)
    try:
        yield runs
    finally:
        subprocess.run(["umount", str(runs)], check=True)
        runs.rmdir()
        shutil.move(kept, runs)


def test_a_full_state_folder_ends_the_run_failed_with_the_os_error(
    project: Path, faults: FaultEngine, small_state: Path
) -> None:
    code, stderr = ended(start(project, faults, "run", "fill"), within=120)
    assert code == 2
    line = one_line(stderr)
    assert "is full" in line and "free space" in line
    [record] = records(project).values()
    assert record["status"] == "failed"
    assert "is full" in record["error"]
    no_container_left(faults)


def test_a_read_only_state_folder_is_one_line_for_run_and_verify(
    project: Path, faults: FaultEngine, small_state: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_state)], check=True)
    for arguments in (("run", "quick"), ("verify", "quick", "--vary", "none", "--runs", "1")):
        code, stderr = ended(start(project, faults, *arguments), within=120)
        assert code == 2, stderr
        assert "Read-only file system" in one_line(stderr)
    assert records(project) == {}
    no_container_left(faults)


@pytest.fixture
def far(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultEngine]:
    """A third engine: the other host of a ``--hosts`` run (the faults engine is the control),
    so that harness runs on two engines at once and neither is the main one."""
    state = tmp_path_factory.mktemp("far-engine")
    fault = FaultEngine(state, _script("start", state))
    try:
        yield fault
        no_container_left(fault)
    finally:
        _script("stop", state)


def _under_way_on(engine: FaultEngine) -> list[str]:
    """The names of the containers harness runs on ``engine`` now."""
    return [c.name for c in engine.engine().owned_containers() if c.state == "running"]


def test_a_killed_harness_during_a_verify_on_two_hosts_is_reaped_on_both_engines(
    project: Path, faults: FaultEngine, far: FaultEngine
) -> None:
    before = set(records(project))
    process = start(
        project, faults, "verify", "slow", "--vary", "none", "--runs", "1",
        "--hosts", f"local,far={far.url}",
    )  # fmt: skip
    [control] = running_now(project, before)
    deadline = time.monotonic() + 180
    while not _under_way_on(far):
        assert time.monotonic() < deadline, "the far host's run did not start within 180 s"
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    process.kill()
    process.communicate()
    started = {run: r for run, r in records(project).items() if run not in before}
    assert len(started) == 2, started
    assert {r["status"] for r in started.values()} == {"running"}
    [there] = [run for run, r in started.items() if r["engine"]["where"] == far.url]
    assert control != there
    assert _under_way_on(faults) and _under_way_on(far)  # both run on, with nobody to stop them

    began = time.monotonic()
    listed = harness(project, faults, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert time.monotonic() - began < 60
    for run, where in ((control, faults.url), (there, far.url)):
        record = records(project)[run]
        assert record["status"] == "lost", record
        assert f"pid {process.pid}" in record["error"]
        assert f"still there (running) on {where} and was removed" in record["error"]
        assert f"{run}: lost: " in listed.stderr
    no_container_left(faults)
    no_container_left(far)


def test_a_host_engine_lost_during_a_verify_is_swept_by_the_next_run_there(
    project: Path, faults: FaultEngine, far: FaultEngine
) -> None:
    before = set(records(project))
    process = start(
        project, faults, "verify", "slow", "--vary", "none", "--runs", "1",
        "--hosts", f"local,far={far.url}",
    )  # fmt: skip
    running_now(project, before)
    deadline = time.monotonic() + 180
    while not _under_way_on(far):
        assert time.monotonic() < deadline, "the far host's run did not start within 180 s"
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    far.kill()
    code, stderr = ended(process, within=120)
    assert "Traceback" not in stderr
    assert code == 2, stderr
    [there] = [
        run
        for run, record in records(project).items()
        if run not in before and record["engine"]["where"] == far.url
    ]
    assert records(project)[there]["status"] == "lost"
    far.restart()
    # The engine kept the lost run's container across its restart; the control never had it.
    assert far.engine().containers_owned() != []
    result = harness(project, faults, "run", "quick", "--hosts", f"local,far={far.url}")
    assert result.returncode == 0, result.stderr
    assert "[far] removed container harness-" in result.stderr
    assert f"(run {there}) on {far.url}" in result.stderr
    no_container_left(faults)
    no_container_left(far)
