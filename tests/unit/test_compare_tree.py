"""Folders, run records and run ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.compare import compare_paths
from harness.compare.tree import resolve
from harness.errors import EXIT_TROUBLE, ArtifactError, ConfigError, RunNotFound


def make_artifacts(root: Path, loss: float, extra: str) -> Path:
    (root / "sub").mkdir(parents=True)
    np.save(root / "weights.npy", np.arange(10, dtype=np.float32))
    (root / "metrics.json").write_text(json.dumps({"loss": loss}))
    (root / "sub" / "table.csv").write_text("a,b\n1,2\n")
    (root / extra).write_bytes(b"x")
    return root


def test_folders_added_removed_changed(tmp_path: Path) -> None:
    a = make_artifacts(tmp_path / "a", 0.5, "only_a.txt")
    b = make_artifacts(tmp_path / "b", 0.25, "only_b.bin")
    result = compare_paths(a, b)
    statuses = {artifact.path: artifact.status for artifact in result.artifacts}
    assert statuses == {
        "metrics.json": "differs",
        "only_a.txt": "removed",
        "only_b.bin": "added",
        "sub/table.csv": "identical",
        "weights.npy": "identical",
    }
    assert [artifact.path for artifact in result.artifacts] == sorted(statuses)
    assert result.exit_code == 1
    assert result.summary()["removed"] == 1


def test_identical_folders(tmp_path: Path) -> None:
    a = make_artifacts(tmp_path / "a", 0.5, "x.txt")
    b = make_artifacts(tmp_path / "b", 0.5, "x.txt")
    result = compare_paths(a, b)
    assert result.exit_code == 0
    assert result.outcome == "identical"


def test_file_against_folder_uses_the_same_name(tmp_path: Path) -> None:
    a = make_artifacts(tmp_path / "a", 0.5, "x.txt")
    (tmp_path / "loose").mkdir()
    loose = tmp_path / "loose" / "metrics.json"
    loose.write_text(json.dumps({"loss": 0.5}))
    result = compare_paths(loose, a)
    assert [(x.path, x.status) for x in result.artifacts] == [("metrics.json", "identical")]


def test_per_artifact_policies(tmp_path: Path) -> None:
    a = make_artifacts(tmp_path / "a", 0.5, "x.txt")
    b = make_artifacts(tmp_path / "b", 0.5000001, "x.txt")
    np.save(b / "weights.npy", np.nextafter(np.arange(10, dtype=np.float32), np.float32(99)))
    strict = compare_paths(a, b)
    assert strict.exit_code == 1
    configured = {"*.npy": "ulp:1", "metrics.json": "metric:rtol=1e-6"}
    loose = compare_paths(a, b, policies=configured)
    assert {x.path: x.verdict for x in loose.artifacts if x.status != "identical"} == {
        "metrics.json": "within metric:rtol=1e-06,atol=0.0",
        "weights.npy": "within ulp:1",
    }
    assert loose.exit_code == 0
    overridden = compare_paths(a, b, policy="bitwise", policies=configured)
    assert overridden.exit_code == 1
    with pytest.raises(ConfigError, match="'ulp:one'"):
        compare_paths(a, b, policies={"*.npy": "ulp:one"})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    runs = tmp_path / ".harness" / "runs"
    for run_id, loss in (("20240101-abc123", 0.5), ("20240101-abd999", 0.4), ("7f00aa", 0.5)):
        make_artifacts(runs / run_id / "artifacts", loss, "x.txt")
        (runs / run_id / "record.json").write_text(json.dumps({"id": run_id}))
    (tmp_path / "src" / "deep").mkdir(parents=True)
    return tmp_path


def test_run_ids_and_prefixes(project: Path) -> None:
    result = compare_paths("20240101-abc123", "7f00", cwd=project)
    assert result.a.run == "20240101-abc123"
    assert result.b.run == "7f00aa"
    assert result.exit_code == 0
    from_below = compare_paths("20240101-abc", "20240101-abd", cwd=project / "src" / "deep")
    assert from_below.exit_code == 1
    assert from_below.b.path.endswith("20240101-abd999/artifacts")


def test_run_folder_argument(project: Path) -> None:
    run = project / ".harness" / "runs" / "7f00aa"
    target = resolve(str(run), project)
    assert target.run == "7f00aa"
    assert target.path == run / "artifacts"


def test_unknown_and_ambiguous_runs(project: Path) -> None:
    with pytest.raises(RunNotFound, match="neither an existing path nor a recorded run") as caught:
        compare_paths("nope", "7f00aa", cwd=project)
    assert caught.value.exit_code == EXIT_TROUBLE
    with pytest.raises(RunNotFound, match="ambiguous"):
        compare_paths("20240101-ab", "7f00aa", cwd=project)
    with pytest.raises(RunNotFound):
        compare_paths("missing/file.npy", "7f00aa", cwd=project)


def test_run_without_artifacts(project: Path) -> None:
    (project / ".harness" / "runs" / "broken").mkdir()
    with pytest.raises(ArtifactError, match="no artifacts folder"):
        compare_paths("broken", "7f00aa", cwd=project)


def test_symlinked_folders_are_not_followed(tmp_path: Path) -> None:
    a = make_artifacts(tmp_path / "a", 0.5, "x.txt")
    (a / "loop").symlink_to(a, target_is_directory=True)
    b = make_artifacts(tmp_path / "b", 0.5, "x.txt")
    result = compare_paths(a, b)
    statuses = {x.path: x.status for x in result.artifacts}
    assert statuses["loop"] == "removed"
    assert len(statuses) == 5


def test_links_to_folders_compare_by_target(tmp_path: Path) -> None:
    a = make_artifacts(tmp_path / "a", 0.5, "x.txt")
    b = make_artifacts(tmp_path / "b", 0.5, "x.txt")
    (a / "latest").symlink_to("sub", target_is_directory=True)
    (b / "latest").symlink_to("sub", target_is_directory=True)
    assert compare_paths(a, b).exit_code == 0
    (b / "latest").unlink()
    (b / "latest").symlink_to(b, target_is_directory=True)
    (artifact,) = [x for x in compare_paths(a, b).artifacts if x.path == "latest"]
    assert (artifact.kind, artifact.status) == ("link", "differs")


def test_a_folder_too_deep_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.compare.tree.MAX_DEPTH", 3)
    for side in ("a", "b"):
        deep = tmp_path / side / "1" / "2" / "3" / "4"
        deep.mkdir(parents=True)
        (deep / "x.txt").write_text("x")
    with pytest.raises(ArtifactError, match="levels of folders"):
        compare_paths(tmp_path / "a", tmp_path / "b")
