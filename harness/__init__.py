"""harness: provably reproducible machine-learning results."""

from __future__ import annotations

__version__: str  # read from the installed metadata on first use, see __getattr__


def __getattr__(name: str) -> str:
    # importlib.metadata takes longer to import than `harness compare` takes to compare two
    # small files, and only a few commands print or record the version: it is read then.
    if name != "__version__":
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        found = version("harness")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
