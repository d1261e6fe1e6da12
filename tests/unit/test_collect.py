"""`harness collect`: runs made elsewhere, checked, copied in and judged host by host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import records
from harness.cli import cli

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


def collect(project: Path, *arguments: str | Path) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(
        cli, ["--project", str(project), "collect", "--json", *map(str, arguments)]
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
    assert "used image sha256:cdcdcdcdcdcd, not the control's sha256:abababababab" in stderr


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
