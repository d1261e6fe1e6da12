"""Where output goes: progress and logs to stderr (coloured only on a terminal), results to
stdout, and JSON for machines, so that ``harness build --json | jq`` always parses.

Long steps (see ``harness.progress``) show a live line with the time spent and what is
being done on a terminal, and a line every 15 s where stderr is a log (CI), so that a
slow step never looks hung.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape


class UI:
    # Where stderr is not a terminal: a line at least this often while a long step runs.
    HEARTBEAT_S = 15.0

    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        # emoji=False: ":x:" in a passwd line of build output must stay ":x:".
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.out = Console(highlight=False, soft_wrap=True, emoji=False)
        # What the long step under way is doing now (the build step), for its line.
        self._doing = ""

    @contextlib.contextmanager
    def long_step(self, what: str) -> Iterator[None]:
        """Show ``what`` while the block runs: a live line with the seconds spent and the
        step being done on a terminal; else a line every HEARTBEAT_S seconds."""
        if self.quiet:
            yield
            return
        started = time.monotonic()
        stop = threading.Event()
        self._doing = ""

        def line() -> str:
            doing = f": {self._doing}" if self._doing else ""
            return f"{what} ({time.monotonic() - started:.0f} s){doing}"

        if self.err.is_terminal:
            with self.err.status(escape(line())) as status:
                ticker = threading.Thread(
                    target=self._tick, args=(stop, 1.0, lambda: status.update(escape(line())))
                )
                ticker.start()
                try:
                    yield
                finally:
                    stop.set()
                    ticker.join()
            return
        ticker = threading.Thread(
            target=self._tick, args=(stop, self.HEARTBEAT_S, lambda: self.say(f"{line()} ..."))
        )
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            self._doing = ""

    @staticmethod
    def _tick(stop: threading.Event, every: float, show: Callable[[], None]) -> None:
        while not stop.wait(every):
            show()

    def say(self, message: str) -> None:
        """A progress message on stderr."""
        if not self.quiet:
            self.err.print(f"[dim]harness:[/] {escape(message)}")

    def build_line(self, line: str) -> None:
        """One line of engine build output: every line with -v, else the step headers."""
        if line.startswith("Step "):
            self._doing = line if len(line) <= 80 else line[:77] + "..."
        if self.quiet:
            return
        if self.verbose:
            self.err.print(f"[dim]{escape(line)}[/]")
        elif line.startswith("Step "):
            shown = line if len(line) <= 120 else line[:117] + "..."
            self.err.print(f"[dim]  {escape(shown)}[/]")

    def result(self, text: str) -> None:
        """A result line on stdout."""
        self.out.print(escape(text))

    @staticmethod
    def json(document: Any) -> None:
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


def prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    """``say`` with every line naming what it is about, so that overlapping runs read well:
    ``harness: torch, control run 2: succeeded after 31.2 s (RUN_ID)``."""
    return lambda message: say(f"{prefix}: {message}")
