"""Every container harness creates is confined, checked from inside one on the real engine;
and what a hostile experiment leaves in its folders is never trusted on the host."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.container import CONTAINER_USER, user_ids
from harness.engine import ContainerSpec, Engine, Mount
from harness.runs import run_folder
from tests.conftest import copy_project_files
from tests.integration.conftest import containers_left_behind, harness, image_name

# What the kernel says of the process and its cgroup (v2, or v1's files where that is used).
PROBE = r"""
import json, os
lines = open("/proc/self/status").read().splitlines()
status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
def first(*paths):
    for path in paths:
        if os.path.exists(path):
            return open(path).read().strip()
print(json.dumps({
    "CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(),
    "NoNewPrivs": status["NoNewPrivs"].strip(),
    "pids": first("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "memory": first("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
}))
"""


def test_a_run_container_has_no_capabilities_and_bounded_resources(
    engine: Engine, tmp_path: Path
) -> None:
    spec = ContainerSpec(
        "harness:cpu",
        ("python", "-c", PROBE),
        user=CONTAINER_USER,
        read_only_root=True,
        memory="256m",
    )
    log = tmp_path / "log.txt"
    outcome = engine.run_logged(spec, log=log, timeout=120)
    assert outcome.exit_code == 0, log.read_text()
    seen = json.loads(log.read_text().strip().splitlines()[-1])
    assert seen["CapEff"] == seen["CapBnd"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1"
    assert seen["pids"] == "4096"
    assert seen["memory"] == str(256 << 20)


# -- what a hostile experiment leaves behind, read back on the host --------------------------

HOSTILE = '''\
"""Experiments that leave traps where harness reads: the runtime's report, on the host."""

import os
import time
from pathlib import Path

# The runtime's report folder inside the container (harness.container.META).
META = Path("/harness/meta")


def _plant(make) -> None:
    """Put ``make(report)`` where the runtime's report goes and exit before the runtime
    writes its own."""
    report = META / "runtime.json"
    if report.exists() or report.is_symlink():
        report.unlink()
    make(report)
    os._exit(0)


def link_report(output: Path, seed: int, inputs: dict, target: str = "") -> dict:
    (output / "model.txt").write_text("x")
    _plant(lambda report: report.symlink_to(target))
    return {}


def fifo_report(output: Path, seed: int, inputs: dict) -> dict:
    (output / "model.txt").write_text("x")
    _plant(os.mkfifo)
    return {}


def zero_report(output: Path, seed: int, inputs: dict) -> dict:
    (output / "model.txt").write_text("x")
    _plant(lambda report: report.symlink_to("/dev/zero"))
    return {}


def huge_metrics(output: Path, seed: int, inputs: dict) -> dict:
    (output / "model.txt").write_text("x")
    return {"blob": "x" * (8 << 20)}


def slow(output: Path, seed: int, inputs: dict) -> dict:
    (output / "model.txt").write_text("x")
    time.sleep(600)
    return {}
'''

HOST_SECRET = "a file of the host that only the invoking user may read"  # noqa: S105


@pytest.fixture(scope="module")
def hostile_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-project")
    folder.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    secret = tmp_path_factory.mktemp("host-secret") / "secret.json"
    secret.write_text(json.dumps({"metrics": {"secret": HOST_SECRET}}))
    secret.chmod(0o600)
    copy_project_files(folder)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('image = "harness"', f'image = "{image_name("probe")}"')
        + "".join(
            f'\n[tool.harness.experiments.{name}]\nentry = "hostile:{entry}"\n'
            f'outputs = ["model.txt"]\n{extra}'
            for name, entry, extra in (
                ("link-report", "link_report", f"parameters = {{ target = {str(secret)!r} }}\n"),
                ("fifo-report", "fifo_report", ""),
                ("zero-report", "zero_report", ""),
                ("huge-metrics", "huge_metrics", ""),
                ("slow", "slow", ""),
            )
        )
    )
    (folder / "hostile.py").write_text(HOSTILE)
    return folder


def run_one(project: Path, name: str, *flags: str) -> tuple[int, dict[str, Any], str]:
    result = harness("run", "--json", name, *flags, cwd=project)
    (record,) = json.loads(result.stdout)
    stored = json.loads((project / ".harness/runs" / record["run_id"] / "record.json").read_text())
    assert stored == record
    return result.returncode, record, result.stderr


def test_a_report_linked_to_a_host_file_is_never_read(hostile_project: Path) -> None:
    code, record, _ = run_one(hostile_project, "link-report")
    assert code == 1
    assert record["status"] == "failed"
    assert record["refused"] == ["meta/runtime.json is a symbolic link"]
    assert "metrics" not in record
    assert HOST_SECRET not in json.dumps(record)


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("fifo-report", "meta/runtime.json is not a regular file (a named pipe)"),
        ("zero-report", "meta/runtime.json is a symbolic link"),
    ],
)
def test_a_pipe_or_dev_zero_as_the_report_neither_hangs_nor_fills_memory(
    hostile_project: Path, name: str, refused: str
) -> None:
    started = time.monotonic()
    code, record, _ = run_one(hostile_project, name, "--timeout", "300")
    # Well inside the timeout: nothing waited on the pipe or read the device.
    assert time.monotonic() - started < 240
    assert code == 1
    assert record["status"] == "failed"  # never left `running`
    assert record["refused"] == [refused]


def test_a_huge_report_is_refused_by_its_size(hostile_project: Path) -> None:
    code, record, _ = run_one(hostile_project, "huge-metrics")
    assert code == 1
    assert record["status"] == "failed"
    (refused,) = record["refused"]
    assert refused.startswith("meta/runtime.json is ")
    assert f"more than the {4 << 20} allowed" in refused


def test_no_other_local_user_can_read_or_plant_in_a_run_in_progress(
    engine: Engine, hostile_project: Path
) -> None:
    runs = hostile_project / ".harness/runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "slow", "--timeout", "120"],
        cwd=hostile_project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        artifact = None
        deadline = time.monotonic() + 240
        while artifact is None and time.monotonic() < deadline:
            made = set(runs.iterdir()) - before if runs.is_dir() else set()
            for folder in made:
                if (folder / "artifacts/model.txt").exists():
                    artifact = folder / "artifacts/model.txt"
            time.sleep(0.5)
        assert artifact is not None, "the run never wrote its artifact"
        folder = artifact.parent.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for name in ("artifacts", "meta"):
            status = (folder / name).stat()
            assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (10001, 0o700)
        attempts = [
            f"touch {folder / 'artifacts/planted'}",
            f"ln -s /etc/shadow {folder / 'meta/runtime.json'}",
            f"cat {artifact}",
            f"ls {folder}",
        ]
        script = "".join(
            f"if {command} 2>/dev/null; then echo 'got in: {command}'; exit 1; fi\n"
            for command in attempts
        )
        stranger = subprocess.run(
            ["/bin/sh", "-c", script],
            user=54321,
            group=54321,
            extra_groups=[],
            capture_output=True,
            text=True,
            check=False,
        )
        assert stranger.returncode == 0, stranger.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] in ("aborted", "timeout")
    for name in ("artifacts", "meta"):
        status = (folder / name).stat()
        assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (0, 0o700)
    assert containers_left_behind(engine) == []


def test_an_acl_entry_is_what_lets_the_container_user_write_for_a_user_not_root(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grant a user who is not root makes (an ACL entry naming uid 10001 on a 0700
    folder of theirs) is enough for the container's user, and taking it back is enough to
    shut it out: checked through a real bind mount."""
    monkeypatch.setattr(run_folder.os, "geteuid", lambda: 1000)
    folder = tmp_path / "run"
    run_folder.make_private(folder)
    out = folder / "artifacts"
    uid, gid = user_ids(CONTAINER_USER)
    grant = run_folder.open_to(out, run_folder.ContainerUser(uid, gid))
    assert grant == "acl"  # this machine's file system keeps ACLs
    assert out.stat().st_uid == 0  # still the invoking user's

    def write(name: str) -> int:
        spec = ContainerSpec(
            "harness-base:bookworm-python3.11",
            ("sh", "-c", f"echo x > /out/{name}"),
            user=CONTAINER_USER,
            read_only_root=True,
            mounts=(Mount(out, "/out", read_only=False),),
        )
        return engine.run_logged(spec, log=tmp_path / f"{name}.log", timeout=120).exit_code

    assert write("granted") == 0
    assert (out / "granted").stat().st_uid == uid
    run_folder.close([out], folder)
    assert write("taken-back") != 0
    assert not (out / "taken-back").exists()
