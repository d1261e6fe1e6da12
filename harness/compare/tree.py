"""What the two arguments name (run records, folders, files) and walking them in step."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.compare.kinds import compare_files, kind_of
from harness.compare.model import ArtifactResult, ComparisonResult, Entry, Side, Status
from harness.compare.policy import BITWISE, Policy, PolicySet
from harness.config import STATE_FOLDER
from harness.errors import ArtifactError, HarnessError, RunNotFound

RUNS = STATE_FOLDER / "runs"


@dataclass(frozen=True)
class Target:
    """One side of a comparison: the file or folder to compare and the run it belongs to."""

    argument: str
    path: Path
    run: str | None = None


def project_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds a pyproject.toml."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def runs_folders(cwd: Path) -> list[Path]:
    """Where run records are looked up: under the current folder, then the project root."""
    folders = [cwd / RUNS]
    root = project_root(cwd)
    if root is not None and (root / RUNS).resolve() != (cwd / RUNS).resolve():
        folders.append(root / RUNS)
    return folders


def is_run(folder: Path) -> bool:
    return (folder / "record.json").is_file() and (folder / "artifacts").is_dir()


def _run_target(argument: str, folder: Path) -> Target:
    artifacts = folder / "artifacts"
    if not artifacts.is_dir():
        raise ArtifactError(
            f"run {folder.name} ({folder}) has no artifacts folder",
            hint="the run did not finish; re-run it or compare another run",
        )
    return Target(argument, artifacts, folder.name)


def resolve(argument: str, cwd: Path) -> Target:
    """A path as given, or else a run id (or a unique prefix of one)."""
    path = Path(argument).expanduser()
    path = path if path.is_absolute() else cwd / path
    if path.exists():
        if path.is_dir() and is_run(path):
            return Target(argument, path / "artifacts", path.resolve().name)
        return Target(argument, path)
    folders = runs_folders(cwd)
    looked = ", ".join(str(folder) for folder in folders)
    if argument and "/" not in argument and os.sep not in argument and argument not in (".", ".."):
        for folder in folders:
            if (folder / argument).is_dir():
                return _run_target(argument, folder / argument)
        matches: dict[Path, Path] = {}
        for folder in folders:
            if folder.is_dir():
                for run in folder.iterdir():
                    if run.name.startswith(argument) and run.is_dir():
                        matches.setdefault(run.resolve(), run)
        if len(matches) == 1:
            return _run_target(argument, next(iter(matches.values())))
        if len(matches) > 1:
            names = ", ".join(sorted(run.name for run in matches.values())[:5])
            raise RunNotFound(
                f"run id prefix {argument!r} is ambiguous: it matches {names}",
                hint="give more characters of the run id",
            )
    raise RunNotFound(
        f"{argument!r} is neither an existing path nor a recorded run (looked in {looked})"
    )


# A folder from another machine is bounded like any other input: run outputs are a few
# files a few levels deep, not millions or thousands of levels.
MAX_FILES = 200_000
MAX_DEPTH = 64


def walk(root: Path) -> dict[str, Path]:
    """Every file under ``root`` by its ``/``-separated relative path.

    Symbolic links to files are compared by their content; links to folders are not
    followed, so a link cycle cannot make the walk endless.
    """
    found: dict[str, Path] = {}
    for folder, folders, files in os.walk(root, followlinks=False):
        folders.sort()
        base = Path(folder)
        depth = len(base.relative_to(root).parts)
        if depth > MAX_DEPTH or len(found) + len(files) > MAX_FILES:
            raise ArtifactError(
                f"{root} holds more than {MAX_FILES} files or {MAX_DEPTH} levels of folders",
                hint="compare the run's artifacts folder, not a whole tree",
            )
        for name in files:
            path = base / name
            found[path.relative_to(root).as_posix()] = path
        for name in folders:
            if (base / name).is_symlink():
                path = base / name
                found[path.relative_to(root).as_posix()] = path
    return dict(sorted(found.items()))


def _one_sided(relative: str, path: Path, status: Status, policy: Policy) -> ArtifactResult:
    result = ArtifactResult(path=relative, kind=kind_of(path), status=status, policy=policy.text)
    size = path.stat().st_size if path.is_file() else None
    if status == "removed":
        result.size_a = size
    else:
        result.size_b = size
    return result


def _compare_links(relative: str, a: Path, b: Path) -> ArtifactResult:
    """Links to folders are not followed; they match when they point at the same place."""
    result = ArtifactResult(path=relative, kind="link", status="identical", policy=BITWISE.text)
    target_a = str(a.readlink())
    target_b = str(b.readlink()) if b.is_symlink() else None
    if target_a != target_b:
        result.status = "differs"
        result.add_entry(Entry("link target", "differs", a=target_a, b=target_b))
    return result


def _files(path: Path, other: Path, is_dir: bool, other_is_dir: bool) -> dict[str, Path]:
    """The files one side contributes; a file against a folder meets its namesake, as in diff."""
    if is_dir and other_is_dir:
        return walk(path)
    if is_dir:
        namesake = path / other.name
        return {other.name: namesake} if namesake.exists() else {}
    return {path.name: path}


def _device_of(target: Target) -> str | None:
    """The device class of a run's side, read from its record; None for plain folders or
    a record that cannot be read (the comparison does not depend on it)."""
    if target.run is None:
        return None
    from harness.runs import records  # noqa: PLC0415 - only comparisons of runs read records

    try:
        return records.device_class(records.read(target.path.parent))
    except HarnessError:
        return None


def run_status(target: Target) -> str | None:
    """How a run's side ended (``succeeded``, ``failed``...), from its record; None for
    plain folders or a record that cannot be read."""
    if target.run is None:
        return None
    from harness.runs import records  # noqa: PLC0415 - only comparisons of runs read records

    try:
        status = records.read(target.path.parent).get("status")
    except HarnessError:
        return None
    return status if isinstance(status, str) else None


def compare_paths(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    policy: str | Policy | None = None,
    policies: Mapping[str, str] | None = None,
    metric_tolerance: str | Policy | None = None,
    *,
    cwd: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ComparisonResult:
    """Compare two run records, folders or files.

    ``policy`` applies to every artifact (overriding ``policies``, which maps glob
    patterns to policy strings); ``metric_tolerance`` applies to the numbers in JSON and
    CSV artifacts. Unreadable artifacts get an ``error`` verdict rather than raising;
    unknown runs raise RunNotFound and bad policy strings ConfigError.
    """
    policy_set = PolicySet.build(policy, policies, metric_tolerance)
    here = Path(cwd) if cwd is not None else Path.cwd()
    target_a = resolve(os.fspath(a), here)
    target_b = resolve(os.fspath(b), here)
    comparison = ComparisonResult(
        a=Side(target_a.argument, str(target_a.path), target_a.run, _device_of(target_a)),
        b=Side(target_b.argument, str(target_b.path), target_b.run, _device_of(target_b)),
        policy=policy_set.overall.text if policy_set.overall else None,
        metric_tolerance=policy_set.metric.text if policy_set.metric else None,
    )
    dir_a, dir_b = target_a.path.is_dir(), target_b.path.is_dir()
    if dir_a or dir_b:
        files_a = _files(target_a.path, target_b.path, dir_a, dir_b)
        files_b = _files(target_b.path, target_a.path, dir_b, dir_a)
        for relative in sorted(set(files_a) | set(files_b)):
            path_a, path_b = files_a.get(relative), files_b.get(relative)
            policy_here = policy_set.for_artifact(relative)
            if path_b is None and path_a is not None:
                comparison.artifacts.append(_one_sided(relative, path_a, "removed", policy_here))
            elif path_a is None and path_b is not None:
                comparison.artifacts.append(_one_sided(relative, path_b, "added", policy_here))
            elif path_a is not None and path_b is not None:
                if path_a.is_symlink() and path_a.is_dir() and path_b.is_dir():
                    comparison.artifacts.append(_compare_links(relative, path_a, path_b))
                    continue
                comparison.artifacts.append(
                    compare_files(
                        path_a,
                        path_b,
                        relative,
                        policy_set,
                        progress,
                        roots=(target_a.path if dir_a else None, target_b.path if dir_b else None),
                    )
                )
    else:
        name_a, name_b = target_a.path.name, target_b.path.name
        label = name_a if name_a == name_b else f"{name_a} vs {name_b}"
        comparison.artifacts.append(
            compare_files(target_a.path, target_b.path, label, policy_set, progress, match=name_a)
        )
    return comparison
