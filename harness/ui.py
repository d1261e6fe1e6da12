"""Where output goes: progress and logs to stderr (coloured only on a terminal), results to
stdout, and JSON for machines, so that ``harness build --json | jq`` always parses."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape


class UI:
    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        # emoji=False: ":x:" in a passwd line of build output must stay ":x:".
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.out = Console(highlight=False, soft_wrap=True, emoji=False)

    def say(self, message: str) -> None:
        """A progress message on stderr."""
        if not self.quiet:
            self.err.print(f"[dim]harness:[/] {escape(message)}")

    def build_line(self, line: str) -> None:
        """One line of engine build output: every line with -v, else the step headers."""
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
