"""What the two arguments name (run records, folders, files) and walking them in step."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.compare.inputs import (
    FOLDER_FLAGS,
    Opened,
    kind_name,
    link_target,
    open_beneath,
    open_checked,
    open_named,
)
from harness.compare.kinds import NUMBER_KINDS, compare_files, compare_opened, kind_by_name
from harness.compare.model import ArtifactResult, ComparisonResult, Entry, Side, Status
from harness.compare.names import shown
from harness.compare.policy import BITWISE, Policy, PolicySet
from harness.errors import ArtifactError, HarnessError, RunNotFound


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
    # Imported here: the configuration module is large, and comparing files and folders
    # never needs it.
    from harness.config import STATE_FOLDER  # noqa: PLC0415

    runs = STATE_FOLDER / "runs"
    folders = [cwd / runs]
    root = project_root(cwd)
    if root is not None and (root / runs).resolve() != (cwd / runs).resolve():
        folders.append(root / runs)
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

_FOLDER, _FILE, _LINK, _OTHER = "folder", "file", "link", "other"


def _type_of(entry: os.DirEntry[str]) -> str:
    """What a folder entry is, from the folder listing itself (no stat, no link followed)."""
    # A regular file first: the common case, one check instead of three.
    if entry.is_file(follow_symlinks=False):
        return _FILE
    if entry.is_symlink():
        return _LINK
    if entry.is_dir(follow_symlinks=False):
        return _FOLDER
    return _OTHER


def _listing(fd: int) -> dict[str, str]:
    with os.scandir(fd) as entries:
        return {entry.name: _type_of(entry) for entry in entries}


@dataclass
class _Side:
    """One compared folder: its path (for messages and link targets) and its descriptor."""

    root: Path
    fd: int

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"


class _Walk:
    """Two folders walked in step, like ``diff -r``: each folder is listed once on each
    side, each file is opened relative to its folder's descriptor (no path is resolved
    twice), and every file present on both sides is compared as soon as it is met.
    """

    def __init__(
        self,
        a: _Side,
        b: _Side,
        policies: PolicySet,
        progress: Callable[[str], None] | None,
        out: list[ArtifactResult],
    ) -> None:
        self.sides = (a, b)
        self.policies = policies
        self.progress = progress
        self.out = out
        self.files = 0

    def _count(self, relative: str, depth: int) -> None:
        self.files += 1
        if self.files > MAX_FILES or depth > MAX_DEPTH:
            root = self.sides[0].root
            raise ArtifactError(
                f"{root} holds more than {MAX_FILES} files or {MAX_DEPTH} levels of folders "
                f"(at {shown(relative)})",
                hint="compare the run's artifacts folder, not a whole tree",
            )

    def folders(self, fds: tuple[int, int], prefix: str, depth: int) -> None:
        listing_a, listing_b = _listing(fds[0]), _listing(fds[1])
        for name in sorted(listing_a.keys() | listing_b.keys()):
            relative = prefix + name
            type_a, type_b = listing_a.get(name), listing_b.get(name)
            if type_a == type_b == _FOLDER:
                self._count(relative, depth + 1)
                try:
                    inner = _open_folders(fds, name, relative)
                except OSError as exc:
                    # A folder that cannot be opened (no permission, or swapped for a
                    # link since it was listed): an error verdict, not a traceback.
                    self.out.append(_unreadable(relative, self.policies, exc))
                    continue
                try:
                    self.folders(inner, relative + "/", depth + 1)
                finally:
                    os.close(inner[0])
                    os.close(inner[1])
            elif type_a is None or type_b is None or _FOLDER in (type_a, type_b):
                for side, kind in enumerate((type_a, type_b)):
                    if kind is None:
                        continue
                    try:
                        self.one_sided(side, fds[side], name, kind, relative=relative, depth=depth)
                    except OSError as exc:
                        self.out.append(_unreadable(relative, self.policies, exc))
            else:
                self._count(relative, depth)
                self.pair(fds, name, (type_a, type_b), relative)

    def one_sided(
        self, side: int, fd: int, name: str, kind: str, *, relative: str, depth: int
    ) -> None:
        """Everything under a name that only one side has, file by file."""
        status: Status = "removed" if side == 0 else "added"
        self._count(relative, depth)
        if kind == _FOLDER:
            inner = os.open(name, FOLDER_FLAGS, dir_fd=fd)
            try:
                for child, child_kind in sorted(_listing(inner).items()):
                    self.one_sided(
                        side,
                        inner,
                        child,
                        child_kind,
                        relative=f"{relative}/{child}",
                        depth=depth + 1,
                    )
            finally:
                os.close(inner)
            return
        policy = self.policies.for_artifact(relative)
        result = ArtifactResult(
            path=relative,
            kind=kind_by_name(relative) if kind != _LINK else "link",
            status=status,
            policy=policy.text,
        )
        size = os.stat(name, dir_fd=fd, follow_symlinks=False).st_size if kind == _FILE else None
        if side == 0:
            result.size_a = size
        else:
            result.size_b = size
        self.out.append(result)

    def pair(self, fds: tuple[int, int], name: str, kinds: tuple[str, str], relative: str) -> None:
        opened: list[Opened] = []
        try:
            if _LINK in kinds:
                folder_link = self._folder_links(kinds, relative)
                if folder_link is not None:
                    self.out.append(folder_link)
                    return
            for side, kind in enumerate(kinds):
                opened.append(self._open(side, fds[side], name, kind, relative))
            self.out.append(
                compare_opened(opened[0], opened[1], relative, self.policies, self.progress)
            )
        except ArtifactError as exc:
            self.out.append(_error(relative, self.policies, exc))
        except OSError as exc:
            self.out.append(_unreadable(relative, self.policies, exc))
        finally:
            for handle in opened:
                handle.close()

    def _open(self, side: int, fd: int, name: str, kind: str, relative: str) -> Opened:
        where = self.sides[side]
        label = f"{shown(relative)} in {'AB'[side]}"
        if kind == _LINK:
            target = link_target(Path(where.path(relative)), where.root, label)
            opened = open_beneath(where.fd, target, label, where.path(relative))
            return opened.within(where.root, target)
        if kind == _OTHER:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            raise ArtifactError(
                f"{label} is {kind_name(mode)}, not a file", hint="compare regular files only"
            )
        return open_checked(name, label, where.path(relative), dir_fd=fd).within(
            where.root, relative
        )

    def _folder_links(self, kinds: tuple[str, str], relative: str) -> ArtifactResult | None:
        """Links to folders are not followed: they match when both point at the same place
        inside their compared folder. A link to a folder outside is refused."""
        targets: list[str | None] = []
        folder = False
        for side, kind in enumerate(kinds):
            where = self.sides[side]
            path = where.root / relative
            if kind != _LINK:
                targets.append(None)
                folder = folder or path.is_dir()
                continue
            label = f"{shown(relative)} in {'AB'[side]}"
            link_target(path, where.root, label)
            targets.append(str(path.readlink()))
            folder = folder or path.is_dir()
        if not folder:
            return None
        result = ArtifactResult(path=relative, kind="link", status="identical", policy=BITWISE.text)
        if targets[0] != targets[1]:
            result.status = "differs"
            result.add_entry(Entry("link target", "differs", a=targets[0], b=targets[1]))
        return result


def _open_folders(fds: tuple[int, int], name: str, relative: str) -> tuple[int, int]:
    first = os.open(name, FOLDER_FLAGS, dir_fd=fds[0])
    try:
        return first, os.open(name, FOLDER_FLAGS, dir_fd=fds[1])
    except BaseException:
        os.close(first)
        raise


def _unreadable(relative: str, policies: PolicySet, exc: OSError) -> ArtifactResult:
    message = f"{shown(relative)}: {exc.strerror or exc}"
    return _error(relative, policies, ArtifactError(message, hint=_HINT_READABLE))


_HINT_READABLE = "check that it exists and is readable, and that nothing writes it now"


def _error(relative: str, policies: PolicySet, exc: ArtifactError) -> ArtifactResult:
    kind = kind_by_name(relative)
    policy = policies.for_artifact(relative, numbers=kind in NUMBER_KINDS)
    return ArtifactResult(
        path=relative,
        kind=kind,
        status="error",
        policy=policy.text,
        error=exc.message,
        hint=exc.hint or None,
    )


def _compare_folders(
    a: Path, b: Path, policies: PolicySet, progress: Callable[[str], None] | None
) -> list[ArtifactResult]:
    out: list[ArtifactResult] = []
    fd_a = _open_root(a)
    try:
        fd_b = _open_root(b)
        try:
            _Walk(_Side(a, fd_a), _Side(b, fd_b), policies, progress, out).folders(
                (fd_a, fd_b), "", 0
            )
        finally:
            os.close(fd_b)
    finally:
        os.close(fd_a)
    out.sort(key=lambda result: result.path)
    return out


def _open_root(folder: Path) -> int:
    try:
        return os.open(folder, FOLDER_FLAGS & ~os.O_NOFOLLOW)
    except OSError as exc:
        raise ArtifactError(
            f"{folder}: {exc.strerror or exc}", hint="check that the folder exists and is readable"
        ) from None


def _namesake(
    folder: Path,
    file: Path,
    folder_side: int,
    policies: PolicySet,
    progress: Callable[[str], None] | None,
) -> list[ArtifactResult]:
    """A file against a folder meets the folder's file of the same name, as in diff."""
    name = file.name
    namesake = folder / name
    if not os.path.lexists(namesake):
        status: Status = "added" if folder_side == 0 else "removed"
        result = ArtifactResult(
            path=name,
            kind=kind_by_name(name),
            status=status,
            policy=policies.for_artifact(name).text,
        )
        size = file.stat().st_size if file.is_file() else None
        if status == "removed":
            result.size_a = size
        else:
            result.size_b = size
        return [result]
    opened: list[Opened] = []
    fd = _open_root(folder)
    try:
        label_folder = f"{shown(name)} in {'AB'[folder_side]}"
        if namesake.is_symlink():
            target = link_target(namesake, folder, label_folder)
            in_folder = open_beneath(fd, target, label_folder, str(namesake)).within(folder, target)
        else:
            in_folder = open_checked(name, label_folder, str(namesake), dir_fd=fd).within(
                folder, name
            )
        opened.append(in_folder)
        named = open_named(file, f"{shown(name)} in {'BA'[folder_side]}")
        opened.append(named)
        pair = (in_folder, named) if folder_side == 0 else (named, in_folder)
        return [compare_opened(pair[0], pair[1], name, policies, progress)]
    except ArtifactError as exc:
        return [_error(name, policies, exc)]
    finally:
        os.close(fd)
        for handle in opened:
            handle.close()


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
    if dir_a and dir_b:
        comparison.artifacts.extend(
            _compare_folders(target_a.path, target_b.path, policy_set, progress)
        )
    elif dir_a:
        comparison.artifacts.extend(
            _namesake(target_a.path, target_b.path, 0, policy_set, progress)
        )
    elif dir_b:
        comparison.artifacts.extend(
            _namesake(target_b.path, target_a.path, 1, policy_set, progress)
        )
    else:
        name_a, name_b = target_a.path.name, target_b.path.name
        label = name_a if name_a == name_b else f"{name_a} vs {name_b}"
        comparison.artifacts.append(
            compare_files(target_a.path, target_b.path, label, policy_set, progress, match=name_a)
        )
    return comparison
