"""The post-import hook: a callback right after a module's first import, and only then."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.runtime import hooks


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for throwaway modules; they leave sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.fixture
def installed() -> Iterator[list[hooks.PostImportFinder]]:
    finders: list[hooks.PostImportFinder] = []
    yield finders
    for finder in finders:
        hooks.uninstall(finder)


def test_the_callback_runs_after_the_module_body_and_before_import_returns(
    modules: Path, installed: list[hooks.PostImportFinder]
) -> None:
    (modules / "hooked_framework.py").write_text("SWITCH = 'off'\nFINISHED = True\n")
    seen: list[tuple[str, bool]] = []

    def switch_on(module: Any) -> None:
        seen.append((module.__name__, module.FINISHED))
        module.SWITCH = "on"

    installed.append(hooks.install({"hooked_framework": switch_on}))
    module = importlib.import_module("hooked_framework")
    assert module.SWITCH == "on"
    assert seen == [("hooked_framework", True)]
    importlib.import_module("hooked_framework")
    assert len(seen) == 1, "a second import must not call again"
    assert installed[0].pending == frozenset()


def test_the_real_loader_is_restored_on_the_module(
    modules: Path, installed: list[hooks.PostImportFinder]
) -> None:
    package = modules / "hooked_package"
    package.mkdir()
    (package / "__init__.py").write_text("LOADER = type(__loader__).__name__\n")
    (package / "data.txt").write_text("resource")
    installed.append(hooks.install({"hooked_package": lambda _: None}))
    module = importlib.import_module("hooked_package")
    assert module.LOADER == "SourceFileLoader"
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert module.__spec__ is not None
    assert module.__spec__.loader is module.__loader__
    resources = importlib.import_module("importlib.resources")
    assert resources.files("hooked_package").joinpath("data.txt").read_text() == "resource"


def test_unwatched_modules_and_submodules_are_left_alone(
    modules: Path, installed: list[hooks.PostImportFinder]
) -> None:
    package = modules / "watched"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sub.py").write_text("")
    (modules / "unwatched.py").write_text("")
    calls: list[str] = []
    installed.append(hooks.install({"watched": lambda m: calls.append(m.__name__)}))
    importlib.import_module("unwatched")
    importlib.import_module("watched.sub")
    assert calls == ["watched"]


def test_a_failed_import_stays_watched_for_the_retry(
    modules: Path, installed: list[hooks.PostImportFinder]
) -> None:
    source = modules / "flaky.py"
    source.write_text("raise ImportError('not yet')\n")
    calls: list[str] = []
    installed.append(hooks.install({"flaky": lambda m: calls.append(m.__name__)}))
    with pytest.raises(ImportError, match="not yet"):
        importlib.import_module("flaky")
    assert calls == []
    source.write_text("VALUE = 1\n")
    importlib.invalidate_caches()
    importlib.import_module("flaky")
    assert calls == ["flaky"]


def test_a_module_imported_before_install_gets_its_callback_at_once(
    modules: Path, installed: list[hooks.PostImportFinder]
) -> None:
    (modules / "early.py").write_text("")
    importlib.import_module("early")
    calls: list[str] = []
    installed.append(hooks.install({"early": lambda m: calls.append(m.__name__)}))
    assert calls == ["early"]
    assert installed[0].pending == frozenset()


def test_a_module_that_is_not_installed_is_simply_not_found(
    installed: list[hooks.PostImportFinder],
) -> None:
    installed.append(hooks.install({"no_such_framework_here": lambda _: None}))
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("no_such_framework_here")
    assert installed[0].pending == frozenset({"no_such_framework_here"})


def test_uninstall_removes_the_finder() -> None:
    finder = hooks.install({})
    assert finder in sys.meta_path
    hooks.uninstall(finder)
    assert finder not in sys.meta_path
    hooks.uninstall(finder)  # twice is harmless


def test_two_runtimes_in_one_process_both_get_their_callback(
    modules: Path, installed: list[hooks.PostImportFinder]
) -> None:
    # A command's startup hook installs a finder, then the command runs harness's runtime
    # for an entry (an MLproject entry point), which installs a second: each asks the
    # others for the module, and neither may ask the other back for ever.
    (modules / "twice_hooked.py").write_text("CALLS = []\n")
    installed.append(hooks.install({"twice_hooked": lambda m: m.CALLS.append("outer")}))
    installed.append(hooks.install({"twice_hooked": lambda m: m.CALLS.append("inner")}))
    module = importlib.import_module("twice_hooked")
    assert sorted(module.CALLS) == ["inner", "outer"]
