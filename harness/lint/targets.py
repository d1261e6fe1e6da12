"""What ``harness lint`` reads, and linting it: the files behind the command.

With no PATH the command lints what the project runs: ``[tool.harness.lint] paths`` when set, else
the source files of the declared experiments (an entry's module, a command's ``.py``
arguments), else the whole project. Folders are walked for the ``*.py`` files among those
that travel to an experiment (:mod:`harness.project_files`): lint judges the code the
experiment's container sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import project_files
from harness.config import Config
from harness.errors import HarnessError
from harness.lint.checker import check_files
from harness.lint.findings import Finding
from harness.lint.seeding import MODULE_BODY
from harness.lint.settings import LintSettings

SCHEMA = "harness.lint/v2"  # v2: 1-based columns, related locations
FORMATS = ("text", "json", "sarif")


@dataclass(frozen=True)
class LintResult:
    files: tuple[str, ...]
    findings: tuple[Finding, ...]
    rules: frozenset[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "files": list(self.files),
            "rules": sorted(self.rules),
            "findings": [finding.as_dict() for finding in self.findings],
        }


def lint_paths(
    paths: Sequence[Path],
    rules: Iterable[str],
    *,
    relative_to: Path | None = None,
    roots: Sequence[Path] = (),
    managed: Mapping[Path, frozenset[str]] | None = None,
    jobs: int | None = None,
) -> LintResult:
    """Lint files and folders, read together as one program, with the given rule ids;
    findings name paths relative to ``relative_to`` where they lie below it. ``roots`` are
    where imported project modules are sought besides each file's folder and package;
    ``managed`` names the entries harness runs (see :func:`managed_entries`); ``jobs``
    how many processes analyse the files (None: by their number and the cores, see
    :mod:`harness.lint.workers`)."""
    enabled = frozenset(rules)
    files = collect_files(paths)
    base = (relative_to or Path.cwd()).resolve()  # once: resolving walks every folder
    shown = [_shown(file, base) for file in files]
    try:
        found = check_files(list(zip(files, shown, strict=True)), roots, managed, enabled, jobs)
    except OSError as error:
        name = _shown(Path(error.filename), base) if error.filename else "a file"
        raise HarnessError(
            f"cannot read {name}: {error.strerror or error}", "check the file's permissions"
        ) from None
    findings = [f for f in found if f.rule in enabled]
    return LintResult(tuple(shown), tuple(sorted(findings)), enabled)


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """The files to lint: each file as given, each folder's ``*.py`` files, sorted, once."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_file():
            found[path] = None
        elif path.is_dir():
            for file in _walk(path):
                found[file] = None
        else:
            raise HarnessError(f"{path} does not exist", "give an existing file or folder")
    return list(found)


def _walk(folder: Path) -> list[Path]:
    return [folder / name for name in project_files.files(folder) if name.endswith(".py")]


def _shown(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (resolved) where it lies below it."""
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path)


def default_targets(config: Config, settings: LintSettings) -> list[Path]:
    """What `harness lint` checks with no PATH (see the module's docstring)."""
    root = config.project_root
    if settings.paths:
        return [root / path for path in settings.paths]
    targets: dict[Path, None] = {}
    for experiment in config.experiments.values():
        if experiment.entry is not None:
            module = experiment.entry.partition(":")[0]
            for candidate in _module_files(root, module):
                targets[candidate] = None
        for argument in experiment.command or ():
            if argument.endswith(".py") and (root / argument).is_file():
                targets[root / argument] = None
    return list(targets) or [root]


def managed_entries(config: Config) -> dict[Path, frozenset[str]]:
    """The code harness itself runs, which its runtime seeds first: each experiment's entry
    function, and each command's script (its whole body)."""
    managed: dict[Path, set[str]] = {}
    root = config.project_root
    for experiment in config.experiments.values():
        if experiment.entry is not None:
            module, _, function = experiment.entry.partition(":")
            for candidate in _module_files(root, module):
                path = candidate / "__init__.py" if candidate.is_dir() else candidate
                managed.setdefault(path.resolve(), set()).add(function)
        for argument in experiment.command or ():
            if argument.endswith(".py") and (root / argument).is_file():
                managed.setdefault((root / argument).resolve(), set()).add(MODULE_BODY)
    return {path: frozenset(names) for path, names in managed.items()}


def _module_files(root: Path, module: str) -> list[Path]:
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return [base.with_suffix(".py")]
    if (base / "__init__.py").is_file():
        return [base]
    return []  # installed rather than in the project: not this project's code to lint


__all__ = ["FORMATS", "SCHEMA", "LintResult", "collect_files", "default_targets", "lint_paths"]
