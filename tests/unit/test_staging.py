"""The archive that carries a run's files to an engine that cannot see this machine."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from harness.copy_out import UnsafeOutput, extract_outputs
from harness.runs.staging import archive


def make_project(root: Path) -> Path:
    project = root / "project"
    (project / "experiments").mkdir(parents=True)
    (project / "experiments" / "train.py").write_text("print('train')\n")
    (project / "run.sh").write_text("#!/bin/sh\n")
    (project / "run.sh").chmod(0o744)
    for skipped in (".harness/runs/x", ".git/objects", "experiments/__pycache__", ".venv/bin"):
        (project / skipped).mkdir(parents=True)
        (project / skipped / "file").write_text("not sent")
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (project / "env2").mkdir()
    (project / "env2" / "pyvenv.cfg").write_text("home = /usr\n")
    return project


def test_the_archive_holds_the_run_layout_without_state_caches_or_venvs(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-0.csv").write_text("1,2\n")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\n")
    with (
        archive(
            project, spec, {"data": data, "labels": labels}, harness_state=".harness"
        ) as packed,
        tarfile.open(fileobj=packed) as tar,
    ):
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [
        "inputs",
        "inputs/data",
        "inputs/data/part-0.csv",
        "inputs/labels",
        "meta",
        "out",
        # The mount point of the writable view the runtime lays out from source/.
        "project",
        "source",
        "source/.harness",
        "source/experiments",
        "source/experiments/train.py",
        "source/run.sh",
        "spec.json",
    ]
    # Readable by the container's user, owned by root, executables kept executable.
    assert members["source/experiments/train.py"].mode == 0o644
    assert members["source/run.sh"].mode == 0o755
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    # The output folders are written by the container's non-root user.
    assert members["out"].mode == members["meta"].mode == 0o777
    assert members["source/.harness"].isdir()


def test_files_others_cannot_read_do_not_travel(tmp_path: Path) -> None:
    """A key or token readable only by its owner stays here, as it would stay unreadable to
    the container's user through a bind mount; it is never shipped as mode 0644."""
    project = make_project(tmp_path)
    (project / "keys").mkdir()
    (project / "keys" / "harness.key").write_text("private")
    (project / "keys" / "harness.key").chmod(0o600)
    (tmp_path / "spec.json").write_text("{}")
    packed = archive(project, tmp_path / "spec.json", {}, harness_state=".harness")
    with packed, tarfile.open(fileobj=packed) as tar:
        names = tar.getnames()
    assert "source/keys" in names
    assert "source/keys/harness.key" not in names


def _output_tar(*members: tuple[str, bytes | str | None, bytes]) -> io.BytesIO:
    """A tar as the engine's archive API sends a folder: every name under ``out/``."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            if kind == tarfile.REGTYPE:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
                continue
            info.type = kind  # type: ignore[assignment]
            info.linkname = content.decode()
            tar.addfile(info)
    data.seek(0)
    return data


def test_outputs_come_back_as_plain_files_and_folders(tmp_path: Path) -> None:
    stream = _output_tar(
        ("out", tarfile.DIRTYPE, b""),
        ("out/model.npy", tarfile.REGTYPE, b"weights"),
        ("out/sub/deeper/metrics.json", tarfile.REGTYPE, b"{}"),
    )
    extract_outputs(stream, tmp_path / "artifacts")
    assert (tmp_path / "artifacts" / "model.npy").read_bytes() == b"weights"
    assert (tmp_path / "artifacts" / "sub" / "deeper" / "metrics.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    "members",
    [
        # CVE-2025-4517's shape: links whose resolved length passes PATH_MAX, then a link
        # through them to outside and a file written through that.
        [
            ("out/" + "d" * 247, tarfile.DIRTYPE, b""),
            ("out/l", tarfile.SYMTYPE, ("d" * 247 + "/" + "../" * 20).encode()),
            ("out/escape", tarfile.SYMTYPE, b"l/../../../../../../../../tmp"),
            ("out/escape/pwned", tarfile.REGTYPE, b"x"),
        ],
        [("out/link", tarfile.SYMTYPE, b"/etc/passwd")],
        [("out/hard", tarfile.LNKTYPE, b"/etc/passwd")],
        [("out/../../escaped", tarfile.REGTYPE, b"x")],
        [("/abs/escaped", tarfile.REGTYPE, b"x")],
        [("out/fifo", tarfile.FIFOTYPE, b"")],
        [("out/twice", tarfile.REGTYPE, b"1"), ("out/twice", tarfile.REGTYPE, b"2")],
    ],
)
def test_links_escapes_and_special_files_are_refused(
    tmp_path: Path, members: list[tuple[str, bytes, bytes]]
) -> None:
    target = tmp_path / "run" / "artifacts"
    with pytest.raises(UnsafeOutput):
        extract_outputs(_output_tar(*members), target)
    assert not list(tmp_path.rglob("escaped")) and not list(tmp_path.rglob("pwned"))
    assert not [p for p in target.rglob("*") if p.is_symlink()]
