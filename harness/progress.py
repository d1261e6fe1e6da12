"""Progress of long steps: a live line on a terminal, a line every 15 s in CI logs.

Installing the frameworks in an image prints nothing for about 100 s, resolving with uv
or fetching gigabytes of wheels tens of seconds: without a sign of life a user (or a CI
log reader) cannot tell a slow step from a hung one. The code that runs such a step says
so with one call, :func:`during`, and knows nothing of terminals; the command line
decides how it is shown by registering a :class:`Shower` (``harness.ui`` does, with
rich). Without one (a library call, the tests) a step shows nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, Protocol, TypeVar

Arguments = ParamSpec("Arguments")
Result = TypeVar("Result")


class Shower(Protocol):
    """Shows one long step while it runs: entered when it starts, left when it ends."""

    def __call__(self, what: str) -> contextlib.AbstractContextManager[None]: ...


_lock = threading.Lock()
_shower: Shower | None = None


def use(shower: Shower | None) -> None:
    """Show every later long step with ``shower`` (None: show nothing)."""
    global _shower  # noqa: PLW0603 - one process, one place where progress goes
    with _lock:
        _shower = shower


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Show ``what`` (a phrase: "installing the frameworks image") while the block runs."""
    shower = _shower
    if shower is None:
        yield
        return
    with shower(what):
        yield


def during(
    what: str,
    function: Callable[Arguments, Result],
    *args: Arguments.args,
    **kwargs: Arguments.kwargs,
) -> Result:
    """``function(*args, **kwargs)``, shown as the long step ``what``: the one call a long
    step's code needs."""
    with step(what):
        return function(*args, **kwargs)
