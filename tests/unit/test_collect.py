"""`harness collect`: runs made elsewhere, checked, copied in and judged host by host."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.runs import records

IMAGE = "sha256:" + "ab" * 32


def make_run(
    leg: Path, host: str, experiment: str, number: int, weights: bytes, *, image: str = IMAGE
) -> Path:
    """A run folder as a CI leg uploads it: record.json and artifacts/."""
    run_id = f"20261126-10000{number}-{experiment}-{number:06x}"
    folder = leg / run_id
    (folder / records.ARTIFACTS).mkdir(parents=True)
    (folder / records.ARTIFACTS / "weights.bin").write_bytes(weights)
    record: dict[str, Any] = {
        "schema": records.SCHEMA,
        "run_id": run_id,
        "status": "succeeded",
        "experiment": experiment,
        "entry": "experiments.demo:main",
        "command": None,
        "parameters": {},
        "seed": 0,
        "profile": "strict",
        "threads": 1,
        "device": "cpu",
        "host": host,
        "image": {"reference": "demo:cpu", "id": image, "digest": image, "variant": "cpu"},
        "engine": {"where": "default", "version": "20.10"},
        "container": {"files": "bind"},
        "timings": {"started_at": "2026-11-26T10:00:00+00:00"},
        "artifacts": records.artifacts(folder / records.ARTIFACTS),
    }
    records.write(folder, record)
    return folder


def collect(
    project: Path, *arguments: str | Path, unsigned: bool = True
) -> tuple[int, dict[str, Any], str]:
    """`harness collect --json`; the runs here are unsigned unless a test signs them (see
    test_collect_signed.py), so they count only with --allow-unsigned."""
    flags = ["--allow-unsigned"] if unsigned else []
    result = CliRunner().invoke(
        cli, ["--project", str(project), "collect", "--json", *flags, *map(str, arguments)]
    )
    document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, document, result.stderr


def test_agreeing_legs_give_a_verification_naming_every_host(project: Path, tmp_path: Path) -> None:
    legs = tmp_path / "downloaded"
    for number, host in enumerate(("ubuntu-24.04", "ubuntu-22.04", "arm-runner"), start=1):
        make_run(legs / f"harness-runs-{host}", host, "demo", number, b"\x01\x02")
    code, document, stderr = collect(project, *sorted(legs.iterdir(), reverse=True))
    assert code == 0, stderr
    assert document["verdict"] == "reproducible"
    assert document["quorum"]["text"] == "3 of 3"
    # The control is the host of the first folder given.
    assert document["hosts"][0] == {
        **document["hosts"][0],
        "name": "ubuntu-24.04",
        "status": "control",
    }
    assert [h["status"] for h in document["hosts"][1:]] == ["agreed", "agreed"]
    assert len(list((project / ".harness" / "runs").iterdir())) == 3
    saved = list((project / ".harness" / "verifications").glob("*.json"))
    assert len(saved) == 1


def test_a_host_whose_artifact_moved_differs_and_one_on_another_image_is_refused(
    project: Path, tmp_path: Path
) -> None:
    make_run(tmp_path / "a", "a", "demo", 1, b"\x01")
    make_run(tmp_path / "b", "b", "demo", 2, b"\x02")
    code, document, _ = collect(project, tmp_path / "a", tmp_path / "b")
    assert code == 1
    hosts = {h["name"]: h for h in document["hosts"]}
    assert hosts["b"]["status"] == "differs"
    assert hosts["b"]["moved"] == {"demo": ["weights.bin"]}
    assert document["quorum"]["text"] == "1 of 2"

    other = tmp_path / "other-project"
    other.mkdir()
    (other / "pyproject.toml").write_text((project / "pyproject.toml").read_text())
    make_run(tmp_path / "c", "c", "demo", 3, b"\x01", image="sha256:" + "cd" * 32)
    code, _, stderr = collect(other, tmp_path / "a", tmp_path / "c")
    assert code == 2
    assert "could not take part (c)" in stderr
    assert "used image sha256:cdcdcdcdcdcd, not the control's image sha256:abababababab" in stderr


def test_a_corrupt_artifact_is_refused_and_nothing_is_copied(project: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path / "a", "a", "demo", 1, b"\x01")
    (run / records.ARTIFACTS / "weights.bin").write_bytes(b"\x09")
    code, _, stderr = collect(project, tmp_path / "a")
    assert code == 2
    assert "artifact weights.bin is missing or does not have the sha256" in stderr
    assert "(fix: download the run's records again" in stderr
    assert not (project / ".harness" / "runs").exists()


def test_a_run_already_here_with_another_record_is_a_conflict(
    project: Path, tmp_path: Path
) -> None:
    make_run(tmp_path / "a", "a", "demo", 1, b"\x01")
    assert collect(project, tmp_path / "a")[0] == 0
    assert collect(project, tmp_path / "a")[0] == 0  # the same run again: nothing to do
    make_run(tmp_path / "a2", "a", "demo", 1, b"\x07")
    code, _, stderr = collect(project, tmp_path / "a2")
    assert code == 2
    assert "is already in .harness/runs with another record" in stderr


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_folders_without_runs_are_trouble(project: Path, tmp_path: Path, folder: str) -> None:
    if folder == "empty":
        (tmp_path / folder).mkdir()
    code, _, stderr = collect(project, tmp_path / folder)
    assert code == 2
    assert stderr.startswith("harness: ")


# -- hostile legs --------------------------------------------------------------------------


def _edit_record(folder: Path, **changes: Any) -> None:
    record = json.loads((folder / records.RECORD).read_text())
    record.update(changes)
    (folder / records.RECORD).write_text(json.dumps(record))


@pytest.mark.parametrize("run_id", ["../../../escaped", "/tmp/escaped-abs", "..", "a/b", ""])
def test_a_run_id_that_is_no_plain_folder_name_writes_nothing(
    project: Path, tmp_path: Path, run_id: str
) -> None:
    folder = make_run(tmp_path / "leg", "a", "demo", 1, b"\x01")
    _edit_record(folder, run_id=run_id)
    code, _, stderr = collect(project, tmp_path / "leg")
    assert code == 2
    assert "has no valid run_id" in stderr
    assert not (project / ".harness").exists()
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("path", ["../../secret", "/etc/passwd", "a/../../b", "a//b", "a\\b"])
def test_an_artifact_path_outside_artifacts_is_refused_unread(
    project: Path, tmp_path: Path, path: str
) -> None:
    (tmp_path / "secret").write_bytes(b"outside")
    folder = make_run(tmp_path / "leg", "a", "demo", 1, b"\x01")
    record = json.loads((folder / records.RECORD).read_text())
    record["artifacts"].append(
        {"path": path, "size": 7, "sha256": hashlib.sha256(b"outside").hexdigest(), "kind": "bytes"}
    )
    (folder / records.RECORD).write_text(json.dumps(record))
    code, _, stderr = collect(project, tmp_path / "leg")
    assert code == 2
    assert "artifact path outside its folder" in stderr


@pytest.mark.parametrize("what", ["artifact", "artifacts folder", "record"])
def test_links_in_a_run_folder_are_refused(project: Path, tmp_path: Path, what: str) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x01")
    folder = make_run(tmp_path / "leg", "a", "demo", 1, b"\x01")
    artifacts = folder / records.ARTIFACTS
    if what == "artifact":
        (artifacts / "weights.bin").unlink()
        (artifacts / "weights.bin").symlink_to(secret)  # the same bytes as recorded
    elif what == "artifacts folder":
        outside = tmp_path / "outside"
        artifacts.rename(outside)
        artifacts.symlink_to(outside)
    else:
        (tmp_path / "record.json").write_bytes((folder / records.RECORD).read_bytes())
        (folder / records.RECORD).unlink()
        (folder / records.RECORD).symlink_to(tmp_path / "record.json")
    code, _, stderr = collect(project, tmp_path / "leg")
    assert code == 2, stderr
    assert "symbolic link" in stderr or "a link" in stderr
    assert not (project / ".harness").exists()


def test_one_run_id_from_two_legs_with_other_bytes_is_refused(
    project: Path, tmp_path: Path
) -> None:
    make_run(tmp_path / "leg-1", "a", "demo", 1, b"\x01")
    make_run(tmp_path / "leg-2", "b", "demo", 1, b"\x02")  # same run id, other host and bytes
    code, _, stderr = collect(project, tmp_path / "leg-1", tmp_path / "leg-2")
    assert code == 2
    assert "collected twice with different contents" in stderr
    assert not (project / ".harness").exists()
    # The very same run uploaded twice is one run.
    shutil.copytree(tmp_path / "leg-1", tmp_path / "leg-1-again")
    code, document, stderr = collect(project, tmp_path / "leg-1", tmp_path / "leg-1-again")
    assert code == 0, stderr
    assert document["quorum"]["text"] == "1 of 1"


def test_a_wrong_size_with_the_right_sha256_is_refused(project: Path, tmp_path: Path) -> None:
    folder = make_run(tmp_path / "leg", "a", "demo", 1, b"\x01\x02")
    record = json.loads((folder / records.RECORD).read_text())
    record["artifacts"][0]["size"] = 999
    (folder / records.RECORD).write_text(json.dumps(record))
    code, _, stderr = collect(project, tmp_path / "leg")
    assert code == 2
    assert "has 2 bytes, its record says 999" in stderr


def test_an_artifact_the_record_does_not_list_is_refused(project: Path, tmp_path: Path) -> None:
    folder = make_run(tmp_path / "leg", "a", "demo", 1, b"\x01")
    (folder / records.ARTIFACTS / "extra.bin").write_bytes(b"unlisted")
    code, _, stderr = collect(project, tmp_path / "leg")
    assert code == 2
    assert "extra.bin is not listed in its record" in stderr


@pytest.mark.parametrize("damage", ["deep", "no run_id", "not an object", "huge", "fifo"])
def test_malformed_records_are_one_line_errors(project: Path, tmp_path: Path, damage: str) -> None:
    folder = make_run(tmp_path / "leg", "a", "demo", 1, b"\x01")
    record_path = folder / records.RECORD
    if damage == "deep":
        record_path.write_text('{"schema": "harness.run-record/v1", "x": ' + "[" * 100_000)
    elif damage == "no run_id":
        record = json.loads(record_path.read_text())
        del record["run_id"]
        record_path.write_text(json.dumps(record))
    elif damage == "not an object":
        _edit_record(folder, image="sha256:nope")
    elif damage == "huge":
        record_path.unlink()
        with record_path.open("wb") as stream:
            stream.truncate(64 << 20)
    else:
        record_path.unlink()
        os.mkfifo(record_path)
    result = CliRunner().invoke(
        cli,
        ["--project", str(project), "collect", "--allow-unsigned", str(tmp_path / "leg")],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("harness: ") and result.stderr.count("\n") == 1
