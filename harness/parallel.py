"""Runs at once: as many per host as its cores allow, results in the order they were asked
for, and one Ctrl-C that stops them all.

A run spends its time waiting: on a container (the engine does the work) or on a process
(the kernel does). Threads are therefore enough to overlap runs, and they keep everything
in one process: the records, the compare verdicts and the progress lines.

Two shapes of concurrency, both waited for in order so that what harness prints and saves
never depends on which run finished first:

- a :class:`Pool` per host holds at most ``jobs`` runs at once, the longest expected first
  (from the experiment's previous runs), then first asked first served;
- :func:`gather` and :class:`Together` start calls that mostly wait on pools (one per
  experiment, one per host), each in a thread of its own.

Workers are daemon threads: a run whose engine stopped answering cannot keep harness from
exiting after Ctrl-C. The main thread, interrupted while it waits, has
:mod:`harness.interrupt` stop every container and process, waits for each run to write its
record (``aborted``), then raises KeyboardInterrupt on.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from harness import interrupt

T = TypeVar("T")
# How often a waiting main thread wakes up: Ctrl-C reaches it between two waits at worst.
_POLL_S = 0.2
# How long the main thread gives the runs it stopped to write their records on Ctrl-C.
# A container removal or a SIGTERM ends a run in a second or two; only an engine that no
# longer answers takes longer, and harness exits without it.
_GRACE_S = 60.0
_names = itertools.count(1)
# Calls submitted to any pool and not yet ended: what Ctrl-C waits for.
_in_flight: set[Future[Any]] = set()
_flight_lock = threading.Lock()
# A queued call: its future, the call, and the event that cancels it before it starts.
_Item = tuple[Future[object], Callable[[], object], threading.Event | None]


def available_cores() -> int:
    """The CPUs this process may run on (its affinity, which a container or job limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


def default_jobs(cores: int, threads: int, *, gpus: bool = False) -> int:
    """Runs at once on a host with ``cores`` CPUs when each run uses ``threads``.

    Each run keeps the cores its math libraries' threads need, so runs at once do not slow
    each other down, and a run's bytes never depend on how many ran beside it (its thread
    count is fixed whatever the host). GPU runs take every GPU of the host: one at a time.
    """
    if gpus:
        return 1
    return max(1, cores // max(1, threads))


class Pool:
    """At most ``jobs`` calls at once: the longest expected first, then first submitted.

    Longest first keeps the jobs busy to the end: a long run started last would leave the
    others idle while it finishes.
    """

    def __init__(self, jobs: int, name: str = "runs") -> None:
        if jobs < 1:
            raise ValueError(f"a pool needs at least one job, not {jobs}")
        self.jobs = jobs
        self._name = f"harness-{name}-{next(_names)}"
        self._queue: queue.PriorityQueue[tuple[float, int, _Item | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def submit(
        self,
        function: Callable[[], T],
        *,
        unless: threading.Event | None = None,
        seconds: float | None = None,
    ) -> Future[T]:
        """Queue ``function``, expected to take ``seconds`` (None: unknown, after those
        known); it starts when a job is free, unless ``unless`` is set by then (the future
        is cancelled) or the command was interrupted."""
        future: Future[T] = Future()
        _follow(future)
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            rank = -seconds if seconds is not None else 0.0
            self._queue.put((rank, next(self._order), (future, function, unless)))  # type: ignore[arg-type]
            if len(self._workers) < self.jobs:
                worker = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._workers) + 1}", daemon=True
                )
                self._workers.append(worker)
                worker.start()
        return future

    def map(
        self,
        functions: Sequence[Callable[[], T]],
        *,
        stop_when: Callable[[T], bool] | None = None,
        seconds: Sequence[float | None] = (),
    ) -> list[T | None]:
        """Call each function in the pool (each expected to take its ``seconds``, when
        given); their results in the order given.

        Once a result satisfies ``stop_when`` (or a call raises), calls that have not
        started are cancelled and give None. A call that raised makes this raise its
        error, the first in order, once every started call has ended.
        """
        # Set by the call whose result stops the round, before its worker takes the next
        # call: with one job, nothing after it starts (what waiting threads see comes later).
        stop = threading.Event()

        def call(function: Callable[[], T]) -> T:
            try:
                result = function()
            except BaseException:
                stop.set()
                raise
            if stop_when is not None and stop_when(result):
                stop.set()
            return result

        with _ctrl_c_stops():
            expected = list(seconds) or [None] * len(functions)
            futures = [
                self.submit(partial(call, function), unless=stop, seconds=took)
                for function, took in zip(functions, expected, strict=True)
            ]
            settle(futures, stop_when=stop_when)
        return outcomes(futures)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for _ in self._workers:
                self._queue.put((math.inf, next(self._order), None))  # after every call

    def _work(self) -> None:
        while (item := self._queue.get()[2]) is not None:
            future, function, unless = item
            if unless is not None and unless.is_set():
                future.cancel()
            if not future.set_running_or_notify_cancel():
                continue
            if interrupt.stopped():
                future.set_exception(KeyboardInterrupt())
                continue
            try:
                result = function()
            except BaseException as error:  # handed to whoever waits on the future
                future.set_exception(error)
            else:
                future.set_result(result)


class Together:
    """Calls started at once, each in a thread of its own, all waited for on leaving.

    ::

        with Together() as together:
            mine = together.start(verify_here)
            theirs = [together.start(partial(run_there, host)) for host in hosts]
        mine.result(), [future.result() for future in theirs]
    """

    def __init__(self, name: str = "together") -> None:
        self._name = name
        self._futures: list[Future[object]] = []

    def __enter__(self) -> Together:
        return self

    def start(self, function: Callable[[], T]) -> Future[T]:
        pool = Pool(1, self._name)
        future = pool.submit(function)
        self._futures.append(future)  # type: ignore[arg-type]
        pool.close()
        return future

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, KeyboardInterrupt):
            # Ctrl-C while the calls were being started: they are under way all the same.
            if threading.current_thread() is threading.main_thread():
                _stop_and_wait()
            return
        with _ctrl_c_stops():
            settle(self._futures)
        if error is None:
            outcomes(self._futures)


def gather(functions: Sequence[Callable[[], T]], name: str = "together") -> list[T]:
    """Call every function at once, each in a thread of its own; results in order."""
    with Together(name) as together:
        futures = [together.start(function) for function in functions]
    return [future.result() for future in futures]


def settle(futures: Sequence[Future[T]], *, stop_when: Callable[[T], bool] | None = None) -> None:
    """Wait until every future has ended or been cancelled; once one stops the round
    (``stop_when``, or an error), cancel those that have not started."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
        if any(_stops(future, stop_when) for future in done):
            for future in pending:
                future.cancel()


@contextlib.contextmanager
def _ctrl_c_stops() -> Iterator[None]:
    """In the main thread, Ctrl-C (or SIGTERM) while calls are started or waited for stops
    every run on every engine, lets each record how it ended, and raises on."""
    try:
        yield
    except KeyboardInterrupt:
        if threading.current_thread() is threading.main_thread():
            _stop_and_wait()
        raise


def _stop_and_wait() -> None:
    interrupt.stop_everything()
    # Every call of every pool, not only those this thread was waiting for: Ctrl-C may
    # land between a submit and the list that would have held its future.
    with _flight_lock:
        flying = list(_in_flight)
    for future in flying:
        future.cancel()  # those not started never will
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: the grace still holds
        wait(flying, timeout=_GRACE_S)


def _follow(future: Future[Any]) -> None:
    with _flight_lock:
        _in_flight.add(future)
    future.add_done_callback(_landed)


def _landed(future: Future[Any]) -> None:
    with _flight_lock:
        _in_flight.discard(future)


def outcomes(futures: Sequence[Future[T]]) -> list[T | None]:
    """The results in order (None where cancelled); raises the first error in order.

    After an interrupt, KeyboardInterrupt, whatever the runs raised as they were stopped.
    """
    errors = [f.exception() for f in futures if f.done() and not f.cancelled()]
    raised = [error for error in errors if error is not None]
    if interrupt.stopped() or any(isinstance(e, KeyboardInterrupt) for e in raised):
        raise KeyboardInterrupt
    if raised:
        raise raised[0]
    return [None if future.cancelled() else future.result() for future in futures]


def _stops(future: Future[T], stop_when: Callable[[T], bool] | None) -> bool:
    if future.cancelled():
        return False
    if future.exception() is not None:
        return True
    return stop_when is not None and stop_when(future.result())
