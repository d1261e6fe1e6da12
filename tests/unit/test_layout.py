"""The package's shape, as its import statements show it: what a newcomer can rely on.

Every import counts, those inside functions and under ``TYPE_CHECKING`` included: a circle
that only the type checker sees still ties two modules together for a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).parent
# Entry points: they start the command line, so they may import it.
ENTRY_POINTS = frozenset({"harness.__main__", "harness.compare.__main__"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts)
    return name.removesuffix(".__init__")


@cache
def _modules() -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _imported(tree: ast.Module) -> Iterator[str]:
    """Every module an import statement of ``tree`` names (absolute imports only: the
    package uses none other, which a test below checks). ``from package import module``
    names the module: the package's ``__init__`` runs first, but it is not what is used."""
    modules = _modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            yield from (name for name in submodules if name in modules)
            if not all(name in modules for name in submodules):
                yield node.module


def _harness_imports(name: str) -> set[str]:
    """The harness modules that module ``name`` imports."""
    modules = _modules()
    found = {target for target in _imported(modules[name]) if target in modules}
    found.discard(name)
    found.discard("harness")  # `import harness` for its version and location
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    graph = {name: _harness_imports(name) for name in _modules()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            circle = (*path[path.index(name) :], name)
            raise AssertionError("import circle: " + " -> ".join(circle))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert len(done) == len(graph) > 50


def test_click_is_imported_only_by_the_command_line() -> None:
    importers = {
        name
        for name, tree in _modules().items()
        if any(target == "click" or target.startswith("click.") for target in _imported(tree))
    }
    assert "harness.cli.main" in importers
    assert {name for name in importers if not name.startswith("harness.cli.")} == set()


def test_nothing_below_the_command_line_imports_it() -> None:
    offenders = {
        name: sorted(
            target for target in _harness_imports(name) if target.startswith("harness.cli")
        )
        for name in _modules()
        if not name.startswith("harness.cli") and name not in ENTRY_POINTS
    }
    assert {name: targets for name, targets in offenders.items() if targets} == {}


def test_the_runtime_needs_only_itself_and_atomic() -> None:
    # It is copied into images and onto hosts on its own (see harness.runs.host_executor).
    for name in _modules():
        if name.startswith("harness.runtime"):
            outside = {t for t in _harness_imports(name) if not t.startswith("harness.runtime")}
            assert outside <= {"harness.atomic"}, name


def test_every_module_says_why_it_exists_and_imports_absolutely() -> None:
    for name, tree in _modules().items():
        assert ast.get_docstring(tree), f"{name} has no module docstring"
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, f"{name} imports relatively"


def test_every_command_module_is_one_the_group_names() -> None:
    from harness.cli.main import COMMANDS  # noqa: PLC0415

    named = {target.split(":")[0] for target in COMMANDS.values()}
    command_modules = {
        name
        for name in _modules()
        if name.startswith("harness.cli.")
        and name.rsplit(".", 1)[1] not in {"main", "state", "options", "launch"}
    }
    assert command_modules == named
