"""Every container harness creates is confined: checked from inside one, on the real engine."""

from __future__ import annotations

import json
from pathlib import Path

from harness.container import CONTAINER_USER
from harness.engine import ContainerSpec, Engine

# What the kernel says of the process and its cgroup (v2, or v1's files where that is used).
PROBE = r"""
import json, os
lines = open("/proc/self/status").read().splitlines()
status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
def first(*paths):
    for path in paths:
        if os.path.exists(path):
            return open(path).read().strip()
print(json.dumps({
    "CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(),
    "NoNewPrivs": status["NoNewPrivs"].strip(),
    "pids": first("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "memory": first("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
}))
"""


def test_a_run_container_has_no_capabilities_and_bounded_resources(
    engine: Engine, tmp_path: Path
) -> None:
    spec = ContainerSpec(
        "harness:cpu",
        ("python", "-c", PROBE),
        user=CONTAINER_USER,
        read_only_root=True,
        memory="256m",
    )
    log = tmp_path / "log.txt"
    outcome = engine.run_logged(spec, log=log, timeout=120)
    assert outcome.exit_code == 0, log.read_text()
    seen = json.loads(log.read_text().strip().splitlines()[-1])
    assert seen["CapEff"] == seen["CapBnd"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1"
    assert seen["pids"] == "4096"
    assert seen["memory"] == str(256 << 20)
