"""Artifacts are what ``outputs`` names: the rest of what an experiment writes is set aside
in the run's ``unlisted/``, listed in its record and never compared; ``exclude`` drops
files from the globs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.compare.tree import compare_paths
from harness.config import Experiment
from harness.runs import records, run
from tests.conftest import RUN_RECORD_SCHEMA


def _run_folder(tmp_path: Path, name: str, files: dict[str, bytes]) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path / name
    for sub in (records.ARTIFACTS, records.META):
        (folder / sub).mkdir(parents=True)
    for relative, content in files.items():
        path = folder / records.ARTIFACTS / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder, {"run_id": name, "timings": {}}


def _experiment(outputs: list[str], exclude: tuple[str, ...] = ()) -> Experiment:
    return Experiment("train", "t:f", None, {}, {}, dict.fromkeys(outputs, ""), exclude=exclude)


def _settled(tmp_path: Path, name: str, files: dict[str, bytes], experiment: Experiment) -> Any:
    folder, record = _run_folder(tmp_path, name, files)
    return run.settle(record, folder, experiment, exit_code=0, timed_out=False, timeout=None)


# TensorBoard names each event file with the time and the host: it differs in every run.
def _written(stamp: str) -> dict[str, bytes]:
    return {
        "model.pt": b"weights",
        f"runs/exp1/events.out.tfevents.{stamp}.harness.1.0": stamp.encode(),
        f"train-{stamp}.log": b"loss 0.1 at " + stamp.encode(),
    }


def test_only_what_outputs_names_is_an_artifact_and_the_rest_is_listed_as_unlisted(
    tmp_path: Path,
) -> None:
    result = _settled(tmp_path, "a", _written("1733480000"), _experiment(["model.pt"]))
    assert result.status == "succeeded", result.record["error"]
    assert [a["path"] for a in result.record["artifacts"]] == ["model.pt"]
    unlisted = [entry["path"] for entry in result.record["unlisted"]]
    assert unlisted == [
        "runs/exp1/events.out.tfevents.1733480000.harness.1.0",
        "train-1733480000.log",
    ]
    # Kept, not lost: beside the artifacts, where compare never looks.
    assert (result.folder / records.UNLISTED / "train-1733480000.log").is_file()
    assert not (result.folder / records.ARTIFACTS / "runs").exists()
    jsonschema.validate(_complete(result.record), RUN_RECORD_SCHEMA)


def test_time_stamped_logs_do_not_make_a_byte_identical_model_differ(tmp_path: Path) -> None:
    experiment = _experiment(["model.pt"])
    first = _settled(tmp_path, "a", _written("1733480000"), experiment)
    second = _settled(tmp_path, "b", _written("1733480999"), experiment)
    comparison = compare_paths(str(first.folder), str(second.folder))
    assert comparison.exit_code == 0
    assert [a.path for a in comparison.artifacts] == ["model.pt"]


def test_exclude_drops_files_from_every_file_when_there_are_no_outputs(tmp_path: Path) -> None:
    experiment = _experiment([], exclude=("**/events.out.tfevents.*", "*.log"))
    result = _settled(tmp_path, "a", _written("1733480000"), experiment)
    assert [a["path"] for a in result.record["artifacts"]] == ["model.pt"]
    assert len(result.record["unlisted"]) == 2


def test_exclude_wins_over_outputs(tmp_path: Path) -> None:
    files = {"ckpt/model.pt": b"w", "ckpt/debug.pt": b"d"}
    experiment = _experiment(["ckpt"], exclude=("ckpt/debug.pt",))
    result = _settled(tmp_path, "a", files, experiment)
    assert [a["path"] for a in result.record["artifacts"]] == ["ckpt/model.pt"]
    assert [u["path"] for u in result.record["unlisted"]] == ["ckpt/debug.pt"]


def test_with_no_outputs_every_file_is_an_artifact(tmp_path: Path) -> None:
    result = _settled(tmp_path, "a", _written("1733480000"), _experiment([]))
    assert len(result.record["artifacts"]) == 3
    assert result.record["unlisted"] == []


def test_a_declared_output_that_only_exclude_matched_is_missing(tmp_path: Path) -> None:
    experiment = _experiment(["*.log"], exclude=("*.log",))
    result = _settled(tmp_path, "a", _written("1733480000"), experiment)
    assert result.status == "failed"
    assert "declared output '*.log' matches no file" in result.record["error"]


def test_a_link_set_aside_is_still_refused(tmp_path: Path) -> None:
    folder, record = _run_folder(tmp_path, "a", {"model.pt": b"w"})
    (folder / records.ARTIFACTS / "notes.txt").symlink_to("/etc/passwd")
    result = run.settle(
        record, folder, _experiment(["model.pt"]), exit_code=0, timed_out=False, timeout=None
    )
    assert result.status == "failed"
    assert "symbolic link" in result.record["error"]


def test_a_link_in_place_of_meta_unlisted_never_moves_a_file_out_of_the_run(
    tmp_path: Path,
) -> None:
    # The container owns meta/ while it runs: it may leave meta/unlisted, or a folder
    # below it, as a link to a folder of the host, where harness would move the file.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for link in ("unlisted", "unlisted/runs"):
        folder, record = _run_folder(tmp_path, link.replace("/", "-"), _written("1"))
        if "/" in link:
            (folder / records.UNLISTED).mkdir()
        (folder / records.META / link).symlink_to(elsewhere)
        result = run.settle(
            record, folder, _experiment(["model.pt"]), exit_code=0, timed_out=False, timeout=None
        )
        assert list(elsewhere.iterdir()) == []
        assert result.status == "failed"
        assert "link" in result.record["error"]


@pytest.mark.parametrize(
    ("path", "outputs", "exclude", "expected"),
    [
        ("model.pt", ["model.pt"], [], True),
        ("sub/model.pt", ["*.pt"], [], True),  # a glob without / matches the name
        ("ckpt/a/b.pt", ["ckpt"], [], True),  # a folder names what it holds
        ("events.out.tfevents.1", [], ["**/events.out.tfevents.*"], False),
        ("a/b/events.out.tfevents.1", [], ["**/events.out.tfevents.*"], False),
        ("metrics.json", ["model.pt"], [], False),
        ("metrics.json", [], [], True),
    ],
)
def test_which_files_are_artifacts(
    path: str, outputs: list[str], exclude: list[str], expected: bool
) -> None:
    assert records.is_artifact(path, outputs, exclude) is expected


def _complete(record: dict[str, Any]) -> dict[str, Any]:
    """The fields a settled record lacks in these tests (no container ran), made up."""
    return json.loads(
        json.dumps(
            {
                "schema": records.SCHEMA,
                "experiment": "train",
                "parameters": {},
                "seed": 0,
                "profile": "strict",
                "threads": 1,
                "device": "cpu",
                "image": None,
                "executor": "host",
                "python_environment": {
                    "digest": "sha256:" + "0" * 64,
                    "python": "3.11",
                    "distributions": [],
                },
                "constraints_sha256": None,
                "lock_sha256": None,
                "source": {"commit": None, "dirty": False, "diff_sha256": None},
                "inputs": {},
                "environment": {},
                "container": None,
                "harness_version": "0",
                "engine": None,
                "log": "log.txt",
                **record,
                "run_id": "20261206-101500-train-abcdef",
                "timings": {"started_at": "2026-12-06T10:15:00+00:00", **record["timings"]},
            }
        )
    )


def test_runs_show_lists_the_unlisted_files_and_how_the_run_was_seeded(tmp_path: Path) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from harness.cli.main import cli  # noqa: PLC0415

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0"\n')
    result = _settled(tmp_path, "settled", _written("1733480000"), _experiment(["model.pt"]))
    record = _complete(result.record)
    record["image"] = {"reference": "demo:cpu", "id": "sha256:" + "a" * 64}
    record["seeding"] = {"how": "environment only", "python_processes": 0, "note": "no Python"}
    folder = tmp_path / ".harness" / "runs" / record["run_id"]
    folder.mkdir(parents=True)
    records.write(folder, record)
    shown = CliRunner().invoke(
        cli, ["--project", str(tmp_path), "runs", "show", record["run_id"]], catch_exceptions=False
    )
    assert shown.exit_code == 0, shown.output
    assert "train-1733480000.log" in shown.stdout
    assert "unlisted" in shown.stdout
    assert "seeding    environment only (0 Python): no Python" in shown.stdout
