"""Integration tests run harness for real: a Docker engine, uv, pip and the frameworks.

They fail (not skip) without an engine: `./dev test` starts one. The CPU image is built
once per session and shared; every test leaves no container behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.engine import Engine
from tests.conftest import REPOSITORY


def harness(
    *arguments: str, cwd: Path = REPOSITORY, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `harness` command line."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *arguments],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def build_json(*arguments: str, cwd: Path = REPOSITORY) -> dict[str, Any]:
    result = harness("build", "--json", *arguments, cwd=cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.connect(os.environ.get("HARNESS_DOCKER_HOST"))


@pytest.fixture(scope="session", autouse=True)
def _no_container_left_behind(engine: Engine) -> Iterator[None]:
    yield
    assert engine.containers_owned() == []


@pytest.fixture(scope="session")
def cpu_image(engine: Engine) -> dict[str, Any]:
    """The CPU image of this repository, built (or found) once for the session."""
    return build_json("--variant", "cpu")


def run_python(engine: Engine, image: str, script: str) -> Any:
    """Run a Python script in a fresh container of ``image``; return the JSON it prints."""
    result = engine.run(image, ["python", "-c", script], timeout=600)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])
