"""A cleanup step that fails after an error warns; after success it is the error."""

from __future__ import annotations

import pytest

from harness.cleanup import cleanup
from harness.errors import EngineError, HarnessError


def failing_step() -> None:
    raise EngineError("cannot remove container c1", "docker rm -f c1")


def test_the_first_error_is_what_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    with (
        pytest.raises(HarnessError, match="the build failed"),
        cleanup("removing c1", failing_step),
    ):
        raise HarnessError("the build failed")
    assert caplog.messages == [
        "harness: warning: removing c1 failed too: cannot remove container c1 "
        "(fix: docker rm -f c1)"
    ]


def test_a_cleanup_that_fails_after_success_is_the_error() -> None:
    with (
        pytest.raises(EngineError, match="cannot remove container c1"),
        cleanup("removing c1", failing_step),
    ):
        pass


def test_the_step_runs_once_whatever_happened() -> None:
    ran: list[str] = []
    with cleanup("noting", lambda: ran.append("done")):
        pass
    with pytest.raises(KeyboardInterrupt), cleanup("noting", lambda: ran.append("done")):
        raise KeyboardInterrupt
    assert ran == ["done", "done"]
