"""Imported by every Python interpreter that starts with this folder on its path.

harness's runtime puts this folder first on a ``command`` experiment's ``PYTHONPATH``, so
that the program and every Python process it starts are seeded and switched like an
entry (see ``harness.runtime.startup``). It acts only when ``HARNESS_STARTUP`` is set,
then hands over to the ``sitecustomize`` this one shadows (a distribution's own), if any.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys


def _chain() -> None:
    """Import the next ``sitecustomize`` on the path, as if this one were not there."""
    here = os.path.dirname(os.path.realpath(__file__))  # noqa: PTH120 - pathlib costs startup
    saved = list(sys.path)
    module = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != here]
        importlib.import_module("sitecustomize")
    except ImportError:
        pass
    finally:
        sys.path[:] = saved
        if module is not None:
            sys.modules["sitecustomize"] = module


def _activate() -> None:
    """Load the runtime's startup module from beside this folder, by its file: importing
    the ``harness`` package would cost every process a scan of the installed
    distributions (for its version), a few hundred milliseconds. os.path rather than
    pathlib for the same reason: this runs before every program of the command."""
    name = "harness.runtime.startup"
    module = sys.modules.get(name)
    if module is None:
        runtime = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # noqa: PTH120
        location = os.path.join(runtime, "startup.py")  # noqa: PTH118
        spec = importlib.util.spec_from_file_location(name, location)
        if spec is None or spec.loader is None:
            raise ImportError(f"no {location}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    module.activate()


if os.environ.get("HARNESS_STARTUP"):
    try:
        _activate()
    except Exception as error:  # the program runs on; its record says it was not reached
        print(f"harness startup hook: not applied: {error}", file=sys.stderr)
_chain()
