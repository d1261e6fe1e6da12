"""`harness lint` output: SARIF for GitHub code scanning, --output, and file-level ignores."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from harness.cli.lint import lint
from harness.cli.main import HarnessGroup
from harness.cli.state import State
from harness.lint import RULES, check_source
from harness.lint.checker import Finding
from harness.lint.sarif import SOURCE_ROOT, document
from harness.ui import UI

SOURCE = "import json, time\nstamp = time.time()\njson.dump(stamp, open('t', 'w'))\n"


@click.group(cls=HarnessGroup)
@click.pass_context
def group(ctx: click.Context) -> None:
    """The CLI's group as `harness` builds it (its errors become exit 2), holding lint."""
    ctx.obj = State(None, {}, False, UI(quiet=True))


group.add_command(lint)


def invoke(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(group, ["lint", *arguments], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_sarif_names_the_tool_rules_and_each_result_with_its_region(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(SOURCE)
    code, out, _ = invoke("--format", "sarif", str(tmp_path / "exp.py"))
    assert code == 1
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "harness-lint"
    assert [rule["id"] for rule in driver["rules"]] == [rule.id for rule in RULES]
    assert all(r["defaultConfiguration"]["level"] in ("error", "warning") for r in driver["rules"])
    (result,) = run["results"]
    assert result["ruleId"] == "HR010"
    assert driver["rules"][result["ruleIndex"]]["id"] == "HR010"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    # 1-based columns, in SARIF as in harness's text and JSON.
    assert location["region"] == {"startLine": 2, "startColumn": 9, "endLine": 2, "endColumn": 20}
    assert location["artifactLocation"]["uri"].endswith("exp.py")


def test_sarif_paths_are_relative_to_the_source_root_and_quoted() -> None:
    finding = Finding("src/my exp.py", 3, 1, "HR001", "m", "f", 3, 5, "error")
    (result,) = document([finding], frozenset({"HR001"}))["runs"][0]["results"]
    artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "src/my%20exp.py", "uriBaseId": SOURCE_ROOT}
    absolute = Finding("/tmp/x.py", 1, 1, "HR000", "m", "f", 1, 1, "error")
    (result,) = document([absolute], frozenset({"HR000"}))["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "file:///tmp/x.py"
    }
    assert result["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 1,
        "startColumn": 1,
    }


def test_a_clean_run_still_writes_an_empty_sarif_log(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text("x = 1\n")
    report = tmp_path / "lint.sarif"
    code, out, err = invoke("--format", "sarif", "--output", str(report), str(tmp_path / "exp.py"))
    assert (code, out) == (0, "")
    assert "1 file(s) clean" in err
    assert json.loads(report.read_text())["runs"][0]["results"] == []


def test_output_writes_the_report_and_keeps_the_exit_code(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(SOURCE)
    report = tmp_path / "out" / "lint.json"
    report.parent.mkdir()
    code, out, _ = invoke("--json", "--output", str(report), str(tmp_path / "exp.py"))
    assert (code, out) == (1, "")
    assert json.loads(report.read_text())["findings"][0]["rule"] == "HR010"


def test_json_and_another_format_together_are_trouble(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text("x = 1\n")
    code, _, err = invoke("--json", "--format", "sarif", str(tmp_path / "exp.py"))
    assert code == 2
    assert "--json and --format sarif disagree" in err


def test_a_file_level_ignore_silences_the_rules_it_names_or_all() -> None:
    source = SOURCE + "import os\njson.dump(os.urandom(2), open('u', 'w'))\n"
    assert {f.rule for f in check_source(source, "x.py")} == {"HR010", "HR011"}
    named = "# harness: ignore-file[HR010]\n" + source
    assert {f.rule for f in check_source(named, "x.py")} == {"HR011"}
    every = source + "# harness: ignore-file\n"
    assert check_source(every, "x.py") == []


def test_a_file_level_ignore_cannot_silence_a_parse_error() -> None:
    (finding,) = check_source("# harness: ignore-file\nx = (\n", "x.py")
    assert finding.rule == "HR000"
