"""Names are names: every name harness turns into a path, an image tag, YAML, shell or
workflow text is one plain path component, checked by the one rule the schema and the code
share; output globs stay inside the output folder. A hostile name is a config error (exit
2), never a file written elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from harness import config_schema
from harness.cli.main import cli
from harness.config import load_config
from harness.errors import ConfigError
from harness.fleet import hosts
from harness.runs import records
from tests.unit.test_config_schema import SCHEMA

HOSTILE_NAMES = [
    "x/../../../outside",
    "..",
    "../x",
    "a..b",
    ".hidden",
    "-flag",
    "a b",
    "a\n",
    "${{ github.event.pull_request.title }}",
    "$(id)",
    "a;b",
    "é",
    "x" * 101,
    "",
]
PLAIN_NAMES = ["a", "cpu", "ubuntu-24.04", "self-hosted", "gpu_box.2", "x" * 100]


def _name_nodes(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Every schema node that describes a name: property names, and the values that name
    a variant, a host or a runner."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        if "propertyNames" in node and "outputs" not in path:  # globs, not names
            found.append(("/".join(path), node["propertyNames"]))
        for key, child in node.items():
            found += _name_nodes(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _name_nodes(child, (*path, str(index)))
    return found


def test_every_name_in_the_schema_follows_the_one_rule() -> None:
    names = _name_nodes(SCHEMA)
    where = {path for path, _ in names}
    assert where == {
        "properties/variants",
        "properties/experiments",
        "properties/experiments/additionalProperties/properties/inputs",
        "properties/hosts",
    }
    values = [
        SCHEMA["properties"]["host-name"],
        SCHEMA["properties"]["ci"]["properties"]["variant"],
        SCHEMA["properties"]["ci"]["properties"]["runners"]["items"],
        SCHEMA["properties"]["experiments"]["additionalProperties"]["properties"]["variant"],
    ]
    for node in [node for _, node in names] + values:
        assert node["pattern"] == config_schema.PLAIN_NAME_PATTERN


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_is_refused_by_the_schema_the_code_and_jsonschema(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a plain name"):
        config_schema.check_name(name, "--runner")
    assert not re.search(config_schema.PLAIN_NAME_PATTERN, name)
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid({"experiments": {name: {}}})
    assert not hosts._NAME.search(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_a_plain_name_passes(name: str) -> None:
    assert config_schema.check_name(name, "--runner") == name
    assert records.RUN_ID.fullmatch(records.new_run_id(name))


def test_a_run_id_is_never_made_of_a_hostile_name() -> None:
    for name in ("x/../../../outside", "x" * 120, "a/b"):
        with pytest.raises(ConfigError):
            records.new_run_id(name)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[tool.harness.experiments."x/../../../outside"]\nentry = "m:f"', "the name"),
        ('[tool.harness.experiments.t]\nentry = "m:f"\noutputs = ["/etc/hostname"]', "glob"),
        ('[tool.harness.experiments.t]\nentry = "m:f"\noutputs = ["../x"]', "glob"),
        ('[tool.harness.experiments.t]\nentry = "m:f"\noutputs = ["a/../../x"]', "glob"),
        ('[tool.harness.experiments.t]\nentry = "m:f"\noutputs = { "/etc/passwd" = "" }', "name"),
        ('[tool.harness.experiments.t]\nentry = "m:f"\ninputs = { "../d" = "data" }', "the name"),
        ('[tool.harness.experiments.t]\nentry = "m:f"\nvariant = "../cpu"', "variant name"),
        ('[tool.harness.variants."cpu:latest"]\nconstraints = "c.txt"', "the name"),
        ('[tool.harness.hosts]\n"a..b" = "ssh://b"', "the name"),
        ('[tool.harness]\nhost-name = "../../elsewhere"', "host name"),
    ],
)
def test_hostile_names_and_globs_in_pyproject_are_config_errors(
    project: Path, table: str, expected: str
) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    if table.startswith("[tool.harness]\n"):  # a key of the table the file already opens
        text = text.replace('image = "demo"\n', 'image = "demo"\n' + table.split("\n", 1)[1])
    else:
        text += "\n" + table
    pyproject.write_text(text + "\n")
    with pytest.raises(ConfigError, match=expected):
        load_config(project, environ={})


def test_a_host_name_from_the_environment_is_checked_as_well(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"host-name \(from env HARNESS_HOST_NAME\)"):
        load_config(project, environ={"HARNESS_HOST_NAME": "a/../b"})
    assert load_config(project, environ={"HARNESS_HOST_NAME": "ci-1"}).host_name == "ci-1"


@pytest.mark.parametrize("url", ["tcp://../", "ssh://user@..", "tcp://a..b:2376"])
def test_a_host_named_after_its_url_gets_a_plain_name(url: str) -> None:
    assert re.search(config_schema.PLAIN_NAME_PATTERN, hosts._name_of(url))


@pytest.mark.parametrize(
    "table",
    [
        '[tool.harness.experiments."x/../../../outside"]\nentry = "m:f"\n',
        '[tool.harness.experiments.t]\nentry = "m:f"\noutputs = ["/etc/hostname"]\n',
    ],
)
def test_harness_run_with_a_hostile_name_or_glob_exits_2_and_writes_nothing(
    tmp_path: Path, project: Path, table: str
) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n" + table)
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(cli, ["--project", str(project), "run"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.count("\n") == 1
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "outside").exists()
