"""What a finished run leaves on the host: no world-writable folders, no vouching for links."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from harness import records, run


def finished(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path / "run"
    for name in (records.ARTIFACTS, records.META):
        (folder / name).mkdir(parents=True)
        (folder / name).chmod(0o777)  # as run_experiment leaves them for the container
    (folder / records.ARTIFACTS / "model.npy").write_bytes(b"weights")
    record: dict[str, Any] = {"run_id": "r", "timings": {}}
    return folder, record


def test_output_folders_are_not_world_writable_after_the_run(tmp_path: Path) -> None:
    folder, record = finished(tmp_path)
    result = run.finish(record, folder, "succeeded", 0, None)
    assert result.status == "succeeded"
    for name in (records.ARTIFACTS, records.META):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o755
    assert [a["path"] for a in result.record["artifacts"]] == ["model.npy"]


def test_a_link_among_the_outputs_fails_the_run(tmp_path: Path) -> None:
    folder, record = finished(tmp_path)
    (folder / records.ARTIFACTS / "passwd").symlink_to("/etc/passwd")
    result = run.finish(record, folder, "succeeded", 0, None)
    assert result.status == "failed"
    assert "passwd" in str(result.record["error"])
    assert result.record["artifacts"] == []
