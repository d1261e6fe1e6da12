"""The project's own Python files, parsed (never run) for what `harness init` infers.

A research repository often declares nothing: no dependencies, no entry point, only
``train.py`` and the packages it imports. `harness init` reads its Python files to propose
both, and those files are as hostile as any the project holds: a generated module of many
megabytes, a file that does not parse, a link that points out of the project, a folder
nested a thousand levels deep, a data folder of a million files. So the walk is bounded in
depth, entries seen, files parsed and bytes read; links are never followed (a linked file
is named and left unread); each file is read without following a link and within a size
bound, then parsed with :mod:`ast`, whose failures (a syntax error, nesting too deep for
the parser) leave that file out with one line saying why. What the walk could not read
is listed, so nothing is left out silently. A syntax tree takes about a hundred times the
memory of its source, so none is kept: each caller says what it wants from a file's tree
(its imports, whether it is a script), taken while the tree exists.

Jupyter notebooks are listed in the same walk, under the same bounds, and read for their
code cells (:mod:`harness.notebooks`): the cells that parse make one syntax tree, handed
to the same callers, and a notebook provides no module name (nothing imports it). The
notebooks read and those that could not be (not JSON, another language) are counted, so
that init says so in one line.
"""

from __future__ import annotations

import ast
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

from harness import notebooks, untrusted

# Real source files are a few hundred kilobytes at most; larger ones are generated.
FILE_LIMIT = 1 << 20
# Enough for any research repository's own code, small enough to parse in seconds (about
# a megabyte a second here; the project's own root files come first).
FILES_LIMIT = 1000
BYTES_LIMIT = 8 << 20
# Notebooks' JSON read in all (their outputs included), besides the code it holds, which
# counts against BYTES_LIMIT like a Python file's.
NOTEBOOK_BYTES_LIMIT = 64 << 20
# Directory entries looked at, files and folders alike: a data folder of a million
# images is not read through.
ENTRIES_LIMIT = 20_000
# Folders below the project's root: packages nest a handful of levels.
DEPTH_LIMIT = 10
# Folders that hold no code of the project's own: build output, installed packages, tools'
# caches. Hidden folders (.git, .harness, .venv, .tox) and any folder with a pyvenv.cfg (a
# virtual environment, whatever its name) are left out too.
_NOT_PROJECT_CODE = frozenset({"__pycache__", "build", "dist", "node_modules", "site-packages"})


# What a caller takes from each file's syntax tree.
Facts = TypeVar("Facts")


@dataclass(frozen=True)
class Source(Generic[Facts]):
    """One parsed file: its path relative to the root (POSIX), what was taken from it, and
    the distributions it installs (a notebook's ``%pip install`` lines)."""

    path: str
    facts: Facts
    installs: tuple[str, ...] = ()


@dataclass
class Sources(Generic[Facts]):
    """The project's parsed Python files, the names its own modules take, and what was not
    read (a line each: ``big.py (more than 1 MiB)``)."""

    files: list[Source[Facts]] = field(default_factory=list)
    # Every module or package name the project's files and folders provide: an import of
    # one of them is the project's own code, not a dependency.
    own_names: set[str] = field(default_factory=set)
    unread: list[str] = field(default_factory=list)
    # The notebooks read, the notebooks not read (a line each, as ``unread``), and their
    # code cells left out for not parsing (a line each: ``eda.ipynb cell 4 (...)``).
    notebooks: int = 0
    unread_notebooks: list[str] = field(default_factory=list)
    skipped_cells: list[str] = field(default_factory=list)


def read(root: Path, facts: Callable[[str, ast.Module], Facts]) -> Sources[Facts]:
    """Parse the Python files under ``root`` within the bounds above (each folder's files
    before its subfolders, by name) and keep ``facts(path, tree)`` of each."""
    sources: Sources[Facts] = Sources()
    budget = _Budget(facts)
    _walk(root, PurePosixPath(), sources, budget, depth=0)
    if budget.stopped:
        sources.unread.append(budget.stopped)
    return sources


@dataclass
class _Budget(Generic[Facts]):
    facts: Callable[[str, ast.Module], Facts]
    entries: int = 0
    files: int = 0
    bytes: int = 0
    notebook_bytes: int = 0
    # Why the walk stopped early, once it has.
    stopped: str = ""

    def take_entry(self) -> bool:
        """Count one more directory entry; False once the walk must stop."""
        self.entries += 1
        if self.entries > ENTRIES_LIMIT and not self.stopped:
            self.stopped = f"the rest of the project (more than {ENTRIES_LIMIT} files and folders)"
        return not self.stopped


def _walk(
    folder: Path,
    relative: PurePosixPath,
    sources: Sources[Facts],
    budget: _Budget[Facts],
    *,
    depth: int,
) -> bool:
    """Read ``folder``; returns whether it holds Python files (at any depth)."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        sources.unread.append(f"{relative.as_posix() or '.'}/ (not readable)")
        return False
    holds_python = False
    subfolders = []
    for entry in entries:
        if not budget.take_entry():
            return holds_python
        path = relative / entry.name
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            _name_link(path, sources)
            continue
        if stat.S_ISDIR(mode):
            subfolders.append((entry, path))
        elif stat.S_ISREG(mode) and entry.name.endswith(".py"):
            holds_python = True
            _read_file(Path(entry.path), path, sources, budget)
        elif stat.S_ISREG(mode) and entry.name.endswith(notebooks.SUFFIX):
            # Read for imports only: a notebook is no module, so its folder is no package.
            _read_notebook(Path(entry.path), path, sources, budget)
    for entry, path in subfolders:
        if not _may_hold_project_code(Path(entry.path)):
            continue
        if depth + 1 > DEPTH_LIMIT:
            sources.unread.append(f"{path.as_posix()}/ (deeper than {DEPTH_LIMIT} folders)")
            continue
        if _walk(Path(entry.path), path, sources, budget, depth=depth + 1):
            # A folder holding Python files is a package (or a namespace one) of the project.
            sources.own_names.add(entry.name)
            holds_python = True
    return holds_python


def _name_link(path: PurePosixPath, sources: Sources[Facts]) -> None:
    """A link to a Python file or notebook is named among those not read."""
    shown = f"{path.as_posix()} (a link: links are not followed)"
    if path.name.endswith(".py"):
        sources.unread.append(shown)
    elif path.name.endswith(notebooks.SUFFIX):
        sources.unread_notebooks.append(shown)


def _may_hold_project_code(folder: Path) -> bool:
    name = folder.name
    return not (
        name.startswith(".")
        or name in _NOT_PROJECT_CODE
        or name.endswith(".egg-info")
        or (folder / "pyvenv.cfg").is_file()
    )


def _read_file(
    path: Path, relative: PurePosixPath, sources: Sources[Facts], budget: _Budget[Facts]
) -> None:
    sources.own_names.add(relative.stem)
    shown = relative.as_posix()
    if _over_budget(budget):
        return
    try:
        data = untrusted.read_bytes(path, limit=FILE_LIMIT, what="file", follow_symlinks=False)
    except untrusted.UntrustedInputError as error:
        sources.unread.append(f"{shown} ({error.reason})")
        return
    except OSError as error:
        sources.unread.append(f"{shown} (not readable: {error.strerror})")
        return
    budget.files += 1
    budget.bytes += len(data)
    try:
        tree = ast.parse(data, filename=shown)
    except SyntaxError as error:
        sources.unread.append(f"{shown} (not valid Python: {error.msg}, line {error.lineno})")
        return
    except (ValueError, RecursionError, MemoryError):
        sources.unread.append(f"{shown} (nested too deep, or not Python source)")
        return
    sources.files.append(Source(shown, budget.facts(shown, tree)))


def _over_budget(budget: _Budget[Facts]) -> bool:
    """Whether the files or bytes parsed have reached their bound (then saying so)."""
    if budget.files >= FILES_LIMIT or budget.bytes >= BYTES_LIMIT:
        budget.stopped = (
            f"the rest of the project (more than {FILES_LIMIT} Python files and notebooks or "
            f"{BYTES_LIMIT >> 20} MiB of their code)"
        )
    return bool(budget.stopped)


def _read_notebook(
    path: Path, relative: PurePosixPath, sources: Sources[Facts], budget: _Budget[Facts]
) -> None:
    shown = relative.as_posix()
    if _over_budget(budget):
        return
    if budget.notebook_bytes >= NOTEBOOK_BYTES_LIMIT:
        sources.unread_notebooks.append(
            f"{shown} (past {NOTEBOOK_BYTES_LIMIT >> 20} MiB of notebooks read)"
        )
        return
    try:
        data = untrusted.read_bytes(
            path, limit=notebooks.FILE_LIMIT, what="notebook", follow_symlinks=False
        )
    except untrusted.UntrustedInputError as error:
        sources.unread_notebooks.append(f"{shown} ({error.reason})")
        return
    except OSError as error:
        sources.unread_notebooks.append(f"{shown} (not readable: {error.strerror})")
        return
    budget.notebook_bytes += len(data)
    try:
        notebook = notebooks.read(data)
    except notebooks.NotANotebook as error:
        sources.unread_notebooks.append(f"{shown} ({error.reason})")
        return
    if notebook.code_size() > FILE_LIMIT:
        # A syntax tree takes a hundred times its source's memory: the cells are parsed
        # together, so their code has a Python file's bound.
        sources.unread_notebooks.append(f"{shown} (more than {FILE_LIMIT >> 20} MiB of code)")
        return
    budget.files += 1
    budget.bytes += notebook.code_size()
    tree, skipped = notebooks.parse(notebook, shown)
    sources.notebooks += 1
    sources.skipped_cells += skipped
    sources.files.append(
        Source(shown, budget.facts(shown, tree), installs=tuple(notebook.installs))
    )


__all__ = ["Facts", "Source", "Sources", "read"]
