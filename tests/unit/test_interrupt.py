"""How harness's signal handling ends a process: the status it chose must stand."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A child that ends as an interrupted harness command does (exit 130), and is sent a
# second Ctrl-C as it shuts down: by then its own handler is no longer the one Python
# would keep, so only an ignored signal leaves the status alone.
CHILD = textwrap.dedent(
    """
    import atexit, os, signal, sys, time
    from harness import interrupt

    def late_ctrl_c():  # registered first, so it runs after harness's own exit step
        print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)

    atexit.register(late_ctrl_c)
    interrupt.install()
    sys.exit(130)
    """
)


def test_a_ctrl_c_while_the_process_exits_leaves_its_status_alone() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 130, child.stderr
    assert child.stdout.strip() == "True"
    assert child.stderr == ""
