"""The command line without an engine: help, configuration, errors and exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from click.testing import CliRunner

from harness.cli.main import cli


def invoke(*arguments: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(arguments), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_help_teaches_the_commands() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    # The names must be listed as commands: the prose above the list mentions most of them.
    listing = out.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    listed = {line.split()[0] for line in listing.splitlines() if re.match(r"  \S", line)}
    assert {"lock", "build", "base", "doctor", "config", "run", "verify", "certify"} <= listed
    assert listed == set(cli.list_commands(click.Context(cli)))
    assert "Exit codes: 0 same or current, 1 differs or stale, 2 trouble" in " ".join(out.split())


def test_config_json_reports_values_and_sources(project: Path) -> None:
    code, out, _ = invoke("--project", str(project), "config", "--json", env={"HARNESS_IMAGE": "x"})
    assert code == 0
    document = json.loads(out)
    assert document["image"] == "x"
    assert document["sources"]["image"] == "env HARNESS_IMAGE"
    assert set(document["variants"]) == {"cpu", "cuda"}


def test_config_error_is_one_line_with_exit_2(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml")
        .read_text()
        .replace("[tool.harness]\n", "[tool.harness]\nimgae = 'x'\n")
    )
    code, _, err = invoke("--project", str(project), "config")
    assert code == 2
    assert err.count("\n") == 1
    assert "unknown key 'imgae'" in err
    assert "fix:" in err


def test_unknown_variant_is_refused_before_any_engine_call(project: Path) -> None:
    code, _, err = invoke("--project", str(project), "build", "--variant", "rocm")
    assert code == 2
    assert "unknown variant 'rocm'" in err


def test_missing_constraints_are_refused_before_any_engine_call(project: Path) -> None:
    (project / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    code, _, err = invoke("--project", str(project), "build")
    assert code == 2
    assert "constraints.txt is missing" in err
    assert "harness lock" in err


def test_lock_check_without_constraints_is_stale(project: Path) -> None:
    code, _, err = invoke("--project", str(project), "lock", "--check", "--variant", "cpu")
    assert code == 1
    assert "constraints.txt is missing" in err
