"""What a repository already says it needs, read from the files researchers write.

A research repository rarely has ``[project.dependencies]``: it has a ``requirements.txt``,
a ``setup.py`` or ``setup.cfg``, a conda ``environment.yml``, or the environment file its
``MLproject`` names (a conda ``conda.yaml`` or MLflow's ``python_env.yaml``). ``harness
init`` proposes the experiments group from all of them, so the first image holds what the
code imports instead of failing one missing package per run.

Everything here is read, never run: ``setup.py`` is parsed with :mod:`ast` and only literal
lists (or a module-level name bound to one) are taken; the YAML loader is the safe one.
Files are read within a size bound, only from the project's top folder (and the
requirement files it includes, inside the project), and links are not followed. A line
that is not a plain requirement (an editable install, a URL, an option) is left out and
named, so the user sees what was not taken.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from tomlkit.exceptions import TOMLKitError

# The largest declaration file read: real ones are a few kilobytes.
FILE_LIMIT = 1 << 20
# Requirement files whose names say they are for something other than running the code.
_NOT_FOR_RUNNING = re.compile(r"(^|[-_.])(dev|test|tests|testing|doc|docs|lint|ci)([-_.]|$)")
_INCLUDE_DEPTH = 5
_OPTION = re.compile(r"^-(r|-requirement)[ =]?\s*(?P<path>\S+)")
_MLPROJECT = "MLproject"
# conda's usual names for an environment file, read after the one an MLproject names.
_CONDA_FILES = ("environment.yml", "environment.yaml", "conda.yaml", "conda.yml")
# "name", then a version ("=1.2", ">=1.2,<2", " 1.2.*") and a build string to drop.
_CONDA_SPEC = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<version>[<>=!~ ]?[^ ]*)?")
# Conda packages with no PyPI distribution to install (the image has Python, and wheels
# carry their own compiled libraries and CUDA runtime), besides every lib* and _* one.
_CONDA_ONLY = frozenset(
    {
        "python",
        "pip",
        "setuptools",
        "wheel",
        "cudatoolkit",
        "cuda-toolkit",
        "cuda-version",
        "cudnn",
        "nccl",
        "mkl",
        "mkl-service",
        "blas",
        "openblas",
        "nomkl",
        "cpuonly",
        "pytorch-cuda",
        "pytorch-mutex",
        "ca-certificates",
        "openssl",
        "zlib",
        "xz",
        "tk",
        "sqlite",
        "readline",
        "ncurses",
        "ld_impl_linux-64",
    }
)
# Left out without a word: every environment lists them, and the image has its own.
_CONDA_TOOLING = frozenset({"python", "pip", "setuptools", "wheel"})
# conda names that differ from the PyPI name of the same package.
_CONDA_RENAMED = {"pytorch": "torch", "py-xgboost": "xgboost", "py-opencv": "opencv-python"}
_FRAMEWORK_NAMES = {"torch": "torch", "tensorflow": "tensorflow", "tensorflow-cpu": "tensorflow"}


@dataclass
class Declared:
    """The requirements found, each once (the first source wins), and what was left out."""

    # (requirement, where it came from), in the order found.
    requirements: list[tuple[str, str]] = field(default_factory=list)
    # A line per thing not taken: "requirements.txt: -e . (an editable install)".
    skipped: list[str] = field(default_factory=list)

    def add(self, text: str, source: str) -> None:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            why = (
                "a URL: the lock takes names and versions" if "://" in text else "not a requirement"
            )
            self.skipped.append(f"{source}: {text!r} ({why})")
            return
        if requirement.url:
            self.skipped.append(f"{source}: {text!r} (a URL: the lock takes names and versions)")
            return
        name = canonicalize_name(requirement.name)
        if any(canonicalize_name(Requirement(r).name) == name for r, _ in self.requirements):
            return
        self.requirements.append((str(requirement), source))

    def by_source(self) -> list[tuple[str, list[str]]]:
        """(source, its requirements' names) in the order the sources were read."""
        grouped: dict[str, list[str]] = {}
        for requirement, source in self.requirements:
            grouped.setdefault(source, []).append(Requirement(requirement).name)
        return list(grouped.items())

    def frameworks(self) -> list[str]:
        """The frameworks with CPU and CUDA builds among them (torch, tensorflow)."""
        found = []
        for requirement, _ in self.requirements:
            framework = _FRAMEWORK_NAMES.get(canonicalize_name(Requirement(requirement).name))
            if framework is not None and framework not in found:
                found.append(framework)
        return found


def read(root: Path, project: dict[str, Any] | None = None) -> Declared:
    """Every requirement the repository at ``root`` declares, with where it came from.

    ``project`` is pyproject.toml's ``[project]`` table when the caller has it parsed.
    """
    declared = Declared()
    if project is None:
        project = _pyproject_project(root)
    own_name = canonicalize_name(str(project.get("name", ""))) if project else ""
    for text in _strings(project.get("dependencies") if project else None):
        declared.add(text, "pyproject.toml [project.dependencies]")
    for path in sorted(root.glob("requirements*.txt")):
        if _NOT_FOR_RUNNING.search(path.stem.removeprefix("requirements")):
            declared.skipped.append(f"{path.name} (its name says it is not for running the code)")
            continue
        _read_requirements_file(root, path, path.name, declared, depth=0)
    _read_setup_cfg(root, declared)
    _read_setup_py(root, declared)
    for name in _environment_files(root, declared):
        _read_environment(root, name, declared)
    if own_name:
        declared.requirements = [
            (r, s)
            for r, s in declared.requirements
            if canonicalize_name(Requirement(r).name) != own_name
        ]
    return declared


def _text(path: Path) -> str | None:
    """A declaration file's text: a plain file (no link) within the size bound, else None."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        if path.stat().st_size > FILE_LIMIT:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [line for line in value.splitlines() if line.strip()]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def _pyproject_project(root: Path) -> dict[str, Any]:
    text = _text(root / "pyproject.toml")
    if text is None:
        return {}
    try:
        project = tomlkit.parse(text).unwrap().get("project", {})
    except TOMLKitError:
        return {}
    return project if isinstance(project, dict) else {}


def _read_requirements_file(
    root: Path, path: Path, source: str, declared: Declared, *, depth: int
) -> None:
    text = _text(path)
    if text is None:
        if path.exists() or path.is_symlink():
            declared.skipped.append(f"{source} (not a plain file within {FILE_LIMIT >> 20} MB)")
        return
    for raw in _joined_lines(text):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        include = _OPTION.match(line)
        if include is not None:
            target = (path.parent / include.group("path")).resolve()
            if depth >= _INCLUDE_DEPTH or not target.is_relative_to(root.resolve()):
                declared.skipped.append(f"{source}: {line} (outside the project, or too deep)")
            else:
                _read_requirements_file(root, target, target.name, declared, depth=depth + 1)
            continue
        if line.startswith("-"):
            what = "an editable install" if line.startswith(("-e", "--editable")) else "an option"
            declared.skipped.append(f"{source}: {line} ({what})")
            continue
        # pip's per-requirement options (--hash=...) are the lock's business.
        declared.add(line.split(" --", 1)[0].strip(), source)


def _joined_lines(text: str) -> Iterable[str]:
    buffer = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        yield buffer + line
        buffer = ""
    if buffer:
        yield buffer


def _read_setup_cfg(root: Path, declared: Declared) -> None:
    text = _text(root / "setup.cfg")
    if text is None:
        return
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        declared.skipped.append("setup.cfg (not readable as an INI file)")
        return
    for line in _strings(parser.get("options", "install_requires", fallback="")):
        declared.add(line.split("#", 1)[0].strip(), "setup.cfg [options] install_requires")


def _read_setup_py(root: Path, declared: Declared) -> None:
    text = _text(root / "setup.py")
    if text is None:
        return
    try:
        tree = ast.parse(text, filename="setup.py")
    except (SyntaxError, ValueError):
        declared.skipped.append("setup.py (not parseable Python)")
        return
    # Module-level names bound to a literal list: install_requires=REQUIREMENTS is common.
    literals: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                literals[target.id] = node.value
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or _called_name(call.func) != "setup":
            continue
        for keyword in call.keywords:
            if keyword.arg != "install_requires":
                continue
            value: ast.expr = keyword.value
            if isinstance(value, ast.Name):
                value = literals.get(value.id, value)
            try:
                requirements = ast.literal_eval(value)
            except ValueError:
                declared.skipped.append(
                    "setup.py install_requires (computed when setup.py runs; harness does not "
                    "run it: list the requirements in the experiments group)"
                )
                continue
            for text_requirement in _strings(requirements):
                declared.add(text_requirement, "setup.py install_requires")


def _called_name(function: ast.expr) -> str:
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return ""


def _yaml_document(root: Path, name: str, declared: Declared) -> object:
    """A YAML file of the project read safely; None (and a note) when it cannot be."""
    text = _text(root / name)
    if text is None:
        return None
    # PyYAML has no type stubs here; imported by name as harness's other YAML readers do.
    yaml: Any = importlib.import_module("yaml")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        declared.skipped.append(f"{name} (not readable as YAML)")
        return None


def _environment_files(root: Path, declared: Declared) -> list[str]:
    """The environment files to read: the one an MLproject names first (``conda_env`` or
    ``python_env``, as ``mlflow run`` would build it), then conda's usual names."""
    names: list[str] = []
    mlproject = next(
        (p.name for p in sorted(root.iterdir()) if p.name.lower() == _MLPROJECT.lower()), None
    )
    document = _yaml_document(root, mlproject, declared) if mlproject else None
    for key in ("python_env", "conda_env"):
        named = document.get(key) if isinstance(document, dict) else None
        if not isinstance(named, str):
            continue
        target = (root / named).resolve()
        if named.startswith("/") or not target.is_relative_to(root.resolve()):
            declared.skipped.append(f"{mlproject}: {key}: {named} (outside the project)")
        else:
            names.append(target.relative_to(root.resolve()).as_posix())
    for name in _CONDA_FILES:
        if name not in names:
            names.append(name)
    return names


def _read_environment(root: Path, name: str, declared: Declared) -> None:
    """A conda environment file, or MLflow's ``python_env.yaml`` (pip lines only)."""
    document = _yaml_document(root, name, declared)
    if not isinstance(document, dict):
        return
    dependencies = document.get("dependencies")
    # MLflow's python_env names its Python at the top (conda's puts it among the
    # dependencies), and each of its dependencies is a pip requirement line.
    if "python" in document or "build_dependencies" in document:
        _read_pip_lines(root, name, _strings(dependencies), declared)
        return
    left_out: list[str] = []
    for entry in dependencies if isinstance(dependencies, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("pip"), list):
            _read_pip_lines(root, f"{name} pip", _strings(entry["pip"]), declared)
        elif isinstance(entry, str):
            requirement = _from_conda(entry)
            if requirement is not None:
                declared.add(requirement, f"{name} (conda names, as on PyPI)")
            elif _conda_name(entry) not in _CONDA_TOOLING:
                left_out.append(entry)
    if left_out:
        declared.skipped.append(
            f"{name}: {', '.join(left_out)} (conda packages the image's Python and wheels "
            "bring themselves, or that PyPI does not have)"
        )


def _read_pip_lines(root: Path, source: str, lines: list[str], declared: Declared) -> None:
    for line in lines:
        include = _OPTION.match(line)
        if include is not None:
            target = (root / include.group("path")).resolve()
            if not target.is_relative_to(root.resolve()):
                declared.skipped.append(f"{source}: {line} (outside the project)")
            else:
                _read_requirements_file(root, target, target.name, declared, depth=1)
        elif line.startswith("-"):
            declared.skipped.append(f"{source}: {line} (an option)")
        else:
            declared.add(line, source)


def _conda_name(spec: str) -> str:
    match = _CONDA_SPEC.match(spec.split("::", 1)[-1].strip())
    return match.group("name").lower() if match else ""


def _from_conda(spec: str) -> str | None:
    """A conda match spec as the PyPI requirement it stands for; None where there is none.

    conda writes ``name``, ``channel::name``, ``name=1.2`` (any 1.2.x), ``name=1.2=build``,
    ``name 1.2.*`` and ``name>=1.2``. Most Python packages keep their name on both sides;
    the few that do not are renamed, and what is not a Python package (Python itself,
    compilers, CUDA and math libraries) is left out.
    """
    text = spec.split("::", 1)[-1].strip()
    match = _CONDA_SPEC.match(text)
    if match is None:
        return None
    name = match.group("name").lower()
    if name in _CONDA_ONLY or name.startswith(("lib", "_")):
        return None
    name = _CONDA_RENAMED.get(name, name)
    version = (match.group("version") or "").strip()
    if not version:
        return name
    if version[0] not in "<>=!~":
        # "=1.2" and "1.2" mean the 1.2 series in conda, "1.2.*" in PEP 440.
        version = version.split("=", 1)[0]
        version = "==" + (version if version.endswith("*") else version + ".*")
    elif version.startswith("=") and not version.startswith("=="):
        number, build, _ = version[1:].partition("=")
        # With a build string conda pins that one version; without, the series.
        version = "==" + (number if build or number.endswith("*") else number + ".*")
    return f"{name}{version}"


__all__ = ["Declared", "read"]
