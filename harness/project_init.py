"""`harness init`: make an existing repository a harness project, changing only what is missing.

People adopt harness in a repository that already has its own pyproject.toml, layout and
habits, so init adds and never rewrites: ``[tool.harness]`` with the experiments named on
the command line (``NAME=module:function``), else the repository's training scripts as
commands (:mod:`harness.entry_scripts`), else a small stub experiment for a first look;
the ``experiments`` dependency group when there is none (the project's declared
dependencies and what its code imports that they lack, else those its code imports:
:mod:`harness.imported_dependencies`);
``.harness/`` in ``.gitignore``; and, when asked, harness's Dockerfiles to customise and
the GitHub workflow. pyproject.toml is edited with tomlkit, so the user's comments, order
and formatting stay as they were.

Running it twice changes nothing the second time. A file or declaration that exists with
other content is refused, naming it, unless ``--force``; nothing is written before every
step is known to be possible, so a refusal leaves the project as it was.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.requirements import Requirement
from tomlkit.exceptions import TOMLKitError

from harness import atomic, declared_dependencies, entry_scripts, project_code, project_python
from harness.config import PYPROJECT, image_name, load_config
from harness.config_schema import PLAIN_NAME_PATTERN
from harness.errors import ConfigError
from harness.fleet import ci_github
from harness.images.dockerfiles import (
    BUILTIN,
    HARNESS_PREFIX,
    builtin_text,
    first_from,
    meant_for_harness,
)
from harness.images.unpinned_imports import unpinned
from harness.integrations.mlproject import load_mlproject

GITIGNORE = ".gitignore"
IGNORED = ".harness/"
STUB_EXPERIMENT = "example"
STUB_MODULE = "harness_example"
STUB_ENTRY = f"{STUB_MODULE}:train"
STUB_OUTPUT = "result.json"
# Scripts named in one line at most; the rest are counted.
MOST_SHOWN = 5
_NAME = re.compile(PLAIN_NAME_PATTERN)
_ENTRY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

STUB = '''\
"""An example harness experiment: replace it with your own, or point an entry at yours.

harness calls the entry with keyword arguments: output (a folder to write artifacts into),
seed (Python, NumPy, torch and TensorFlow are already seeded with it), inputs (name ->
path of each declared input, read-only) and the experiment's parameters. What it returns
becomes the run's metrics.
"""

import json
import random
from pathlib import Path


def train(output: Path, seed: int, inputs: dict[str, Path], steps: int = 100) -> dict[str, float]:
    draws = [random.random() for _ in range(steps)]
    result = {"mean": sum(draws) / steps, "seed": seed}
    (output / "result.json").write_text(json.dumps(result, sort_keys=True) + "\\n")
    return {"mean": result["mean"]}
'''


@dataclass(frozen=True)
class InitRequest:
    """What `harness init` was asked to add."""

    # (name, module:function) of each experiment named on the command line.
    experiments: tuple[tuple[str, str], ...] = ()
    dockerfiles: bool = False
    ci: bool = False
    force: bool = False


@dataclass(frozen=True)
class Change:
    """One thing init did, or found already done."""

    path: str
    action: str  # "wrote", "updated", "kept", or "skipped" (a declaration not taken)
    detail: str

    def line(self) -> str:
        return f"{self.action:<7} {self.path}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "action": self.action, "detail": self.detail}


@dataclass
class _Pending:
    """A file to write once every step is known to be possible."""

    path: Path
    text: str


def parse_experiment(text: str) -> tuple[str, str]:
    """``NAME=module:function`` from the command line, validated."""
    name, equals, entry = text.partition("=")
    if not equals or not _NAME.search(name) or not _ENTRY.fullmatch(entry):
        raise ConfigError(
            f"{text!r} is not NAME=module:function",
            "write it as train=mypackage.train:main",
        )
    return name, entry


def find_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` with a pyproject.toml, else ``start``."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / PYPROJECT).is_file():
            return folder
    return here


def init_project(root: Path, request: InitRequest) -> list[Change]:
    """Add what is missing to the project at ``root``; returns what was done, in order."""
    changes: list[Change] = []
    pending: list[_Pending] = []
    document, created = _read_pyproject(root)
    left_out: list[str] = []
    pyproject_changes = _edit_pyproject(
        document, root, request, created, left_out, code=_LazyCode(root)
    )
    own_cpu_dockerfile = _harness_dockerfile_beside_deployment(document, root, request)
    if own_cpu_dockerfile is not None:
        pyproject_changes.append(own_cpu_dockerfile)
    if pyproject_changes:
        pending.append(_Pending(root / PYPROJECT, tomlkit.dumps(document)))
        action = "wrote" if created else "updated"
        changes += [Change(PYPROJECT, action, detail) for detail in pyproject_changes]
        changes += [Change(PYPROJECT, "skipped", line) for line in left_out]
    else:
        changes.append(Change(PYPROJECT, "kept", "[tool.harness] and the experiments group"))
    python_choice = _python_choice(document, root)
    if python_choice is not None:
        changes.append(python_choice)
    entries = mlproject_entries(root)
    if entries:
        changes.append(
            Change(
                entries[0],
                "kept",
                f"entry points {', '.join(entries[1:])}: each runs as an experiment "
                f"(harness run --mlproject {entries[1]})",
            )
        )
    experiments = _table(_table(_table(document, "tool"), "harness"), "experiments")
    if experiments.get(STUB_EXPERIMENT, {}).get("entry") == STUB_ENTRY:
        _plan_file(
            root,
            f"{STUB_MODULE}.py",
            STUB,
            "the example experiment",
            request,
            changes=changes,
            pending=pending,
        )
    _plan_gitignore(root, changes, pending)
    if request.dockerfiles:
        for device, builtin in BUILTIN.items():
            text = builtin_text(device).decode()
            name = _copy_name(document, device, builtin)
            what = "harness's Dockerfile, to customise (it now wins over the built-in one)"
            _plan_file(root, name, text, what, request, changes=changes, pending=pending)
    if request.ci:
        harness_table = document.unwrap().get("tool", {}).get("harness", {})
        settings = ci_github.settings_from_table(
            harness_table.get("ci", {}),
            _python_of(document),
            depends_on_harness=ci_github.depends_on_harness(document.unwrap()),
        )
        _plan_file(
            root,
            ci_github.DEFAULT_OUTPUT.as_posix(),
            ci_github.render(settings),
            "the GitHub workflow (`harness ci github --check` keeps it current)",
            request,
            changes=changes,
            pending=pending,
        )
    if pyproject_changes:
        _check_loads(tomlkit.dumps(document))
    for item in pending:
        item.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(item.path, item.text)
    return changes


# Where `init --dockerfiles` copies harness's CPU Dockerfile when the project's Dockerfile
# is its deployment file, which stays as it is.
HARNESS_COPY = "Dockerfile.harness"


def _declared_dockerfile(document: tomlkit.TOMLDocument, variant: str) -> str | None:
    tool = document.get("tool", {})
    harness = tool.get("harness", {}) if hasattr(tool, "get") else {}
    variants = harness.get("variants", {}) if hasattr(harness, "get") else {}
    table = variants.get(variant, {}) if hasattr(variants, "get") else {}
    found = table.get("dockerfile") if hasattr(table, "get") else None
    return str(found) if found is not None else None


def _harness_dockerfile_beside_deployment(
    document: tomlkit.TOMLDocument, root: Path, request: InitRequest
) -> str | None:
    """A project Dockerfile not written for harness (its deployment file, FROM a registry
    image) would stop the cpu variant's build: name harness's own for it instead (or,
    with --dockerfiles, the copy written beside it). Returns the line saying so."""
    path = root / BUILTIN["cpu"]
    declared = _declared_dockerfile(document, "cpu")
    # A name init set before (harness's own) gives way to the copy --dockerfiles writes.
    if declared is not None and not (request.dockerfiles and declared.startswith(HARNESS_PREFIX)):
        return None
    if not path.is_file():
        return None
    try:
        text = path.read_bytes()
    except OSError:
        return None
    if meant_for_harness(text):
        return None
    chosen = HARNESS_COPY if request.dockerfiles else f"{HARNESS_PREFIX}{BUILTIN['cpu']}"
    variants = _table(_table(_table(document, "tool"), "harness"), "variants", super_table=True)
    _table(variants, "cpu")["dockerfile"] = chosen
    return (
        f"[tool.harness.variants.cpu] dockerfile = {chosen!r}: {BUILTIN['cpu']} is not "
        f"written for harness (FROM {first_from(text)}, none of its build arguments), so it "
        "stays the project's deployment Dockerfile and experiments build with harness's"
    )


def _copy_name(document: tomlkit.TOMLDocument, device: str, builtin: str) -> str:
    """Where `init --dockerfiles` writes harness's Dockerfile of ``device``."""
    return HARNESS_COPY if _declared_dockerfile(document, device) == HARNESS_COPY else builtin


def _python_choice(document: tomlkit.TOMLDocument, root: Path) -> Change | None:
    """What Python the images get and why, so a project on 3.14 sees it is not given 3.11;
    None for a project that names no Python (it gets the default, as before)."""
    configured = _python_setting(document)
    asked = project_python.asked(root)
    if configured is not None:
        python, why = configured, "python in [tool.harness]"
        if asked is not None and asked.python != configured:
            why += f", though the project asks for {asked.python} ({asked.source})"
    elif asked is not None:
        python, why = asked.python, f"from {asked.source}"
    else:
        return None
    suite = project_python.suite_for(python)
    base = (
        f"a Debian {suite} base"
        if suite
        else f"no Debian release has it: {project_python.unavailable_fix(python)}"
    )
    return Change(PYPROJECT, "kept", f"images get Python {python} ({why}); {base}")


def _python_setting(document: tomlkit.TOMLDocument) -> str | None:
    tool = document.get("tool", {})
    harness = tool.get("harness", {}) if hasattr(tool, "get") else {}
    python = harness.get("python") if hasattr(harness, "get") else None
    return str(python) if python else None


def _check_loads(text: str) -> None:
    """The edited pyproject.toml must be one every other command reads: tried on a copy
    before anything is written, so a project whose table init cannot complete is left as
    it was."""
    with tempfile.TemporaryDirectory(prefix="harness-init-") as folder:
        (Path(folder) / PYPROJECT).write_text(text, encoding="utf-8")
        load_config(Path(folder), environ={})


def _read_pyproject(root: Path) -> tuple[tomlkit.TOMLDocument, bool]:
    path = root / PYPROJECT
    if not path.is_file():
        document = tomlkit.document()
        project = tomlkit.table()
        project["name"] = _project_name(root.name)
        project["version"] = "0"
        project["requires-python"] = ">=3.11"
        document["project"] = project
        return document, True
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8")), False
    except (OSError, UnicodeDecodeError, TOMLKitError) as error:
        raise ConfigError(f"cannot read {PYPROJECT}: {error}", "fix its syntax first") from None


@dataclass
class _LazyCode:
    """The project's code, read once and only when init needs it (a dependency group
    to propose, or no experiment); the files not read are said once."""

    root: Path
    _code: project_code.ProjectCode | None = None

    def get(self, notes: list[str]) -> project_code.ProjectCode:
        if self._code is None:
            self._code = project_code.read(self.root)
            if self._code.unread_line():
                notes.append(self._code.unread_line())
            if self._code.notebooks_line():
                notes.append(self._code.notebooks_line())
        return self._code


def _edit_pyproject(
    document: tomlkit.TOMLDocument,
    root: Path,
    request: InitRequest,
    created: bool,
    notes: list[str] | None = None,
    *,
    code: _LazyCode | None = None,
) -> list[str]:
    """Add what is missing to ``document``; returns a line per addition (and adds to
    ``notes`` a line per declaration it left out)."""
    notes = [] if notes is None else notes
    lazy_code = _LazyCode(root) if code is None else code
    done: list[str] = []
    tool = _table(document, "tool", super_table=True)
    harness = _table(tool, "harness")
    if "image" not in harness:
        name = _image_name(_project_field(document, "name") or root.name)
        harness["image"] = name
        done.append(f"[tool.harness] image = {name!r}")
    group = str(harness.get("dependency-group", "experiments"))
    groups = _table(document, "dependency-groups")
    if group not in groups:
        done += _propose_group(document, root, harness, groups, group, notes=notes, code=lazy_code)
    experiments = _table(harness, "experiments", super_table=True)
    wanted = list(request.experiments)
    if not wanted and not experiments and not mlproject_entries(root):
        # An MLproject's entry points are experiments already (run --mlproject ENTRY); a
        # repository's training scripts are its experiments; elsewhere a stub shows what
        # an experiment looks like.
        project = lazy_code.get(notes)
        found = project.scripts()
        if found.chosen:
            done += _declare_scripts(experiments, found, project.logs_tensorboard_events(), notes)
        else:
            wanted = [(STUB_EXPERIMENT, STUB_ENTRY)]
            notes += _scripts_beside_the_example(found)
    for name, entry in wanted:
        current = experiments.get(name)
        if current is not None and current.get("entry") == entry:
            continue
        if current is not None and not request.force:
            raise ConfigError(
                f"[tool.harness.experiments.{name}] already exists with "
                f"{_describe(current)}, not entry {entry!r}",
                "choose another name, or pass --force to replace it",
            )
        table = tomlkit.table()
        table["entry"] = entry
        if entry == STUB_ENTRY:
            parameters = tomlkit.inline_table()
            parameters["steps"] = 100
            table["parameters"] = parameters
            table["outputs"] = [STUB_OUTPUT]
        experiments[name] = table
        done.append(f"[tool.harness.experiments.{name}] entry = {entry!r}")
    if request.ci:
        done += _ci_install(document, harness)
    if created:
        done.insert(0, "a new pyproject.toml ([project] with name and version)")
    return done


def _propose_group(
    document: tomlkit.TOMLDocument,
    root: Path,
    harness: Any,
    groups: Any,
    group: str,
    *,
    notes: list[str],
    code: _LazyCode,
) -> list[str]:
    """The experiments group from what the repository declares (pyproject, requirements
    files, setup.cfg, setup.py, environment.yml) with what its code imports that no
    declaration provides or, when it declares nothing, from what its code imports; and,
    when it needs torch or TensorFlow, the CPU and CUDA variants; returns a line per
    addition."""
    project: Any = document.get("project")
    declared = declared_dependencies.read(
        root, project.unwrap() if hasattr(project, "unwrap") else {}
    )
    notes += declared.skipped
    if declared.requirements:
        shown = "; ".join(
            f"{', '.join(names)} from {source}" for source, names in declared.by_source()
        )
        # A requirements file drifts from the code: what the code imports and no
        # declaration provides would fail the first run, one missing package at a time.
        undeclared = unpinned(
            code.get(notes).dependencies(),
            (Requirement(requirement).name for requirement, _ in declared.requirements),
        )
        for imported in undeclared:
            declared.add(imported.distribution, "imports")
        if undeclared:
            shown += "; imported but declared nowhere: " + ", ".join(
                imported.shown() for imported in undeclared
            )
        line = f"the project's dependencies ({shown})"
    else:
        inferred = code.get(notes).dependencies()
        for imported in inferred.dependencies:
            declared.add(imported.distribution, "imports")
        if inferred.left_out:
            notes.append(inferred.describe_left_out())
        line = (
            "inferred from the imports, as the project declares no dependencies (check "
            f"them): {inferred.describe()}"
            if inferred.dependencies
            else "the project's dependencies (none found: none declared, none imported)"
        )
    dependencies = [requirement for requirement, _ in declared.requirements]
    array = tomlkit.array()
    array.extend(dependencies)
    array.multiline(len(dependencies) > 2)
    groups[group] = array
    done = [f"[dependency-groups] {group} = {line}"]
    frameworks = declared.frameworks()
    variants = _table(harness, "variants", super_table=True)
    if not frameworks or "cpu" in variants or "cuda" in variants:
        return done
    named = " and ".join(frameworks)
    cpu = tomlkit.table()
    cpu.add(tomlkit.comment(f"{named}: `harness lock` takes the CPU build the wheel sources have"))
    cpu.add(tomlkit.comment("(find-links, HARNESS_FIND_LINKS or index-url; it names them if none)"))
    cuda = tomlkit.table()
    cuda.add(
        tomlkit.comment(f"{named}: the CUDA build from the index, at the cpu variant's version")
    )
    variants["cpu"] = cpu
    variants["cuda"] = cuda
    done.append(
        f"[tool.harness.variants.cpu] and [tool.harness.variants.cuda]: {named} found; "
        "`harness lock` takes the CPU build for cpu and the CUDA build for cuda"
    )
    return done


# TensorBoard's event files: named for the time and host they were written on, so never
# the same twice; logs, not results.
EVENT_FILES = "events.out.tfevents.*"
# Where a script that writes no file has its printed results kept, compared and certified.
PRINTED_RESULTS = "stdout.txt"


def _declare_scripts(
    experiments: Any,
    found: entry_scripts.Found,
    logs_events: bool,
    notes: list[str],
) -> list[str]:
    """Declare each chosen script as a ``command`` experiment (setting TensorBoard's event
    files aside when the code writes them); returns a line each."""
    done = []
    for script in found.chosen:
        table = tomlkit.table()
        table["command"] = script.command()
        line = (
            f"[tool.harness.experiments.{script.name}] command = {script.command()!r}: "
            f"{script.path} looks like a training script ({script.why})"
        )
        if logs_events:
            table["exclude"] = [EVENT_FILES]
            line += f"; exclude = [{EVENT_FILES!r}], as TensorBoard's event files are logs"
        if not script.writes_files:
            table["stdout"] = PRINTED_RESULTS
            line += (
                f"; stdout = {PRINTED_RESULTS!r}, as it writes no file: what it prints is "
                "its result"
            )
        options = " or ".join(script.step_options[:2])
        line += (
            f"; add arguments to the command to make a run short ({options} N, say)"
            if options
            else "; add arguments to the command (a step limit, say) to make a run short"
        )
        experiments[script.name] = table
        done.append(line)
    if found.others:
        notes.append(
            f"scripts {', '.join(found.others)} (not declared: declare any that is an "
            'experiment the same way, command = ["python", "SCRIPT.py"])'
        )
    return done


def _scripts_beside_the_example(found: entry_scripts.Found) -> list[str]:
    """A line naming the scripts found but not declared when the example is written, so
    the user can declare the one that trains; none when no script was found."""
    scripts = [*found.others, *found.deeper]
    if not scripts:
        return []
    shown = ", ".join(scripts[:MOST_SHOWN])
    if len(scripts) > MOST_SHOWN:
        shown += f" and {len(scripts) - MOST_SHOWN} more"
    why = (
        "none in the root is named for training or makes a training call"
        if found.others
        else "none lies in the root"
    )
    return [
        f"scripts {shown}: {why}, so none was declared; declare the one that trains as "
        '[tool.harness.experiments.NAME] command = ["python", "PATH.py"] in place of the example'
    ]


def _ci_install(document: tomlkit.TOMLDocument, harness: Any) -> list[str]:
    """How the workflow's runners get harness, when the project's lock does not hold it:
    the requirement this harness was installed from (a git URL at its commit)."""
    if ci_github.depends_on_harness(document.unwrap()) or "install" in harness.get("ci", {}):
        return []
    spec = ci_github.installed_requirement()
    if spec is None:
        raise ConfigError(
            "--ci: harness is not one of this project's dependencies, and this harness was "
            "installed from a local file, which a CI runner cannot install",
            'add install = "git+https://HOST/OWNER/harness@TAG" under [tool.harness.ci] '
            "(or harness to the project's dependencies), then run harness init --ci again",
        )
    _table(harness, "ci")["install"] = spec
    return [f"[tool.harness.ci] install = {spec!r} (how CI runners get harness)"]


def _table(parent: Any, key: str, *, super_table: bool = False) -> Any:
    """``parent[key]`` as a table, made when missing; a non-table there is refused."""
    if key not in parent:
        parent[key] = tomlkit.table(is_super_table=super_table)
    found = parent[key]
    if not hasattr(found, "keys"):
        raise ConfigError(
            f"{PYPROJECT} has {key} = {found!r}, not a table", f"make [{key}] a table"
        )
    return found


def _project_field(document: tomlkit.TOMLDocument, key: str) -> Any:
    project: Any = document.get("project")
    return project.get(key) if hasattr(project, "get") else None


def _describe(table: Any) -> str:
    if not hasattr(table, "get"):
        return repr(table)
    if table.get("entry") is not None:
        return f"entry {str(table.get('entry'))!r}"
    if table.get("command") is not None:
        return f"command {list(table.get('command'))!r}"
    return "other settings"


def _python_of(document: tomlkit.TOMLDocument) -> str:
    tool = document.get("tool", {})
    harness = tool.get("harness", {}) if hasattr(tool, "get") else {}
    python = harness.get("python") if hasattr(harness, "get") else None
    return str(python) if python else ci_github.DEFAULT_PYTHON


def _project_name(folder: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder).strip("-._")
    return name or "project"


def _image_name(name: str) -> str:
    """An image repository name, as the configuration's default makes it (so that init
    writes down the name the project's images already have)."""
    return image_name(name) or "project"


def _plan_file(
    root: Path,
    relative: str,
    text: str,
    what: str,
    request: InitRequest,
    *,
    changes: list[Change],
    pending: list[_Pending],
) -> None:
    path = root / relative
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConfigError(f"{relative} exists and is not a plain file", "move it away first")
    if path.is_file():
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read {relative}: {error}", "check the file") from None
        if current == text:
            changes.append(Change(relative, "kept", what))
            return
        if not request.force:
            raise ConfigError(
                f"{relative} exists with other content",
                "keep it (leave out the flag that writes it), or pass --force to overwrite it",
            )
        changes.append(Change(relative, "updated", what))
    else:
        changes.append(Change(relative, "wrote", what))
    pending.append(_Pending(path, text))


def _plan_gitignore(root: Path, changes: list[Change], pending: list[_Pending]) -> None:
    path = root / GITIGNORE
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    patterns = {line.strip().rstrip("/").lstrip("/") for line in current.splitlines()}
    if ".harness" in patterns:
        changes.append(Change(GITIGNORE, "kept", f"{IGNORED} is ignored"))
        return
    separator = "" if not current or current.endswith("\n") else "\n"
    comment = "# harness's runs, verifications and certificates\n"
    pending.append(_Pending(path, f"{current}{separator}{comment}{IGNORED}\n"))
    changes.append(Change(GITIGNORE, "updated" if current else "wrote", f"ignores {IGNORED}"))


def mlproject_entries(root: Path) -> list[str]:
    """The MLproject file's name, then its entry points' names (``main`` first); [] when
    the project has no readable MLproject with entry points."""
    try:
        mlproject = load_mlproject(root)
    except ConfigError:
        return []
    names = sorted(mlproject.entry_points, key=lambda name: (name != "main", name))
    return [mlproject.path.name, *names] if names else []


def summary(changes: Sequence[Change], root: Path) -> list[str]:
    """What init did, a line each, then the next commands."""
    lines = [change.line() for change in changes]
    configured = load_config(root).experiments
    entries = mlproject_entries(root)
    if entries and not configured:
        lines.append(
            f"next: harness lock && harness build && harness verify --mlproject {entries[1]} "
            "(then harness certify)"
        )
    else:
        lines.append(
            "next: harness lock && harness build && harness run "
            "(then harness verify, harness certify)"
        )
    return lines


__all__ = [
    "Change",
    "InitRequest",
    "find_root",
    "init_project",
    "parse_experiment",
    "summary",
]
