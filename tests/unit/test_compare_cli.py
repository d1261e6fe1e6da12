"""The ``compare`` command: exit codes, JSON schema, reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

from harness.cli.compare import compare
from harness.cli.state import POLICIES_KEY
from harness.errors import ArtifactError, ConfigError, HarnessError, RunNotFound


def invoke(*args: str | Path, policies: dict[str, str] | None = None) -> tuple[int, Result]:
    """Run the command as the harness CLI group would: HarnessError decides the exit code."""

    @click.group()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        if policies is not None:
            ctx.meta[POLICIES_KEY] = policies

    cli.add_command(compare)
    result = CliRunner().invoke(cli, ["compare", *map(str, args)])
    if isinstance(result.exception, HarnessError):
        return result.exception.exit_code, result
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    data = np.linspace(0, 1, 50, dtype=np.float32)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder in (a, b, c):
        folder.mkdir()
    np.save(a / "w.npy", data)
    np.save(b / "w.npy", data)
    np.save(c / "w.npy", np.nextafter(data, np.float32(2)))
    for folder, value in ((a, 0.5), (b, 0.5), (c, 0.5000001)):
        (folder / "metrics.json").write_text(json.dumps({"acc": value}))
    return a, b, c


def test_exit_zero_when_identical(pair: tuple[Path, Path, Path]) -> None:
    a, b, _ = pair
    code, result = invoke(a, b)
    assert code == 0
    assert "identical" in result.stdout
    assert "w.npy" in result.stdout


def test_exit_one_when_different_zero_within_tolerance(pair: tuple[Path, Path, Path]) -> None:
    a, _, c = pair
    code, result = invoke(a, c)
    assert code == 1
    assert "differs" in result.stdout
    assert "50 of 50 elements differ" in result.stdout
    code, result = invoke(a, c, "--policy", "ulp:1", "--metric-tolerance", "rtol=1e-6")
    assert code == 0
    assert "within ulp:1" in result.stdout
    code, _ = invoke(a, c, policies={"*.npy": "ulp:1", "*.json": "metric:rtol=1e-6"})
    assert code == 0


def test_exit_two_on_trouble(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, _ = pair
    code, result = invoke(a, "no-such-run")
    assert code == 2
    assert isinstance(result.exception, RunNotFound)
    (b / "w.npy").write_bytes((a / "w.npy").read_bytes()[:150])
    code, result = invoke(a, b)
    assert code == 2
    assert isinstance(result.exception, ArtifactError)
    assert "truncated" in result.exception.message
    assert "w.npy" in result.stdout  # the table still shows what could be compared


def test_bad_options(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, _ = pair
    code, result = invoke(a, b, "--policy", "ulp:lots")
    assert code == 2
    assert isinstance(result.exception, ConfigError)
    assert "'lots'" in result.exception.message
    code, result = invoke(a, b, "--report", tmp_path / "out.pdf")
    assert code == 2
    assert isinstance(result.exception, ConfigError)


def test_json_schema(pair: tuple[Path, Path, Path]) -> None:
    a, _, c = pair
    code, result = invoke(a, c, "--json", "--policy", "ulp:1")
    assert code == 1  # metrics.json: 0.5 vs 0.5000001 is far more than 1 ULP of float64
    document = json.loads(result.stdout)
    assert document["schema"] == "harness.compare/1"
    assert set(document) == {
        "schema", "a", "b", "policy", "metric_tolerance", "outcome", "exit_code", "summary",
        "artifacts",
    }  # fmt: skip
    assert document["exit_code"] == code
    assert document["policy"] == "ulp:1"
    assert document["summary"]["artifacts"] == 2
    artifacts = {artifact["path"]: artifact for artifact in document["artifacts"]}
    weights = artifacts["w.npy"]
    assert weights["status"] == "within"
    assert weights["passed"] is True
    (tensor,) = weights["tensors"]
    assert tensor["differing"] == 50
    assert tensor["max_ulp"] == 1
    assert tensor["worst_ulp"]["index"] == [0]
    assert tensor["worst_ulp"]["a"] == 0.0
    assert tensor["first_differences"][:2] == [[0], [1]]
    assert set(tensor) >= {
        "name", "status", "dtype_a", "dtype_b", "shape_a", "shape_b", "elements", "differing",
        "differing_fraction", "failing", "max_abs", "max_rel", "max_ulp", "worst_ulp",
        "worst_abs", "nan_mismatch", "inf_mismatch", "first_differences", "note",
    }  # fmt: skip
    metrics = artifacts["metrics.json"]
    assert metrics["differences"][0]["where"] == "$.acc"


def test_json_spells_infinities_as_strings(tmp_path: Path) -> None:
    big = np.finfo(np.float64).max
    np.save(tmp_path / "a.npy", np.array([big]))
    np.save(tmp_path / "b.npy", np.array([-big]))
    code, result = invoke(tmp_path / "a.npy", tmp_path / "b.npy", "--json")
    assert code == 1
    (artifact,) = json.loads(result.stdout)["artifacts"]
    assert artifact["tensors"][0]["max_abs"] == "inf"


@pytest.mark.parametrize("suffix", [".md", ".html"])
def test_reports(pair: tuple[Path, Path, Path], tmp_path: Path, suffix: str) -> None:
    a, _, c = pair
    (a / "notes.txt").write_text("x <b> & y\n")
    (c / "notes.txt").write_text("x <i> & y\n")
    report = tmp_path / f"report{suffix}"
    code, _ = invoke(a, c, "--report", report)
    assert code == 1
    text = report.read_text()
    assert "w.npy" in text
    assert "metrics.json" in text
    if suffix == ".md":
        assert text.startswith("# harness compare")
        assert "| w.npy | npy | differs |" in text
    else:
        assert text.startswith("<!DOCTYPE html>")
        assert "+x &lt;i&gt; &amp; y" in text
        assert "<i>" not in text
        assert 'class="differs"' in text


def test_help_teaches_by_example() -> None:
    result = CliRunner().invoke(compare, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "--policy ulp:4" in result.output
    assert "Integers are exact, or at most A apart" in result.output
    assert "nan-equal" in result.output
    assert compare.name == "compare"


def test_module_entry_point(pair: tuple[Path, Path, Path]) -> None:
    # The exit codes themselves are the launcher's (below); this checks that `-m` passes
    # one on, with the output, from a process of its own.
    a, _, c = pair
    differs = subprocess.run(
        [sys.executable, "-m", "harness.compare", a, c, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert differs.returncode == 1, differs.stderr
    assert json.loads(differs.stdout)["exit_code"] == 1


# Runs `harness ARGUMENTS` for each (folder, arguments) in argv[1], one after the other in
# one interpreter (starting one per line costs a third of a second), and after each prints
# its exit code and which heavy modules it has imported so far.
LAUNCH = """
import json, os, sys
from harness.cli.main import main
for folder, arguments in json.loads(sys.argv[1]):
    os.chdir(folder)
    sys.argv = ["harness", *arguments]
    try:
        main()
    except SystemExit as done:
        heavy = [m for m in ("docker", "requests", "cryptography", "numpy") if m in sys.modules]
        print("launched:", done.code, heavy, file=sys.stderr, flush=True)
"""


def launch(*lines: tuple[Path, list[str | Path]]) -> tuple[list[str], str, str]:
    """The outcome line of each command line, in order, and the whole of stdout and stderr."""
    todo = [(str(folder), [str(a) for a in arguments]) for folder, arguments in lines]
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, json.dumps(todo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcomes = [
        line.removeprefix("launched: ")
        for line in done.stderr.splitlines()
        if line.startswith("launched: ")
    ]
    assert len(outcomes) == len(lines), done.stderr
    return outcomes, done.stdout, done.stderr


def test_harness_compare_imports_only_what_it_needs(
    pair: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, c = pair
    # numpy is imported once and stays: the lines that must not need it come first.
    outcomes, _, stderr = launch(
        (tmp_path, ["compare", a, b]),
        (tmp_path, ["compare", a, "nope"]),
        (tmp_path, ["compare", a, c]),
    )
    # Values are read (numpy) only once bytes differ; the engine's libraries never.
    assert outcomes == ["0 []", "2 []", "1 ['numpy']"]
    assert "\nharness: 'nope' is neither" in f"\n{stderr}"


def test_group_options_and_other_light_commands_stay_light(
    pair: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, _ = pair
    # The group imports a command's module only when that command runs.
    outcomes, stdout, _ = launch(
        (tmp_path, ["--project", tmp_path, "compare", a, b]),
        (tmp_path, ["--version"]),
        (tmp_path, ["lint", "--help"]),
    )
    assert outcomes == ["0 []", "0 []", "0 []"]
    assert "harness, version" in stdout


def test_every_command_is_registered() -> None:
    from harness.cli.main import COMMANDS, cli  # noqa: PLC0415

    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        assert command.name == name


def test_project_policies_apply_to_harness_compare(
    pair: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, _, c = pair
    plain, policed = tmp_path / "plain", tmp_path / "policed"
    plain.mkdir()
    policed.mkdir()
    (plain / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (policed / "pyproject.toml").write_text('[tool.harness.policies]\n"*.npy" = "ulp:1"\n')
    outcomes, _, _ = launch(
        (plain, ["compare", a / "w.npy", c / "w.npy"]),
        (policed, ["compare", a / "w.npy", c / "w.npy"]),
    )
    assert [line.split()[0] for line in outcomes] == ["1", "0"]


def _run_folder(root: Path, run_id: str, status: str) -> Path:
    folder = root / ".harness" / "runs" / run_id
    (folder / "artifacts").mkdir(parents=True)
    record = {"schema": "harness.run-record/v1", "run_id": run_id, "status": status}
    (folder / "record.json").write_text(json.dumps(record))
    return folder


def test_runs_that_did_not_succeed_are_not_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(tmp_path)
    failed = _run_folder(tmp_path, "20260101-000000-x-aaaaaa", "failed")
    other = _run_folder(tmp_path, "20260101-000000-x-bbbbbb", "failed")
    code, result = invoke("20260101-000000-x-aaaaaa", "20260101-000000-x-bbbbbb")
    assert code == 2
    assert isinstance(result.exception, ArtifactError)
    assert result.exception.message == (
        "run 20260101-000000-x-aaaaaa failed, so its artifacts are not a result to compare"
    )
    # What a failed run wrote can still be compared, by its folder.
    code, _ = invoke(failed / "artifacts", other / "artifacts")
    assert code == 0
    _run_folder(tmp_path, "20260101-000000-x-cccccc", "succeeded")
    _run_folder(tmp_path, "20260101-000000-x-dddddd", "succeeded")
    code, _ = invoke("20260101-000000-x-cccccc", "20260101-000000-x-dddddd")
    assert code == 0


def test_a_run_whose_record_cannot_be_read_is_not_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(tmp_path)
    truncated = _run_folder(tmp_path, "20260101-000000-x-aaaaaa", "succeeded")
    _run_folder(tmp_path, "20260101-000000-x-bbbbbb", "succeeded")
    (truncated / "record.json").write_text('{"schema": "harness.run-record/v1", "run_id": "2026')
    code, result = invoke("20260101-000000-x-aaaaaa", "20260101-000000-x-bbbbbb")
    assert code == 2
    assert isinstance(result.exception, ArtifactError)
    assert "record cannot be read, so how it ended is unknown" in result.exception.message
    assert str(truncated / "artifacts") in result.exception.hint


# Runs each (folder, arguments) line of argv[2] through the entry point argv[1] in one
# interpreter, and prints, per line, its exit code, stdout, stderr and whether click and
# rich were imported by then.
THROUGH = """
import contextlib, importlib, io, json, os, sys
module, attribute = sys.argv[1].split(":")
entry = getattr(importlib.import_module(module), attribute)
done = []
for folder, arguments in json.loads(sys.argv[2]):
    os.chdir(folder)
    sys.argv = ["harness", *arguments]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            entry()
            code = 0
        except SystemExit as exit:
            code = exit.code
    light = [m for m in ("click", "rich") if m not in sys.modules]
    done.append([code, out.getvalue(), err.getvalue(), light])
print(json.dumps(done))
"""


def through(entry: str, *lines: tuple[Path, list[str | Path]]) -> list[list[object]]:
    todo = [(str(folder), [str(a) for a in arguments]) for folder, arguments in lines]
    done = subprocess.run(
        [sys.executable, "-c", THROUGH, entry, json.dumps(todo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcomes: list[list[object]] = json.loads(done.stdout)
    return outcomes


def test_the_executable_starts_a_plain_compare_without_click_or_rich(
    pair: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, c = pair
    policed = tmp_path / "policed"
    policed.mkdir()
    (policed / "pyproject.toml").write_text('[tool.harness.policies]\n"*.npy" = "ulp:1"\n')
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text("[tool.harness]\nno-such-key = 1\n")
    lines: list[tuple[Path, list[str | Path]]] = [
        (tmp_path, ["compare", a, b]),
        (tmp_path, ["compare", a / "w.npy", b / "w.npy", "--json"]),
        (policed, ["compare", a / "w.npy", c / "w.npy"]),
        (tmp_path, ["compare", "--policy=ulp:1", a, c]),
        (tmp_path, ["compare", a, c, "-p", "ulp:1", "--metric-tolerance", "rtol=1e-3"]),
        (tmp_path, ["compare", a, c, "--metric-tolerance=rtol=1e-6", "--json"]),
        (tmp_path, ["compare", a, "nope"]),
        (tmp_path, ["compare", a, b, "--policy", "ulp:²"]),
        (broken, ["compare", a, b]),
        (tmp_path, ["compare", a, b, "--report", tmp_path / "r.txt"]),
        (tmp_path, ["compare", a, b, "c"]),
        (tmp_path, ["compare", "--policy", "--json", a, b]),
        (tmp_path, ["compare", "--help"]),
    ]
    fast = through("harness.cli.launch:main", *lines)
    full = through("harness.cli.main:main", *lines)
    # Whichever way a line starts, it prints and ends the same.
    assert [outcome[:3] for outcome in fast] == [outcome[:3] for outcome in full]
    assert [outcome[0] for outcome in fast] == [0, 0, 0, 1, 0, 1, 2, 2, 2, 2, 2, 2, 0]
    # The first six never needed click; identical files, whose table is short and not
    # for a terminal, not rich either (a table wider than a pipe's 160 columns is rich's).
    assert all("click" in light for *_, light in fast[:6])
    assert fast[0][3] == fast[1][3] == ["click", "rich"]
    assert "harness: 'nope' is neither" in str(fast[6][2])
    assert "no-such-key" in str(fast[8][2])


@pytest.mark.parametrize(
    "arguments",
    [
        ["a"],
        ["a", "b", "c"],
        ["a", "b", "--report", "r.md"],
        ["a", "b", "-h"],
        ["a", "b", "--policy"],
        ["a", "b", "--policy="],
        ["a", "b", "-p=ulp:1"],
        ["a", "b", "-pulp:1"],
        ["a", "b", "--policy", "ulp:1", "--policy", "ulp:2"],
        ["a", "b", "--json", "--json"],
        ["a", "b", "--policy", "-1"],
        ["--", "a", "b"],
        ["-", "b"],
        ["a", "b", "--jso"],
    ],
)
def test_lines_the_executable_is_unsure_of_go_to_click(arguments: list[str]) -> None:
    from harness.cli.launch import plain_compare  # noqa: PLC0415

    assert plain_compare(arguments) is None


def test_plain_lines_read_as_click_reads_them() -> None:
    from harness.cli.launch import PlainCompare, plain_compare  # noqa: PLC0415

    assert plain_compare(["a", "--json", "b", "-p", "ulp:4"]) == PlainCompare(
        "a", "b", policy="ulp:4", as_json=True
    )
    assert plain_compare(["--metric-tolerance=rtol=1e-3", "a", ""]) == PlainCompare(
        "a", "", metric_tolerance="rtol=1e-3"
    )
