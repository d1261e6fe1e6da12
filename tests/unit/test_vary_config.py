"""Which variations `harness verify` makes: ``vary`` under an experiment's table and under
[tool.harness.verify], ``--vary`` over both; the choice and where it came from are saved
with the verification, and hints that leave a variation out give the line to paste.
"""

from __future__ import annotations

import base64
import json
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from harness import config_schema
from harness.cli.main import cli
from harness.config import Config, load_config
from harness.engine import Engine
from harness.errors import ConfigError
from harness.runs import variations, verify
from harness.runs.host_executor import NEEDS_A_CONTAINER
from tests.unit.fake_docker import FakeClient
from tests.unit.test_verify import IMAGE, _request
from tests.unit.test_verify_culprits import behaviour

HEAD = '[project]\nname = "vary"\nversion = "0"\n\n'


def _config(tmp_path: Path, harness_tables: str) -> Config:
    (tmp_path / "pyproject.toml").write_text(HEAD + harness_tables)
    return load_config(tmp_path, environ={})


TABLES = """\
[tool.harness.verify]
vary = "all, -cpus"

[tool.harness.experiments.own]
entry = "m:own"
vary = ["all", "-workdir"]

[tool.harness.experiments.shared]
entry = "m:shared"
"""


def test_the_schema_names_every_variation_and_no_other() -> None:
    """The names a pyproject.toml may write are the names verify knows."""
    node = config_schema.schema()["properties"]["verify"]["properties"]["vary"]
    pattern = node["anyOf"][0]["items"]["pattern"]
    for variation in variations.VARIATIONS:
        for word in (variation.name, f"-{variation.name}", f"+{variation.name}"):
            assert jsonschema.Draft202012Validator({"pattern": pattern}).is_valid(word), word
    named = pattern.split("[+-]?(")[1].split(")")[0].split("|")
    assert named == [v.name for v in variations.VARIATIONS]
    # The string form, for editors that read the schema without harness's splitting.
    validator = jsonschema.Draft202012Validator(config_schema.schema())
    assert validator.is_valid({"verify": {"vary": "all, -workdir,hashseed"}})
    assert not validator.is_valid({"verify": {"vary": "all,-workdri"}})


def test_a_list_and_a_comma_separated_string_are_read_alike(tmp_path: Path) -> None:
    config = _config(tmp_path, TABLES)
    assert config.experiments["own"].vary == ("all", "-workdir")
    assert config.experiments["shared"].vary is None
    assert config.table("verify")["vary"] == ["all", "-cpus"]
    assert config.as_dict()["experiments"]["own"]["vary"] == ["all", "-workdir"]


def test_the_experiment_s_choice_wins_over_the_project_s_and_the_command_line_over_both(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, TABLES)
    own, shared = config.experiment("own"), config.experiment("shared")
    chosen = variations.choice_for(config, own, None)
    assert chosen.source == variations.EXPERIMENT_CONFIG
    assert "workdir" not in chosen.names and "cpus" in chosen.names
    assert chosen.left_out == {"workdir": variations.EXPERIMENT_CONFIG}
    chosen = variations.choice_for(config, shared, None)
    assert chosen.source == variations.PROJECT_CONFIG
    assert "cpus" not in chosen.names and "workdir" in chosen.names
    for experiment in (own, shared):
        chosen = variations.choice_for(config, experiment, "hashseed")
        assert (chosen.source, chosen.names) == (variations.COMMAND_LINE, ["hashseed"])
        assert chosen.asked == ("hashseed",)
    bare = _config(tmp_path, '[tool.harness.experiments.own]\nentry = "m:own"\n')
    chosen = variations.choice_for(bare, bare.experiment("own"), None)
    assert chosen.source == variations.DEFAULT
    assert chosen.names == [v.name for v in variations.VARIATIONS]
    assert chosen.as_dict() == {
        "varied": chosen.names,
        "left_out": {},
        "chosen_by": "default",
        "asked": ["all"],
    }


@pytest.mark.parametrize(
    ("tables", "where", "bad"),
    [
        (
            '[tool.harness.verify]\nvary = ["all", "-workdri"]',
            "[tool.harness.verify] vary[1]",
            "-workdri",
        ),
        (
            '[tool.harness.verify]\nvary = "none,hostnme"',
            "[tool.harness.verify] vary[1]",
            "hostnme",
        ),
        (
            '[tool.harness.experiments.t]\nentry = "m:f"\nvary = ["-all"]',
            "[tool.harness.experiments.t] vary[0]",
            "-all",
        ),
        (
            '[tool.harness.verify]\nvary = ["all", " -cpus"]',
            "[tool.harness.verify] vary[1]",
            " -cpus",
        ),
        ('[tool.harness.verify]\nvary = ""', "[tool.harness.verify] vary", ""),
        ("[tool.harness.verify]\nvary = 3", "[tool.harness.verify] vary", ""),
    ],
)
def test_an_unknown_variation_in_the_configuration_is_refused_at_load(
    tmp_path: Path, tables: str, where: str, bad: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, tables)
    line = caught.value.one_line()
    assert line.startswith(where + ": "), line
    assert f'"{bad}"' in line or not bad
    if bad:
        assert "cpus, hostname, timezone, locale, user, workdir, env, hashseed" in line
    # The definition of JSON Schema refuses it as well (before harness splits a string).
    table = tomllib.loads(HEAD + tables)["tool"]["harness"]
    assert not jsonschema.Draft202012Validator(config_schema.schema()).is_valid(table)


def test_the_command_refuses_a_bad_vary_in_one_line_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        HEAD + '[tool.harness.experiments.t]\nentry = "m:f"\nvary = ["all", "-workdri"]\n'
    )
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "verify"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert '[tool.harness.experiments.t] vary[1]: "-workdri" is not a variation' in result.stderr


@pytest.mark.parametrize(
    ("asked", "line"),
    [
        (None, 'vary = ["all", "-workdir"]'),
        (("all", "-cpus"), 'vary = ["all", "-cpus", "-workdir"]'),
        (("hashseed", "workdir"), 'vary = ["hashseed"]'),
        (("workdir",), 'vary = ["none"]'),
        (("all", "+workdir"), 'vary = ["all", "-workdir"]'),
    ],
)
def test_the_line_that_leaves_a_variation_out_keeps_the_rest_of_the_choice(
    asked: tuple[str, ...] | None, line: str
) -> None:
    choice = None if asked is None else variations.chosen(asked, variations.EXPERIMENT_CONFIG)
    text = variations.leave_out_line(choice, "train", ["workdir"])
    assert text.startswith(f"{line} under [tool.harness.experiments.train] in pyproject.toml, ")
    # Pasted, the line leaves exactly that variation out of what was chosen.
    words = tomllib.loads(line)["vary"]
    before = {v.name for v in variations.select(asked or ["all"])}
    assert {v.name for v in variations.select(words)} == before - {"workdir"}
    # A name TOML must quote is quoted in the table's header.
    assert '[tool.harness.experiments."a.b"]' in variations.leave_out_line(None, "a.b", ["user"])


PROJECT = """\
[tool.harness]
image = "culprits"
host-name = "a"

[tool.harness.verify]
vary = ["timezone", "locale", "hashseed", "workdir"]

[tool.harness.experiments.fragile]
entry = "culprits:fragile"
outputs = ["weights.bin"]
vary = ["timezone", "locale"]

[tool.harness.experiments.logger]
entry = "culprits:logger"
exclude = ["events.out.tfevents.*"]
"""


def test_the_verification_says_per_experiment_what_varied_and_who_chose_it(
    tmp_path: Path,
) -> None:
    tmp_path.chmod(0o755)
    config = _config(tmp_path, PROJECT)
    experiments = [config.experiment("fragile"), config.experiment("logger")]
    verification = verify.verify(
        Engine(FakeClient(behaviour), "fake-a"),  # type: ignore[arg-type]
        config,
        IMAGE,
        experiments,
        variations=variations.choices_for(config, experiments, None),
        base=_request,
        jobs=2,
    )
    document = json.loads(json.dumps(verification.as_dict(config)))
    fragile, logger = document["experiments"]
    assert fragile["variations"] == {
        "varied": ["timezone", "locale"],
        "left_out": dict.fromkeys(
            ("cpus", "hostname", "user", "workdir", "env", "hashseed"), "experiment config"
        ),
        "chosen_by": "experiment config",
        "asked": ["timezone", "locale"],
    }
    assert logger["variations"]["chosen_by"] == "project config"
    assert logger["variations"]["varied"] == ["timezone", "locale", "hashseed", "workdir"]
    assert logger["reproducible"] is True
    # Each run was made under its experiment's own choice.
    assert [c["variations"] for c in fragile["checks"]][1] == ["timezone", "locale"]
    assert "workdir" in [v for c in logger["checks"] for v in c["variations"]]
    # The document's list is every variation some experiment made.
    assert document["variations"] == ["timezone", "locale", "workdir", "hashseed"]
    # A run that fails under one variation alone: the hint gives the line to paste, from
    # the experiment's own choice.
    assert fragile["culprits"] == ["locale"]
    assert fragile["hint"] == (
        'where fragile may depend on it, leave it out: vary = ["timezone"] under '
        "[tool.harness.experiments.fragile] in pyproject.toml, or --vary=timezone for one verify"
    )


def test_a_variation_the_executor_cannot_make_is_left_out_as_such(tmp_path: Path) -> None:
    config = _config(tmp_path, TABLES)
    choices = variations.choices_for(config, config.experiments.values(), None)
    possible, left_out = variations.without(
        choices, NEEDS_A_CONTAINER, variations.NEEDS_A_CONTAINER
    )
    assert left_out == ["hostname", "user"]
    assert possible["own"].left_out == {
        "workdir": "experiment config",
        "hostname": "needs a container",
        "user": "needs a container",
    }
    assert possible["own"].as_dict()["left_out"] == {
        "hostname": "needs a container",
        "user": "needs a container",
        "workdir": "experiment config",
    }
    assert possible["shared"].source == variations.PROJECT_CONFIG


HOSTED = """\
[tool.harness.verify]
vary = "none"

[tool.harness.experiments.weights]
entry = "vary_experiments:weights"
outputs = ["weights.bin"]

[tool.harness.experiments.pinned]
entry = "vary_experiments:weights"
outputs = ["weights.bin"]
vary = ["hashseed"]
"""


def test_verify_reads_the_choice_from_pyproject_unless_vary_is_given(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = tmp_path_factory.mktemp("project")
    monkeypatch.setenv("HARNESS_KEYS_DIR", str(tmp_path_factory.mktemp("keys")))
    (tmp_path / "pyproject.toml").write_text(HEAD + HOSTED)
    (tmp_path / "vary_experiments.py").write_text(
        "def weights(output, seed, inputs):\n    (output / 'weights.bin').write_text(str(seed))\n"
    )
    base = ["--project", str(tmp_path), "verify", "--executor", "host"]
    runner = CliRunner()
    # This host's key first: it signs the runs verify makes, which certify then counts.
    assert runner.invoke(cli, ["--project", str(tmp_path), "keys", "generate"]).exit_code == 0
    verified = runner.invoke(cli, [*base, "--python", sys.executable, "--json"])
    assert verified.exit_code == 0, verified.output
    assert "pinned: variations hashseed (chosen by experiment config)" in verified.stderr
    weights, pinned = json.loads(verified.stdout)["experiments"]
    assert (weights["variations"]["chosen_by"], weights["variations"]["varied"]) == (
        "project config",
        [],
    )
    assert len(weights["checks"]) == 1  # the second control run, nothing varied
    assert (pinned["variations"]["chosen_by"], pinned["variations"]["varied"]) == (
        "experiment config",
        ["hashseed"],
    )
    # Saved as printed.
    (saved,) = (tmp_path / ".harness" / "verifications").glob("*.json")
    summary = json.loads(saved.read_text())
    assert summary["experiments"][1]["variations"] == pinned["variations"]
    # The certificate says what the checked runs were made under, and why the others were
    # not from the project's own configuration: an edited account in the summary is no claim.
    summary["experiments"][1]["variations"] = {"varied": list(variations.BY_NAME), "left_out": {}}
    saved.write_text(json.dumps(summary))
    certified = runner.invoke(cli, ["--project", str(tmp_path), "certify", "--json"])
    assert certified.exit_code == 0, certified.output
    envelope = json.loads(Path(json.loads(certified.stdout)["certificate"]).read_text())
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    certified_weights, certified_pinned = predicate["experiments"]
    assert certified_pinned["variations"] == {
        "varied": ["hashseed"],
        "left_out": {
            name: "experiment config" for name in variations.BY_NAME if name != "hashseed"
        },
    }
    assert certified_weights["variations"]["varied"] == []
    assert set(certified_weights["variations"]["left_out"].values()) == {"project config"}
    overridden = runner.invoke(
        cli, [*base, "pinned", "--vary", "env", "--python", sys.executable, "--json"]
    )
    assert overridden.exit_code == 0, overridden.output
    (pinned,) = json.loads(overridden.stdout)["experiments"]
    assert pinned["variations"]["chosen_by"] == "command line"
    assert pinned["variations"]["varied"] == ["env"]


def test_a_certificate_accounts_for_what_did_not_vary_from_its_own_configuration(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, TABLES)
    own, shared = config.experiment("own"), config.experiment("shared")
    every = [v.name for v in variations.VARIATIONS]
    account = variations.as_certified(
        config, own, [n for n in every if n != "workdir"], cannot_make=()
    )
    assert account == {
        "varied": [n for n in every if n != "workdir"],
        "left_out": {"workdir": "experiment config"},
    }
    # Left out where the configuration would make it: the command line chose so.
    account = variations.as_certified(config, shared, ["env"], cannot_make=NEEDS_A_CONTAINER)
    assert account["left_out"] == {
        "cpus": "project config",
        "hostname": "needs a container",
        "timezone": "command line",
        "locale": "command line",
        "user": "needs a container",
        "workdir": "command line",
        "hashseed": "command line",
    }
