"""Cleanup that runs while an error is on its way up must not take that error's place.

A ``finally`` step that fails in turn (the engine is gone, so removing the container fails
too) raises its own error instead of the one that made harness clean up, and the user
reads about the cleanup, not the cause. Here a cleanup step that fails after an error
becomes one warning line on stderr and the first error goes on; when nothing failed
before it, the failing cleanup is the error, as it would be anywhere else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from harness.errors import HarnessError

# With no handler configured, logging's last resort prints warnings to stderr as they are.
_log = logging.getLogger("harness.cleanup")


@contextlib.contextmanager
def cleanup(what: str, step: Callable[[], object]) -> Iterator[None]:
    """Run ``step`` when the block ends: after an error, only warn if ``step`` fails too."""
    try:
        yield
    except BaseException:
        quietly(what, step)
        raise
    step()


def quietly(what: str, step: Callable[[], object]) -> None:
    """Run a cleanup ``step`` that must not raise: its failure is one warning line."""
    try:
        step()
    except Exception as error:
        reason = error.one_line() if isinstance(error, HarnessError) else f"{error!r}"
        _log.warning("harness: warning: %s failed too: %s", what, " ".join(reason.split()))
