"""Every program harness runs is bounded in time and fails in one line naming it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from harness import commands, vcs


def test_a_program_past_its_timeout_is_stopped_with_the_command_and_fix() -> None:
    with pytest.raises(commands.CommandTimeout) as raised:
        commands.call(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            timeout=0.5,
            hint="look for what hangs",
        )
    line = raised.value.one_line()
    assert "import time; time.sleep(30)` did not finish within 0.5 s" in line
    assert line.endswith("(fix: look for what hangs)")
    assert raised.value.exit_code == 2


def test_a_missing_program_is_named() -> None:
    with pytest.raises(commands.CommandMissing, match="`no-such-program-here` is not installed"):
        commands.call(["no-such-program-here"], timeout=5, hint="install it")


def test_output_is_bytes_and_a_failure_is_the_caller_s_to_judge() -> None:
    result = commands.call(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'caf\\xe9'); sys.exit(3)"],
        timeout=30,
        hint="-",
    )
    assert (result.returncode, result.stdout, result.out) == (3, b"caf\xe9", "caf\ufffd")


def test_a_git_that_hangs_is_one_line_not_a_wait_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    monkeypatch.setattr(commands, "GIT_S", 0.5)
    with pytest.raises(commands.CommandTimeout, match="`git rev-parse HEAD` did not finish"):
        vcs.source_state(tmp_path)
