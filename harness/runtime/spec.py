"""The run specification the host writes to ``/harness/spec.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from harness.runtime import determinism

SCHEMA = "harness.run-spec/v1"
# The keyword arguments the runner passes to an entry itself; parameters may not reuse them.
RESERVED_PARAMETERS = frozenset({"output", "seed", "inputs"})


class SpecError(ValueError):
    """The specification is unreadable or invalid; the message names the field."""


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    experiment: str
    entry: str | None
    command: tuple[str, ...] | None
    seed: int
    profile: str
    threads: int
    device: str
    output: Path
    meta: Path
    parameters: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Path] = field(default_factory=dict)
    # The project's source folder, where entries' modules are imported from; None when the
    # host puts it on PYTHONPATH instead.
    project: Path | None = None
    # The project as mounted, read-only; when set, the runtime lays out ``project`` from it
    # as a writable view first (see harness.runtime.project_view).
    project_source: Path | None = None
    # Output globs also matched, after the run, against what it wrote in the project view.
    project_outputs: tuple[str, ...] = ()
    # False only for a run that measures what the determinism switches are worth: seeds are
    # still set, the switches are left at the frameworks' defaults.
    switches: bool = True
    # Globs of the artifacts, and of files that are not: what the runtime sets aside after
    # the experiment (see outputs). Empty: every file is an artifact.
    outputs: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # A command's standard output is also written to this file of the output folder.
    stdout: str | None = None

    @property
    def entry_parts(self) -> tuple[str, str]:
        """The entry's module and the attribute path of its function."""
        if self.entry is None:
            raise SpecError("this run has a command, not an entry")
        module, _, function = self.entry.partition(":")
        return module, function


def load(path: Path) -> RunSpec:
    """Read and validate the specification at ``path``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot read the run spec {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise SpecError(f"the run spec {path} is not JSON: {error}") from error
    return parse(document)


def parse(document: object) -> RunSpec:
    """Validate a decoded specification. Unknown keys are ignored, so that a newer host can
    add fields that an older image's runtime does not use."""
    if not isinstance(document, dict):
        raise SpecError("the run spec must be a JSON object")
    if document.get("schema") != SCHEMA:
        raise SpecError(f"schema is {document.get('schema')!r}; this runtime reads {SCHEMA!r}")
    entry = document.get("entry")
    command = document.get("command")
    if (entry is None) == (command is None):
        raise SpecError("exactly one of entry and command must be set")
    if entry is not None:
        module, colon, function = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not (module and colon and function):
            raise SpecError(f"entry must be 'module:function', not {entry!r}")
    if command is not None and (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) for part in command)
    ):
        raise SpecError("command must be a non-empty list of strings")
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise SpecError("parameters must be an object")
    clashes = sorted(RESERVED_PARAMETERS & parameters.keys())
    if clashes:
        raise SpecError(f"parameters may not be named {', '.join(clashes)}: the runner passes them")
    inputs = document.get("inputs") or {}
    if not isinstance(inputs, dict) or not all(
        isinstance(name, str) and isinstance(value, str) for name, value in inputs.items()
    ):
        raise SpecError("inputs must map names to paths")
    profile = _string(document, "profile")
    if profile not in determinism.PROFILES:
        raise SpecError(
            f"unknown profile {profile!r}: known profiles are {', '.join(determinism.PROFILES)}"
        )
    seed, threads, device = document.get("seed"), document.get("threads"), document.get("device")
    try:
        determinism.validate(seed=seed, threads=threads, device=device)
    except ValueError as error:
        raise SpecError(str(error)) from error
    project = document.get("project")
    if project is not None and (not isinstance(project, str) or not project):
        raise SpecError(f"project must be a non-empty string, not {project!r}")
    project_source, project_outputs = _project_view(document)
    # validate() checked their types.
    return RunSpec(
        run_id=_string(document, "run_id"),
        experiment=_string(document, "experiment"),
        entry=entry,
        command=None if command is None else tuple(command),
        seed=cast(int, seed),
        profile=profile,
        threads=cast(int, threads),
        device=cast(str, device),
        output=Path(_string(document, "output")),
        meta=Path(_string(document, "meta")),
        parameters=dict(parameters),
        inputs={name: Path(value) for name, value in inputs.items()},
        project=None if project is None else Path(project),
        project_source=None if project_source is None else Path(project_source),
        project_outputs=tuple(project_outputs),
        switches=_flag(document, "switches", default=True),
        outputs=_strings(document, "outputs"),
        exclude=_strings(document, "exclude"),
        stdout=_stdout(document, command is not None),
    )


def _project_view(document: Mapping[str, object]) -> tuple[str | None, list[str]]:
    """Where the read-only project is, to lay out the writable view from, and the output
    globs matched against what the run wrote there."""
    project_source = document.get("project_source")
    if project_source is not None and (not isinstance(project_source, str) or not project_source):
        raise SpecError(f"project_source must be a non-empty string, not {project_source!r}")
    project_outputs = document.get("project_outputs") or []
    if not isinstance(project_outputs, list) or not all(
        isinstance(glob, str) and glob for glob in project_outputs
    ):
        raise SpecError("project_outputs must be a list of globs")
    return project_source, project_outputs


def _stdout(document: Mapping[str, object], is_command: bool) -> str | None:
    """The output folder's file that keeps a command's standard output: a plain relative
    path that stays inside the folder."""
    value = document.get("stdout")
    if value is None:
        return None
    parts = value.split("/") if isinstance(value, str) else []
    if not is_command or not parts or any(part in ("", ".", "..") for part in parts):
        raise SpecError(
            f"stdout must be a relative path inside the output folder, for a command, not {value!r}"
        )
    return cast(str, value)


def _string(document: Mapping[str, object], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise SpecError(f"{key} must be a non-empty string, not {value!r}")
    return value


def _flag(document: Mapping[str, object], key: str, *, default: bool) -> bool:
    value = document.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{key} must be true or false, not {value!r}")
    return value


def _strings(document: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = document.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(f"{key} must be a list of strings, not {value!r}")
    return tuple(value)
