"""What `harness init` learns from a project's code: its imports and its training scripts.

One bounded walk parses the project's Python files and notebooks' code cells
(:mod:`harness.python_sources`) and keeps, per file, only what the two questions need,
the imports (:mod:`harness.imported_dependencies`) and whether it is a script
(:mod:`harness.entry_scripts`; a notebook never is), so no syntax tree outlives its file.
The walk happens at most once per init, and only when init needs it: when it proposes the
dependency group, or the project declares no experiment.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import entry_scripts, imported_dependencies, python_sources

# Modules whose import means the code writes TensorBoard's event files.
_TENSORBOARD = ("tensorboard", "tensorboardX", "torch.utils.tensorboard")
# Files named in the line about files not read; the rest are counted.
_MOST_NAMED = 5


@dataclass(frozen=True)
class FileFacts:
    """What one file's syntax tree says: its imports, and the script it is, if any."""

    imports: tuple[imported_dependencies.Import, ...]
    script: entry_scripts.Script | None


def _facts(path: str, tree: ast.Module) -> FileFacts:
    return FileFacts(
        tuple(imported_dependencies.module_imports(tree)), entry_scripts.script(path, tree)
    )


@dataclass(frozen=True)
class ProjectCode:
    """The facts of the project's Python files, and what was not read."""

    sources: python_sources.Sources[FileFacts]

    def dependencies(self) -> imported_dependencies.Inferred:
        return imported_dependencies.infer(
            ((source.path, source.facts.imports) for source in self.sources.files),
            self.sources.own_names,
            ((source.path, source.installs) for source in self.sources.files),
        )

    def scripts(self) -> entry_scripts.Found:
        own = self.sources.own_names
        return entry_scripts.find(
            [source.facts.script for source in self.sources.files if source.facts.script],
            {
                source.path
                for source in self.sources.files
                if any(name.split(".")[0] in own for name, _ in source.facts.imports)
            },
        )

    def imports_any(self, modules: Sequence[str]) -> bool:
        """Whether a file imports one of ``modules`` (or a module below one)."""
        return any(
            name == module or name.startswith(f"{module}.")
            for source in self.sources.files
            for name, _ in source.facts.imports
            for module in modules
        )

    def logs_tensorboard_events(self) -> bool:
        return self.imports_any(_TENSORBOARD)

    def unread_line(self) -> str:
        """One line naming the files not read, or "" when every file was."""
        unread = self.sources.unread
        if not unread:
            return ""
        shown = "; ".join(unread[:_MOST_NAMED])
        if len(unread) > _MOST_NAMED:
            shown += f"; and {len(unread) - _MOST_NAMED} more"
        return f"Python files not read for imports and scripts: {shown}"

    def notebooks_line(self) -> str:
        """One line saying the notebooks were read for imports only, and which were not
        read or had cells left out; "" when the project has none."""
        sources = self.sources
        if not sources.notebooks and not sources.unread_notebooks:
            return ""
        counted = f"{sources.notebooks} notebook{'' if sources.notebooks == 1 else 's'}"
        line = (
            f"{counted} read for imports and pip install lines only (a notebook is never "
            "declared an experiment)"
        )
        if sources.unread_notebooks:
            line += f"; {len(sources.unread_notebooks)} not read: " + _named(
                sources.unread_notebooks
            )
        if sources.skipped_cells:
            cells = len(sources.skipped_cells)
            line += f"; {cells} code cell{'' if cells == 1 else 's'} left out: " + _named(
                sources.skipped_cells
            )
        return line


def _named(lines: Sequence[str]) -> str:
    """The first few of ``lines``, then how many more."""
    shown = "; ".join(lines[:_MOST_NAMED])
    if len(lines) > _MOST_NAMED:
        shown += f"; and {len(lines) - _MOST_NAMED} more"
    return shown


def read(root: Path) -> ProjectCode:
    """Parse the project at ``root`` (within python_sources' bounds)."""
    return ProjectCode(python_sources.read(root, _facts))


__all__ = ["FileFacts", "ProjectCode", "read"]
