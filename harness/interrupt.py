"""Ctrl-C while runs overlap: the main thread hears it and stops what every thread waits for.

Python raises KeyboardInterrupt (and harness's SIGTERM handler) in the main thread only.
Runs made in worker threads wait in a container's ``wait()`` or a process's ``wait()`` and
would never notice: their containers would run on and their records stay ``running``. So
whatever a run waits for is registered here, for as long as it is waited for, with the way
to stop it (remove the container, signal the process group). The interrupted main thread
calls :func:`stop_everything`, which stops each of them and keeps anything new from
starting; every run then finds :func:`stopped` true and ends as if it had been interrupted
itself: its record says ``aborted`` and its container is gone, on whichever engine it was.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator

_lock = threading.Lock()
_stopped = threading.Event()
_stoppers: dict[int, Callable[[], None]] = {}
_tickets = itertools.count()


def stopped() -> bool:
    """Whether the command was interrupted: nothing new may start."""
    return _stopped.is_set()


def check() -> None:
    """Raise KeyboardInterrupt in this thread when the command was interrupted."""
    if _stopped.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def stoppable(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, an interrupt calls ``stop`` (from the main thread).

    When the command was already interrupted, ``stop`` is called at once and
    KeyboardInterrupt raised: a run that lost the race with Ctrl-C does not start.
    """
    with _lock:
        ticket = next(_tickets)
        already = _stopped.is_set()
        if not already:
            _stoppers[ticket] = stop
    if already:
        _call(stop)
        raise KeyboardInterrupt
    try:
        yield
    finally:
        with _lock:
            _stoppers.pop(ticket, None)


def stop_everything() -> int:
    """Mark the command interrupted and stop everything registered; returns how many."""
    with _lock:
        _stopped.set()
        stoppers = list(_stoppers.values())
        _stoppers.clear()
    for stop in stoppers:
        _call(stop)
    return len(stoppers)


def reset() -> None:
    """Forget an interrupt, for a process that goes on after one (tests, embedding)."""
    with _lock:
        _stopped.clear()
        _stoppers.clear()


def _call(stop: Callable[[], None]) -> None:
    # One container that cannot be removed (its engine gone) must not keep the others
    # running: each stop is tried, whatever the one before it raised.
    with contextlib.suppress(Exception):
        stop()
