"""MLflow Projects: MLproject entry points become experiments, as MLflow would run them, and
`harness mlproject` writes entry points that run the experiments through harness's runtime."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness.cli.integrations import mlproject
from harness.cli.main import HarnessGroup, cli
from harness.config import Config, load_config
from harness.engine import ContainerEngine, ImageInfo
from harness.errors import ConfigError
from harness.integrations.mlproject import (
    PinnedImage,
    experiment_from_mlproject,
    load_mlproject,
    render_mlproject,
)
from harness.ui import UI
from tests.unit.fake_docker import EngineDouble

pytest.importorskip("yaml", reason="MLproject files are YAML: PyYAML is a dependency of harness")

IMAGE_ID = "sha256:" + "ab" * 32

MLPROJECT = """\
name: demo
docker_env:
  image: harness:cpu
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      label: {type: string, default: "two words"}
      data: path
      source: {type: uri, default: "s3://bucket/key"}
      seed: {type: float, default: 42}
      output: {type: string, default: out}
    command: >-
      python train.py --alpha {alpha} --label {label} --data {data} --seed {seed}
      --out {output} --from {source}
  plain:
    command: "echo {{literal}} braces"
"""


@pytest.fixture
def mlproject_root(tmp_path: Path) -> Path:
    (tmp_path / "MLproject").write_text(MLPROJECT)
    (tmp_path / "train.py").write_text("print('training')\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.txt").write_text("1 2 3\n")
    return tmp_path


def test_an_entry_point_becomes_a_command_experiment(mlproject_root: Path) -> None:
    experiment = experiment_from_mlproject(
        mlproject_root, "main", {"data": "data", "label": "it's", "extra": "x y"}
    )
    assert experiment.name == "main"
    assert experiment.entry is None
    assert experiment.command == (
        "bash",
        "-c",
        # From the project's folder, as MLflow runs an entry point.
        'cd "$HARNESS_PROJECT" && '
        "python train.py --alpha 0.5 --label 'it'\"'\"'s' --data /harness/inputs/data "
        '--seed "$HARNESS_SEED" --out "$HARNESS_OUTPUT" --from s3://bucket/key --extra \'x y\'',
    )
    # The path parameter is mounted read-only and hashed like any input.
    assert experiment.inputs == {"data": (mlproject_root / "data").resolve()}
    # seed and output are harness's own; the rest is recorded as given.
    assert experiment.parameters == {
        "alpha": "0.5",
        "label": "it's",
        "data": "data",
        "source": "s3://bucket/key",
        "extra": "x y",
    }


def test_literal_braces_and_script_entry_points(mlproject_root: Path) -> None:
    assert experiment_from_mlproject(mlproject_root, "plain", {}).command == (
        "bash",
        "-c",
        'cd "$HARNESS_PROJECT" && echo {literal} braces',
    )
    script = experiment_from_mlproject(mlproject_root, "train.py", {"epochs": "3"})
    assert script.name == "train.py"
    assert script.command == ("bash", "-c", 'cd "$HARNESS_PROJECT" && python train.py --epochs 3')


def test_the_file_name_is_matched_in_any_case(mlproject_root: Path) -> None:
    (mlproject_root / "MLproject").rename(mlproject_root / "mlproject")
    assert set(load_mlproject(mlproject_root).entry_points) == {"main", "plain"}


@pytest.mark.parametrize(
    ("entry", "parameters", "message"),
    [
        ("main", {}, r"needs a value for 'data' \(fix: -P data=\.\.\.\)"),
        ("main", {"data": "data", "alpha": "fast"}, "'alpha' must be a number, not 'fast'"),
        ("main", {"data": "missing"}, "'data': missing does not exist"),
        ("main", {"data": "s3://bucket/data"}, "is remote .* runs have no network"),
        ("main", {"data": "data", "source": "relative/path"}, "'source' must be a URI"),
        ("main", {"data": "data", "seed": "3"}, r"the seed is harness's.*--seed 3"),
        ("nope", {}, r"has no entry point 'nope' \(fix: choose one of: main, plain"),
    ],
)
def test_bad_parameters_are_refused_naming_them(
    mlproject_root: Path, entry: str, parameters: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        experiment_from_mlproject(mlproject_root, entry, parameters)
    assert re.search(message, caught.value.one_line())


def test_a_bad_mlproject_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no MLproject file"):
        experiment_from_mlproject(tmp_path, "main", {})
    (tmp_path / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters: {a: {type: int}}\n    command: x\n"
    )
    with pytest.raises(ConfigError, match="unknown type 'int'"):
        experiment_from_mlproject(tmp_path, "main", {})
    (tmp_path / "MLproject").write_text("entry_points:\n  main:\n    command: 'x {b}'\n")
    with pytest.raises(ConfigError, match=r"uses \{b\}, which is not one of its parameters"):
        experiment_from_mlproject(tmp_path, "main", {})


def test_commands_match_what_mlflow_itself_computes(tmp_path: Path) -> None:
    projects = pytest.importorskip("mlflow.projects._project_spec")
    (tmp_path / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n"
        "    parameters: {a: float, b: {type: string, default: 'x y'}, c: {default: 3}}\n"
        "    command: 'python t.py {a} --b={b} -c {c}'\n"
    )
    given = {"a": "0.25", "b": "$HOME; rm", "d": "it's"}
    ours = experiment_from_mlproject(tmp_path, "main", given).command
    theirs = projects.load_project(str(tmp_path)).get_entry_point("main")
    assert ours == ("bash", "-c", f'cd "$HARNESS_PROJECT" && {theirs.compute_command(given, None)}')


# -- writing an MLproject ----------------------------------------------------------------

DEMO = '''\
"""An entry whose keyword defaults become MLproject parameters."""

import json
from pathlib import Path


def train(output: Path, seed: int, inputs: dict, steps: int = 3, rate: float = 0.5,
          name: str = "a b", flag: bool = False, shape: tuple = (2, 3), *, note=None, **extra):
    values = dict(steps=steps, rate=rate, name=name, flag=flag, shape=list(shape), seed=seed)
    values.update(extra)
    (output / "args.json").write_text(json.dumps(values, sort_keys=True))
    return values
'''

DEMO_PYPROJECT = """
[tool.harness.experiments.demo]
entry = "demo:train"
parameters = { steps = 4 }

[tool.harness.experiments.tool]
command = ["python", "tool.py", "{x}"]
parameters = { mode = "fast" }
"""


@pytest.fixture
def demo_project(project: Path) -> Config:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + DEMO_PYPROJECT)
    (project / "demo.py").write_text(DEMO)
    return load_config(project, environ={})


def test_the_written_mlproject_pins_the_image_and_declares_typed_parameters(
    demo_project: Config,
) -> None:
    text = render_mlproject(demo_project, PinnedImage("demo:cpu", "demo@sha256:" + "12" * 32, {}))
    assert text.startswith("# Written by `harness mlproject`")
    (demo_project.project_root / "MLproject").write_text(text)
    project = load_mlproject(demo_project.project_root)
    assert project.name == "demo"
    assert project.docker_env is not None
    assert project.docker_env["image"] == "demo@sha256:" + "12" * 32
    assert ["PYTHONHASHSEED", "0"] in project.docker_env["environment"]
    demo = project.entry_points["demo"]
    assert {name: (p.type, p.default) for name, p in demo.parameters.items()} == {
        "steps": ("float", 4),
        "rate": ("float", 0.5),
        "name": ("string", "a b"),
        "flag": ("string", "false"),
        "shape": ("string", "[2, 3]"),
    }
    assert set(project.entry_points["tool"].parameters) == {"mode"}


def test_a_written_entry_point_runs_the_entry_through_harnesss_runtime(
    demo_project: Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = demo_project.project_root
    (root / "MLproject").write_text(
        render_mlproject(demo_project, PinnedImage("demo:cpu", IMAGE_ID, {}))
    )
    experiment = experiment_from_mlproject(
        root, "demo", {"rate": "0.25", "flag": "true", "epochs": "7"}
    )
    output = tmp_path_factory.mktemp("output")
    temporary = tmp_path_factory.mktemp("tmp")
    assert experiment.command is not None
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HARNESS_OUTPUT": str(output),
        "HARNESS_SEED": "11",
        "TMPDIR": str(temporary),
    }
    result = subprocess.run(
        list(experiment.command),
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((output / "args.json").read_text()) == {
        "steps": 4,
        "rate": 0.25,
        "name": "a b",
        "flag": True,
        "shape": [2, 3],
        "seed": 11,
        "epochs": 7,
    }
    assert list(temporary.iterdir()) == []  # the runtime's report folder went with the run


@dataclass
class FakeEngine(EngineDouble):
    images: dict[str, ImageInfo] = field(default_factory=dict)

    def image(self, reference: str) -> ImageInfo | None:
        return self.images.get(reference)


@dataclass
class FakeState:
    """What the CLI's State offers the command: the configuration and the engine."""

    project: Path
    engine_: FakeEngine
    ui: UI = field(default_factory=lambda: UI(quiet=True))

    def config(self, **overrides: str | None) -> Config:
        return load_config(self.project, environ={})

    def engine(self, config: Config) -> ContainerEngine:
        return self.engine_


def invoke(state: FakeState, *arguments: str) -> tuple[int, str, str]:
    @click.group(cls=HarnessGroup)
    @click.pass_context
    def group(ctx: click.Context) -> None:
        ctx.obj = state

    group.add_command(mlproject)
    result = CliRunner().invoke(group, ["mlproject", *arguments], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_the_command_writes_the_mlproject_with_the_repo_digest(demo_project: Config) -> None:
    info = ImageInfo(
        id=IMAGE_ID,
        tags=("demo:cpu",),
        labels={"io.harness.constraints.sha256": "c" * 64},
        size=1,
        repo_digests=("registry.example/demo@sha256:" + "34" * 32,),
    )
    state = FakeState(demo_project.project_root, FakeEngine({"demo:cpu": info}))
    code, out, _ = invoke(state)
    assert code == 0
    written = demo_project.project_root / "MLproject"
    assert f"wrote {written}" in out
    text = written.read_text()
    assert "image: registry.example/demo@sha256:" + "34" * 32 in text
    assert "c" * 64 in text
    code, out, _ = invoke(state, "--output", "-")
    assert (code, out) == (0, text)


def test_an_image_never_pushed_is_pinned_by_its_id(demo_project: Config) -> None:
    info = ImageInfo(id=IMAGE_ID, tags=("other:1",), labels={}, size=1)
    state = FakeState(demo_project.project_root, FakeEngine({"other:1": info}))
    code, _, _ = invoke(state, "--image", "other:1", "--output", "ml/MLproject")
    assert code == 0
    assert f"image: {IMAGE_ID}" in (demo_project.project_root / "ml" / "MLproject").read_text()


def test_a_missing_image_is_trouble_with_the_fix(demo_project: Config) -> None:
    code, _, err = invoke(FakeState(demo_project.project_root, FakeEngine()))
    assert code == 2
    assert "the image demo:cpu is not on the engine (fix: build it with `harness build`)" in err


PROJECT_S_OWN = """\
# https://mlflow.org/docs/latest/projects.html
name: bikes
entry_points:
  main:
    parameters:
      conf_file: path
    command: "PYTHONPATH=src python -m bikes {conf_file}"
"""


def test_the_project_s_own_mlproject_is_never_overwritten_without_force(
    demo_project: Config,
) -> None:
    info = ImageInfo(id=IMAGE_ID, tags=("demo:cpu",), labels={}, size=1)
    state = FakeState(demo_project.project_root, FakeEngine({"demo:cpu": info}))
    own = demo_project.project_root / "MLproject"
    own.write_text(PROJECT_S_OWN)
    code, _, err = invoke(state)
    assert code == 2
    assert own.read_text() == PROJECT_S_OWN
    # The refusal shows what would go (the project's entry point) and the ways out.
    assert "MLproject exists with other content" in err
    assert '- command: "PYTHONPATH=src python -m bikes {conf_file}"' in err
    assert "--output MLproject.harness" in err
    assert "--force" in err
    code, _, _ = invoke(state, "--output", "MLproject.harness")
    assert code == 0
    assert own.read_text() == PROJECT_S_OWN
    code, _, _ = invoke(state, "--force")
    assert code == 0
    assert own.read_text() == (demo_project.project_root / "MLproject.harness").read_text()
    # Writing the same content again needs no force.
    assert invoke(state)[0] == 0


def test_verify_takes_an_mlproject_entry_as_run_does(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "bikes"\nversion = "0"\n')
    (tmp_path / "MLproject").write_text(PROJECT_S_OWN)
    runner = CliRunner()
    for command in ("run", "verify"):
        shown = runner.invoke(cli, [command, "--help"], catch_exceptions=False).stdout
        assert "--mlproject ENTRY" in shown and "-P, --param KEY=VALUE" in shown
        both = runner.invoke(
            cli,
            ["--project", str(tmp_path), command, "main", "--mlproject", "main"],
            catch_exceptions=False,
        )
        assert both.exit_code == 2
        assert "give either experiment names or --mlproject" in both.stderr
        missing = runner.invoke(
            cli,
            ["--project", str(tmp_path), command, "--mlproject", "main"],
            catch_exceptions=False,
        )
        assert missing.exit_code == 2
        assert "needs a value for 'conf_file'" in missing.stderr


def test_an_entry_point_s_outputs_are_everything_it_writes(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(PROJECT_S_OWN)
    (tmp_path / "confs").mkdir()
    (tmp_path / "confs" / "training.yaml").write_text("seed: 42\n")
    experiment = experiment_from_mlproject(tmp_path, "main", {"conf_file": "confs/training.yaml"})
    assert experiment.outputs == {"**": ""}
    assert experiment.inputs == {"conf_file": (tmp_path / "confs" / "training.yaml")}
