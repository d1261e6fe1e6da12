"""What a finished run leaves on the host: output folders private again, no vouching for links."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from harness.config import Experiment
from harness.runs import records, run


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
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o700
    assert [a["path"] for a in result.record["artifacts"]] == ["model.npy"]


def test_a_link_among_the_outputs_fails_the_run(tmp_path: Path) -> None:
    folder, record = finished(tmp_path)
    (folder / records.ARTIFACTS / "passwd").symlink_to("/etc/passwd")
    result = run.finish(record, folder, "succeeded", 0, None)
    assert result.status == "failed"
    assert "passwd" in str(result.record["error"])
    assert result.record["artifacts"] == []
    assert result.record["refused"] == [result.record["error"]]


def test_an_output_glob_that_matches_nothing_names_what_was_written_and_the_fix(
    tmp_path: Path,
) -> None:
    folder, record = finished(tmp_path)
    experiment = Experiment("train", "t:f", None, {}, {}, {"model.npz": "", "model.npy": ""})
    result = run.settle(record, folder, experiment, exit_code=0, timed_out=False, timeout=None)
    assert result.status == "failed"
    assert result.record["error"] == (
        "declared output 'model.npz' matches no file the experiment wrote (it wrote "
        "model.npy) (fix: write it into the output folder the experiment is given (output=, "
        "or $HARNESS_OUTPUT for a command), or correct outputs under "
        "[tool.harness.experiments.train])"
    )


def test_an_experiment_that_wrote_nothing_says_so(tmp_path: Path) -> None:
    folder, record = finished(tmp_path)
    (folder / records.ARTIFACTS / "model.npy").unlink()
    experiment = Experiment("train", "t:f", None, {}, {}, {"*.npy": ""})
    result = run.settle(record, folder, experiment, exit_code=0, timed_out=False, timeout=None)
    assert (
        "'*.npy' matches no file the experiment wrote (it wrote no file at all)"
        in (result.record["error"])
    )
