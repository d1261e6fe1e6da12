"""`harness run --sign-key`: the host that made a run signs it as the run finishes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.runs import records
from harness.trust import attest, keys
from tests.unit.test_host_executor import EXPERIMENTS, PYPROJECT


@pytest.fixture
def hosted(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "hosted_experiments.py").write_text(EXPERIMENTS)
    return folder


def run(project: Path, *arguments: str | Path) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(
        cli,
        [
            "--project",
            str(project),
            "run",
            "weights",
            "--executor",
            "host",
            "--python",
            sys.executable,
            "--json",
            *map(str, arguments),
        ],
    )
    made = json.loads(result.stdout) if result.stdout.strip().startswith("[") else []
    return result.exit_code, made, result.stderr


@pytest.mark.parametrize("kind", keys.KEY_TYPES)
def test_a_run_is_signed_with_the_key_given(hosted: Path, tmp_path: Path, kind: str) -> None:
    pair = keys.generate_keys(tmp_path / "keys", "host", key_type=kind)
    code, made, stderr = run(hosted, "--sign-key", pair.private)
    assert code == 0, stderr
    folder = hosted / records.RUNS / str(made[0]["run_id"])
    public = keys.load_public_key(pair.public)
    assert attest.verify(folder, records.read(folder), [public]).keyid == pair.keyid


def test_a_run_without_a_key_is_unsigned(hosted: Path) -> None:
    code, made, stderr = run(hosted)
    assert code == 0, stderr
    folder = hosted / records.RUNS / str(made[0]["run_id"])
    assert not (folder / attest.ATTESTATION).exists()


def test_a_sign_key_inside_the_project_is_refused_before_anything_runs(
    hosted: Path,
) -> None:
    pair = keys.generate_keys(hosted / "keys", "host")
    code, _, stderr = run(hosted, "--sign-key", pair.private)
    assert code == 2
    assert "is inside the project" in stderr
    assert not (hosted / records.RUNS).exists()
