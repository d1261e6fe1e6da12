"""Imported by every Python interpreter that starts with this folder on its path.

harness's runtime puts this folder first on a ``command`` experiment's ``PYTHONPATH``, so
that the program and every Python process it starts are seeded and switched like an
entry (see ``harness.runtime.startup``). It acts only when ``HARNESS_STARTUP`` is set,
then hands over to the ``sitecustomize`` this one shadows (a distribution's own), if any.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path


def _chain() -> None:
    """Import the next ``sitecustomize`` on the path, as if this one were not there."""
    here = Path(__file__).resolve().parent
    saved = list(sys.path)
    module = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        importlib.import_module("sitecustomize")
    except ImportError:
        pass
    finally:
        sys.path[:] = saved
        if module is not None:
            sys.modules["sitecustomize"] = module


if os.environ.get("HARNESS_STARTUP"):
    try:
        from harness.runtime import startup
    except ImportError as error:  # a Python without harness's runtime: seeds from env only
        print(f"harness startup hook: not applied: {error}", file=sys.stderr)
    else:
        startup.activate()
_chain()
