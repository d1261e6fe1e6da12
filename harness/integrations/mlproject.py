"""MLflow Projects: run an ``MLproject`` entry point in the pinned image, and write an
``MLproject`` whose entry points are the project's experiments.

Reading (``experiment_from_mlproject``) follows MLflow's project spec: the file is named
``MLproject`` (any case) at the project root; an entry point has a ``command`` template
and ``parameters``, each either a type name or ``{type, default}``; types are ``string``,
``float``, ``path`` and ``uri``; a parameter with no default must be given; values are
shell-quoted into the ``{name}`` placeholders; parameters the entry point does not declare
are appended as ``--name value``; an entry point that is not declared but names a ``.py``
or ``.sh`` file runs it with ``python`` or ``bash``. The command then runs as
``bash -c COMMAND`` inside the image, as MLflow runs it in a shell. Where harness differs,
it is because the run happens in a locked-down container:

* ``float`` values are checked to be numbers (MLflow passes them unchecked).
* ``path`` values are files or folders relative to the project root, mounted read-only as
  inputs (hashed into the record, and checked against DVC when it tracks them) and
  replaced by their path inside the container; remote URIs are refused (there is no
  network to download them).
* Everything the command writes is its output, in ``$HARNESS_OUTPUT`` or in the project
  (a writable view of it: ``./mlruns``, ``./outputs``); MLflow's own file store is kept by
  logical place, its ids, clocks and host metrics recorded but not compared.
* ``seed`` is harness's seed (``--seed``): the placeholder becomes ``"$HARNESS_SEED"``, and
  giving it with ``-P`` is refused so that the record's seed is the one the code used.
  ``output`` becomes ``"$HARNESS_OUTPUT"`` (the project is mounted read-only) unless given.
  Both, and ``inputs``, stay out of the run's parameters, which harness reserves.

Writing (``harness mlproject``) makes one entry point per ``[tool.harness.experiments]``
entry, with ``docker_env.image`` pinned to the image by digest (its registry digest when it
was pushed, else its image ID, which only the engine that holds the image resolves) and
``docker_env.environment`` holding the variables harness sets before a run. Each entry
point starts harness's own runtime inside the image, so that ``mlflow run`` gets the seeds
and determinism switches a ``harness run`` gets; an entry's keyword defaults (read from its
source, not imported) become typed parameters.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness import atomic
from harness.config import Config, Experiment, read_pyproject
from harness.container import INPUTS
from harness.engine import ContainerEngine
from harness.errors import ConfigError, HarnessError
from harness.images.build import LABEL_CONSTRAINTS, LABEL_LOCK
from harness.integrations.dvc import literal_dumper, yaml_module
from harness.runtime.determinism import environment as determinism_environment
from harness.runtime.spec import RESERVED_PARAMETERS

MLPROJECT = "MLproject"
# The outputs of an experiment made from an entry point: every file the run writes.
MLPROJECT_OUTPUTS = "**"
TYPES = ("string", "float", "path", "uri")
# The placeholders harness fills itself (see the module docstring); "$NAME" stays
# unquoted for the shell to expand.
_FROM_HARNESS = {"seed": '"$HARNESS_SEED"', "output": '"$HARNESS_OUTPUT"'}
_SCRIPTS = {".py": "python", ".sh": "bash"}
_INPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# Runs in the image, started by each entry point `harness mlproject` writes: it turns its
# arguments into a run spec and hands it to harness's runtime, as `harness run` does. The
# command is a str.format template (MLflow fills the placeholders), so the script holds no
# braces; it is single-quoted for the shell, so it holds no single quotes.
#   argv: NAME entry=MODULE:FUNCTION | command=JSON-LIST, then KEY:TYPE=VALUE for declared
#   parameters and --KEY VALUE for the ones MLflow appends (read as JSON when they parse).
BOOTSTRAP = """\
import json, os, sys, tempfile
from harness.runtime import runner, spec
def typed(kind, raw):
    if kind == "bool":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind == "str":
        return raw
    if kind == "json":
        return json.loads(raw)
    return dict(int=int, float=float)[kind](raw)
def loose(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return raw
name, target, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
parameters = dict()
while rest:
    item = rest.pop(0)
    if item.startswith("--") and rest:
        parameters[item[2:]] = loose(rest.pop(0))
    else:
        key, _, raw = item.partition("=")
        key, _, kind = key.partition(":")
        parameters[key] = typed(kind or "str", raw)
kind, _, what = target.partition("=")
environ = os.environ.get
pinned_isa = "portable" if environ("ATEN_CPU_CAPABILITY") else "strict"
output = environ("HARNESS_OUTPUT") or os.path.abspath("outputs")
if not (os.access(output, os.W_OK) or os.access(os.path.dirname(output), os.W_OK)):
    output = os.path.join(tempfile.gettempdir(), "outputs")
print("harness runtime: outputs go to", output, file=sys.stderr)
# What the runtime reports for harness goes to a folder of its own, removed at the end.
meta = tempfile.TemporaryDirectory(prefix="harness-meta-")
document = dict(
    schema=spec.SCHEMA,
    run_id=environ("HARNESS_RUN_ID") or environ("MLFLOW_RUN_ID") or name,
    experiment=name,
    entry=what if kind == "entry" else None,
    command=json.loads(what) if kind == "command" else None,
    parameters=parameters,
    seed=int(environ("HARNESS_SEED") or 0),
    profile=environ("HARNESS_PROFILE") or pinned_isa,
    threads=int(environ("OMP_NUM_THREADS") or 1),
    device="cuda" if environ("CUDA_VISIBLE_DEVICES") else "cpu",
    output=output,
    meta=meta.name,
    inputs=json.loads(environ("HARNESS_INPUTS") or "null") or dict(),
    project=os.getcwd(),
)
with meta:
    code = runner.execute(spec.parse(document))
sys.exit(code)
"""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any  # None: the parameter must be given


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    parameters: Mapping[str, Parameter]


@dataclass(frozen=True)
class MLProject:
    path: Path
    name: str | None
    entry_points: Mapping[str, EntryPoint]
    docker_env: Mapping[str, Any] | None

    def entry_point(self, name: str) -> EntryPoint:
        if name in self.entry_points:
            return self.entry_points[name]
        program = _SCRIPTS.get(Path(name).suffix)
        if program is not None and (self.path.parent / name).is_file():
            return EntryPoint(name, f"{program} {shlex.quote(name)}", {})
        known = ", ".join(sorted(self.entry_points)) or "none declared"
        raise ConfigError(
            f"{self.path.name} has no entry point {name!r}",
            f"choose one of: {known}, or name a .py or .sh file of the project",
        )


def find_mlproject(project_root: Path) -> Path:
    """The project's MLproject file; MLflow matches the name in any case."""
    if project_root.is_dir():
        for path in sorted(project_root.iterdir()):
            if path.name.lower() == MLPROJECT.lower() and path.is_file():
                return path
    raise ConfigError(
        f"no {MLPROJECT} file in {project_root}",
        f"write one, or generate it with `harness {MLPROJECT.lower()}`",
    )


def load_mlproject(project_root: Path) -> MLProject:
    """Read and validate the project's MLproject file."""
    path = find_mlproject(project_root)
    yaml = yaml_module()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path.name} is not valid YAML: {error}", "fix its syntax") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name} must be a YAML mapping", "see MLflow's MLproject spec")
    raw_entries = document.get("entry_points") or {}
    if not isinstance(raw_entries, dict):
        raise ConfigError(f"{path.name} entry_points must be a mapping", "see MLflow's spec")
    entries = {
        str(name): _entry_point(path.name, str(name), spec) for name, spec in raw_entries.items()
    }
    docker_env = document.get("docker_env")
    name = document.get("name")
    return MLProject(
        path=path,
        name=str(name) if name is not None else None,
        entry_points=entries,
        docker_env=docker_env if isinstance(docker_env, dict) else None,
    )


def _entry_point(file: str, name: str, spec: object) -> EntryPoint:
    where = f"{file} entry point {name!r}"
    if not isinstance(spec, dict) or not isinstance(spec.get("command"), str):
        raise ConfigError(f"{where} needs a command", 'write command: "python train.py"')
    raw = spec.get("parameters") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} parameters must be a mapping", "see MLflow's spec")
    parameters = {}
    for key, value in raw.items():
        if isinstance(value, str):
            kind, default = value, None
        elif isinstance(value, dict):
            kind, default = value.get("type", "string"), value.get("default")
        else:
            raise ConfigError(
                f"{where} parameter {key!r} must be a type or {{type, default}}",
                "write: alpha: {type: float, default: 0.1}",
            )
        if kind not in TYPES:
            raise ConfigError(
                f"{where} parameter {key!r} has unknown type {kind!r}",
                f"use one of: {', '.join(TYPES)}",
            )
        parameters[str(key)] = Parameter(str(key), kind, default)
    return EntryPoint(name, spec["command"], parameters)


def experiment_from_mlproject(
    project_root: Path, entry_point: str, parameters: Mapping[str, str]
) -> Experiment:
    """The Experiment that runs ``entry_point`` of the project's MLproject with
    ``parameters`` (``-P key=value``), inside the image (see the module docstring)."""
    root = project_root.resolve()
    project = load_mlproject(root)
    entry = project.entry_point(entry_point)
    where = f"{project.path.name} entry point {entry.name!r}"
    if "seed" in parameters and "seed" in entry.parameters:
        raise ConfigError(
            f"{where}: the seed is harness's, and is passed to the command by harness",
            f"drop -P seed={parameters['seed']} and run with --seed {parameters['seed']}",
        )
    missing = [
        name
        for name, spec in entry.parameters.items()
        if name not in parameters and spec.default is None and name not in _FROM_HARNESS
    ]
    if missing:
        raise ConfigError(
            f"{where} needs a value for {', '.join(repr(m) for m in missing)}",
            " ".join(f"-P {m}=..." for m in missing),
        )
    substituted: dict[str, str] = {}
    recorded: dict[str, Any] = {}
    inputs: dict[str, Path] = {}
    for name, spec in entry.parameters.items():
        if name in _FROM_HARNESS and name not in parameters:
            substituted[name] = _FROM_HARNESS[name]
            continue
        raw = str(parameters.get(name, spec.default))
        value = _typed(where, spec, raw, root, inputs)
        substituted[name] = shlex.quote(value)
        if name not in RESERVED_PARAMETERS:
            recorded[name] = raw
    extras = {key: value for key, value in parameters.items() if key not in entry.parameters}
    for key, value in extras.items():
        if key not in RESERVED_PARAMETERS:
            recorded[key] = value
    command = _format(where, entry.command, substituted)
    command = " ".join(
        [command, *(f"--{shlex.quote(k)} {shlex.quote(v)}" for k, v in extras.items())]
    )
    return Experiment(
        name=_experiment_name(entry.name),
        entry=None,
        # MLflow runs an entry point from the project's folder, and its commands count on
        # it (PYTHONPATH=src, ./mlruns): so does harness, whatever the working directory
        # (the workdir variation then cannot break what MLflow itself guarantees).
        command=("bash", "-c", f'cd "$HARNESS_PROJECT" && {command}'),
        parameters=recorded,
        inputs=inputs,
        # An entry point names no outputs: what it writes, in the output folder or next to
        # its code (./mlruns, ./outputs), is its result (see harness.runtime.project_view;
        # an MLflow store is kept by logical place, harness.runtime.mlflow_store).
        outputs={MLPROJECT_OUTPUTS: ""},
    )


def _typed(where: str, spec: Parameter, raw: str, root: Path, inputs: dict[str, Path]) -> str:
    """The value substituted for ``spec`` (before shell quoting)."""
    if spec.type == "float":
        try:
            float(raw)
        except ValueError:
            raise ConfigError(
                f"{where} parameter {spec.name!r} must be a number, not {raw!r}",
                f"-P {spec.name}=0.1",
            ) from None
    elif spec.type == "uri" and not urlparse(raw).scheme:
        raise ConfigError(
            f"{where} parameter {spec.name!r} must be a URI, not {raw!r}",
            f"-P {spec.name}=file:///path or s3://bucket/key",
        )
    elif spec.type == "path":
        if urlparse(raw).scheme not in ("", "file"):
            raise ConfigError(
                f"{where} parameter {spec.name!r} is remote ({raw}); runs have no network",
                "download it into the project and give its local path",
            )
        path = Path(urlparse(raw).path if raw.startswith("file:") else raw)
        path = (path if path.is_absolute() else root / path).resolve()
        if not path.exists():
            raise ConfigError(
                f"{where} parameter {spec.name!r}: {raw} does not exist", "give an existing path"
            )
        if not _INPUT_NAME.fullmatch(spec.name):
            raise ConfigError(
                f"{where} path parameter {spec.name!r} cannot name an input folder",
                "use letters, digits, '.', '_' and '-' in its name",
            )
        inputs[spec.name] = path
        return f"{INPUTS}/{spec.name}"
    return raw


def _format(where: str, template: str, values: Mapping[str, str]) -> str:
    try:
        return template.format(**values)
    except KeyError as error:
        raise ConfigError(
            f"{where} command uses {{{error.args[0]}}}, which is not one of its parameters",
            f"declare {error.args[0]} under parameters",
        ) from None
    except (IndexError, ValueError) as error:
        raise ConfigError(
            f"{where} command is not a valid template: {error}",
            "write literal braces as {{ and }}",
        ) from None


def _experiment_name(entry_point: str) -> str:
    """Entry point names go into run ids and folder names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", entry_point).strip("-") or "mlproject"


# -- writing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PinnedImage:
    reference: str  # what was looked up, e.g. harness:cpu
    pinned: str  # REPO@sha256:... when pushed, else the image ID
    labels: Mapping[str, str]


def render_mlproject(config: Config, image: PinnedImage) -> str:
    """The MLproject text for the project's experiments, running in ``image``."""
    environment = determinism_environment(config.seed, config.profile, config.threads, "cpu")
    environment |= {"HARNESS_SEED": str(config.seed), "HARNESS_PROFILE": config.profile}
    document: dict[str, Any] = {
        "name": _project_name(config),
        "docker_env": {
            "image": image.pinned,
            "environment": [_Pair((key, value)) for key, value in sorted(environment.items())],
        },
        "entry_points": {
            name: _entry_point_of(config, experiment)
            for name, experiment in sorted(config.experiments.items())
        },
    }
    labels = image.labels
    header = [
        "# Written by `harness mlproject` from [tool.harness.experiments] in "
        f"{config.pyproject.name}.",
        f"# docker_env.image is {image.reference} pinned by digest;",
        f"# constraints sha256 {labels.get(LABEL_CONSTRAINTS, 'unknown')}",
        f"# lock sha256        {labels.get(LABEL_LOCK, 'unknown')}",
        "# Run an entry point with `harness run --mlproject NAME -P key=value`, or with",
        "# `mlflow run . -e NAME -P key=value --build-image` (the image then gets a copy of",
        "# the project; outputs go to its outputs/ folder, or /tmp/outputs when that is not",
        "# writable, inside the container: mount a docker_env volume there to keep them).",
    ]
    body = yaml_module().dump(
        document, Dumper=_dumper(), sort_keys=False, default_flow_style=False, width=100
    )
    return "\n".join(header) + "\n" + str(body)


def _entry_point_of(config: Config, experiment: Experiment) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if experiment.entry is not None:
        values.update(_entry_defaults(config.project_root, experiment.entry))
    values.update(experiment.parameters)
    parameters: dict[str, Any] = {}
    arguments = [shlex.quote(BOOTSTRAP), shlex.quote(experiment.name)]
    if experiment.entry is not None:
        arguments.append(shlex.quote(f"entry={experiment.entry}"))
    else:
        arguments.append(shlex.quote(f"command={json.dumps(list(experiment.command or ()))}"))
    arguments = [_escape_braces(argument) for argument in arguments]
    for name, value in values.items():
        kind, mlflow_type, default = _parameter_type(value)
        parameters[name] = {"type": mlflow_type, "default": default}
        arguments.append(f"{_escape_braces(shlex.quote(f'{name}:{kind}'))}={{{name}}}")
    entry: dict[str, Any] = {}
    if parameters:
        entry["parameters"] = parameters
    entry["command"] = "python -P -c " + " ".join(arguments)
    return entry


def _parameter_type(value: object) -> tuple[str, str, Any]:
    """(the runtime's cast, the MLproject type, the default as MLproject writes it)."""
    if isinstance(value, bool):
        return "bool", "string", "true" if value else "false"
    if isinstance(value, int):
        return "int", "float", value
    if isinstance(value, float):
        return "float", "float", value
    if isinstance(value, str):
        return "str", "string", value
    return "json", "string", json.dumps(value, sort_keys=True)


def _entry_defaults(root: Path, entry: str) -> dict[str, Any]:
    """The keyword defaults of an entry's function, read from its source without importing
    it; empty when the source is not in the project or a default is not a literal."""
    module, _, function = entry.partition(":")
    base = root.joinpath(*module.split("."))
    source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            return _literal_defaults(node.args)
    return {}


def _literal_defaults(arguments: ast.arguments) -> dict[str, Any]:
    pairs: list[tuple[ast.arg, ast.expr | None]] = []
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: Sequence[ast.expr | None] = arguments.defaults
    pairs += zip(positional[len(positional) - len(defaults) :], defaults, strict=True)
    pairs += zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    found: dict[str, Any] = {}
    for argument, default in pairs:
        if default is None or argument.arg in RESERVED_PARAMETERS:
            continue
        try:
            value = ast.literal_eval(default)
        except ValueError:
            continue
        if value is not None:  # an optional argument: nothing to type it by
            found[argument.arg] = value
    return found


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _project_name(config: Config) -> str:
    project = read_pyproject(config.pyproject).get("project") or {}
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) and name else config.project_root.name


class _Pair(tuple[str, str]):
    """A docker_env variable, written [NAME, value] as MLflow's documentation shows it."""


def _dumper() -> Any:
    """The literal-block dumper, also writing docker_env pairs as [NAME, value]."""

    class Dumper(literal_dumper()):  # type: ignore[misc]
        pass

    def represent_pair(dumper: Any, pair: _Pair) -> Any:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", list(pair), flow_style=True)

    Dumper.add_representer(_Pair, represent_pair)
    return Dumper


def pin_image(engine: ContainerEngine, reference: str) -> PinnedImage:
    """``reference`` pinned by digest, from the engine (read only)."""
    info = engine.image(reference)
    if info is None:
        raise HarnessError(
            f"the image {reference} is not on the engine", "build it with `harness build`"
        )
    digests = [d for d in info.repo_digests if "@sha256:" in d]
    return PinnedImage(reference, digests[0] if digests else info.id, dict(info.labels))


def write_mlproject(
    config: Config, image: PinnedImage, output: Path, *, force: bool = False
) -> Path:
    """Write the MLproject; an existing file with other content (the project's own, with
    its entry points and comments) is replaced only with ``force``, else refused with the
    difference shown."""
    target = output if output.is_absolute() else config.project_root / output
    text = render_mlproject(config, image)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise ConfigError(f"{target.name} exists and is not a plain file", "move it away first")
    if target.is_file() and not force:
        try:
            current = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read {target.name}: {error}", "check the file") from None
        if current != text:
            raise ConfigError(
                f"{target.name} exists with other content, which writing would replace "
                f"({difference(current, text, target.name)})",
                f"write beside it with --output {MLPROJECT}.harness (or - for stdout), "
                "or pass --force to replace it",
            )
    atomic.write_text(target, text)
    return target


# How much of the difference a refusal shows: enough to see whose entry points go.
_DIFF_LINES = 12


def difference(current: str, wanted: str, name: str) -> str:
    """What writing would do, on one bounded line: the lines it would remove (the user's,
    which matter most), then how many it would add."""
    lines = [
        line
        for line in difflib.unified_diff(
            current.splitlines(), wanted.splitlines(), name, f"{name} (harness)", n=0, lineterm=""
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    removed = [f"- {line[1:].strip()}" for line in lines if line.startswith("-")]
    added = sum(1 for line in lines if line.startswith("+"))
    shown = " | ".join(removed[:_DIFF_LINES])
    more = f" | ... {len(removed) - _DIFF_LINES} more" if len(removed) > _DIFF_LINES else ""
    return f"it would remove: {shown}{more}; and add {added} lines"


__all__ = [
    "MLPROJECT",
    "EntryPoint",
    "MLProject",
    "Parameter",
    "PinnedImage",
    "experiment_from_mlproject",
    "find_mlproject",
    "load_mlproject",
    "pin_image",
    "render_mlproject",
    "write_mlproject",
]
