"""The archive that carries a run's files to an engine that cannot see this machine."""

from __future__ import annotations

import tarfile
from pathlib import Path

from harness.staging import archive


def make_project(root: Path) -> Path:
    project = root / "project"
    (project / "experiments").mkdir(parents=True)
    (project / "experiments" / "train.py").write_text("print('train')\n")
    (project / "run.sh").write_text("#!/bin/sh\n")
    (project / "run.sh").chmod(0o700)
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
        "project",
        "project/.harness",
        "project/experiments",
        "project/experiments/train.py",
        "project/run.sh",
        "spec.json",
    ]
    # Readable by the container's user, owned by root, executables kept executable.
    assert members["project/experiments/train.py"].mode == 0o644
    assert members["project/run.sh"].mode == 0o755
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    # The output folders are written by the container's non-root user.
    assert members["out"].mode == members["meta"].mode == 0o777
    assert members["project/.harness"].isdir()
