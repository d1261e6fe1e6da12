"""The workflows `harness ci github` writes pass zizmor, GitHub Actions' security linter,
with no finding in its regular persona nor in its auditor persona (which accepts false
positives), for every shape of configuration; names that could inject into a workflow are
refused before anything is written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.fleet import ci_github
from harness.fleet.ci_github import CISettings, render
from tests.unit.test_ci_github import WORKFLOW, add_ci_table, invoke

# Installed with the dev dependencies, beside the interpreter running the tests.
ZIZMOR = Path(sys.executable).with_name("zizmor")
# Auditor findings that follow from the project's own choice and that the README explains
# (under `harness ci github`): a runner label the project gives.
EXPLAINED = {"self-hosted-runner"}
README = Path(__file__).resolve().parents[2] / "README.md"

CONFIGURATIONS = {
    "default": CISettings(),
    "several runners": CISettings(("ubuntu-24.04", "ubuntu-24.04-arm", "self-hosted")),
    "another variant and python": CISettings(("ubuntu-22.04",), "cuda", "3.12", 60),
    "installed as a tool": CISettings(
        install="git+https://example.org/acme/harness@v0.1.0; echo ${{ github.token }}"
    ),
}


def findings(workflow: Path, persona: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [
            *(str(ZIZMOR), "--offline", "--no-progress"),
            *("--persona", persona, "--format", "json", str(workflow)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # zizmor exits 0 without findings, 10 and up with them, anything else on trouble.
    assert result.returncode == 0 or result.returncode >= 10, result.stderr
    found = json.loads(result.stdout)
    assert isinstance(found, list)
    return found


@pytest.mark.parametrize("persona", ["regular", "auditor"])
@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_the_generated_workflow_has_no_zizmor_finding(
    tmp_path: Path, name: str, persona: str
) -> None:
    workflow = tmp_path / ".github" / "workflows" / "harness.yml"
    workflow.parent.mkdir(parents=True)
    flags = ["--runner", "ubuntu-24.04", "--output", "ci/harness.yml"]
    workflow.write_text(render(CONFIGURATIONS[name], flags))
    found = findings(workflow, persona)
    allowed = EXPLAINED if persona == "auditor" else set()
    unexplained = [(f["ident"], f["desc"]) for f in found if f["ident"] not in allowed]
    assert unexplained == []


def test_every_explained_finding_is_explained_in_the_readme() -> None:
    text = README.read_text()
    for ident in EXPLAINED:
        assert f"`{ident}`" in text


def test_zizmor_does_find_what_the_workflow_avoids(tmp_path: Path) -> None:
    """The check can fail: the old shapes (a tag, a value expanded into a script, the key
    outside an environment) are findings."""
    workflow = tmp_path / ".github" / "workflows" / "harness.yml"
    workflow.parent.mkdir(parents=True)
    text = render(CISettings())
    commit = ci_github.ACTION_PINS["actions/checkout"][0]
    text = text.replace(f"actions/checkout@{commit}", "actions/checkout@v4", 1)
    text = text.replace("run: uv run harness doctor", "run: echo ${{ github.head_ref }}", 1)
    text = text.replace("    environment: harness-signing\n", "")
    workflow.write_text(text)
    regular = {f["ident"] for f in findings(workflow, "regular")}
    assert {"unpinned-uses", "template-injection"} <= regular
    assert "secrets-outside-env" in {f["ident"] for f in findings(workflow, "auditor")}


@pytest.mark.parametrize(
    "table",
    [
        'runners = ["${{ github.event.pull_request.title }}"]\n',
        'runners = ["ubuntu-latest\\n    steps: []"]\n',
        'runners = ["a;curl${IFS}evil"]\n',
        'variant = "cpu\\"; curl evil; \\""\n',
    ],
)
def test_hostile_names_in_the_table_are_refused_before_any_workflow(
    project: Path, table: str
) -> None:
    add_ci_table(project, table)
    code, _, err = invoke(project)
    assert code == 2
    assert err.count("\n") == 1
    assert not (project / WORKFLOW).exists()


def test_a_hostile_experiment_or_variant_name_is_refused_at_load(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + '\n[tool.harness.variants."x$(id)"]\nconstraints = "c.txt"\n'
    )
    code, _, err = invoke(project)
    assert code == 2
    assert "the name 'x$(id)' is not allowed" in err
    assert not (project / WORKFLOW).exists()
