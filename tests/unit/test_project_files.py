"""Which project files travel: one rule, whichever way the files go (a volume for another
host, the archive of a Kubernetes Job) and whatever `harness lint` reads."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from harness import project_files
from harness.fleet.k8s import archive
from harness.lint.targets import collect_files
from harness.runs import staging


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with code at several depths, and what must stay home beside it."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "project"
    for folder in ("pkg/sub", ".github/scripts", "build/lib", "data", "empty"):
        (root / folder).mkdir(parents=True)
    for name in (
        "pyproject.toml",
        "train.py",
        "pkg/__init__.py",
        "pkg/sub/model.py",
        ".github/scripts/check.py",
        "build/lib/copy.py",
        "data/table.csv",
    ):
        (root / name).write_text(f"# {name}\n")
    (root / "alias.py").symlink_to("pkg/sub/model.py")
    # Never travels: harness's state, git's database, caches, environments, private files.
    for name in (
        ".harness/runs/old/record.json",
        ".git/config",
        "pkg/__pycache__/m.cpython-311.pyc",
        ".ruff_cache/x.py",
        "env/pyvenv.cfg",
        "env/lib/site.py",
        "secret.py",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    (root / "secret.py").chmod(0o600)
    (root / "mine").mkdir(mode=0o700)
    (root / "mine" / "notes.py").write_text("")
    return root


EXPECTED = [
    ".github/scripts/check.py",
    "alias.py",
    "build/lib/copy.py",
    "data/table.csv",
    "pkg/__init__.py",
    "pkg/sub/model.py",
    "pyproject.toml",
    "train.py",
]


def _staged(project: Path, tmp_path: Path) -> list[str]:
    """The project's files (and links) in the archive a remote host's volume is filled from."""
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    with (
        staging.archive(project, spec, {}, harness_state=".harness") as packed,
        tarfile.open(fileobj=packed) as tar,
    ):
        return sorted(
            m.name.removeprefix("source/")
            for m in tar.getmembers()
            if m.name.startswith("source/") and not m.isdir()
        )


def _k8s(project: Path) -> list[str]:
    files = project_files.files(project)
    with tarfile.open(fileobj=io.BytesIO(archive.project_archive(project, files))) as tar:
        return sorted(m.name for m in tar.getmembers() if not m.isdir())


def test_staging_k8s_and_lint_see_the_same_files(project: Path, tmp_path: Path) -> None:
    assert project_files.files(project) == EXPECTED
    assert _staged(project, tmp_path) == EXPECTED
    assert _k8s(project) == EXPECTED
    linted = [path.relative_to(project).as_posix() for path in collect_files([project])]
    assert sorted(linted) == [name for name in EXPECTED if name.endswith(".py")]


def test_the_walk_lists_folders_before_their_files_and_enters_no_link(project: Path) -> None:
    (project / "outside").symlink_to(project.parent)
    walked = [path.relative_to(project).as_posix() for path in project_files.walk(project)]
    assert walked.index("pkg") < walked.index("pkg/__init__.py") < walked.index("pkg/sub")
    assert "empty" in walked
    assert "outside" in walked
    assert not any(name.startswith("outside/") for name in walked)


def test_links_travel_as_files_only_when_they_lead_to_a_file_that_travels(
    project: Path,
) -> None:
    (project / "outside").symlink_to(project.parent)
    (project / "elsewhere.txt").symlink_to(project.parent / "nowhere.txt")
    (project / "state.json").symlink_to(".harness/runs/old/record.json")
    (project / "key.py").symlink_to("secret.py")
    notes: list[str] = []
    found = project_files.files(project, notes.append)
    assert found == EXPECTED
    assert notes == [
        f"not shipping {name}: a link to a folder, or to outside the project"
        for name in ("elsewhere.txt", "key.py", "outside", "state.json")
    ]


def test_a_folder_given_as_an_input_travels_whole(project: Path) -> None:
    walked = {
        p.relative_to(project).as_posix() for p in project_files.walk(project, skip_state=False)
    }
    assert {".harness/runs/old/record.json", "env/lib/site.py", ".git/config"} <= walked
    assert "secret.py" not in walked
