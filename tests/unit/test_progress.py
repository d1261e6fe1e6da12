"""Long steps show they are alive: a line at least every heartbeat in a log, a live line
with the time spent and the build step on a terminal, nothing without a shower."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from harness import progress
from harness.ui import UI


@pytest.fixture(autouse=True)
def _no_shower() -> Iterator[None]:
    yield
    progress.use(None)


def _ui(*, terminal: bool) -> tuple[UI, io.StringIO]:
    ui = UI()
    stream = io.StringIO()
    ui.err = Console(file=stream, force_terminal=terminal, width=200, emoji=False)
    return ui, stream


def _slow_build(ui: UI) -> str:
    ui.build_line("Step 7/9 : RUN pip install --require-hashes -r constraints.txt")
    time.sleep(0.35)
    return "sha256:built"


def test_in_a_log_a_long_step_says_it_is_alive_every_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ui, stream = _ui(terminal=False)
    monkeypatch.setattr(UI, "HEARTBEAT_S", 0.1)
    progress.use(ui.long_step)
    assert progress.during("building frameworks (cpu)", _slow_build, ui) == "sha256:built"
    lines = [line for line in stream.getvalue().splitlines() if "building frameworks" in line]
    assert len(lines) >= 2
    assert "Step 7/9 : RUN pip install" in lines[-1]
    assert " s)" in lines[-1]


def test_on_a_terminal_a_long_step_is_a_live_line(monkeypatch: pytest.MonkeyPatch) -> None:
    ui, stream = _ui(terminal=True)
    progress.use(ui.long_step)
    progress.during("uv lock", time.sleep, 1.2)
    shown = stream.getvalue()
    assert "uv lock (1 s)" in shown


def test_without_a_shower_a_step_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert progress.during("uv lock", sum, [1, 2]) == 3
    assert capsys.readouterr() == ("", "")


def test_a_quiet_ui_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ui, stream = _ui(terminal=False)
    ui.quiet = True
    monkeypatch.setattr(UI, "HEARTBEAT_S", 0.05)
    progress.use(ui.long_step)
    progress.during("uv lock", time.sleep, 0.2)
    assert stream.getvalue() == ""
