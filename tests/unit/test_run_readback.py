"""What harness reads back from a run's folder is the container's writing, so hostile: a
link is never followed, a pipe never waited on, a device or a huge file never read, and
the record says what was refused. The run's folder is private while the container writes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from harness import untrusted
from harness.config import Experiment
from harness.runs import records, run, run_folder
from harness.runs.run_folder import ContainerUser

EXPERIMENT = Experiment("train", "t:f", None, {}, {}, {"model.npy": ""})
SECRET = "only the invoking user may read this"  # noqa: S105 - not a password


def started(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A run's folder as run_experiment leaves it for the container, with one artifact."""
    folder = tmp_path / "runs" / "run"
    run.start_folder(folder, {"run_id": "run"}, {"run_id": "run"})
    (folder / records.ARTIFACTS / "model.npy").write_bytes(b"weights")
    return folder, {"run_id": "run", "timings": {"started_at": "2026-01-01T00:00:00+00:00"}}


def settle(folder: Path, record: dict[str, Any], exit_code: int = 0) -> dict[str, Any]:
    """Settle the run in a thread, so that a read that blocks fails the test, not hangs it."""
    result: list[run.RunResult] = []
    worker = threading.Thread(
        target=lambda: result.append(
            run.settle(
                record, folder, EXPERIMENT, exit_code=exit_code, timed_out=False, timeout=None
            )
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=20)
    assert result, "settling the run blocked"
    return dict(result[0].record)


def report_path(folder: Path) -> Path:
    return folder / records.META / run.RUNTIME_REPORT


def test_a_plain_report_is_taken_in(tmp_path: Path) -> None:
    folder, record = started(tmp_path)
    report_path(folder).write_text(json.dumps({"metrics": {"loss": 0.5}, "timings": {"fit_s": 2}}))
    settled = settle(folder, record)
    assert settled["status"] == "succeeded"
    assert settled["metrics"] == {"loss": 0.5}
    assert settled["timings"]["fit_s"] == 2
    assert "refused" not in settled


def test_a_report_linked_to_a_host_file_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"metrics": {"secret": SECRET}}))
    folder, record = started(tmp_path)
    report_path(folder).symlink_to(secret)
    settled = settle(folder, record)
    assert settled["status"] == "failed"
    assert settled["refused"] == ["meta/runtime.json is a symbolic link"]
    assert "harness refused meta/runtime.json" in settled["error"]
    assert SECRET not in json.dumps(settled)
    assert SECRET not in (folder / records.RECORD).read_text()


def test_a_meta_folder_replaced_by_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / run.RUNTIME_REPORT).write_text(json.dumps({"metrics": {"secret": SECRET}}))
    folder, record = started(tmp_path)
    (folder / records.META).rmdir()
    (folder / records.META).symlink_to(elsewhere)
    settled = settle(folder, record)
    assert settled["status"] == "failed"
    assert settled["refused"] == ["meta/runtime.json is not read: meta is a symbolic link"]
    assert SECRET not in json.dumps(settled)


def test_a_report_that_is_a_named_pipe_does_not_block(tmp_path: Path) -> None:
    folder, record = started(tmp_path)
    os.mkfifo(report_path(folder))
    settled = settle(folder, record)
    assert settled["status"] == "failed"
    assert settled["refused"] == ["meta/runtime.json is not a regular file (a named pipe)"]


def test_a_report_linked_to_dev_zero_is_never_read(tmp_path: Path) -> None:
    folder, record = started(tmp_path)
    report_path(folder).symlink_to("/dev/zero")
    settled = settle(folder, record)
    assert settled["status"] == "failed"
    assert "is a symbolic link" in settled["refused"][0]


def test_a_huge_report_is_refused_by_its_size_unread(tmp_path: Path) -> None:
    folder, record = started(tmp_path)
    with report_path(folder).open("wb") as stream:
        stream.truncate(64 << 30)  # sparse: 64 GiB that take no disk and must not be read
    settled = settle(folder, record)
    assert settled["status"] == "failed"
    assert settled["refused"] == [
        f"meta/runtime.json is {64 << 30} bytes, more than the {run.REPORT_LIMIT} allowed"
    ]


def test_a_report_nested_past_the_limit_or_not_an_object_is_refused(tmp_path: Path) -> None:
    folder, record = started(tmp_path)
    report_path(folder).write_text("[" * 100_000 + "]" * 100_000)
    settled = settle(folder, record)
    assert settled["refused"] == ["meta/runtime.json nests deeper than 64 levels"]


def test_a_report_cannot_rewrite_harness_timings_or_give_fields_another_shape(
    tmp_path: Path,
) -> None:
    folder, record = started(tmp_path)
    report_path(folder).write_text(
        json.dumps(
            {
                "metrics": ["not", "a", "mapping"],
                "timings": {"started_at": "1970", "container_s": 0, "fit_s": True, "ok_s": 1.5},
                "error": "x\n" * 10_000,
            }
        )
    )
    settled = settle(folder, record, exit_code=3)
    assert settled["timings"]["started_at"] == "2026-01-01T00:00:00+00:00"
    assert "container_s" not in settled["timings"]
    assert "fit_s" not in settled["timings"]
    assert settled["timings"]["ok_s"] == 1.5
    assert settled["metrics"] is None
    assert settled["refused"] == ["meta/runtime.json: its metrics is not a JSON dict"]


def test_a_failed_runs_error_from_the_report_is_one_bounded_line(tmp_path: Path) -> None:
    folder, record = started(tmp_path)
    report_path(folder).write_text(json.dumps({"error": "boom\n" * 10_000}))
    settled = settle(folder, record, exit_code=1)
    assert settled["status"] == "failed"
    assert "\n" not in settled["error"]
    assert len(settled["error"]) <= 500


def test_an_artifact_under_a_linked_folder_is_refused(tmp_path: Path) -> None:
    folder, record = started(tmp_path)
    (folder / records.ARTIFACTS / "sub").symlink_to(tmp_path)
    settled = settle(folder, record)
    assert settled["status"] == "failed"
    assert "symbolic link" in settled["error"]
    assert settled["artifacts"] == []


def test_open_inside_refuses_a_link_at_any_level(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "file").write_text("x")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "link").symlink_to(tmp_path / "real")
    assert untrusted.read_inside(tmp_path, "real/file", limit=10, what="it") == b"x"
    with pytest.raises(untrusted.UntrustedInputError, match="top/link is a symbolic link"):
        untrusted.read_inside(tmp_path, "top/link/file", limit=10, what="it")
    with pytest.raises(untrusted.UntrustedInputError, match="not a path inside"):
        untrusted.read_inside(tmp_path, "../real/file", limit=10, what="it")
    with pytest.raises(FileNotFoundError):
        untrusted.read_inside(tmp_path, "real/none", limit=10, what="it")


def test_the_log_tail_never_follows_a_link_nor_waits_on_a_pipe(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.symlink_to("/etc/passwd")
    assert records.log_tail(log) == []
    log.unlink()
    os.mkfifo(log)
    assert records.log_tail(log) == []
    log.unlink()
    log.write_text("one\ntwo\n")
    assert records.log_tail(log) == ["one", "two"]


# -- the run's folder while the container writes ------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_run_folder_is_private_and_the_outputs_are_the_containers_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "umask", os.umask)  # restored, whatever the test sets below
    os.umask(0)  # a permissive umask changes nothing
    try:
        folder = tmp_path / "runs" / "run"
        writer = ContainerUser(10001, 10001)
        run.start_folder(folder, {"run_id": "run"}, {"run_id": "run"}, writer=writer)
    finally:
        os.umask(0o022)
    assert mode(folder) == 0o700
    for name in (records.ARTIFACTS, records.META):
        status = (folder / name).lstat()
        if os.geteuid() == 0:
            assert (status.st_uid, status.st_gid) == (10001, 10001)
            assert mode(folder / name) == 0o700
        else:
            assert run_folder.acl_users(folder / name) == {10001: 0o7}
            assert mode(folder / name) & 0o007 == 0
    run_folder.close((folder / records.ARTIFACTS, folder / records.META), folder)
    for name in (records.ARTIFACTS, records.META):
        status = (folder / name).lstat()
        assert status.st_uid == folder.stat().st_uid
        assert mode(folder / name) == 0o700
        assert run_folder.acl_users(folder / name) == {}


def test_a_user_not_root_names_the_container_user_in_an_acl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_folder.os, "geteuid", lambda: 1000)
    folder = tmp_path / "run"
    run_folder.make_private(folder)
    grant = run_folder.open_to(folder / "artifacts", ContainerUser(10001, 10001))
    if grant == "mode":  # a file system without ACLs: sealed by the private run folder
        assert mode(folder / "artifacts") == 0o777
        return
    assert grant == "acl"
    assert run_folder.acl_users(folder / "artifacts") == {10001: 0o7}
    assert mode(folder / "artifacts") & 0o007 == 0
    run_folder.close([folder / "artifacts"], folder)
    assert run_folder.acl_users(folder / "artifacts") == {}
    assert mode(folder / "artifacts") == 0o700


def test_an_engine_that_maps_users_gets_open_folders_inside_the_private_one(
    tmp_path: Path,
) -> None:
    assert run_folder.maps_users({"SecurityOptions": ["name=seccomp", "name=rootless"]})
    assert run_folder.maps_users({"SecurityOptions": ["name=userns"]})
    assert not run_folder.maps_users({"SecurityOptions": ["name=seccomp,profile=default"]})
    assert not run_folder.maps_users({})
    folder = tmp_path / "run"
    run_folder.make_private(folder)
    assert run_folder.open_to(folder / "meta", ContainerUser(10001, 10001, mapped=True)) == "mode"
    assert mode(folder) == 0o700
    assert mode(folder / "meta") == 0o777


def test_a_run_without_a_container_writer_keeps_every_folder_private(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "run"
    run.start_folder(folder, {"run_id": "run"}, {"run_id": "run"})
    assert mode(folder) == 0o700
    for name in (records.ARTIFACTS, records.META):
        assert mode(folder / name) == 0o700
        assert (folder / name).stat().st_uid == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can act as another user")
def test_another_local_user_can_neither_read_nor_plant(tmp_path: Path) -> None:
    """A process of another uid (no account needed) against a run in progress."""
    folder = tmp_path / "run"
    tmp_path.chmod(0o755)
    run.start_folder(
        folder, {"run_id": "run"}, {"run_id": "run"}, writer=ContainerUser(10001, 10001)
    )
    (folder / records.ARTIFACTS / "model.npy").write_bytes(b"weights")
    artifacts, meta = folder / records.ARTIFACTS, folder / records.META
    attempts = [
        f"touch {artifacts / 'planted'}",
        f"ln -s /etc/shadow {meta / run.RUNTIME_REPORT}",
        f"cat {artifacts / 'model.npy'}",
        f"ls {folder}",
    ]
    script = "".join(
        f"if {command} 2>/dev/null; then echo 'got in: {command}'; exit 1; fi\n"
        for command in attempts
    )
    stranger = 54321  # no account needed: the kernel checks numbers
    result = subprocess.run(
        ["/bin/sh", "-c", script],
        user=stranger,
        group=stranger,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    assert not (folder / records.ARTIFACTS / "planted").exists()
