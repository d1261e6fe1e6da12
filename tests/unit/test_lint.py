"""`harness lint`: each rule catches its planted examples, the built-in experiments are clean,
and selection, inline ignores, JSON and exit codes behave as documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness.cli.lint import lint
from harness.cli.main import HarnessGroup
from harness.cli.state import State
from harness.config import load_config
from harness.errors import ConfigError
from harness.lint import (
    RULES,
    check_file,
    check_source,
    default_targets,
    enabled_rules,
    lint_paths,
    managed_entries,
    settings_from_table,
)
from harness.ui import UI
from tests.conftest import REPOSITORY

FIXTURES = Path(__file__).parent / "data" / "lint"
PLANTED = sorted(FIXTURES.glob("hr*.py"))
_EXPECT = re.compile(r"# expect: (HR\d{3})")


def expected(path: Path) -> set[tuple[int, str]]:
    """The (line, rule) pairs a fixture marks with `# expect: HR0NN`."""
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for match in _EXPECT.finditer(line):
            found.add((number, match.group(1)))
    return found


def caught(path: Path) -> set[tuple[int, str]]:
    """Each finding, and each use it groups (a related location named by its rule)."""
    found = set()
    for finding in check_file(path):
        found.add((finding.line, finding.rule))
        for place in finding.related:
            rule = place.message.split(" ", 1)[0]
            if re.fullmatch(r"HR\d{3}", rule) and place.path == finding.path:
                found.add((place.line, rule))
    return found


@pytest.mark.parametrize("fixture", PLANTED, ids=[p.stem for p in PLANTED])
def test_each_planted_case_is_caught_and_nothing_else(fixture: Path) -> None:
    assert expected(fixture), f"{fixture.name} plants nothing"
    assert caught(fixture) == expected(fixture)


def test_every_rule_has_a_planted_example() -> None:
    planted = {rule for fixture in PLANTED for _, rule in expected(fixture)}
    assert planted == {rule.id for rule in RULES} - {"HR000"}


def test_the_near_misses_are_clean() -> None:
    assert check_file(FIXTURES / "clean.py") == []


def test_the_built_in_experiments_are_clean() -> None:
    config = load_config(REPOSITORY, environ={})
    targets = default_targets(config, settings_from_table({}))
    assert {path.name for path in targets} == {
        "sklearn_ensemble.py",
        "torch_convnet.py",
        "tensorflow_keras.py",
    }
    managed = managed_entries(config)
    assert set(managed.values()) == {frozenset({"train"})}
    result = lint_paths([REPOSITORY / "experiments"], enabled_rules(["ALL"], []), managed=managed)
    assert len(result.files) == 4
    assert result.findings == ()


def test_outside_harness_the_experiments_layers_are_unseeded() -> None:
    """They rely on the runtime's seeds (see their docstrings): linted as plain code, the
    layers built before any seed are findings, and nothing else is."""
    result = lint_paths([REPOSITORY / "experiments"], enabled_rules(["ALL"], []))
    assert {(Path(f.path).name, f.rule) for f in result.findings} == {
        ("torch_convnet.py", "HR017"),
        ("tensorflow_keras.py", "HR017"),
    }


def test_findings_carry_file_line_rule_message_and_fix() -> None:
    source = "import json, time\n\nstamp = time.time()\njson.dump(stamp, open('t', 'w'))\n"
    (finding,) = check_source(source, "x.py")
    # 1-based columns, as ruff and flake8 report them; the end is one past the last character.
    assert (finding.path, finding.line, finding.column, finding.rule) == ("x.py", 3, 9, "HR010")
    assert (finding.end_line, finding.end_column, finding.severity) == (3, 20, "error")
    assert "time.time() reaches json.dump() at line 4" in finding.message
    assert finding.fix
    assert finding.one_line().startswith("x.py:3:9: HR010 ")
    assert [(r.line, r.column) for r in finding.related] == [(4, 1)]


def test_columns_count_characters_not_bytes() -> None:
    source = (
        "import json, time\nlabel = 'é'; stamp = time.time()\njson.dump(stamp, open('t', 'w'))\n"
    )
    (finding,) = check_source(source, "x.py")
    assert (finding.column, finding.end_column) == (22, 33)


def test_a_syntax_error_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n    pass\n")
    (finding,) = check_file(broken)
    assert (finding.rule, finding.line) == ("HR000", 1)
    undecodable = tmp_path / "latin.py"
    undecodable.write_bytes(b"x = 1\ny = '\xe9'\n")
    (finding,) = check_file(undecodable)
    assert (finding.rule, finding.line) == ("HR000", 2)
    assert "UTF-8" in finding.message


def test_code_nested_too_deeply_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    deep = tmp_path / "deep.py"
    deep.write_text("x = " + " + ".join(["1"] * 300) + "\n")
    (finding,) = check_file(deep)
    assert finding.rule == "HR000"
    assert "nested more than 120 levels deep" in finding.message
    deeper = tmp_path / "deeper.py"
    deeper.write_text("x = " + " + ".join(["1"] * 50_000) + "\n")
    (finding,) = check_file(deeper)
    assert finding.rule == "HR000"


def test_inline_ignores_name_rules_or_silence_the_line() -> None:
    source = (
        "import random, time\n"
        "a = random.random()  # harness: ignore[HR001]\n"
        "b = random.random()  # harness: ignore[HR010]\n"
        "c = (random.random(), time.time())  # harness: ignore[HR001, HR010]\n"
        "d = time.time()  # harness: ignore\n"
        "e = max(\n"
        "    random.random(),\n"
        "    0,\n"
        ")\n"
        "f = time.time(\n"
        ")  # harness: ignore[HR010]\n"
        "def results():\n"
        "    return a, b, c, d, e, f\n"
    )
    # The two unseeded draws left are one cause: one finding, the second related.
    (finding,) = check_source(source, "x.py")
    assert (finding.line, finding.rule) == (3, "HR001")
    assert [r.line for r in finding.related if r.message.startswith("HR001")] == [7]


def test_aliases_and_from_imports_resolve() -> None:
    source = (
        "from numpy.random import rand\n"
        "import numpy.random as npr\n"
        "from time import time as now\n"
        "import torch as T\n"
        "x = rand(3); y = npr.randn(2); z = T.randint(0, 3, (2,))\n"
        "npr.save('t', (now(), x, y, z))\n"
    )
    rules = sorted(f.rule for f in check_source(source, "x.py"))
    # The two NumPy draws are one missing seed.
    assert rules == ["HR002", "HR004", "HR010"]


def test_a_seed_counts_from_where_it_runs_and_a_seedless_seed_call_does_not() -> None:
    saved = "np.save('x', x)\n"
    seeded = "import numpy as np\nnp.random.seed(1)\nx = np.random.rand(2)\n" + saved
    assert check_source(seeded, "x.py") == []
    too_late = "import numpy as np\nx = np.random.rand(2)\nnp.random.seed(1)\n" + saved
    assert [(f.line, f.rule) for f in check_source(too_late, "x.py")] == [(2, "HR002")]
    seedless = "import numpy as np\nnp.random.seed()\nx = np.random.rand(2)\n" + saved
    assert [f.rule for f in check_source(seedless, "x.py")] == ["HR002"]
    keras = "import random\nimport keras\nkeras.utils.set_random_seed(3)\nrandom.random()\n"
    assert check_source(keras, "x.py") == []


def test_a_local_name_that_shadows_nothing_is_not_a_module() -> None:
    source = "def f(random, time):\n    return random.random() + time.time()\n"
    assert check_source(source, "x.py") == []


def test_selection_takes_ids_and_prefixes() -> None:
    every = {rule.id for rule in RULES}
    assert enabled_rules(["ALL"], []) == every
    assert enabled_rules(["HR00"], ["HR004"]) == {f"HR00{n}" for n in (0, 1, 2, 3, 5, 6, 7, 8, 9)}
    assert enabled_rules(["hr010"], []) == {"HR000", "HR010"}


def test_the_lint_table_is_validated_naming_table_and_key() -> None:
    assert settings_from_table({"select": ["HR01"], "ignore": ["HR012"]}).enabled() == {
        "HR000",
        *(f"HR01{n}" for n in (0, 1, 3, 4, 5, 6, 7, 8, 9)),
    }
    with pytest.raises(ConfigError, match=r"\[tool.harness.lint\] select names 'E501'"):
        settings_from_table({"select": ["E501"]})
    with pytest.raises(ConfigError, match="HR000, which is always on"):
        settings_from_table({"ignore": ["HR000"]})


# -- the command -------------------------------------------------------------------------


@click.group(cls=HarnessGroup)
@click.option("--project", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def group(ctx: click.Context, project: Path | None) -> None:
    """The CLI's group as `harness` builds it, holding only the lint command."""
    ctx.obj = State(project, {}, False, UI(quiet=True))


group.add_command(lint)


def invoke(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(group, list(arguments), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_exit_1_with_findings_0_when_clean_2_on_trouble(tmp_path: Path) -> None:
    code, out, err = invoke("lint", str(FIXTURES / "hr011_os_entropy.py"))
    assert code == 1
    assert out.count("HR011") == 3
    assert "3 finding(s) in 1 file(s)" in err
    code, out, err = invoke("lint", str(FIXTURES / "clean.py"))
    assert (code, out) == (0, "")
    assert "1 file(s) clean" in err
    code, _, err = invoke("lint", str(tmp_path / "missing.py"))
    assert code == 2
    assert "does not exist" in err


def test_a_file_that_cannot_be_parsed_exits_1(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("x = (\n")
    code, out, _ = invoke("lint", str(tmp_path))
    assert code == 1
    assert "HR000" in out


def test_json_lists_files_rules_and_findings() -> None:
    code, out, _ = invoke("lint", "--json", "--select", "HR010,HR011,HR012", str(FIXTURES))
    assert code == 1
    document = json.loads(out)
    assert document["schema"] == "harness.lint/v2"
    assert document["rules"] == ["HR000", "HR010", "HR011", "HR012"]
    assert {f["rule"] for f in document["findings"]} == {"HR010", "HR011", "HR012"}
    first = document["findings"][0]
    assert set(first) == {
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "rule",
        "severity",
        "message",
        "related",
        "fix",
    }
    assert first["end_line"] >= first["line"]
    assert {f["severity"] for f in document["findings"]} == {"error", "warning"}
    assert len(document["files"]) == len(PLANTED) + 1


def test_the_project_table_and_flags_select_rules(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.harness.lint]\nignore = ["HR010"]\npaths = ["src"]\n'
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "exp.py").write_text(
        "import time, os\na = time.time()\nb = os.urandom(2)\nopen('o', 'w').write(f'{a}{b}')\n"
    )
    code, out, _ = invoke("--project", str(tmp_path), "lint")
    assert code == 1
    assert "HR011" in out
    assert "HR010" not in out
    code, out, _ = invoke("--project", str(tmp_path), "lint", "--ignore", "HR010,HR011")
    assert (code, out) == (0, "")
    code, _, err = invoke("--project", str(tmp_path), "lint", "--select", "X1")
    assert code == 2
    assert "--select names 'X1'" in err


def test_bad_lint_configuration_is_trouble(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.harness.lint]\nselect = "HR001"\n')
    code, _, err = invoke("--project", str(tmp_path), "lint", str(FIXTURES / "clean.py"))
    assert code == 2
    assert '[tool.harness.lint] select: expected a list, got "HR001"' in err


def test_rules_lists_every_rule_with_its_scope() -> None:
    code, out, _ = invoke("lint", "--rules", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [rule["id"] for rule in listed] == [rule.id for rule in RULES]
    assert all(rule["scope"] and rule["fix"] for rule in listed)
