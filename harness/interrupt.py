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

import atexit
import contextlib
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

# The exit status of a command that was interrupted (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
_lock = threading.Lock()
# Signals (Ctrl-C, SIGTERM) received: the first interrupts, the next ones must not.
_signals = {"received": 0}
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
        _signals["received"] = 0


def _call(stop: Callable[[], None]) -> None:
    # One container that cannot be removed (its engine gone) must not keep the others
    # running: each stop is tried, whatever the one before it raised.
    with contextlib.suppress(Exception):
        stop()


def install() -> None:
    """Make Ctrl-C and SIGTERM interrupt the command once, and only once.

    The first raises KeyboardInterrupt in the main thread, which stops every run and
    waits (a bounded time) for each to record how it ended. A second one, often pressed
    a fraction of a second after the first, must not cut that short: the records would
    stay ``running`` and containers run on. It is answered with a line saying what is
    going on; a third ends harness at once (what is left is found and ended by the next
    harness command, see :mod:`harness.runs.reconcile`).
    """
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(ignore_while_exiting)


def ignore_while_exiting() -> None:
    """Ignore Ctrl-C and SIGTERM from here on: the command has ended, the process exits.

    Python puts back the default action of every signal it handles as the interpreter
    shuts down, after atexit functions have run. A second Ctrl-C landing there (it is often
    pressed a fraction of a second after the first) would kill the process by SIGINT,
    turning a clean ``130`` into a death by signal after the records were already written.
    Ignored signals are left ignored, so the status stands.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or no such signal
            signal.signal(signum, signal.SIG_IGN)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _signals["received"] += 1
    count = _signals["received"]
    if count == 1:
        raise KeyboardInterrupt
    if count == 2:
        _say(
            "harness: stopping the runs and recording how they ended; "
            "interrupt once more to quit without waiting"
        )
        return
    _say("harness: quit without waiting; the next harness command ends what was left running")
    os._exit(EXIT_INTERRUPTED)


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
