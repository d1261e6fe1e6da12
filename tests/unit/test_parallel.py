"""Runs at once: bounded per pool, results in the order asked for, Ctrl-C stops them all."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest

from harness import interrupt, parallel


@pytest.fixture(autouse=True)
def _forget_interrupts() -> Iterator[None]:
    yield
    interrupt.reset()


def test_default_jobs_leave_each_run_the_cores_its_threads_use() -> None:
    assert parallel.default_jobs(16, 1) == 16
    assert parallel.default_jobs(16, 4) == 4
    assert parallel.default_jobs(2, 1) == 2
    assert parallel.default_jobs(2, 4) == 1  # never none
    assert parallel.default_jobs(64, 1, gpus=True) == 1  # a GPU run takes every GPU


class _Gauge:
    """Counts the calls in progress, and the most that ever were."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.called: list[int] = []

    def call(self, number: int, seconds: float) -> int:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.called.append(number)
        time.sleep(seconds)
        with self.lock:
            self.now -= 1
        return number * 10


def test_a_pool_runs_at_most_jobs_at_once_and_answers_in_order() -> None:
    gauge = _Gauge()
    # Later calls take less time: they finish first, and still come back in order.
    calls = [partial(gauge.call, n, 0.01 * (6 - n)) for n in range(6)]
    with parallel.Pool(2) as pool:
        assert pool.map(calls) == [0, 10, 20, 30, 40, 50]
    assert gauge.most == 2
    with parallel.Pool(1) as pool:
        assert pool.map(calls) == [0, 10, 20, 30, 40, 50]
    assert gauge.called[6:] == [0, 1, 2, 3, 4, 5]  # one at a time, first asked first served


def test_a_result_that_stops_the_round_cancels_what_has_not_started() -> None:
    gauge = _Gauge()
    with parallel.Pool(1) as pool:
        made = pool.map(
            [partial(gauge.call, n, 0.0) for n in range(4)], stop_when=lambda r: r == 10
        )
    assert made == [0, 10, None, None]
    assert gauge.called == [0, 1]


def test_an_error_is_raised_once_every_started_call_has_ended() -> None:
    ended: list[int] = []

    def call(number: int) -> int:
        if number == 1:
            raise ValueError("the second call broke")
        time.sleep(0.05)
        ended.append(number)
        return number

    with parallel.Pool(2) as pool, pytest.raises(ValueError, match="the second call broke"):
        pool.map([partial(call, n) for n in range(5)])
    assert 0 in ended  # started beside the failure: it ran to its end
    assert 4 not in ended  # not started when the failure came: cancelled


def test_gather_calls_everything_at_once() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def meet(number: int) -> int:
        barrier.wait()  # only passes when all three run at the same time
        return number

    assert parallel.gather([partial(meet, n) for n in range(3)]) == [0, 1, 2]


def _waits_until_stopped(stopped: list[int], started: threading.Semaphore, number: int) -> None:
    """A run: registers how it is stopped, then waits until it is (as a container does)."""
    done = threading.Event()
    with interrupt.stoppable(done.set):
        started.release()
        done.wait(10)
    stopped.append(number)
    interrupt.check()


def _interrupt_once(started: threading.Semaphore, count: int) -> Callable[[], None]:
    def press_ctrl_c() -> None:
        for _ in range(count):
            started.acquire(timeout=5)
        _thread.interrupt_main()

    return press_ctrl_c


def test_ctrl_c_in_the_main_thread_stops_every_run_and_waits_for_each() -> None:
    stopped: list[int] = []
    started = threading.Semaphore(0)
    threading.Thread(target=_interrupt_once(started, 2), daemon=True).start()
    begun = time.monotonic()
    with parallel.Pool(2) as pool, pytest.raises(KeyboardInterrupt):
        pool.map([partial(_waits_until_stopped, stopped, started, n) for n in range(5)])
    # The two running were stopped (not left to their 10 s) and ended before the raise;
    # the three queued never started.
    assert sorted(stopped) == [0, 1]
    assert time.monotonic() - begun < 5
    assert interrupt.stopped()


def test_ctrl_c_reaches_runs_nested_in_other_threads() -> None:
    stopped: list[int] = []
    started = threading.Semaphore(0)
    threading.Thread(target=_interrupt_once(started, 4), daemon=True).start()
    with parallel.Pool(2) as first, parallel.Pool(2) as second:
        rounds = [
            partial(pool.map, [partial(_waits_until_stopped, stopped, started, base)])
            for pool, base in ((first, 0), (first, 10), (second, 20), (second, 30))
        ]
        with pytest.raises(KeyboardInterrupt):
            parallel.gather(rounds)
    assert sorted(stopped) == [0, 10, 20, 30]


def test_nothing_starts_after_an_interrupt() -> None:
    interrupt.stop_everything()
    called: list[int] = []
    with parallel.Pool(1) as pool, pytest.raises(KeyboardInterrupt):
        pool.map([partial(called.append, 1)])
    assert called == []
    stopped: list[str] = []
    with pytest.raises(KeyboardInterrupt), interrupt.stoppable(lambda: stopped.append("now")):
        pass
    assert stopped == ["now"]


def test_the_longest_expected_call_starts_first() -> None:
    gate = threading.Event()
    order: list[str] = []
    with parallel.Pool(1) as pool:
        held = pool.submit(gate.wait)  # keeps the one job busy while the rest queue
        futures = [
            pool.submit(partial(order.append, name), seconds=seconds)
            for name, seconds in (("short", 1.0), ("unknown", None), ("long", 9.0), ("mid", 4.0))
        ]
        gate.set()
        parallel.settle([held, *futures])
    assert order == ["long", "mid", "short", "unknown"]
