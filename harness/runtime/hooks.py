"""Run a callback right after a module is first imported.

Importing TensorFlow costs seconds and importing torch about one, so the runtime cannot
import every framework up front to switch its determinism on: a torch experiment must not
pay for TensorFlow. Instead a finder at the head of ``sys.meta_path`` wraps the loader of
each watched module, and the wrapper calls the module's callback as soon as the module's
own code has run, before the ``import`` statement that asked for it returns. The
experiment therefore never sees a framework whose seeds and switches are not yet set.
Modules already imported when the hook is installed get their callback at once.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

Callback = Callable[[ModuleType], None]


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders find a watched module, then wraps
    the loader they return so that the module's callback runs after it is executed."""

    def __init__(self, callbacks: Mapping[str, Callback]) -> None:
        self._pending = dict(callbacks)
        # Modules this finder is asking the others about. A second runtime in one process
        # (a command's startup hook, then an entry run inside it) puts a second finder on
        # sys.meta_path; each asks the others, so without this they would ask each other
        # for ever. Imports of one module are serialised by its import lock.
        self._searching: set[str] = set()

    @property
    def pending(self) -> frozenset[str]:
        """The watched modules not imported yet."""
        return frozenset(self._pending)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        callback = self._pending.get(fullname)
        if callback is None or fullname in self._searching:
            return None
        self._searching.add(fullname)
        try:
            spec = _find_with_others(self, fullname, path, target)
        finally:
            self._searching.discard(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _CallbackLoader(spec.loader, lambda module: self._loaded(module, callback))
        return spec

    def _loaded(self, module: ModuleType, callback: Callback) -> None:
        # Only a successful import consumes the callback: an import that raised may be
        # retried, and the retry must still be hooked.
        self._pending.pop(module.__name__, None)
        callback(module)


class _CallbackLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, after: Callback) -> None:
        self._loader = loader
        self._after = after

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back before the module's code runs: packages that find their
        # resources through __loader__ or __spec__.loader must see the loader they expect.
        spec = module.__spec__
        if spec is not None:
            spec.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        # A module may replace itself in sys.modules while it runs; the import statement
        # returns the replacement, so the callback gets that.
        self._after(sys.modules.get(module.__name__, module))


def _find_with_others(
    finder: PostImportFinder,
    fullname: str,
    path: Sequence[str] | None,
    target: ModuleType | None,
) -> ModuleSpec | None:
    for other in list(sys.meta_path):
        if other is finder:
            continue
        find_spec = getattr(other, "find_spec", None)
        if find_spec is None:
            continue
        spec: ModuleSpec | None = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


def install(callbacks: Mapping[str, Callback]) -> PostImportFinder:
    """Watch ``callbacks``' modules; call at once those already imported."""
    pending = {}
    for name, callback in callbacks.items():
        module = sys.modules.get(name)
        if module is None:
            pending[name] = callback
        else:
            callback(module)
    finder = PostImportFinder(pending)
    sys.meta_path.insert(0, finder)
    return finder


def uninstall(finder: PostImportFinder) -> None:
    """Stop watching; callbacks not yet called are dropped."""
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
