"""Locking for a Python this machine does not have: uv's own reasons, never a download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import commands
from harness.config import load_config
from harness.errors import LockError
from harness.images import lock

PYPROJECT = """\
[project]
name = "bikes"
version = "0"
requires-python = ">=3.99"

[dependency-groups]
experiments = ["numpy"]
"""

DOWNLOAD_FAILURE = """\
error: Request failed after 3 retries in 7.2s
  Caused by: Failed to download `https://github.com/astral-sh/python-build-standalone/x.tar.gz`
  Caused by: error sending request for url (https://github.com/astral-sh/x.tar.gz)
  Caused by: client error (Connect)
  Caused by: dns error
  Caused by: failed to lookup address information: Name or service not known
"""


@pytest.fixture
def newer_python(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / ".python-version").write_text("3.99\n")
    return tmp_path


def test_uv_s_reason_keeps_its_causes_on_one_bounded_line() -> None:
    reason = lock._last_line(DOWNLOAD_FAILURE)
    assert reason.startswith("error: Request failed after 3 retries")
    assert "Name or service not known" in reason  # the innermost cause names the fix
    assert "\n" not in reason
    assert len(lock._last_line("error: x\n" + "Caused by: y\n" * 10_000)) <= 600


def test_a_uv_failure_shows_uv_s_reason_and_no_fix_that_blames_the_dependencies(
    newer_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def failing(arguments: list[str], **keywords: Any) -> commands.Completed:
        seen.update(keywords)
        return commands.Completed(2, b"", DOWNLOAD_FAILURE.encode())

    monkeypatch.setattr(commands, "call", failing)
    config = load_config(newer_python, environ={})
    with pytest.raises(LockError) as raised:
        lock._uv(["lock"], config, cwd=newer_python)
    assert "Name or service not known" in raised.value.message
    assert "check the declared dependencies" not in raised.value.hint
    # uv never tries to download an interpreter.
    assert seen["env"]["UV_PYTHON_DOWNLOADS"] == "never"


def test_no_interpreter_here_leaves_uv_lock_and_still_writes_the_constraints(
    newer_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(newer_python, environ={})
    assert config.python == "3.99"
    # Real uv: it finds no Python 3.99 on this machine and, with downloads off, says so.
    missing = lock.missing_interpreter(config)
    assert missing is not None
    assert "Request failed" not in missing
    compiled: list[str] = []

    def resolve(
        _config: object, lock_input: lock.LockInput, target_name: str, *_: object, **__: object
    ) -> str:
        compiled.append(f"{target_name} for {lock_input.python}")
        return lock_input.header()

    monkeypatch.setattr(lock, "resolve", resolve)
    said: list[str] = []
    written = lock.lock(config, say=said.append)
    assert compiled == ["constraints.txt for 3.99"]
    assert [path.name for path in written] == ["constraints.txt"]
    assert not (newer_python / "uv.lock").exists()
    assert said and said[0].startswith("uv.lock left as it was: uv needs a Python")
